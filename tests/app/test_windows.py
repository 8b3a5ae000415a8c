"""The keep-stopped window pass of the real daemon against the emulator."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from daemon.emulator import Cloud, ManualClock
from daemon.emulator.graphs import EmuGraph
from tests.app.conftest import (
    MakeApp,
    actions,
    app_that_loses_lab_at_its_first_wait,
    start,
    statuses,
)
from tests.conftest import PROJECT


def without_hold(config_file: Path) -> None:
    """night-stop with manual_start_hold 0: a graph back inside the window is re-stopped."""
    config_file.write_text(
        config_file.read_text().replace(
            'keep_stopped_until: "0 8 * * *"',
            'keep_stopped_until: "0 8 * * *"\n    manual_start_hold: 0s',
        )
    )


def reasons(caplog: pytest.LogCaptureFixture, outcome: str) -> dict[str, str]:
    return {
        r.graph: r.reason  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "outcome", "") == outcome
    }


async def test_a_start_by_hand_inside_the_window_is_held_for_manual_start_hold(
    make_app: MakeApp,
    cloud: Cloud,
    clock: ManualClock,
    lab: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = await start(make_app())
    clock.advance(2 * 3600 + 300)  # 20:05 Shanghai
    await app.fire("night-stop")
    await app.settle()
    clock.advance(2 * 3600 + 300)  # 22:10
    cloud.act(PROJECT, lab["dev-a"].id, "start")  # someone needs it tonight
    cloud.settle()
    clock.advance(300)  # 22:15: the window pass
    with caplog.at_level(logging.INFO):
        await app.passes.keep_windows(app.config)
        await app.settle()
    assert statuses(cloud)["dev-a"] == 200
    said = reasons(caplog, "skipped")["dev-a"]
    assert said == "started by hand at 22:10; held until 00:10"
    (hold,) = app.people.list_holds()
    assert (hold.source, hold.keep, hold.by) == ("auto", "running", "schedule night-stop")

    clock.advance(3600)  # 23:15: still held
    await app.passes.keep_windows(app.config)
    assert statuses(cloud)["dev-a"] == 200
    clock.advance(3600 + 300)  # 00:20: its hold has ended; the window stops it again
    await app.passes.keep_windows(app.config)
    await app.settle()
    assert statuses(cloud)["dev-a"] == 900
    assert app.people.list_holds() == []


async def test_a_platform_restart_after_7_days_stopped_is_stopped_again_at_once(
    make_app: MakeApp,
    cloud: Cloud,
    clock: ManualClock,
    lab: dict[str, EmuGraph],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = tmp_path / "state.json"
    first = await start(make_app(state_file=state))
    clock.advance(2 * 3600 + 300)  # 20:05 Shanghai
    await first.fire("night-stop")
    await first.settle()
    await first.passes.keep_windows(first.config)  # lists it stopped: remembered
    await first.shutdown()

    clock.advance(7 * 86400)  # a week later, 20:05; graphnap restarted meanwhile
    cloud.act(PROJECT, lab["test-c"].id, "start")  # GES's own restart after 7 days
    cloud.settle()
    clock.advance(600)
    second = await start(make_app(state_file=state))
    with caplog.at_level(logging.INFO):
        await second.passes.keep_windows(second.config)
        await second.settle()
    assert statuses(cloud)["test-c"] == 900
    said = reasons(caplog, "requested")["test-c"]
    assert "the platform's 7-day restart; stopped again" in said
    assert second.people.list_holds() == []


async def test_with_manual_start_hold_0_the_window_restops_graphs_that_come_back(
    make_app: MakeApp,
    cloud: Cloud,
    clock: ManualClock,
    config_file: Path,
    lab: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
) -> None:
    without_hold(config_file)
    app = await start(make_app())
    clock.advance(2 * 3600 + 300)  # 20:05 Shanghai
    await app.fire("night-stop")
    await app.settle()
    cloud.act(PROJECT, lab["dev-a"].id, "start")  # someone starts it by hand
    clock.advance(3600)  # 21:05, inside the window
    assert statuses(cloud)["dev-a"] == 200

    caplog.clear()
    with caplog.at_level(logging.INFO):
        await app.passes.keep_windows(app.config)
        await app.settle()
    assert statuses(cloud)["dev-a"] == 900
    assert (
        cloud.count("graph_action", graph_id=lab["dev-a"].id) == 2
    )  # stop and re-stop (the manual start bypassed us)
    restop = [r for r in caplog.records if getattr(r, "outcome", "") == "requested"]
    assert [r.graph for r in restop] == ["dev-a"]  # type: ignore[attr-defined]
    assert restop[0].reason.startswith(  # type: ignore[attr-defined]
        "came back running inside the keep-stopped window (until 2026-11-28T08:00:00+08:00"
    )

    clock.advance(12 * 3600)  # 09:05 next morning: the window is over
    cloud.act(PROJECT, lab["dev-a"].id, "start")
    clock.advance(60)
    await app.passes.keep_windows(app.config)
    assert (
        cloud.count("graph_action", graph_id=lab["dev-a"].id) == 2
    )  # nothing new outside the window


async def test_the_window_pass_after_a_holiday_skip_stops_nothing(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, config_file: Path, lab: dict[str, EmuGraph]
) -> None:
    config_file.write_text(
        config_file.read_text()
        .replace("schedules:\n", "calendars:\n  friday-off: {dates: [2026-11-27]}\nschedules:\n")
        .replace(
            'keep_stopped_until: "0 8 * * *"',
            'keep_stopped_until: "0 8 * * *"\n    skip_on: friday-off',
        )
    )
    clock.advance(2 * 3600)  # Friday 20:00, a day off
    app = await start(make_app())
    assert (await app.fire("night-stop")).skipped_reason.startswith("holiday")
    clock.advance(5 * 60)
    await app.passes.keep_windows(app.config)
    await app.settle()
    assert cloud.count("graph_action") == 0


async def test_a_reload_that_removes_the_project_mid_window_pass_strands_no_graph(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, config_file: Path
) -> None:
    """The same for the keep-stopped window pass: it re-stops every graph it set out to."""
    back = [cloud.add_graph(PROJECT, f"dev-{i}") for i in range(3)]
    clock.advance(3 * 3600)  # 21:00 Shanghai, inside night-stop's window
    app, reloaded = await app_that_loses_lab_at_its_first_wait(make_app, config_file, clock)
    cloud.inject("graph_action", 429, "APIG.0308", "throttled", times=1)
    await app.passes.keep_windows(app.config)
    await app.settle()
    assert reloaded == [True]
    assert {g.name: g.status for g in back} == {"dev-0": 900, "dev-1": 900, "dev-2": 900}
    assert actions(app, "succeeded") == 3
