"""The real daemon (App) against the emulator over loopback HTTP, on a manual clock.

Firings are triggered the way the scheduler triggers them (App.fire / the catch-up at
start-up); the tracker's polling sleeps move the emulator's clock instead of waiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import generate_latest

from daemon.app import App
from daemon.config.loader import ConfigError
from daemon.config.models import Config
from daemon.config.settings import Settings
from daemon.domain.model import Sleep
from daemon.emulator import Cloud, ManualClock
from daemon.emulator.cloud import DEMO_AK, DEMO_DOMAIN, DEMO_PASSWORD, DEMO_SK, DEMO_USER, EmuGraph
from tests.conftest import PROJECT

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 18:00 in Shanghai on a Friday: two hours before the nightly stop, far from any catch-up.
START = datetime(2026, 11, 27, 18, 0, tzinfo=SHANGHAI).astimezone(UTC)

CONFIG = """
projects:
  - name: lab
    region: cn-north-4
    project_id: {project}
    credentials: lab
    endpoints: {{ges: "{url}", iam: "{url}", ces: "{url}"}}
schedules:
  - name: night-stop
    action: stop
    cron: "0 20 * * *"
    timezone: Asia/Shanghai
    targets: {{projects: [lab], names: ["dev-*", "test-*"]}}
    exclude: {{names: ["*-keep"]}}
    keep_stopped_until: "0 8 * * *"
  - name: morning-start
    action: start
    cron: "0 8 * * *"
    timezone: Asia/Shanghai
    targets: {{projects: [lab], tags: {{env: dev}}}}
pricing: {{currency: USD, hourly: {{"1": 1.25, "4": 12.0}}}}
"""

MakeApp = Callable[..., App]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def config_file(tmp_path: Path, emulator: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(project=PROJECT, url=emulator))
    return path


@pytest.fixture
async def make_app(config_file: Path, clock: ManualClock) -> AsyncIterator[MakeApp]:
    apps: list[App] = []

    def make(*, auth: str = "aksk", sleep: Sleep | None = None, **overrides: object) -> App:
        credentials = (
            {"lab": {"ak": DEMO_AK, "sk": DEMO_SK}}
            if auth == "aksk"
            else {"lab": {"user": DEMO_USER, "password": DEMO_PASSWORD, "domain": DEMO_DOMAIN}}
        )
        overrides.setdefault("config", config_file)
        settings = Settings(
            listen_host="127.0.0.1",
            listen_port=0,
            credentials=credentials,
            project_rate_per_s=1000,
            project_rate_initial_per_s=1000,
            poll_initial_s=5,
            poll_max_s=15,
            retry={
                "attempts": 4,
                "backoff_initial_s": 1,
                "backoff_max_s": 4,
                "backoff_jitter_s": 0,
            },
            **overrides,
        )  # type: ignore[arg-type]
        app = App(settings, clock=clock, sleep=sleep or clock.sleep)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.shutdown()


@pytest.fixture
def lab(cloud: Cloud) -> dict[str, EmuGraph]:
    """A project with one graph for every case a firing meets."""
    g = {
        "dev-a": cloud.add_graph(PROJECT, "dev-a", tags={"env": "dev"}),
        "dev-b": cloud.add_graph(
            PROJECT, "dev-b", size_index="4", replication=2, tags={"env": "dev"}
        ),
        "test-c": cloud.add_graph(PROJECT, "test-c"),
        "dev-busy": cloud.add_graph(PROJECT, "dev-busy", status=202, tags={"env": "dev"}),
        "dev-stopped": cloud.add_graph(PROJECT, "dev-stopped", status=900, tags={"env": "dev"}),
        "dev-db-keep": cloud.add_graph(PROJECT, "dev-db-keep", tags={"env": "dev"}),
        "dev-opt": cloud.add_graph(
            PROJECT, "dev-opt", tags={"env": "dev", "graphnap-skip": "ask bob"}
        ),
        "dev-snoozed": cloud.add_graph(
            PROJECT, "dev-snoozed", tags={"graphnap-snooze-until": "2026-12-01T09:00:00+08:00"}
        ),
        "prod-x": cloud.add_graph(PROJECT, "prod-x", tags={"env": "prod"}),
    }
    return g


def sample(app: App, metric: str, /, **labels: str) -> float:
    return app.registry.get_sample_value(metric, labels) or 0.0


def actions(app: App, outcome: str, *, rule: str = "night-stop", action: str = "stop") -> float:
    """graphnap_actions_total for the lab project."""
    return sample(
        app, "graphnap_actions_total", project="lab", rule=rule, action=action, outcome=outcome
    )


def failures(app: App, reason: str) -> float:
    """graphnap_action_failures_total of stops in the lab project."""
    return sample(
        app, "graphnap_action_failures_total", project="lab", action="stop", reason=reason
    )


async def never(seconds: float) -> None:
    """A tracker sleep that never ends: jobs stay in flight for as long as the test needs."""
    await asyncio.Future()


def statuses(cloud: Cloud) -> dict[str, int]:
    return {g.name: g.status for g in cloud.all_graphs()}


async def start(app: App, **kwargs: bool) -> App:
    await app.start(**{"serve": False, "schedule": False, "watch": False, **kwargs})
    return app


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


async def test_savings_accrue_for_managed_graphs_while_stopped(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    app = await start(make_app())
    await app.fire("night-stop")
    await app.settle()
    await app.passes.refresh_inventory(app.config)
    clock.advance(2 * 3600)
    await app.passes.refresh_inventory(app.config)
    # dev-a 1.25 + dev-b 12 x 2 replicas + test-c 1.25 + dev-stopped 1.25 (managed, already stopped), for 2 h
    assert sample(
        app, "graphnap_estimated_savings_total", project="lab", currency="USD"
    ) == pytest.approx(2 * (1.25 + 24 + 1.25 + 1.25), rel=1e-3)
    assert (
        sample(
            app,
            "graphnap_graph_hourly_price",
            project="lab",
            graph=lab["dev-b"].id,
            name="dev-b",
            currency="USD",
        )
        == 24
    )
    assert (
        sample(app, "graphnap_graph_stopped", project="lab", graph=lab["dev-a"].id, name="dev-a")
        == 1
    )
    assert sample(app, "graphnap_graphs", project="lab", status="stopped") == 4
    assert sample(app, "graphnap_graphs", project="lab", status="busy") == 1


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


async def test_an_invalid_config_on_reload_keeps_the_old_schedules(
    make_app: MakeApp, config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    await app.start(serve=False, schedule=True, watch=False)
    before = app.scheduler.next_fire_times()
    assert set(before) == {"night-stop", "morning-start"}
    good = config_file.read_text()

    config_file.write_text(good.replace('cron: "0 20 * * *"', 'cron: "0 25 * * *"'))
    with caplog.at_level(logging.ERROR):
        assert await app.source.reload() is False
    assert app.scheduler.next_fire_times() == before
    assert sample(app, "graphnap_config_last_reload_successful") == 0
    assert sample(app, "graphnap_config_reloads_total", result="failure") == 1
    assert "schedules[0].cron" in caplog.text
    assert "schedules[0].cron" in app.status.status()["config"]["last_reload_error"]

    config_file.write_text(
        good.replace("name: morning-start", "name: early-start").replace(
            '"0 8 * * *"\n    timezone', '"0 7 * * *"\n    timezone'
        )
    )
    assert await app.source.reload() is True
    assert set(app.scheduler.next_fire_times()) == {"night-stop", "early-start"}
    assert sample(app, "graphnap_config_last_reload_successful") == 1
    assert sample(app, "graphnap_config_reloads_total", result="success") == 1


async def test_missing_credentials_stop_the_start_with_a_clear_error(
    config_file: Path, clock: ManualClock
) -> None:
    app = App(Settings(config=config_file, credentials={}), clock=clock)
    with pytest.raises(ConfigError) as caught:
        await app.start(serve=False, schedule=False, watch=False)
    assert "projects[0].credentials" in caught.value.render()
    assert "GRAPHNAP_CREDENTIALS__LAB__AK" in caught.value.render()
    await app.shutdown()


async def test_ops_endpoints_answer_and_never_show_a_secret(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    app = make_app(sleep=never)
    await app.start(serve=True, schedule=True, watch=False)
    await app.fire("night-stop")
    assert app.server is not None
    async with httpx.AsyncClient(base_url=app.server.url) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).text == "ready\n"
        metrics_text = (await http.get("/metrics")).text
        status_response = await http.get("/status")
    assert 'graphnap_build_info{version="' in metrics_text
    assert "graphnap_jobs_in_flight" in metrics_text
    body = status_response.json()
    assert {s["name"] for s in body["schedules"]} == {"night-stop", "morning-start"}
    assert all(s["next_fire"] for s in body["schedules"])
    assert len(body["jobs_in_flight"]) == 3
    assert any(d["reason"] == "busy (importing)" for d in body["last_decisions"])
    for text in (metrics_text, status_response.text):
        assert DEMO_SK not in text
        assert DEMO_AK not in text


async def test_readiness_waits_for_a_first_inventory(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    cloud.inject("list_graphs", 403, "GES.7041", "Insufficient permission.", times=1)
    app = await start(make_app())
    (waiting,) = app.status.readiness()  # the request id GES gave follows the message
    assert waiting.startswith(
        "project lab: no inventory yet (ges list_graphs: GES.7041 (HTTP 403): Insufficient permission."
    )
    await app.passes.refresh_inventory(app.config)
    assert app.status.readiness() == []


async def test_a_configmap_symlink_swap_is_picked_up(
    tmp_path: Path, make_app: MakeApp, config_file: Path
) -> None:
    # Kubernetes mounts a ConfigMap as config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>/
    # and changes it by pointing ..data at a new directory.
    mount = tmp_path / "mount"
    first, second = mount / "..2026_11_27_1", mount / "..2026_11_27_2"
    first.mkdir(parents=True)
    second.mkdir()
    good = config_file.read_text()
    (first / "config.yaml").write_text(good)
    (second / "config.yaml").write_text(good.replace("name: morning-start", "name: later-start"))
    (mount / "..data").symlink_to(first.name)
    (mount / "config.yaml").symlink_to("..data/config.yaml")

    app = make_app(config=mount / "config.yaml")
    await app.start(serve=False, schedule=True, watch=False)
    assert await app.source.check() is False  # nothing changed
    (mount / "..data_tmp").symlink_to(second.name)
    (mount / "..data_tmp").replace(mount / "..data")  # the atomic swap
    assert await app.source.check() is True
    assert set(app.scheduler.next_fire_times()) == {"night-stop", "later-start"}


async def test_with_a_state_file_firings_missed_while_down_are_counted(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph], tmp_path: Path
) -> None:
    state = tmp_path / "state" / "graphnap.json"
    state.parent.mkdir()
    state.write_text('{"last_fire": {"night-stop": "2026-11-26T20:00:00+08:00"}}')
    clock.advance(3 * 86400 + 2 * 3600 + 600)  # Monday 20:10: Fri, Sat and Sun were missed
    app = make_app(state_file=state)
    await app.start(serve=False, schedule=True, watch=False)
    await app.settle()
    assert sample(app, "graphnap_schedule_misfires_total", rule="night-stop") == 3
    assert cloud.count("graph_action") == 3  # Monday's firing ran, 10 minutes late
    recorded = json.loads(state.read_text())["last_fire"]
    assert recorded["night-stop"] == "2026-11-30T20:00:00+08:00"


async def test_a_broken_state_file_is_ignored_with_a_warning(
    make_app: MakeApp, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "graphnap.json"
    state.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        await start(make_app(state_file=state), schedule=True)  # the scheduler reads it
    assert "state file" in caplog.text
    assert "unreadable" in caplog.text


async def test_jobs_are_resumed_once_ges_answers_even_if_it_was_down_at_start_up(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    first = await start(make_app(sleep=never))
    await first.fire("night-stop")
    await first.tracker.stop()  # killed with three jobs in flight

    cloud.inject("list_graphs", 503, "APIG.1009", "Service unavailable.", times=4)  # every attempt
    second = await start(make_app())
    assert second.tracker.jobs() == []
    assert second.status.readiness()[0].startswith(
        "project lab: no inventory yet (ges list_graphs: APIG.1009 (HTTP 503)"
    )

    await second.passes.refresh_inventory(
        second.config
    )  # the periodic inventory, once GES answers again
    assert len(second.tracker.jobs()) == 3
    await second.settle()
    assert second.status.readiness() == []
    assert cloud.count("graph_action") == 3
    assert actions(second, "succeeded", rule="resumed") == 3


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


IDLE_RULE = """
idle_rules:
  - name: idle-dev
    targets: {projects: [lab], names: ["dev-*"]}
    idle_for: 1h
    min_uptime: 30m
    check_every: 5m
"""


async def test_an_idle_rule_stops_the_graphs_nobody_queries_and_says_why_it_keeps_the_others(
    make_app: MakeApp,
    cloud: Cloud,
    clock: ManualClock,
    config_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config_file.write_text(config_file.read_text() + IDLE_RULE)
    quiet = cloud.add_graph(PROJECT, "dev-quiet")
    busy = cloud.add_graph(PROJECT, "dev-queried")
    cloud.set_traffic(PROJECT, busy.id, 3.0)  # three requests a minute
    cloud.add_graph(PROJECT, "prod-quiet")  # not selected
    clock.advance(2 * 3600)  # both up two hours; Cloud Eye has published up to 10 min ago
    late = cloud.add_graph(PROJECT, "dev-just-started")
    clock.advance(10 * 60)
    app = await start(make_app())
    with caplog.at_level(logging.INFO):
        await app.passes.idle(app.config, app.config.idle_rules[0])
        await app.settle()
    status = statuses(cloud)
    assert status == {**status, "dev-quiet": 900, "dev-queried": 200, "prod-quiet": 200}
    assert status["dev-just-started"] == 200
    stopped = [r for r in caplog.records if getattr(r, "outcome", "") == "requested"]
    assert [(r.graph, r.reason) for r in stopped] == [("dev-quiet", "idle: 0 requests in 1h")]  # type: ignore[attr-defined]
    verdicts = app.status.status()["idle_rules"][0]["verdicts"]
    assert verdicts["lab/dev-queried"] == "in use: 180 requests in the last 1h"
    assert verdicts["lab/dev-just-started"].startswith("not judged: up 10m")
    assert sample(app, "graphnap_idle_verdicts_total", rule="idle-dev", verdict="idle") == 1
    assert sample(app, "graphnap_idle_verdicts_total", rule="idle-dev", verdict="in_use") == 1
    assert actions(app, "succeeded", rule="idle-dev") == 1
    assert quiet.id
    assert late.id


async def test_an_idle_rule_outside_its_active_hours_judges_nothing(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, config_file: Path
) -> None:
    hours = '    active_hours: {from: "0 19 * * *", until: "0 7 * * *", timezone: Asia/Shanghai}\n'
    config_file.write_text(config_file.read_text() + IDLE_RULE + hours)
    cloud.add_graph(PROJECT, "dev-quiet")
    app = await start(make_app())
    clock.advance(2 * 3600 - 30 * 60)  # 19:30 Shanghai: inside the hours
    await app.passes.idle(app.config, app.config.idle_rules[0])
    await app.settle()
    assert statuses(cloud)["dev-quiet"] == 900
    assert cloud.count("graph_action") == 1

    cloud.add_graph(PROJECT, "dev-morning")
    clock.advance(14 * 3600)  # 09:30 next day: outside
    await app.passes.idle(app.config, app.config.idle_rules[0])
    assert cloud.count("graph_action") == 1


async def test_cloud_eye_down_means_no_graph_is_judged_idle(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, config_file: Path
) -> None:
    config_file.write_text(config_file.read_text() + IDLE_RULE)
    cloud.add_graph(PROJECT, "dev-quiet")
    clock.advance(2 * 3600)
    cloud.inject("batch_query_metric_data", 503, "ces.0015", "unavailable", times=100)
    app = await start(make_app())
    await app.passes.idle(app.config, app.config.idle_rules[0])
    assert cloud.count("graph_action") == 0
    verdicts = app.status.status()["idle_rules"][0]["verdicts"]
    assert verdicts["lab/dev-quiet"].startswith("not judged: Cloud Eye did not answer")


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


async def test_per_graph_series_can_be_turned_off_and_savings_still_accrue(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    app = await start(make_app(per_graph_metrics=False))
    await app.fire("night-stop")
    await app.settle()
    await app.passes.refresh_inventory(app.config)
    clock.advance(3600)
    await app.passes.refresh_inventory(app.config)
    text = generate_latest(app.registry).decode()
    assert "graphnap_graph_stopped{" not in text
    assert "graphnap_graph_hourly_price{" not in text
    saved = sample(app, "graphnap_estimated_savings_total", project="lab", currency="USD")
    assert saved == pytest.approx(1.25 + 24 + 1.25 + 1.25, rel=1e-3)
    assert sample(app, "graphnap_graphs", project="lab", status="stopped") == 4


async def test_a_reload_removes_the_series_of_rules_that_left_the_config(
    make_app: MakeApp, config_file: Path, lab: dict[str, EmuGraph]
) -> None:
    app = make_app()
    await app.start(serve=False, schedule=True, watch=False)
    get = app.registry.get_sample_value
    assert get("graphnap_schedule_misfires_total", {"rule": "morning-start"}) == 0
    config_file.write_text(config_file.read_text().replace("name: morning-start", "name: later"))
    assert await app.source.reload() is True
    assert get("graphnap_schedule_misfires_total", {"rule": "morning-start"}) is None
    assert get("graphnap_schedule_next_fire_timestamp_seconds", {"rule": "morning-start"}) is None
    assert get("graphnap_schedule_misfires_total", {"rule": "later"}) == 0
    assert get("graphnap_inventory_last_success_timestamp_seconds", {"project": "lab"}) is not None


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
    assert app.passes.deferrals == {}
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
    assert app.passes.deferrals == {}
    assert statuses(cloud)["dev-used"] == 200  # never stopped without evidence it is quiet
    assert sample(app, "graphnap_deferrals_total", rule="night-stop", outcome="gave_up") == 1


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


async def test_a_new_active_term_resumes_the_jobs_the_last_one_left(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    app = make_app(sleep=never)
    await app.start(serve=False, schedule=False, watch=False)
    await app.fire("night-stop")
    followed = len(app.tracker.jobs())
    await app.stop_active()  # leadership lost: the jobs go on in GES
    assert app.tracker.jobs() == []
    await app.start_active(schedule=False)  # and regained
    assert len(app.tracker.jobs()) == followed == 3


async def test_a_reload_while_the_first_inventory_waits_is_what_gets_scheduled(
    make_app: MakeApp, config_file: Path
) -> None:
    app = make_app()
    first_inventory = app.passes.refresh_inventory

    async def slow(config: Config) -> None:
        config_file.write_text(
            config_file.read_text().replace("name: morning-start", "name: later")
        )
        await app.source.reload()
        await first_inventory(config)

    app.passes.refresh_inventory = slow  # type: ignore[method-assign]
    await app.start(serve=False, schedule=True, watch=False)
    assert set(app.scheduler.next_fire_times()) == {"night-stop", "later"}
