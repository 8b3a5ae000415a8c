"""A v1 project and a v2 project side by side in one config, the real daemon against the
emulator over loopback: each has its graphs stopped, started and followed through its own
API version, and a database-edition (Persistence) graph is left alone with its reason."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from daemon.emulator import Cloud, ManualClock, Timing
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from daemon.emulator.graphs import EmuGraph
from daemon.rules.planning import DATABASE_EDITION
from tests.app.conftest import MakeApp, sample, start, statuses
from tests.conftest import PROJECT

V2_PROJECT = "fedcba9876543210fedcba9876543210"

CONFIG = """
projects:
  - name: old
    region: cn-north-4
    project_id: {v1}
    credentials: lab
    endpoints: {{ges: "{url}", iam: "{url}", ces: "{url}"}}
  - name: new
    region: ae-ad-1
    project_id: {v2}
    credentials: lab
    ges_api: v2
    endpoints: {{ges: "{url}", iam: "{url}", ces: "{url}"}}
schedules:
  - name: night-stop
    action: stop
    cron: "0 20 * * *"
    timezone: Asia/Shanghai
    targets: {{names: ["dev-*"]}}
  - name: morning-start
    action: start
    cron: "0 8 * * *"
    timezone: Asia/Shanghai
    targets: {{names: ["dev-*"]}}
"""


@pytest.fixture
def cloud(clock: ManualClock) -> Cloud:
    return Cloud(
        [PROJECT, V2_PROJECT],
        clock=clock,
        seed=7,
        timing=Timing(pending_s=2, stop_s=10, start_s=20),
        access_keys={DEMO_AK: DEMO_SK},
    )


@pytest.fixture
def config_file(tmp_path: Path, emulator: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(v1=PROJECT, v2=V2_PROJECT, url=emulator))
    return path


@pytest.fixture
def fleet(cloud: Cloud) -> dict[str, EmuGraph]:
    return {
        "dev-v1": cloud.add_graph(PROJECT, "dev-v1"),
        "dev-v2": cloud.add_graph(V2_PROJECT, "dev-v2", size_index="4"),
        "dev-db": cloud.add_graph(V2_PROJECT, "dev-db", size_index="6", edition="Persistence"),
        "prod-v2": cloud.add_graph(V2_PROJECT, "prod-v2"),
    }


def _succeeded(app: object, project: str, rule: str, action: str) -> float:
    return sample(
        app,  # type: ignore[arg-type]
        "graphnap_actions_total",
        project=project,
        rule=rule,
        action=action,
        outcome="succeeded",
    )


async def test_v1_and_v2_projects_each_stop_start_and_follow_their_graphs(
    make_app: MakeApp,
    cloud: Cloud,
    fleet: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = await start(make_app())
    with caplog.at_level(logging.INFO):
        stop = await app.fire("night-stop")
        await app.settle()

    requested = {(r.decision.project, r.decision.graph_name) for r in stop.results if r.outcome == "requested"}  # fmt: skip
    assert requested == {("old", "dev-v1"), ("new", "dev-v2")}
    assert statuses(cloud) == {"dev-v1": 900, "dev-v2": 900, "dev-db": 200, "prod-v2": 200}
    assert _succeeded(app, "old", "night-stop", "stop") == 1
    assert _succeeded(app, "new", "night-stop", "stop") == 1
    # Each project went through its own API version, and only that one.
    by_project = {
        (r.project_id, r.path.split("/")[1]) for r in cloud.requests if r.operation != "unknown"
    }
    assert by_project == {(PROJECT, "v1.0"), (V2_PROJECT, "v2")}
    assert cloud.count("graph_action") == 1
    assert cloud.count("stop_graph") == 1
    assert cloud.count("stop_graph", graph_id=fleet["dev-db"].id) == 0  # never sent a stop

    skipped = {r.graph: r.reason for r in caplog.records if getattr(r, "outcome", "") == "skipped"}  # type: ignore[attr-defined]
    assert skipped == {"dev-db": DATABASE_EDITION}
    assert "database edition (Persistence)" in DATABASE_EDITION

    morning = await app.fire("morning-start")
    await app.settle()
    started = {r.decision.graph_name for r in morning.results if r.outcome == "requested"}
    assert started == {"dev-v1", "dev-v2"}
    (db,) = [r for r in morning.results if r.decision.graph_name == "dev-db"]
    assert (db.outcome, db.decision.reason) == ("skipped", DATABASE_EDITION)
    assert statuses(cloud) == {"dev-v1": 200, "dev-v2": 200, "dev-db": 200, "prod-v2": 200}
    assert _succeeded(app, "new", "morning-start", "start") == 1
    assert cloud.count("start_graph") == 1
    assert sample(app, "graphnap_jobs_in_flight", project="new", action="start") == 0


async def test_a_v2_job_that_fails_is_counted_with_its_reason(
    make_app: MakeApp, cloud: Cloud, fleet: dict[str, EmuGraph], caplog: pytest.LogCaptureFixture
) -> None:
    cloud.set_status(PROJECT, fleet["dev-v1"].id, 900)  # only the v2 graph is stopped
    cloud.faults.failing_jobs = 1
    app = await start(make_app())
    with caplog.at_level(logging.INFO):
        await app.fire("night-stop")
        await app.settle()
    failed = [r for r in caplog.records if getattr(r, "outcome", "") == "failed"]
    assert [r.graph for r in failed] == ["dev-v2"]  # type: ignore[attr-defined]
    # v2's fail_reason is the failure's reason
    assert "ECS operation timed out" in failed[0].reason  # type: ignore[attr-defined]
    assert statuses(cloud)["dev-v2"] == 200
    assert (
        sample(
            app, "graphnap_action_failures_total", project="new", action="stop", reason="job_failed"
        )
        == 1
    )
