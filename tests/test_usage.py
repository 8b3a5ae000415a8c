"""What Cloud Eye says of the graphs' use, over a scripted Cloud Eye: an idle graph is judged
idle and a busy one not, missing data is never idle, and a stop schedule defers the stops of
graphs in use (remembering them only outside a dry run) but goes ahead when Cloud Eye is down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from daemon.cloud.errors import RetryableError
from daemon.config.loader import parse_config
from daemon.domain.model import Graph
from daemon.rules.planning import Decision
from daemon.runtime.deferrals import Deferrals
from daemon.runtime.usage import defer_stops_in_use, idle_verdicts
from daemon.telemetry.metrics import Metrics
from tests.fakes import FakeCes

NOW = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
CONFIG = parse_config(
    """
projects:
  - {name: lab, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdef, credentials: lab}
schedules:
  - name: stop-dev
    action: stop
    cron: "0 20 * * *"
    timezone: UTC
    targets: {projects: [lab]}
    defer_while_in_use: {within: 15m, max: 3h, check_every: 5m}
idle_rules:
  - {name: idle-dev, targets: {projects: [lab]}, idle_for: 1h, min_uptime: 0s}
"""
)
UP = NOW - timedelta(hours=5)
QUIET, BUSY = Graph("g1", "dev-quiet", 200, updated=UP), Graph("g2", "dev-busy", 200, updated=UP)
DOWN = RetryableError("down", service="ces", operation="q", status=503)


def stop(graph: Graph) -> Decision:
    return Decision("lab", graph.id, graph.name, "stop-dev", "stop", True, "running")


async def test_an_idle_graph_is_judged_idle_and_a_busy_one_in_use() -> None:
    ces = FakeCes({"g1": 0.0, "g2": 12.0})
    verdicts = await idle_verdicts(ces, CONFIG.idle_rules[0], "lab", [QUIET, BUSY], NOW)
    assert verdicts["lab", "g1"].is_idle
    assert not verdicts["lab", "g2"].is_idle
    assert ces.calls == 1  # one read for the project's candidates


async def test_no_data_or_no_answer_is_never_idle() -> None:
    empty = await idle_verdicts(FakeCes({}), CONFIG.idle_rules[0], "lab", [QUIET], NOW)
    down = await idle_verdicts(FakeCes({}, fail=DOWN), CONFIG.idle_rules[0], "lab", [QUIET], NOW)
    assert not empty["lab", "g1"].is_idle
    assert down["lab", "g1"].reason.startswith("not judged: Cloud Eye did not answer")


async def test_a_stop_of_a_graph_in_use_is_deferred_and_remembered_outside_a_dry_run() -> None:
    schedule = CONFIG.schedule("stop-dev")
    for remember in (False, True):
        deferrals = Deferrals(Metrics(CollectorRegistry()))
        kept = await defer_stops_in_use(
            FakeCes({"g1": 0.0, "g2": 12.0}), deferrals, schedule, "lab",
            [stop(QUIET), stop(BUSY)], NOW, remember=remember,
        )  # fmt: skip
        acts = {d.graph_name: (d.act, d.reason) for d in kept}
        assert acts["dev-quiet"] == (True, "running")
        assert acts["dev-busy"][0] is False
        assert acts["dev-busy"][1].startswith("deferred: in use")
        assert (("stop-dev", "lab", "g2") in deferrals) is remember


async def test_when_cloud_eye_cannot_say_the_stops_go_ahead() -> None:
    deferrals = Deferrals(Metrics(CollectorRegistry()))
    schedule = CONFIG.schedule("stop-dev")
    kept = await defer_stops_in_use(
        FakeCes({}, fail=DOWN), deferrals, schedule, "lab", [stop(BUSY)], NOW, remember=True
    )
    assert [(d.act, d.reason) for d in kept] == [(True, "running")]
