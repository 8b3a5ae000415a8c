"""The passes' sequencing over scripted fakes of GraphApi and MetricApi, on a manual clock:
the clients a pass starts with are the ones it finishes with, a firing stops a page's graphs
while the next page is on its way, and Cloud Eye down means nothing is judged idle (the
idle verdicts a user reads in /status)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from daemon.cloud.errors import RetryableError
from daemon.config.loader import parse_config
from daemon.domain.model import Graph, GraphApi, MetricApi, PageSink, Sleep
from daemon.emulator import ManualClock
from daemon.runtime.deferrals import Deferrals
from daemon.runtime.executor import Executor
from daemon.runtime.firing import PassSettings
from daemon.runtime.holds import HoldBook
from daemon.runtime.inventory import Inventory
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.passes import Passes
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
    apis: dict[str, GraphApi],
    metric_apis: dict[str, MetricApi],
    clock: ManualClock,
    sleep: Sleep = never,
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
        sleep=sleep,
    )


class Reloading(FakeGes):
    """Listing the graphs, it lets a reload remove its project from the live mapping."""

    def __init__(self, graphs: list[Graph], live: dict[str, GraphApi]) -> None:
        super().__init__(graphs)
        self.live = live

    async def list_graphs(self, on_page: PageSink | None = None) -> list[Graph]:
        self.live.clear()
        return await super().list_graphs(on_page)


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


class Paged(FakeGes):
    """Lists in pages of `size`, handing each to the listing's `on_page`; before the pages
    after the first it waits for `more` (set by the test), or fails with `fail_after`."""

    def __init__(self, graphs: list[Graph], size: int, *, fail_after: bool = False) -> None:
        super().__init__(graphs)
        self.size = size
        self.more = asyncio.Event()
        self.fail_after = fail_after
        self.stops_done = {n: asyncio.Event() for n in range(1, len(graphs) + 1)}

    async def stop_graph(self, graph_id: str) -> str:
        job = await super().stop_graph(graph_id)
        self.stops_done[sum(c.startswith("stop") for c in self.calls)].set()
        return job

    async def list_graphs(self, on_page: PageSink | None = None) -> list[Graph]:
        self.calls.append("list_graphs")
        graphs = list(self.graphs.values())
        pages = [graphs[i : i + self.size] for i in range(0, len(graphs), self.size)]
        for number, page in enumerate(pages):
            if number:
                self.calls.append("waits for page 2")
                await self.more.wait()
                if self.fail_after:
                    raise RetryableError("page 2 failed", service="ges", operation="list_graphs")
            if on_page is not None:
                on_page(page)
        return graphs


async def test_a_firing_stops_the_first_pages_graphs_before_the_next_page_is_in() -> None:
    clock = ManualClock(START)
    lab = Paged([Graph(f"g{i}", f"dev-{i}", 200) for i in range(4)], size=2)
    passes = make({"lab": lab}, {}, clock)
    firing = asyncio.create_task(passes.fire(CONFIG, CONFIG.schedules[0], START))
    await asyncio.wait_for(lab.stops_done[2].wait(), timeout=10)
    assert sorted(c for c in lab.calls if c.startswith("stop")) == ["stop g0", "stop g1"]
    assert not lab.more.is_set()  # page 2 is still to come: the fake holds it back
    lab.more.set()
    report = await asyncio.wait_for(firing, timeout=10)
    assert sorted(r.decision.graph_id for r in report.results) == ["g0", "g1", "g2", "g3"]
    assert {r.outcome for r in report.results} == {"requested"}
    assert sorted(c for c in lab.calls if c.startswith("stop")) == [f"stop g{i}" for i in range(4)]


async def test_a_listing_failing_after_a_page_keeps_its_stops_and_plans_them_once() -> None:
    clock = ManualClock(START)
    lab = Paged([Graph(f"g{i}", f"dev-{i}", 200) for i in range(4)], size=2, fail_after=True)
    lab.more.set()
    waits: list[float] = []

    async def retry_wait(seconds: float) -> None:  # the firing's retry round: the API is back
        waits.append(seconds)
        lab.fail_after = False
        clock.advance(seconds)

    passes = make({"lab": lab}, {}, clock, sleep=retry_wait)
    report = await passes.fire(
        CONFIG, CONFIG.schedules[0], START, retry_until=START + timedelta(minutes=10)
    )
    assert waits == [30.0]
    assert report.failed_projects == ()
    # The first page's stops went out in the first round and are reported once, as
    # requested: the retry round lists again but plans only the graphs it had not.
    assert sorted(r.decision.graph_id for r in report.results) == ["g0", "g1", "g2", "g3"]
    assert {r.outcome for r in report.results} == {"requested"}
    assert sorted(c for c in lab.calls if c.startswith("stop")) == [f"stop g{i}" for i in range(4)]


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
