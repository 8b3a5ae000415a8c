"""Holds and wake in the real daemon against the emulator: every pass honours a hold with
its reason, an expired one hands the graph back, API holds outlive a restart, and a wake's
start is followed to its end like any other action."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.domain.hold import HoldGraphs
from daemon.emulator import Cloud, ManualClock
from daemon.emulator.graphs import EmuGraph
from daemon.runtime.wake import UnknownGraph
from tests.app.conftest import SHANGHAI, MakeApp, actions, sample, start, statuses
from tests.app.test_idle_pass import IDLE_RULE

HELD = "held running until 23:00 +08:00 by token search-team: release test"


def skips(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    return {
        r.graph: r.reason  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "outcome", "") == "skipped"
    }


async def test_a_hold_is_honoured_by_firing_window_and_idle_pass_until_it_ends(
    make_app: MakeApp,
    cloud: Cloud,
    clock: ManualClock,
    config_file: Path,
    lab: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config_file.write_text(config_file.read_text() + IDLE_RULE)
    app = await start(make_app())
    hold = await app.people.create_hold(
        HoldGraphs("lab", names=("dev-a",)),
        keep="running",
        until=datetime(2026, 11, 27, 23, 0, tzinfo=SHANGHAI),
        reason="release test",
        by="token search-team",
    )
    assert sample(app, "graphnap_holds", project="lab", keep="running") == 1

    clock.advance(2 * 3600)  # 20:00: the nightly stop
    with caplog.at_level(logging.INFO):
        await app.fire("night-stop")
        await app.settle()
    assert statuses(cloud)["dev-a"] == 200
    assert statuses(cloud)["dev-b"] == 900
    assert skips(caplog)["dev-a"] == HELD

    caplog.clear()
    clock.advance(3600)  # 21:00, inside the window and idle for hours
    with caplog.at_level(logging.INFO):
        await app.passes.keep_windows(app.config)
        await app.passes.idle(app.config, app.config.idle_rules[0])
        await app.settle()
    assert statuses(cloud)["dev-a"] == 200
    assert skips(caplog)["dev-a"] == HELD
    assert app.status.status()["idle_rules"][0]["verdicts"]["lab/dev-a"] == HELD
    shown = app.status.status()["holds"]["in_force"]
    assert [(h["id"], h["keep"], h["by"], h["source"]) for h in shown] == [
        (hold.id, "running", "token search-team", "api")
    ]

    clock.advance(2 * 3600 + 300)  # 23:05: the hold has ended
    with caplog.at_level(logging.INFO):
        await app.passes.keep_windows(app.config)
        await app.settle()
    assert statuses(cloud)["dev-a"] == 900  # back under its rules: the window re-stopped it
    assert f"hold {hold.id} ended" in caplog.text
    assert app.people.list_holds() == []
    assert sample(app, "graphnap_holds", project="lab", keep="running") == 0


async def test_keep_stopped_skips_the_morning_start(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    app = await start(make_app())
    await app.people.create_hold(
        HoldGraphs("lab", ids=(lab["dev-stopped"].id,)),
        keep="stopped",
        until=datetime(2026, 11, 30, 9, 0, tzinfo=SHANGHAI),
        reason="on leave",
        by="alice",
    )
    clock.advance(14 * 3600)  # Saturday 08:00
    report = await app.fire("morning-start")
    await app.settle()
    reasons = {r.decision.graph_name: r.reason for r in report.results}
    assert reasons["dev-stopped"] == "held stopped until 2026-11-30 09:00 +08:00 by alice: on leave"
    assert statuses(cloud)["dev-stopped"] == 900
    assert actions(app, "skipped", rule="morning-start", action="start") >= 1


async def test_api_holds_survive_a_restart_on_the_same_state_file(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph], tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    first = await start(make_app(state_file=state))
    hold = await first.people.create_hold(
        HoldGraphs("lab", names=("dev-a",)),
        keep="running",
        until=datetime(2026, 11, 27, 23, 0, tzinfo=SHANGHAI),
        reason="release test",
        by="token search-team",
    )
    await first.shutdown()

    second = await start(make_app(state_file=state))
    assert second.people.list_holds() == [hold]
    clock.advance(2 * 3600)
    report = await second.fire("night-stop")
    await second.settle()
    assert {r.decision.graph_name: r.reason for r in report.results}["dev-a"] == HELD
    assert statuses(cloud)["dev-a"] == 200


async def test_without_a_state_file_holds_live_in_memory_and_it_says_so(
    make_app: MakeApp, lab: dict[str, EmuGraph], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        app = await start(make_app())
    assert "no state file: holds made through the API last until graphnap restarts" in caplog.text
    assert app.status.status()["holds"]["kept_in"].startswith("memory only")


async def test_a_wake_starts_a_stopped_graph_follows_its_job_and_holds_it_running(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    app = await start(make_app())
    woken_at = clock()
    wake = await app.people.wake("lab", "dev-stopped", hold_for=timedelta(hours=3), by="pipeline")
    assert wake.outcome == "requested"
    assert await wake.wait() is True
    assert statuses(cloud)["dev-stopped"] == 200
    assert actions(app, "succeeded", rule="wake", action="start") == 1
    assert wake.hold.until == woken_at + timedelta(hours=3)

    clock.advance(2 * 3600)  # 20:00: the nightly stop leaves it up (it is a dev-* graph)
    report = await app.fire("night-stop")
    reasons = {r.decision.graph_name: r.reason for r in report.results}
    assert reasons["dev-stopped"] == "held running until 13:00 +00:00 by pipeline: woken"

    again = await app.people.wake(
        "lab", lab["prod-x"].id, hold_for=timedelta(hours=1), by="pipeline"
    )
    assert (again.outcome, again.reason) == (None, "already running; held")
    assert await again.wait() is True


async def test_a_failing_start_job_of_a_wake_is_reported_failed(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    app = await start(make_app())
    cloud.faults.failing_jobs = 1
    wake = await app.people.wake("lab", "dev-stopped", hold_for=timedelta(hours=1), by="pipeline")
    assert await wake.wait() is False
    assert actions(app, "failed", rule="wake", action="start") == 1


async def test_a_wake_through_a_keep_stopped_hold_wins(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    app = await start(make_app())
    await app.people.create_hold(
        HoldGraphs("lab", names=("dev-stopped",)),
        keep="stopped",
        until=datetime(2026, 11, 30, 9, 0, tzinfo=SHANGHAI),
        reason="on leave",
        by="alice",
    )
    wake = await app.people.wake("lab", "dev-stopped", hold_for=timedelta(hours=1), by="bob")
    assert await wake.wait() is True
    assert statuses(cloud)["dev-stopped"] == 200


async def test_an_unknown_graph_or_project_is_one_error_that_says_neither(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    app = await start(make_app())
    with pytest.raises(UnknownGraph) as graph:
        await app.people.wake("lab", "nope", hold_for=timedelta(hours=1), by="x")
    with pytest.raises(UnknownGraph) as project:
        await app.people.wake("other", "dev-a", hold_for=timedelta(hours=1), by="x")
    assert str(graph.value) == str(project.value)
    assert app.people.list_holds() == []
    assert cloud.count("graph_action") == 0


async def test_a_hold_made_while_a_firing_lists_the_graphs_is_honoured_by_that_firing(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    made: list[str] = []

    async def sleep(seconds: float) -> None:  # the listing's retry after a 429
        if not made:
            hold = await app.people.create_hold(
                HoldGraphs("lab", names=("dev-a",)),
                keep="running",
                until=datetime(2026, 11, 27, 23, 0, tzinfo=SHANGHAI),
                reason="release test",
                by="token search-team",
            )
            made.append(hold.id)
        await clock.sleep(seconds)

    app = await start(make_app(sleep=sleep))
    clock.advance(2 * 3600)
    cloud.inject("list_graphs", 429, "APIG.0308", "throttled", times=1)
    report = await app.fire("night-stop")
    await app.settle()
    assert made
    assert {r.decision.graph_name: r.reason for r in report.results}["dev-a"] == HELD
    assert statuses(cloud)["dev-a"] == 200
