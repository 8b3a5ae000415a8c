"""An idle rule with `notify.before` in the real daemon: against the emulator over loopback, to
a webhook receiver on loopback, on a manual clock. The idle graphs are warned of with a
postpone link each and stopped only at a check after the lead, if still idle and not held;
the page's POST holds one so the pass skips it with the hold's reason; a restart in between
neither warns again nor forgets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from daemon.app import App
from daemon.emulator import Cloud, ManualClock
from daemon.ops.backend import DaemonBackend
from daemon.ops.control import ControlServer, control_app
from daemon.ops.tokens import TokenBook
from tests.app.conftest import MakeApp, actions, start, statuses
from tests.conftest import PROJECT
from tests.receivers import Receiver, receiver
from tests.test_control import write_tokens

PUBLIC = "https://graphnap.example.com"
IDLE_WARNED = """
idle_rules:
  - name: idle-dev
    targets: {projects: [lab], names: ["dev-*"]}
    idle_for: 1h
    min_uptime: 30m
    check_every: 5m
    notify: {before: 15m}
notifications:
  channels:
    team: {type: webhook, cloudevents: false, signed: false, timeout: 2}
  routes:
    - {channels: [team], match: {kinds: [warning]}}
"""


@pytest.fixture
async def team() -> AsyncIterator[Receiver]:
    async with receiver() as rec:
        yield rec


def warned_app(make_app: MakeApp, team: Receiver, tmp_path: Path) -> App:
    return make_app(
        notify={"team": {"url": team.url}},
        control_public_url=PUBLIC,
        state_file=tmp_path / "state.json",
    )


async def idle_pass(app: App) -> None:
    await app.passes.idle(app.config, app.config.idle_rules[0])
    await app.settle()
    assert app.notifier is not None
    await asyncio.wait_for(app.notifier.drained(), 5)  # what the pass queued has gone out


async def test_idle_graphs_are_warned_of_and_stopped_after_the_lead_unless_postponed(
    make_app: MakeApp,
    cloud: Cloud,
    clock: ManualClock,
    config_file: Path,
    team: Receiver,
    tmp_path: Path,
) -> None:
    config_file.write_text(config_file.read_text() + IDLE_WARNED)
    cloud.add_graph(PROJECT, "dev-quiet")
    cloud.add_graph(PROJECT, "dev-kept")
    used = cloud.add_graph(PROJECT, "dev-queried")
    cloud.set_traffic(PROJECT, used.id, 3.0)
    clock.advance(2 * 3600)  # all up two hours; Cloud Eye has published up to 10 min ago
    first = await start(warned_app(make_app, team, tmp_path))

    await idle_pass(first)  # idle: warned of, nothing stopped yet
    (warning,) = [s.json() for s in team.seen]
    assert warning["type"] == "warning"
    assert warning["rule"] == "idle-dev"
    links = {g["name"]: g["postpone_url"] for g in warning["graphs"]}
    assert set(links) == {"dev-quiet", "dev-kept"}
    assert all(url.startswith(f"{PUBLIC}/postpone/v1.") for url in links.values())
    assert cloud.count("graph_action") == 0
    verdicts = first.status.status()["idle_rules"][0]["verdicts"]
    assert verdicts["lab/dev-quiet"].startswith("idle: 0 requests in 1h; warned at 12:00")
    assert verdicts["lab/dev-quiet"].endswith("stops at 12:15 +00:00 unless postponed")

    # dev-kept's link, as its owner uses it: the page (changes nothing), then its POST.
    control = control_app(
        DaemonBackend(first.people), TokenBook.from_dir(write_tokens(tmp_path / "tokens")),
        first.metrics, clock=clock, monotonic=lambda: 0.0, postpone=first.postpone,
    )  # fmt: skip
    path = links["dev-kept"].removeprefix(PUBLIC)
    async with (
        ControlServer(control, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        page = await http.get(path)
        assert page.status_code == 200
        assert "Rule <b>idle-dev</b> will stop it at" in page.text
        assert first.holds.holds(clock()) == []
        assert (await http.post(path, data={"for": "2h"})).status_code == 201
    await first.shutdown()

    clock.advance(5 * 60)  # a check inside the lead, after a restart: no second warning
    second = await start(warned_app(make_app, team, tmp_path))
    await idle_pass(second)
    assert len(team.seen) == 1
    assert cloud.count("graph_action") == 0

    clock.advance(10 * 60)  # the lead has passed: the idle graph stops, the held one does not
    await idle_pass(second)
    status = statuses(cloud)
    assert (status["dev-quiet"], status["dev-kept"], status["dev-queried"]) == (900, 200, 200)
    assert len(team.seen) == 1
    assert actions(second, "succeeded", rule="idle-dev") == 1
    verdicts = second.status.status()["idle_rules"][0]["verdicts"]
    assert verdicts["lab/dev-kept"].startswith("held running until 14:15 +00:00 by postpone link")
