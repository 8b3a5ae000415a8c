"""A schedule firing of the real daemon (App) against the emulator: what it stops, skips, retries
and reports, missed firings, and a reload that comes while it runs."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path

import pytest

from daemon.emulator import Cloud, ManualClock
from daemon.emulator.graphs import EmuGraph
from tests.app.conftest import (
    SHANGHAI,
    MakeApp,
    actions,
    app_that_loses_lab_at_its_first_wait,
    failures,
    never,
    sample,
    start,
    statuses,
)


@pytest.mark.parametrize("auth", ["aksk", "password"])
async def test_a_firing_stops_exactly_the_selected_graphs_and_says_why_it_skips_the_others(
    make_app: MakeApp,
    cloud: Cloud,
    lab: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
    auth: str,
) -> None:
    app = await start(make_app(auth=auth))
    with caplog.at_level(logging.INFO):
        report = await app.fire("night-stop")
        await app.settle()

    assert sorted(r.decision.graph_name for r in report.results if r.outcome == "requested") == [
        "dev-a",
        "dev-b",
        "test-c",
    ]
    after = statuses(cloud)
    assert {n for n, s in after.items() if s == 900} == {"dev-a", "dev-b", "test-c", "dev-stopped"}
    assert after["prod-x"] == after["dev-db-keep"] == after["dev-opt"] == 200
    assert cloud.count("graph_action") == 3

    reasons = {r.graph: r.reason for r in caplog.records if getattr(r, "outcome", "") == "skipped"}  # type: ignore[attr-defined]
    assert reasons == {
        "dev-busy": "busy (importing)",
        "dev-stopped": "already stopped",
        "dev-db-keep": "excluded by the rule's exclude",
        "dev-opt": "opted out by tag graphnap-skip",
        "dev-snoozed": "snoozed until 2026-12-01T09:00:00+08:00 by tag graphnap-snooze-until",
    }
    succeeded = [r for r in caplog.records if getattr(r, "outcome", "") == "succeeded"]
    assert {r.graph for r in succeeded} == {"dev-a", "dev-b", "test-c"}  # type: ignore[attr-defined]
    assert all(r.job_id and r.duration_s > 0 for r in succeeded)  # type: ignore[attr-defined]

    assert actions(app, "succeeded") == 3
    assert actions(app, "skipped") == 5
    assert sample(app, "graphnap_job_duration_seconds_count", action="stop") == 3
    assert sample(app, "graphnap_jobs_in_flight", project="lab", action="stop") == 0


async def test_already_done_is_believed_only_when_the_graph_shows_it(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    # GES says "not running" about a graph that is running: that is no success.
    cloud.inject("graph_action", 400, "GES.7001", "The graph is not running.", times=1)
    app = await start(make_app())
    report = await app.fire("night-stop")
    await app.settle()
    (refused,) = [r for r in report.results if r.outcome == "failed"]
    assert refused.reason == "GES says GES.7001: The graph is not running., but graph is running"
    assert statuses(cloud)[refused.decision.graph_name] == 200
    assert actions(app, "already_done") == 0
    assert failures(app, "GES.7001") == 1
    assert actions(app, "succeeded") == 2


async def test_throttling_and_5xx_are_retried_and_succeed(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    cloud.inject("list_graphs", 503, "APIG.1009", "Service unavailable.", times=1)
    cloud.inject("graph_action", 429, "APIG.0308", "over ratelimit", times=2)
    cloud.inject("graph_action", 500, "GES.7006", times=1)
    app = await start(make_app())
    report = await app.fire("night-stop")
    await app.settle()
    assert sum(r.outcome == "requested" for r in report.results) == 3
    assert {n for n, s in statuses(cloud).items() if s == 900} >= {"dev-a", "dev-b", "test-c"}
    assert (
        sample(
            app, "graphnap_api_requests_total", service="ges", operation="stop_graph", code="429"
        )
        == 2
    )
    assert (
        sample(
            app, "graphnap_api_requests_total", service="ges", operation="stop_graph", code="500"
        )
        == 1
    )
    assert actions(app, "succeeded") == 3


async def test_a_failed_job_is_reported_failed_with_its_reason(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph], caplog: pytest.LogCaptureFixture
) -> None:
    cloud.faults.failing_jobs = 1
    app = await start(make_app())
    with caplog.at_level(logging.INFO):
        await app.fire("night-stop")
        await app.settle()
    failed = [r for r in caplog.records if getattr(r, "outcome", "") == "failed"]
    assert len(failed) == 1
    assert failed[0].levelno == logging.ERROR
    assert failed[0].reason.startswith("job failed: emulated failure")  # type: ignore[attr-defined]
    assert statuses(cloud)[failed[0].graph] == 200  # type: ignore[attr-defined]
    assert failures(app, "job_failed") == 1
    assert actions(app, "failed") == 1


async def test_a_permanent_refusal_fails_that_graph_only(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    cloud.inject("graph_action", 400, "GES.7041", "Insufficient permission.", times=1)
    app = await start(make_app())
    report = await app.fire("night-stop")
    await app.settle()
    assert sorted(r.outcome for r in report.results if r.decision.act) == [
        "failed",
        "requested",
        "requested",
    ]
    assert failures(app, "GES.7041") == 1
    assert cloud.count("graph_action") == 3  # no retry of a permanent error


async def test_a_daemon_killed_with_jobs_in_flight_finishes_them_after_restart_without_a_second_stop(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    first = await start(make_app(sleep=never))  # it dies before its first poll
    report = await first.fire("night-stop")
    assert sum(r.outcome == "requested" for r in report.results) == 3
    await first.tracker.stop()  # killed: its followers vanish, the jobs go on in GES
    clock.advance(4)  # the jobs are running now

    second = await start(make_app())
    assert len(second.tracker.jobs()) == 3
    assert {j.rule for j in second.tracker.jobs()} == {"resumed"}
    refire = await second.fire("night-stop")  # a firing now must not issue anything twice
    assert not any(r.outcome == "requested" for r in refire.results)
    await second.settle()

    assert {n for n, s in statuses(cloud).items() if s == 900} == {
        "dev-a",
        "dev-b",
        "test-c",
        "dev-stopped",
    }
    assert cloud.count("graph_action") == 3
    assert actions(second, "succeeded", rule="resumed") == 3


async def test_concurrent_firings_never_act_twice_on_one_graph(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    app = await start(make_app())
    await asyncio.gather(app.fire("night-stop"), app.fire("night-stop"))
    await app.settle()
    assert cloud.count("graph_action") == 3


async def test_dry_run_runs_everything_but_the_post(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph], caplog: pytest.LogCaptureFixture
) -> None:
    app = await start(make_app(dry_run=True))
    with caplog.at_level(logging.INFO):
        report = await app.fire("night-stop")
    assert cloud.count("graph_action") == 0
    assert cloud.count("list_graphs") >= 1
    assert sorted(r.decision.graph_name for r in report.results if r.outcome == "dry_run") == [
        "dev-a",
        "dev-b",
        "test-c",
    ]
    assert any("dry run: would stop" in getattr(r, "reason", "") for r in caplog.records)
    assert actions(app, "dry_run") == 3


async def test_a_missed_firing_runs_at_start_up_within_its_grace(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    clock.advance(
        2 * 3600 + 1800
    )  # 20:30 Shanghai: night-stop fired 30 min ago, while we were down
    app = make_app()
    await app.start(serve=False, schedule=True, watch=False)
    await app.settle()
    assert cloud.count("graph_action") == 3
    fired = datetime(2026, 11, 27, 20, 30, tzinfo=SHANGHAI).timestamp()
    assert sample(app, "graphnap_schedule_last_fire_timestamp_seconds", rule="night-stop") == fired


async def test_a_firing_missed_beyond_its_grace_does_not_run(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    clock.advance(4 * 3600)  # 22:00: two hours late, the default grace is one hour
    app = make_app()
    await app.start(serve=False, schedule=True, watch=False)
    await app.settle()
    assert cloud.count("graph_action") == 0


async def test_one_firing_of_a_schedule_at_a_time_and_once_per_fire_time(
    make_app: MakeApp,
    cloud: Cloud,
    clock: ManualClock,
    lab: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock.advance(2 * 3600 + 60)  # 20:01: the 20:00 firing is due
    app = make_app()
    await app.start(serve=False, schedule=False, watch=False)
    app.scheduler.apply(app.config)
    due = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    with caplog.at_level(logging.INFO):
        await asyncio.gather(
            app.scheduler.run("night-stop", due), app.scheduler.run("night-stop", due)
        )
        await app.scheduler.run("night-stop", due)  # the same 20:00 fire time again
        await app.settle()
    assert cloud.count("graph_action") == 3
    assert caplog.text.count("firing: 8 graphs selected") == 1
    assert sample(app, "graphnap_schedule_misfires_total", rule="night-stop") == 1
    assert "the previous one is still running" in caplog.text
    assert "it already ran for 2026-11-27T20:00:00+08:00" in caplog.text


async def test_a_catch_up_after_midnight_checks_the_holiday_of_the_day_it_was_scheduled(
    make_app: MakeApp,
    cloud: Cloud,
    clock: ManualClock,
    config_file: Path,
    lab: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A 23:30 stop that skips Friday 2026-11-27; graphnap comes up at 00:15 on Saturday.
    config_file.write_text(
        config_file.read_text().replace(
            "schedules:\n",
            "calendars:\n  friday-off: {dates: [2026-11-27]}\n"
            "schedules:\n"
            "  - {name: late-stop, action: stop, cron: '30 23 * * *', timezone: Asia/Shanghai,\n"
            "     targets: {projects: [lab], names: ['dev-*']}, skip_on: friday-off,\n"
            "     misfire_grace: 2h}\n",
        )
    )
    clock.advance(6 * 3600 + 15 * 60)
    app = make_app()
    with caplog.at_level(logging.INFO):
        await app.start(serve=False, schedule=True, watch=False)
        await app.settle()
    assert cloud.count("graph_action") == 0
    assert "firing skipped: holiday 2026-11-27 in calendar friday-off" in caplog.text


async def test_failure_series_exist_at_zero_so_the_first_failure_is_an_increase(
    make_app: MakeApp, lab: dict[str, EmuGraph], clock: ManualClock
) -> None:
    app = await start(make_app())
    get = app.registry.get_sample_value
    assert get("graphnap_schedule_misfires_total", {"rule": "night-stop"}) == 0
    assert get("graphnap_config_reloads_total", {"result": "failure"}) == 0
    failure = {"project": "lab", "action": "stop", "reason": "job_failed"}
    assert get("graphnap_action_failures_total", failure) == 0
    listed = get("graphnap_inventory_last_success_timestamp_seconds", {"project": "lab"})
    assert listed == clock().timestamp()
    assert (get("process_resident_memory_bytes") or 0) > 0


async def test_a_reload_that_removes_the_project_mid_firing_strands_no_graph(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, config_file: Path, lab: dict[str, EmuGraph]
) -> None:
    """The project leaves the config while its firing waits out a 429: the firing finishes
    with the clients it started with, and every selected graph stops."""
    cloud.inject("graph_action", 429, "APIG.0308", "throttled", times=1)
    app, reloaded = await app_that_loses_lab_at_its_first_wait(make_app, config_file, clock)
    report = await app.fire("night-stop")
    await app.settle()
    assert reloaded == [True]
    assert "lab" not in {p.name for p in app.config.projects}
    assert [r.outcome for r in report.results if r.decision.act] == ["requested"] * 3
    assert statuses(cloud) == {**statuses(cloud), "dev-a": 900, "dev-b": 900, "test-c": 900}
    assert actions(app, "succeeded") == 3
