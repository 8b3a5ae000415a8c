"""The passes' sequencing over scripted fakes of GraphApi and MetricApi, on a manual clock:
the clients a pass starts with are the ones it finishes with, and Cloud Eye down means
nothing is judged idle (the idle verdicts a user reads in /status)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from daemon.cloud.errors import RetryableError
from daemon.config.loader import parse_config
from daemon.domain.model import Graph, GraphApi, MetricApi
from daemon.emulator import ManualClock
from daemon.runtime.deferrals import Deferrals
from daemon.runtime.executor import Executor
from daemon.runtime.holds import HoldBook
from daemon.runtime.inventory import Inventory
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.passes import Passes, PassSettings
from daemon.runtime.tracker import Tracker
from daemon.telemetry.metrics import Metrics
from tests.fakes import FakeCes, FakeGes

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CONFIG = parse_config(
    """
projects:
  - {name: lab, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdef, credentials: lab}
schedules:
  - {name: stop-dev, action: stop, cron: "0 20 * * *", timezone: UTC, targets: {projects: [lab], names: ["dev-*"]}}
idle_rules:
  - {name: idle-dev, targets: {projects: [lab], names: ["dev-*"]}, idle_for: 1h, min_uptime: 0s}
"""
)


async def never(seconds: float) -> None:
    raise AssertionError("no pass here waits")


def make(
    apis: dict[str, GraphApi], metric_apis: dict[str, MetricApi], clock: ManualClock
) -> Passes:
    metrics = Metrics(CollectorRegistry())
    outcomes = Outcomes(metrics)
    tracker = Tracker(outcomes, metrics, clock=clock, sleep=never)
    timeout = timedelta(minutes=10)
    return Passes(
        lambda: apis,
        lambda: metric_apis,
        Inventory(lambda: apis, tracker, metrics, job_timeout=timeout, clock=clock),
        Deferrals(metrics),
        Executor(tracker, outcomes),
        tracker,
        outcomes,
        metrics,
        PassSettings(dry_run=False, job_timeout=timeout),
        holds=HoldBook(None, metrics=metrics),
        clock=clock,
        sleep=never,
    )


class Reloading(FakeGes):
    """Listing the graphs, it lets a reload remove its project from the live mapping."""

    def __init__(self, graphs: list[Graph], live: dict[str, GraphApi]) -> None:
        super().__init__(graphs)
        self.live = live

    async def list_graphs(self) -> list[Graph]:
        self.live.clear()
        return await super().list_graphs()


async def test_a_firing_finishes_with_the_clients_it_started_with() -> None:
    clock = ManualClock(START)
    live: dict[str, GraphApi] = {}
    lab = Reloading([Graph("g1", "dev-a", 200), Graph("g2", "dev-b", 200)], live)
    live["lab"] = lab
    passes = make(live, {}, clock)
    report = await passes.fire(CONFIG, CONFIG.schedules[0], START)
    assert live == {}  # the project left while the firing ran
    assert [r.outcome for r in report.results] == ["requested", "requested"]
    assert sorted(c for c in lab.calls if c.startswith("stop")) == ["stop g1", "stop g2"]


async def test_cloud_eye_down_judges_no_graph_idle_and_stops_nothing() -> None:
    clock = ManualClock(START)
    lab = FakeGes([Graph("g1", "dev-a", 200, updated=START - timedelta(hours=3))])
    ces = FakeCes({}, fail=RetryableError("down", service="ces", operation="q", status=503))
    passes = make({"lab": lab}, {"lab": ces}, clock)
    await passes.idle(CONFIG, CONFIG.idle_rules[0])
    assert ces.calls == 1
    assert not any(c.startswith("stop") for c in lab.calls)
    verdicts: Mapping[str, str] = passes.idle_verdicts["idle-dev"]
    assert verdicts["lab/dev-a"].startswith("not judged: Cloud Eye did not answer")
