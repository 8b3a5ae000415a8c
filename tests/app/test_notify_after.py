"""What the real daemon tells after the fact, against the emulator and receivers on loopback:
a firing's summary to a receiver answering 500 is retried within bounds and counted while the
firing goes on undelayed, the receiver's URL and secret never show in logs, /status or
metrics, and holds made, released and ended are told as they happen."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from daemon.domain.hold import HoldGraphs
from daemon.emulator import Cloud, ManualClock
from daemon.emulator.graphs import EmuGraph
from daemon.notify.signatures import WHSEC_PREFIX
from daemon.telemetry.logs import setup_logging
from tests.app.conftest import MakeApp, sample, start, statuses
from tests.receivers import Receiver, Scripted, receiver

SECRET = WHSEC_PREFIX + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # base64 of 24 bytes
KEY = "XXXXquerykeyXXXX"
TOLD = """
notifications:
  channels:
    team: {type: webhook, timeout: 2}
  routes:
    - channels: [team]
  settle: 0.1
  delivery: {attempts: 3, backoff_initial_s: 0, backoff_max_s: 0}
"""


@pytest.fixture
async def team() -> AsyncIterator[Receiver]:
    async with receiver() as rec:
        yield rec


@pytest.fixture
def daemon_log() -> Iterator[io.StringIO]:
    """The daemon's own log lines, as `graphnap run` writes them, at its most verbose."""
    out = io.StringIO()
    quiet = ("httpx", "httpcore", "apscheduler", "aiohttp.access")
    levels = {name: logging.getLogger(name).level for name in quiet}
    setup_logging("DEBUG", "json", stream=out)
    yield out
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def told(config_file: Path) -> Path:
    config_file.write_text(config_file.read_text() + TOLD)
    return config_file


async def test_a_summary_to_a_failing_receiver_is_retried_counted_and_its_secrets_kept(
    make_app: MakeApp,
    told: Path,
    lab: dict[str, EmuGraph],
    cloud: Cloud,
    team: Receiver,
    daemon_log: io.StringIO,
) -> None:
    team.default = Scripted(500, f"upstream error for {team.url}?key={KEY}")  # echoes the URL
    url = f"{team.url}?key={KEY}"
    app = await start(make_app(notify={"team": {"url": url, "secret": SECRET}}))
    report = await asyncio.wait_for(app.fire("night-stop"), 10)  # the receiver in no one's way
    await app.settle()
    assert {r.decision.graph_name for r in report.results if r.outcome == "requested"} == {
        "dev-a", "dev-b", "test-c"
    }  # fmt: skip
    assert statuses(cloud)["dev-a"] == 900
    await team.wait_for(3, timeout_s=10)  # the summary, tried 3 times: the bound
    assert app.notifier is not None
    await asyncio.wait_for(app.notifier.drained(), 10)
    assert len(team.seen) == 3
    assert all(s.json()["type"] == "io.graphnap.summary" for s in team.seen)
    failed = {"channel": "team", "kind": "summary", "outcome": "failed"}
    assert sample(app, "graphnap_notifications_total", **failed) == 1
    shown = [
        daemon_log.getvalue(),
        json.dumps(app.status.status(), default=str),
        generate_latest(app.registry).decode(),
    ]
    for text in shown:
        assert KEY not in text
        assert SECRET not in text
        assert SECRET.removeprefix(WHSEC_PREFIX) not in text
        assert team.url not in text
    assert "notification attempt 1/3 failed" in daemon_log.getvalue()


async def test_holds_made_released_and_ended_are_told(
    make_app: MakeApp, told: Path, lab: dict[str, EmuGraph], clock: ManualClock, team: Receiver
) -> None:
    app = await start(make_app(notify={"team": {"url": team.url, "secret": SECRET}}))
    graphs = HoldGraphs("lab", names=("dev-a",))
    until = clock() + timedelta(hours=1)
    kept = await app.people.create_hold(
        graphs, keep="running", until=until, reason="demo", by="bob"
    )
    short = await app.people.create_hold(graphs, keep="running", until=until, reason="x", by="bob")
    await app.people.release_hold(short.id, by="bob")
    clock.advance(3601)
    await app.passes.keep_windows(app.config)  # every pass drops the holds that ended
    await team.wait_for(4)
    events = [(s.json()["data"]["event"], s.json()["data"]["id"]) for s in team.seen]
    assert events == [
        ("made", kept.id), ("made", short.id), ("released", short.id), ("expired", kept.id)
    ]  # fmt: skip
    assert (
        team.seen[0].json()["data"]["title"].startswith("graphnap: hold made: keep running dev-a")
    )


async def test_a_hold_by_id_is_told_with_the_graphs_name(
    make_app: MakeApp, told: Path, lab: dict[str, EmuGraph], clock: ManualClock, team: Receiver
) -> None:
    """A wake holds its graph by id; people read the graph's name, not a UUID."""
    app = await start(make_app(notify={"team": {"url": team.url, "secret": SECRET}}))
    graph = lab["dev-b"]
    until = clock() + timedelta(hours=1)
    await app.people.create_hold(
        HoldGraphs("lab", ids=(graph.id,)), keep="running", until=until, reason="x", by="bob"
    )
    await team.wait_for(1)
    title = team.seen[0].json()["data"]["title"]
    assert title.startswith("graphnap: hold made: keep running dev-b (lab)")
    assert graph.id not in title
