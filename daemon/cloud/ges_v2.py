"""The GES v2 management API (`/v2`, snake_case JSON, `POST .../graphs/{id}/stop|start`):
its wire models mapped into daemon.domain.model as v1's are, plus what only v2 says, the
edition (`product_type`: a Persistence graph cannot be stopped). The client, codes and
error mapping are shared with v1 in daemon.cloud.ges_service.
"""

from __future__ import annotations

from daemon.cloud.ges_service import (
    GesService,
    GesWire,
    GraphAnswer,
    GraphListAnswer,
    JobAnswer,
    JobIdAnswer,
    JobListAnswer,
    WireTags,
    job_state,
    parse_time,
    status_code,
    tag_map,
)
from daemon.cloud.transport import WireModel
from daemon.domain.model import Action, Graph, Job


class WireGraph(WireModel):
    """ListGraphsRespGraphs / ShowGraphRespGraph: the fields graphnap reads."""

    id: str
    name: str
    status: str
    graph_size_type_index: str = ""
    replication: int = 1
    updated: str | None = None
    product_type: str | None = None  # InMemory | Persistence (the database edition)
    tags: WireTags = None
    # Only the fields graphnap reads, as v1's (daemon.cloud.ges).

    def to_model(self) -> Graph:
        return Graph(
            id=self.id,
            name=self.name,
            status=status_code(self.status),
            size_index=self.graph_size_type_index,
            replication=self.replication,
            tags=tag_map(self.tags),
            updated=parse_time(self.updated),
            edition=self.product_type or None,
        )


class GraphList(GraphListAnswer):
    graph_count: int
    graphs: list[WireGraph] = []

    def page(self) -> tuple[int, list[Graph]]:
        return self.graph_count, [g.to_model() for g in self.graphs]


class GraphEnvelope(GraphAnswer):
    graph: WireGraph

    def to_graph(self) -> Graph:
        return self.graph.to_model()


class JobResponse(JobIdAnswer):
    job_id: str

    def to_job_id(self) -> str:
        return self.job_id


class WireJob(JobAnswer):
    """ShowJob2Response / ListJobsRespJobList."""

    job_id: str
    status: str
    job_type: str | None = None
    job_name: str | None = None
    related_graph: str | None = None
    begin_time: str | None = None
    end_time: str | None = None
    fail_reason: str | None = None
    job_progress: float | None = None

    def to_job(self) -> Job:
        return Job(
            id=self.job_id,
            state=job_state(self.status),
            graph_name=self.related_graph,
            begin=parse_time(self.begin_time),
            # an empty string is no reason: the failure then says only "job failed"
            fail_reason=self.fail_reason or None,
        )


class JobList(JobListAnswer):
    job_count: int
    job_list: list[WireJob] = []

    def page(self) -> tuple[int, list[Job]]:
        return self.job_count, [j.to_job() for j in self.job_list]


def _action(action: Action) -> tuple[str, dict[str, str]]:
    return action, {}  # its own path, no query; the SDK sends a stop without a body


V2 = GesWire(
    root="/v2",
    graph_list=GraphList,
    graph=GraphEnvelope,
    job_id=JobResponse,
    job=WireJob,
    job_list=JobList,
    action=_action,
    job_days=("start_time", "end_time"),
)


class GesV2Client(GesService):
    """One project's GES v2 management API."""

    WIRE = V2
