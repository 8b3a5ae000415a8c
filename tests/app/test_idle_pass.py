"""The idle pass of the real daemon against the emulator and its Cloud Eye data."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from daemon.emulator import Cloud, ManualClock
from tests.app.conftest import MakeApp, actions, sample, start, statuses
from tests.conftest import PROJECT

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
