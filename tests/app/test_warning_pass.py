"""The warning before a stop in the real daemon: against the emulator over loopback, to a
webhook receiver on loopback, on a manual clock. The warning lists what the firing would stop
(and only that), its links open a page whose POST makes the hold, and a receiver that is
slow, down or refusing delays no firing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.app import App
from daemon.domain.hold import HoldGraphs
from daemon.emulator import Cloud, ManualClock
from daemon.emulator.graphs import EmuGraph
from daemon.ops.backend import DaemonBackend
from daemon.ops.control import ControlServer, control_app
from daemon.ops.tokens import TokenBook
from daemon.ops.views import HoldRequest, HoldView
from daemon.runtime.holds import HoldBook
from tests.app.conftest import SHANGHAI, MakeApp, actions, statuses
from tests.receivers import Receiver, Scripted, receiver
from tests.test_control import write_tokens

PUBLIC = "https://graphnap.example.com"
WARNED = """
notifications:
  channels:
    team: {type: webhook, cloudevents: false, signed: false, timeout: 2}
    slow: {type: webhook, cloudevents: false, signed: false, timeout: 2}
  routes:
    - {channels: [team, slow], match: {kinds: [warning]}}
  delivery: {attempts: 2, backoff_initial_s: 0, backoff_max_s: 0}
"""
AT_1950 = datetime(2026, 11, 27, 19, 50, tzinfo=SHANGHAI).astimezone(UTC)
FIRE = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)


@pytest.fixture
def warned_config(config_file: Path) -> Path:
    text = config_file.read_text().replace(
        '    keep_stopped_until: "0 8 * * *"\n',
        '    keep_stopped_until: "0 8 * * *"\n    notify: {before: 15m}\n',
    )
    assert "before: 15m" in text
    config_file.write_text(text + WARNED)
    return config_file


@pytest.fixture
async def team() -> AsyncIterator[Receiver]:
    async with receiver() as rec:
        yield rec


@pytest.fixture
async def slow() -> AsyncIterator[Receiver]:
    async with receiver() as rec:
        yield rec
        if rec.default.hold is not None:
            rec.default.hold.set()  # let the receiver close


def started(make_app: MakeApp, team: Receiver, slow: Receiver, **overrides: object) -> App:
    return make_app(
        notify={"team": {"url": team.url}, "slow": {"url": slow.url}},
        control_public_url=PUBLIC,
        **overrides,
    )


class BookBackend:
    """The control API's backend over a real hold book (the daemon's own backend lands with
    the holds wiring): what the postpone POST makes is what planning would read."""

    def __init__(self, book: HoldBook) -> None:
        self.book = book

    async def graphs(self, now: datetime) -> list[Any]:
        return []

    async def holds(self, now: datetime) -> list[HoldView]:
        return [_view(h) for h in self.book.holds(now)]

    async def create_hold(self, request: HoldRequest, *, by: str, now: datetime) -> HoldView:
        hold = await self.book.create(
            HoldGraphs(request.project, ids=(request.graph,)),
            keep=request.keep, until=request.until, reason=request.reason, by=by, now=now,
        )  # fmt: skip
        return _view(hold)

    async def release_hold(self, hold_id: str, *, by: str, now: datetime) -> HoldView:
        raise NotImplementedError

    async def wake(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def wait_wake(self, wake_id: str, *, timeout_s: float) -> Any:
        raise NotImplementedError


def _view(hold: Any) -> HoldView:
    graph = (hold.graphs.ids or hold.graphs.names)[0]
    return HoldView(hold.id, hold.graphs.project, graph, hold.keep, hold.until, hold.reason,
                    hold.by, "api")  # fmt: skip


async def test_the_warning_lists_what_the_firing_would_stop_with_a_postpone_link_each(
    make_app: MakeApp,
    warned_config: Path,
    lab: dict[str, EmuGraph],
    clock: ManualClock,
    team: Receiver,
    slow: Receiver,
    tmp_path: Path,
    cloud: Cloud,
) -> None:
    to(clock, AT_1950)  # 10 minutes before the stop: inside its 15m lead, so sent at start
    app = started(make_app, team, slow)
    await app.start(serve=False, watch=False)
    await team.wait_for(1)
    (warning,) = [s.json() for s in team.seen]
    assert warning["type"] == "warning"
    assert warning["fire_at"] == FIRE.isoformat()
    graphs = {g["name"]: g for g in warning["graphs"]}
    assert set(graphs) == {"dev-a", "dev-b", "test-c"}  # not busy, stopped, kept, opted out
    assert all(g["postpone_url"].startswith(f"{PUBLIC}/postpone/v1.") for g in graphs.values())
    assert "night-stop will stop 3 graphs at 20:00 +0800" in warning["title"]
    # The dry run left no trace: nothing counted, GES untouched.
    assert statuses(cloud)["dev-a"] == 200
    assert actions(app, "dry_run") == 0

    # The link, as a person uses it: the page twice (the unfurler, then them), then its POST.
    assert app.postpone is not None
    book = app.holds
    control = control_app(
        DaemonBackend(app.people), TokenBook.from_dir(write_tokens(tmp_path / "tokens")), app.metrics,
        clock=clock, monotonic=lambda: 0.0, postpone=app.postpone,
    )  # fmt: skip
    path = graphs["dev-a"]["postpone_url"].removeprefix(PUBLIC)
    async with (
        ControlServer(control, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        for _ in range(2):
            page = await http.get(path)
            assert page.status_code == 200
            assert "dev-a" in page.text
        assert book.holds(clock()) == []
        made = await http.post(path, data={"for": "2h"})
        assert made.status_code == 201
    (hold,) = book.holds(clock())
    assert hold.graphs == HoldGraphs("lab", ids=(lab["dev-a"].id,))
    assert (hold.keep, hold.until) == ("running", FIRE + timedelta(hours=2))  # 2h past the stop
    assert hold.reason == "postponed night-stop's stop of Fri 27 Nov 20:00 +08:00 from its warning"
    to(clock, FIRE)  # 20:00: the firing skips the postponed graph with the hold's reason
    report = await app.fire("night-stop")
    reasons = {r.decision.graph_name: (r.outcome, r.reason) for r in report.results}
    assert reasons["dev-a"][0] == "skipped"
    assert reasons["dev-a"][1].startswith("held running until 22:00 +08:00 by postpone link")
    assert reasons["dev-b"][0] == "requested"


def to(clock: ManualClock, at: datetime) -> None:
    clock.advance((at - clock()).total_seconds())


async def test_a_warning_whose_stop_has_come_is_not_sent_and_one_is_sent_once(
    make_app: MakeApp,
    warned_config: Path,
    lab: dict[str, EmuGraph],
    clock: ManualClock,
    team: Receiver,
    slow: Receiver,
) -> None:
    to(clock, AT_1950)
    app = started(make_app, team, slow)
    await app.start(serve=False, watch=False)
    await team.wait_for(1)
    await app.scheduler.warnings.warn(
        "night-stop", FIRE
    )  # the same fire time again: not sent twice
    to(clock, FIRE.astimezone(UTC) + timedelta(seconds=1))
    await app.scheduler.warnings.warn("night-stop", FIRE + timedelta(days=-1))  # its stop has come
    assert app.notifier is not None
    await asyncio.wait_for(app.notifier.drained(), 5)
    assert len(team.seen) == 1


async def test_a_slow_or_refusing_receiver_delays_no_firing(
    make_app: MakeApp,
    warned_config: Path,
    lab: dict[str, EmuGraph],
    clock: ManualClock,
    team: Receiver,
    slow: Receiver,
    cloud: Cloud,
) -> None:
    team.default = Scripted(status=429, headers={"Retry-After": "3600"})
    slow.default = Scripted(hold=asyncio.Event())  # never answers: each attempt times out
    to(clock, AT_1950)
    app = started(make_app, team, slow)
    await app.start(serve=False, watch=False)
    await slow.wait_for(1)  # the warning is stuck in a receiver that never answers
    await team.wait_for(1)  # ... and refused by one that says "come back in an hour"
    to(clock, FIRE.astimezone(UTC))
    report = await asyncio.wait_for(app.fire("night-stop"), 10)
    assert {r.decision.graph_name for r in report.results if r.outcome == "requested"} == {
        "dev-a", "dev-b", "test-c"
    }  # fmt: skip
    assert statuses(cloud)["dev-a"] in (901, 900)


async def test_without_a_public_url_the_warning_has_no_links(
    make_app: MakeApp,
    warned_config: Path,
    lab: dict[str, EmuGraph],
    clock: ManualClock,
    team: Receiver,
    slow: Receiver,
) -> None:
    to(clock, AT_1950)
    app = make_app(notify={"team": {"url": team.url}, "slow": {"url": slow.url}})
    await app.start(serve=False, watch=False)
    await team.wait_for(1)
    assert {g["postpone_url"] for g in team.seen[0].json()["graphs"]} == {""}
    assert app.postpone is None
