"""The keep-stopped window pass of the real daemon against the emulator."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from daemon.emulator import Cloud, ManualClock
from daemon.emulator.cloud import EmuGraph
from tests.app.conftest import (
    MakeApp,
    actions,
    app_that_loses_lab_at_its_first_wait,
    start,
    statuses,
)
from tests.conftest import PROJECT


async def test_keep_stopped_window_restops_graphs_that_come_back(
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
    assert restop[0].reason.startswith(
        "came back running inside the keep-stopped window (until 2026-11-28T08:00:00+08:00"
    )  # type: ignore[attr-defined]

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
