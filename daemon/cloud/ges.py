"""The GES v1 management API (`/v1.0`, camelCase JSON, `action?action_id=stop|start`):
its wire models mapped into daemon.domain.model. The client itself, the error codes and
what they mean are shared with v2 in daemon.cloud.ges_service.
"""

from __future__ import annotations

from pydantic import Field

from daemon.cloud.ges_service import (
    SERVICE,
    GesService,
    GesWire,
    GraphAnswer,
    GraphListAnswer,
    JobAnswer,
    JobIdAnswer,
    JobListAnswer,
    WireTags,
    error_for,
    job_state,
    parse_time,
    status_code,
    tag_map,
)
from daemon.cloud.transport import WireModel
from daemon.domain.model import Action, Graph, Job

__all__ = ["SERVICE", "GesClient", "Graph", "Job", "error_for"]  # as before the split


class WireGraph(WireModel):
    id: str
    name: str
    status: str
    graph_size_type_index: str = Field(default="", alias="graphSizeTypeIndex")
    replication: int = 1
    updated: str | None = None
    tags: WireTags = None
    # Only the fields graphnap reads: each one more is validated 50,000 times a listing at
    # 50,000 graphs, and a field nobody reads must not refuse a page.

    def to_model(self) -> Graph:
        # v1 does not say which edition a graph is: `edition` stays None (see ges_v2).
        return Graph(
            id=self.id,
            name=self.name,
            status=status_code(self.status),
            size_index=self.graph_size_type_index,
            replication=self.replication,
            tags=tag_map(self.tags),
            updated=parse_time(self.updated),
        )


class GraphList(GraphListAnswer):
    graph_count: int = Field(alias="graphCount")
    graphs: list[WireGraph] = []

    def page(self) -> tuple[int, list[Graph]]:
        return self.graph_count, [g.to_model() for g in self.graphs]


class GraphEnvelope(GraphAnswer):
    graph: WireGraph

    def to_graph(self) -> Graph:
        return self.graph.to_model()


class JobResponse(JobIdAnswer):
    job_id: str = Field(alias="jobId")

    def to_job_id(self) -> str:
        return self.job_id


class WireJob(JobAnswer):
    job_id: str = Field(alias="jobId")
    status: str
    job_type: str | None = Field(default=None, alias="jobType")
    job_name: str | None = Field(default=None, alias="jobName")
    related_graph: str | None = Field(default=None, alias="relatedGraph")
    begin_time: str | None = Field(default=None, alias="beginTime")
    end_time: str | None = Field(default=None, alias="endTime")
    fail_reason: str | None = Field(default=None, alias="failReason")
    job_progress: float | None = Field(default=None, alias="jobProgress")

    def to_job(self) -> Job:
        return Job(
            id=self.job_id,
            state=job_state(self.status),
            graph_name=self.related_graph,
            begin=parse_time(self.begin_time),
            fail_reason=self.fail_reason,
        )


class JobList(JobListAnswer):
    job_count: int = Field(alias="jobCount")
    job_list: list[WireJob] = Field(default=[], alias="jobList")

    def page(self) -> tuple[int, list[Job]]:
        return self.job_count, [j.to_job() for j in self.job_list]


def _action(action: Action) -> tuple[str, dict[str, str]]:
    return "action", {"action_id": action}


V1 = GesWire(
    root="/v1.0",
    graph_list=GraphList,
    graph=GraphEnvelope,
    job_id=JobResponse,
    job=WireJob,
    job_list=JobList,
    action=_action,
    job_days=("startTime", "endTime"),  # camelCase here, though the rest of v1's query is not
)


class GesClient(GesService):
    """One project's GES v1 management API."""

    WIRE = V1
