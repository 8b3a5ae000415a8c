"""Scripted fakes of the domain protocols (GraphApi, MetricApi) for the runtime's unit
tests: they implement the protocols, never subclass a real client, and record their calls."""

from __future__ import annotations

from datetime import date, datetime

from daemon.cloud.errors import ApiError
from daemon.domain.model import REQUEST_COUNT, Aggregation, Datapoint, Graph, Job, PageSink


class FakeGes:
    """One project's graphs; a stop moves a graph to 901 and answers a job id. `fail` raises
    from list_graphs while set."""

    def __init__(self, graphs: list[Graph], *, fail: ApiError | None = None) -> None:
        self.graphs = {g.id: g for g in graphs}
        self.fail = fail
        self.calls: list[str] = []

    async def list_graphs(self, on_page: PageSink | None = None) -> list[Graph]:
        self.calls.append("list_graphs")
        if self.fail is not None:
            raise self.fail
        return list(self.graphs.values())

    async def show_graph(self, graph_id: str) -> Graph:
        return self.graphs[graph_id]

    async def stop_graph(self, graph_id: str) -> str:
        self.calls.append(f"stop {graph_id}")
        g = self.graphs[graph_id]
        self.graphs[graph_id] = Graph(g.id, g.name, 901, g.size_index, g.replication, g.tags)
        return f"job-{graph_id}"

    async def start_graph(self, graph_id: str, backup_id: str | None = None) -> str:
        self.calls.append(f"start {graph_id}")
        return f"job-{graph_id}"

    async def job_status(self, graph_id: str, job_id: str) -> Job:
        return Job(id=job_id, state="running")

    async def list_jobs(
        self, *, status: str | None = None, graph_name: str | None = None, since: date | None = None
    ) -> list[Job]:
        self.calls.append("list_jobs")
        return []


class FakeCes:
    """Cloud Eye: each graph's request count per minute (absent: no data), or an error."""

    def __init__(self, per_minute: dict[str, float], *, fail: ApiError | None = None) -> None:
        self.per_minute = per_minute
        self.fail = fail
        self.calls = 0

    async def request_counts(
        self,
        graph_ids: list[str],
        *,
        metric: str = REQUEST_COUNT,
        aggregation: Aggregation = "sum",
        start: datetime,
        end: datetime,
        period_s: int,
    ) -> dict[str, list[Datapoint]]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        out: dict[str, list[Datapoint]] = {}
        for gid in graph_ids:
            points = []
            if gid in self.per_minute:
                at = start
                while at < end:
                    points.append(Datapoint(at, self.per_minute[gid] * period_s / 60))
                    at = at.fromtimestamp(at.timestamp() + period_s, at.tzinfo)
            out[gid] = points
        return out
