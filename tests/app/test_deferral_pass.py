"""Deferred stops of the real daemon against the emulator: a stop schedule holds back graphs in
use, stops them once quiet, gives up at max, and the window pass leaves them alone."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from daemon.app import App
from daemon.emulator import Cloud, ManualClock
from daemon.emulator.graphs import EmuGraph
from tests.app.conftest import MakeApp, sample, start, statuses
from tests.conftest import PROJECT


async def test_a_stop_schedule_defers_a_graph_in_use_and_stops_it_once_quiet(
    make_app: MakeApp,
    cloud: Cloud,
    clock: ManualClock,
    config_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config_file.write_text(
        config_file.read_text().replace(
            'keep_stopped_until: "0 8 * * *"',
            'keep_stopped_until: "0 8 * * *"\n'
            "    defer_while_in_use: {within: 15m, max: 3h, check_every: 5m}",
        )
    )
    quiet = cloud.add_graph(PROJECT, "dev-quiet")
    used = cloud.add_graph(PROJECT, "dev-used")
    cloud.set_traffic(PROJECT, used.id, 2.0)
    clock.advance(2 * 3600)  # 20:00
    app = await start(make_app())
    report = await app.fire("night-stop")
    await app.settle()
    reasons = {r.decision.graph_name: r.reason for r in report.results}
    assert statuses(cloud) == {"dev-quiet": 900, "dev-used": 200}
    assert reasons["dev-used"].startswith("deferred: in use: ")
    assert sample(app, "graphnap_graphs_deferred", rule="night-stop") == 1

    clock.advance(5 * 60)  # still busy at the first re-check: nothing happens
    await app.passes.deferred(app.config)
    assert statuses(cloud)["dev-used"] == 200

    cloud.set_traffic(PROJECT, used.id, 0.0)  # the user goes home
    clock.advance(40 * 60)  # quiet for longer than `within` plus Cloud Eye's lag
    with caplog.at_level(logging.INFO):
        await app.passes.deferred(app.config)
        await app.settle()
    assert statuses(cloud)["dev-used"] == 900
    requested = [r for r in caplog.records if getattr(r, "outcome", "") == "requested"]
    assert [r.graph for r in requested] == ["dev-used"], [r.__dict__ for r in requested]  # type: ignore[attr-defined]
    (stop,) = requested
    assert stop.reason.startswith("quiet now (quiet: 0 requests in the last 15m)")  # type: ignore[attr-defined]
    assert sample(app, "graphnap_deferrals_total", rule="night-stop", outcome="stopped") == 1
    assert sample(app, "graphnap_graphs_deferred", rule="night-stop") == 0
    assert quiet.id


async def test_a_graph_still_in_use_at_max_is_reported_not_stopped(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, config_file: Path
) -> None:
    config_file.write_text(
        config_file.read_text().replace(
            'keep_stopped_until: "0 8 * * *"',
            'keep_stopped_until: "0 8 * * *"\n    defer_while_in_use: {within: 15m, max: 1h}',
        )
    )
    used = cloud.add_graph(PROJECT, "dev-used")
    cloud.set_traffic(PROJECT, used.id, 2.0)
    clock.advance(2 * 3600)
    app = await start(make_app())
    await app.fire("night-stop")
    for _ in range(13):  # every five minutes for an hour
        clock.advance(5 * 60)
        await app.passes.deferred(app.config)
    assert statuses(cloud)["dev-used"] == 200
    assert cloud.count("graph_action") == 0
    given_up = app.status.status()["last_decisions"][-1]
    assert given_up["graph"] == "dev-used"
    assert given_up["reason"].startswith("not stopped: still in use after 1h")
    assert sample(app, "graphnap_deferrals_total", rule="night-stop", outcome="gave_up") == 1


DEFER = (
    'keep_stopped_until: "0 8 * * *"',
    'keep_stopped_until: "0 8 * * *"\n'
    "    defer_while_in_use: {within: 15m, max: 3h, check_every: 5m}",
)


async def deferred_at_the_firing(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, config_file: Path
) -> tuple[App, EmuGraph]:
    """night-stop with deferral fires at 20:00 and defers dev-used, which is queried."""
    config_file.write_text(config_file.read_text().replace(*DEFER))
    used = cloud.add_graph(PROJECT, "dev-used")
    cloud.set_traffic(PROJECT, used.id, 2.0)
    clock.advance(2 * 3600)
    app = await start(make_app())
    await app.fire("night-stop")
    await app.settle()
    assert statuses(cloud)["dev-used"] == 200
    return app, used


async def test_the_window_pass_leaves_a_deferred_graph_to_its_deferral(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, config_file: Path
) -> None:
    app, _ = await deferred_at_the_firing(make_app, cloud, clock, config_file)
    clock.advance(5 * 60)
    await app.passes.keep_windows(app.config)
    await app.settle()
    assert statuses(cloud)["dev-used"] == 200  # still in use: not stopped behind its back


async def test_a_deferral_ends_when_its_graph_is_no_longer_selected(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, config_file: Path
) -> None:
    app, used = await deferred_at_the_firing(make_app, cloud, clock, config_file)
    used.name = "renamed-used"  # no longer dev-*
    clock.advance(5 * 60)
    await app.passes.deferred(app.config)
    assert app.deferrals.pending == {}
    assert sample(app, "graphnap_deferrals_total", rule="night-stop", outcome="dropped") == 1
    assert statuses(cloud)["renamed-used"] == 200


async def test_a_deferral_gives_up_at_max_even_when_cloud_eye_is_down(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, config_file: Path
) -> None:
    app, _ = await deferred_at_the_firing(make_app, cloud, clock, config_file)
    cloud.inject("batch_query_metric_data", 503, "ces.0015", "unavailable", times=10_000)
    for _ in range(40):  # every five minutes for over three hours
        clock.advance(5 * 60)
        await app.passes.deferred(app.config)
    assert app.deferrals.pending == {}
    assert statuses(cloud)["dev-used"] == 200  # never stopped without evidence it is quiet
    assert sample(app, "graphnap_deferrals_total", rule="night-stop", outcome="gave_up") == 1
