"""Async client for the GES v1 management API: graphs, stop/start actions and jobs.

It speaks the API's camelCase wire format and maps it into daemon.domain.model, maps every
failure into daemon.cloud.errors (a stop on a graph that is not running is AlreadyDoneError,
not a failure) and retries only what is retryable. It knows nothing of schedules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import httpx
from pydantic import BeforeValidator, Field

from daemon.cloud.errors import (
    AlreadyDoneError,
    ApiError,
    InvalidResponseError,
    PermanentError,
)
from daemon.cloud.failures import error_for_answer
from daemon.cloud.transport import (
    JsonApi,
    RequestObserver,
    WireModel,
    check_project_id,
    check_resource_id,
    ignore_request,
)
from daemon.config.settings import RetrySettings
from daemon.domain.model import Action, Graph, GraphStatus, Job, Sleep

SERVICE = "ges"
_JOB_STATES = frozenset({"pending", "running", "success", "failed", "partiallyFailed"})

# Transient GES faults the error table advises retrying: backup in progress, IaaS and engine
# faults, graph still being created.
RETRYABLE_CODES = frozenset(
    {"GES.7002", "GES.7004", "GES.7005", "GES.7006", "GES.7042", "GES.7051"}
)
# "Already done": stop on a graph that is not running / already stopping, start on one that
# is not stopped. The caller confirms the real status afterwards.
ALREADY_DONE_CODES: Mapping[Action, frozenset[str]] = {
    "stop": frozenset({"GES.7001", "GES.7003", "GES.7015"}),
    "start": frozenset({"GES.7037"}),
}
# A listing claiming more is taken for a broken answer, not paged through: a project with
# this many graphs or recent jobs is beyond anything GES sells.
MAX_LIST_ITEMS = 100_000
NOT_FOUND_CODES = frozenset({"GES.7000", "GES.7007", "GES.7054"})


def _tags(value: object) -> object:
    """Tags come as [{"key", "value"}] (v1 types them loosely); accept "k=v" strings too."""
    if not isinstance(value, list):
        return [] if value is None else value
    out: list[object] = []
    for item in value:
        if isinstance(item, str):
            key, _, val = item.partition("=")
            out.append({"key": key, "value": val})
        else:
            out.append(item)
    return out


class Tag(WireModel):
    key: str
    value: str = ""


class WireGraph(WireModel):
    id: str
    name: str
    status: str
    graph_size_type_index: str = Field(default="", alias="graphSizeTypeIndex")
    replication: int = 1
    created: str | None = None
    updated: str | None = None
    data_store_version: str | None = Field(default=None, alias="dataStoreVersion")
    region_code: str | None = Field(default=None, alias="regionCode")
    created_by: str | None = Field(default=None, alias="createdBy")
    tags: Annotated[list[Tag], BeforeValidator(_tags)] = []
    sys_tags: list[Any] = []

    def to_model(self) -> Graph:
        try:
            status = int(self.status)
        except ValueError:
            status = GraphStatus.UNKNOWN
        return Graph(
            id=self.id,
            name=self.name,
            status=status,
            size_index=self.graph_size_type_index,
            replication=self.replication,
            tags={tag.key: tag.value for tag in self.tags},
            updated=parse_time(self.updated),
        )


class GraphList(WireModel):
    graph_count: int = Field(alias="graphCount")
    graphs: list[WireGraph] = []


class GraphEnvelope(WireModel):
    graph: WireGraph


class JobResponse(WireModel):
    job_id: str = Field(alias="jobId")


class WireJob(WireModel):
    job_id: str = Field(alias="jobId")
    status: str
    job_type: str | None = Field(default=None, alias="jobType")
    job_name: str | None = Field(default=None, alias="jobName")
    related_graph: str | None = Field(default=None, alias="relatedGraph")
    begin_time: str | None = Field(default=None, alias="beginTime")
    end_time: str | None = Field(default=None, alias="endTime")
    fail_reason: str | None = Field(default=None, alias="failReason")
    job_progress: float | None = Field(default=None, alias="jobProgress")

    def to_model(self) -> Job:
        state = self.status if self.status in _JOB_STATES else "unknown"
        return Job(
            id=self.job_id,
            state=state,  # type: ignore[arg-type]
            graph_name=self.related_graph,
            begin=parse_time(self.begin_time),
            fail_reason=self.fail_reason,
        )


class JobList(WireModel):
    job_count: int = Field(alias="jobCount")
    job_list: list[WireJob] = Field(default=[], alias="jobList")


class GesClient:
    """One project's GES management API: paths, wire models and error mapping over the
    shared JsonApi transport (rate gate, retries, request metrics)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        project_id: str,
        *,
        retry: RetrySettings = RetrySettings(),
        sleep: Sleep,
        observe: RequestObserver = ignore_request,
        page_size: int = 100,
        max_items: int = MAX_LIST_ITEMS,
        limiter: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self.project_id = check_project_id(project_id, SERVICE)
        self._api = JsonApi(
            http,
            SERVICE,
            self.project_id,
            map_error=error_for,
            retry=retry,
            sleep=sleep,
            observe=observe,
            limiter=limiter,
        )
        self._page_size = page_size
        self._max_items = max_items
        self._prefix = f"/v1.0/{self.project_id}/graphs"

    async def list_graphs(self) -> list[Graph]:
        """Every graph of the project. The first page says how many there are and how many
        GES serves per page; after the second, the other pages are fetched side by side
        (the project's gate paces them)."""
        pages = _Pages("list_graphs", self._max_items)
        first = await self._graph_page(0)
        pages.check(first.graph_count, 0, [g.id for g in first.graphs])
        graphs = [g.to_model() for g in first.graphs]
        served = len(first.graphs)  # GES may serve fewer than asked: step by what it gives
        if not served or served >= first.graph_count:
            return graphs
        # The second page alone first: an API that ignores the offset shows it here,
        # before the rest are asked for all at once.
        second = await self._graph_page(served)
        pages.check(second.graph_count, served, [g.id for g in second.graphs])
        graphs.extend(g.to_model() for g in second.graphs)
        offsets = range(2 * served, first.graph_count, served)
        for offset, page in zip(
            offsets, await asyncio.gather(*(self._graph_page(o) for o in offsets)), strict=True
        ):
            pages.check(page.graph_count, offset, [g.id for g in page.graphs])
            graphs.extend(g.to_model() for g in page.graphs)
        unique: dict[str, Graph] = {}
        for graph in graphs:  # a page shifted by a graph deleted meanwhile repeats one
            unique.setdefault(graph.id, graph)
        return list(unique.values())

    async def _graph_page(self, offset: int) -> GraphList:
        return await self._api.call(
            "list_graphs",
            "GET",
            self._prefix,
            GraphList,
            params={"offset": str(offset), "limit": str(self._page_size)},
        )

    async def show_graph(self, graph_id: str) -> Graph:
        path = f"{self._prefix}/{_id('graph', graph_id)}"
        return (await self._api.call("show_graph", "GET", path, GraphEnvelope)).graph.to_model()

    async def stop_graph(self, graph_id: str) -> str:
        """Ask GES to stop a graph; the job id. AlreadyDoneError if it is not running."""
        return await self._action("stop", graph_id, None)

    async def start_graph(self, graph_id: str, backup_id: str | None = None) -> str:
        """Ask GES to start a graph (from a backup if given); the job id.
        AlreadyDoneError if it is not stopped."""
        body = {"graph_backup_id": _id("backup", backup_id)} if backup_id else None
        return await self._action("start", graph_id, body)

    async def job_status(self, graph_id: str, job_id: str) -> Job:
        path = f"{self._prefix}/{_id('graph', graph_id)}/jobs/{_id('job', job_id)}/status"
        return (await self._api.call("job_status", "GET", path, WireJob)).to_model()

    async def list_jobs(
        self,
        *,
        status: Literal["running", "waiting", "success", "failed"] | None = None,
        graph_name: str | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> list[Job]:
        """The Task Center's jobs, every page. Dates are whole days (the API's granularity)."""
        base: dict[str, str] = {}
        if status:
            base["status"] = status
        if graph_name:
            base["graph_name"] = graph_name
        if since:
            base["startTime"] = since.isoformat()
        if until:
            base["endTime"] = until.isoformat()
        jobs: list[Job] = []
        pages = _Pages("list_jobs", self._max_items)
        while True:
            params = {**base, "offset": str(len(jobs)), "limit": str(self._page_size)}
            page = await self._api.call(
                "list_jobs", "GET", f"{self._prefix}/jobs", JobList, params=params
            )
            pages.check(page.job_count, len(jobs), [j.job_id for j in page.job_list])
            jobs.extend(j.to_model() for j in page.job_list)
            if not page.job_list or len(jobs) >= page.job_count:
                return jobs

    async def _action(self, action: Action, graph_id: str, body: dict[str, str] | None) -> str:
        path = f"{self._prefix}/{_id('graph', graph_id)}/action"
        try:
            result = await self._api.call(
                f"{action}_graph",
                "POST",
                path,
                JobResponse,
                params={"action_id": action},
                json=body,
            )
        except PermanentError as exc:
            if exc.code in ALREADY_DONE_CODES[action]:
                raise AlreadyDoneError(
                    exc.message,
                    service=SERVICE,
                    operation=exc.operation,
                    status=exc.status,
                    code=exc.code,
                    request_id=exc.request_id,
                ) from exc
            raise
        try:
            return _id("job", result.job_id)
        except PermanentError as exc:  # a job id refused: GES answered, and may have acted
            raise InvalidResponseError(
                exc.message, service=SERVICE, operation=f"{action}_graph", code="invalid_id"
            ) from None


class _Pages:
    """Guards one paged listing: a total beyond reason, or a page that repeats an earlier
    one (an API ignoring `offset`), ends it with an error instead of paging forever."""

    def __init__(self, operation: str, max_items: int) -> None:
        self._operation = operation
        self._max_items = max_items
        self._seen: set[str] = set()

    def check(self, total: int, offset: int, ids: list[str]) -> None:
        if total > self._max_items:
            self._refuse(
                f"GES reports {total} items, more than the {self._max_items} graphnap pages "
                "through; the answer is taken as broken"
            )
        # A graph added or deleted while the pages are read shifts them by one item; a
        # page made only of items already seen is the API ignoring the offset.
        if ids and all(i in self._seen for i in ids):
            self._refuse(
                f"the page at offset {offset} repeats an earlier page ({ids[0]!r} again): "
                "the API ignores the offset"
            )
        self._seen.update(ids)

    def _refuse(self, message: str) -> None:
        raise InvalidResponseError(
            message, service=SERVICE, operation=self._operation, code="invalid_paging"
        )


def parse_time(value: str | None) -> datetime | None:
    """GES times are UTC, as 'yyyy-MM-ddTHH:mm:ss' or 'yyyy-MM-dd HH:mm:ss' (the docs
    disagree); anything else is None, never an error."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace(" ", "T"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _id(kind: str, value: str) -> str:
    return check_resource_id(kind, value, SERVICE)


def error_for(response: httpx.Response, operation: str) -> ApiError:
    """Map a 4xx/5xx answer to our error vocabulary, with GES's own transient and
    "no such graph or job" codes."""
    return error_for_answer(
        response,
        SERVICE,
        operation,
        retryable_codes=RETRYABLE_CODES,
        not_found_codes=NOT_FOUND_CODES,
    )
