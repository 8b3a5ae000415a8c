"""Every project's graphs and their lifecycle: the fleet built (one by one, or a plausible
seeded population), listed in a cached order, and moved by stop/start jobs. A graph's status
is settled from the clock when read: transitions end from a heap ordered by end time, so
settling pops only the ended ones, whatever the number moving. Each status is kept with
its time, the history Cloud Eye reports from."""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from daemon.emulator.clock import Clock, system_clock
from daemon.emulator.cloudeye import DailyTraffic, Traffic
from daemon.emulator.faults import CloudFault
from daemon.emulator.jobs import EmuJob, TaskCenter

RUNNING, STOPPED, STOPPING, STARTING = 200, 900, 901, 920
OFFICE_HOURS = DailyTraffic(1, 11, 6.0)  # some requests 09:00-19:00 in UTC+8, none at night
PERSISTENCE = "Persistence"  # v2's product_type of the database edition, which cannot stop


@dataclass
class EmuGraph:
    id: str
    name: str
    project_id: str
    size_index: str = "1"
    replication: int = 1
    tags: dict[str, str] = field(default_factory=dict)
    status: int = RUNNING
    edition: str = "InMemory"  # v2's product_type: InMemory or Persistence
    created: datetime = field(default_factory=system_clock)
    updated: datetime = field(default_factory=system_clock)
    job: EmuJob | None = None  # the stop/start job moving the graph, if any
    previous_status: int = RUNNING
    # (since, status) for every status the graph has had: Cloud Eye's data follows it
    history: list[tuple[datetime, int]] = field(default_factory=list)
    traffic: Traffic = 0.0
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)  # no data, though up

    def record(self, status: int, since: datetime) -> None:
        self.status = status
        if not self.history or self.history[-1][1] != status:
            self.history.append((since, status))


class Fleet:
    """Every project's graphs; the jobs that move them are the Task Center's."""

    def __init__(
        self,
        project_ids: list[str],
        *,
        clock: Clock,
        rng: random.Random,
        task_center: TaskCenter,
    ) -> None:
        self.clock = clock
        self.rng = rng
        self.graphs: dict[str, dict[str, EmuGraph]] = {pid: {} for pid in project_ids}
        self.task_center = task_center
        # Graphs with a stop/start job, as (end, sequence, graph) in end order: settling
        # pops the ended ones only, whatever the number moving.
        self._moving: list[tuple[datetime, int, EmuGraph, EmuJob]] = []
        self._sequence = 0
        self._order: dict[str, list[EmuGraph]] = {}  # each project's listing order, cached

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add_graph(
        self,
        project_id: str,
        name: str,
        *,
        status: int = RUNNING,
        size_index: str = "1",
        replication: int = 1,
        tags: dict[str, str] | None = None,
        graph_id: str | None = None,
        created: datetime | None = None,
        traffic: Traffic = 0.0,
        edition: str = "InMemory",
    ) -> EmuGraph:
        """A graph; `created` in the past gives it a history (running since then) for backtests.
        `edition` "Persistence" is the database edition, which refuses a stop."""
        now = created or self.clock()
        graph = EmuGraph(
            id=graph_id or self._uuid(),
            name=name,
            project_id=project_id,
            size_index=size_index,
            replication=replication,
            tags=dict(tags or {}),
            status=status,
            created=now,
            updated=now,
            history=[(now, status)],
            traffic=traffic,
            edition=edition,
        )
        self.graphs[project_id][graph.id] = graph
        self._order.pop(project_id, None)
        return graph

    def populate(
        self,
        project_id: str,
        count: int,
        *,
        busy: int = 0,
        stopped: int = 0,
        history: timedelta = timedelta(0),
    ) -> None:
        """`count` plausible graphs: dev/test/prod names and tags, mixed sizes, seeded.
        `history` > 0 has them created that long ago, so Cloud Eye already has their data
        (idle rules can judge at once; a backtest has something to replay)."""
        created = self.clock() - history if history > timedelta(0) else None
        envs = ["dev", "dev", "test", "prod"]
        domains = ["recsys", "fraud", "kg", "social", "supply", "risk", "search"]
        for i in range(count):
            env = envs[i % len(envs)]
            status = RUNNING
            if i < busy:
                status = self.rng.choice([202, 204, 205])  # importing, exporting, clearing
            elif i < busy + stopped:
                status = STOPPED
            # prod is queried all day, test now and then, dev not at all: an idle rule on
            # env=dev has something to stop and a deferral something to wait for.
            traffic: Traffic = 40.0 if env == "prod" else OFFICE_HOURS if env == "test" else 0.0
            self.add_graph(
                project_id,
                f"{env}-{self.rng.choice(domains)}-{i:02d}",
                status=status,
                size_index=self.rng.choice(["1", "1", "2", "4"]),
                replication=self.rng.choice([1, 1, 3]),
                tags={"env": env, "team": self.rng.choice(["ml", "risk", "data"])},
                traffic=traffic,
                created=created,
            )

    def graph(self, project_id: str, graph_id: str) -> EmuGraph:
        self.settle()
        graph = self.graphs[project_id].get(graph_id)
        if graph is None:
            raise CloudFault(400, "GES.7000", "The graph does not exist or has been deleted.")
        return graph

    def list_graphs(self, project_id: str) -> list[EmuGraph]:
        """The project's graphs, oldest first (sorted once per change of the fleet, not per
        page). The list is shared: callers slice it and must not change it."""
        self.settle()
        order = self._order.get(project_id)
        if order is None:
            order = sorted(self.graphs[project_id].values(), key=lambda g: (g.created, g.name))
            self._order[project_id] = order
        return order

    def settle(self) -> None:
        """Finish every transition whose job has ended by now."""
        now = self.clock()
        while self._moving and self._moving[0][0] <= now:
            _, _, graph, job = heapq.heappop(self._moving)
            self.task_center.end(job)
            if graph.job is not job:
                continue  # the graph was reset or has moved again since
            if job.fails:
                graph.record(graph.previous_status, job.end_at)
            else:
                graph.record(STOPPED if job.kind == "stop" else RUNNING, job.end_at)
            graph.updated = job.end_at
            graph.job = None

    def begin(self, graph: EmuGraph, job: EmuJob, now: datetime) -> None:
        """`job` moves `graph` from now until the job's end."""
        graph.previous_status = graph.status
        graph.record(STOPPING if job.kind == "stop" else STARTING, now)
        graph.updated = now
        graph.job = job
        self._sequence += 1
        heapq.heappush(self._moving, (job.end_at, self._sequence, graph, job))

    def set_status(self, project_id: str, graph_id: str, status: int) -> None:
        """Move a graph to any status now (a busy import, a fault), remembered for Cloud Eye."""
        graph = self.graph(project_id, graph_id)
        graph.record(status, self.clock())
        graph.updated = self.clock()

    def rewind(self) -> None:
        """Every graph back to running with no job. Walks the fleet once."""
        now = self.clock()
        for graph in self.all_graphs():
            graph.job = None
            graph.record(RUNNING, now)
            graph.updated = now
        self._moving.clear()

    def all_graphs(self) -> Iterator[EmuGraph]:
        self.settle()
        for graphs in self.graphs.values():
            yield from graphs.values()
