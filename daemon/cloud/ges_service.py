"""What GES v1 and v2 share: the client over one version's wire (paging, actions, jobs),
the error codes and their meaning, and the parsing of times and tags. Each version's module
(daemon.cloud.ges for v1, daemon.cloud.ges_v2) declares only its paths and wire models.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Literal, TypeVar

import httpx

from daemon.cloud.errors import AlreadyDoneError, ApiError, InvalidResponseError, PermanentError
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
from daemon.domain.model import Action, Graph, GraphStatus, Job, JobState, PageSink, Sleep

SERVICE = "ges"
T = TypeVar("T")
JOB_STATES: frozenset[str] = frozenset(
    {"pending", "running", "success", "failed", "partiallyFailed"}
)

# Transient GES faults the error table advises retrying: backup in progress, IaaS and engine
# faults, graph still being created. The table is the same for v1 and v2.
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


class Tag(WireModel):
    key: str
    value: str = ""


WireTags = list[Tag | str] | None
"""Tags as they come: [{"key", "value"}] (v1 types them loosely: "k=v" strings too) or null.
Validated by pydantic itself, not a Python callback per graph: a 50,000-graph listing is
50,000 of them."""


def tag_map(tags: WireTags) -> dict[str, str]:
    out: dict[str, str] = {}
    for tag in tags or ():
        if isinstance(tag, str):
            key, _, value = tag.partition("=")
            out[key] = value
        else:
            out[tag.key] = tag.value
    return out


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


def status_code(value: str) -> int:
    """The graph status as a number; UNKNOWN when the API sends something else."""
    try:
        return int(value)
    except ValueError:
        return GraphStatus.UNKNOWN


def job_state(value: str) -> JobState:
    return value if value in JOB_STATES else "unknown"  # type: ignore[return-value]


# --- what a version's wire models give the client ---------------------------------------


class GraphListAnswer(WireModel):
    """A page of the graph list."""

    def page(self) -> tuple[int, list[Graph]]:
        """(the total the API reports, this page's graphs)."""
        raise NotImplementedError


class GraphAnswer(WireModel):
    """The answer to show graph."""

    def to_graph(self) -> Graph:
        raise NotImplementedError


class JobIdAnswer(WireModel):
    """The answer to stop or start: a job id."""

    def to_job_id(self) -> str:
        raise NotImplementedError


class JobAnswer(WireModel):
    """A job, as job status and the Task Center give it."""

    def to_job(self) -> Job:
        raise NotImplementedError


class JobListAnswer(WireModel):
    """A page of the Task Center."""

    def page(self) -> tuple[int, list[Job]]:
        raise NotImplementedError


@dataclass(frozen=True)
class GesWire:
    """One version of the GES management API: its root, answers and request shapes."""

    root: str  # "/v1.0" or "/v2"
    graph_list: type[GraphListAnswer]
    graph: type[GraphAnswer]
    job_id: type[JobIdAnswer]
    job: type[JobAnswer]
    job_list: type[JobListAnswer]
    # (path under graphs/{graph_id}, query) of an action
    action: Callable[[Action], tuple[str, dict[str, str]]]
    job_days: tuple[str, str]  # the Task Center's query names for `since` and `until`


JobFilter = Literal["running", "waiting", "success", "failed"]


class GesService:
    """One project's GES management API over one version's wire: paths, answers and error
    mapping over the shared JsonApi transport (rate gate, retries, request metrics)."""

    WIRE: ClassVar[GesWire]

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
        self._prefix = f"{self.WIRE.root}/{self.project_id}/graphs"

    async def list_graphs(self, on_page: PageSink | None = None) -> list[Graph]:
        """Every graph of the project. The first page says how many there are and how many
        GES serves per page; after the second, the other pages are fetched side by side
        (the project's gate paces them). Each page is handed to `on_page` as it arrives,
        less graphs an earlier page already had."""
        pages = _Pages("list_graphs", self._max_items, on_page)
        total, graphs = await self._graph_page(0, pages)
        served = len(graphs)  # GES may serve fewer than asked: step by what it gives
        if not served or served >= total:
            return graphs
        # The second page alone first: an API that ignores the offset shows it here,
        # before the rest are asked for all at once.
        graphs.extend((await self._graph_page(served, pages))[1])
        offsets = range(2 * served, total, served)
        for _, page in await _all_or_none([self._graph_page(o, pages) for o in offsets]):
            graphs.extend(page)
        unique: dict[str, Graph] = {}
        for graph in graphs:  # a page shifted by a graph deleted meanwhile repeats one
            unique.setdefault(graph.id, graph)
        return list(unique.values())

    async def _graph_page(self, offset: int, pages: _Pages) -> tuple[int, list[Graph]]:
        answer = await self._api.call(
            "list_graphs",
            "GET",
            self._prefix,
            self.WIRE.graph_list,
            params={"offset": str(offset), "limit": str(self._page_size)},
        )
        total, graphs = answer.page()
        pages.check(total, offset, [g.id for g in graphs])
        pages.hand_over(graphs)
        return total, graphs

    async def show_graph(self, graph_id: str) -> Graph:
        path = f"{self._prefix}/{_id('graph', graph_id)}"
        return (await self._api.call("show_graph", "GET", path, self.WIRE.graph)).to_graph()

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
        return (await self._api.call("job_status", "GET", path, self.WIRE.job)).to_job()

    async def list_jobs(
        self,
        *,
        status: JobFilter | None = None,
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
        since_key, until_key = self.WIRE.job_days
        if since:
            base[since_key] = since.isoformat()
        if until:
            base[until_key] = until.isoformat()
        jobs: list[Job] = []
        pages = _Pages("list_jobs", self._max_items)
        while True:
            params = {**base, "offset": str(len(jobs)), "limit": str(self._page_size)}
            answer = await self._api.call(
                "list_jobs", "GET", f"{self._prefix}/jobs", self.WIRE.job_list, params=params
            )
            total, page = answer.page()
            pages.check(total, len(jobs), [j.id for j in page])
            jobs.extend(page)
            if not page or len(jobs) >= total:
                return jobs

    async def _action(self, action: Action, graph_id: str, body: dict[str, str] | None) -> str:
        suffix, params = self.WIRE.action(action)
        path = f"{self._prefix}/{_id('graph', graph_id)}/{suffix}"
        try:
            result = await self._api.call(
                f"{action}_graph", "POST", path, self.WIRE.job_id, params=params, json=body
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
            return _id("job", result.to_job_id())
        except PermanentError as exc:  # a job id refused: GES answered, and may have acted
            raise InvalidResponseError(
                exc.message, service=SERVICE, operation=f"{action}_graph", code="invalid_id"
            ) from None


async def _all_or_none(calls: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Every call's answer in order; on the first failure the others are cancelled and it
    is raised: no page of a failed listing is handed over after the listing has failed."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # ended, and their errors read
        raise


class _Pages:
    """Guards one paged listing: a total beyond reason, or a page that repeats an earlier
    one (an API ignoring `offset`), ends it with an error instead of paging forever. A page
    that passed is handed over to the listing's `on_page`, each item once."""

    def __init__(self, operation: str, max_items: int, on_page: PageSink | None = None) -> None:
        self._operation = operation
        self._max_items = max_items
        self._on_page = on_page
        self._seen: set[str] = set()
        self._handed: set[str] = set()

    def hand_over(self, graphs: list[Graph]) -> None:
        if self._on_page is None:
            return
        fresh = [g for g in graphs if g.id not in self._handed]
        self._handed.update(g.id for g in fresh)
        if fresh:
            self._on_page(fresh)

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


def _id(kind: str, value: str) -> str:
    return check_resource_id(kind, value, SERVICE)


def error_for(response: httpx.Response, operation: str) -> ApiError:
    """Map a 4xx/5xx answer to our error vocabulary, with GES's own transient and
    "no such graph or job" codes. Both error shapes (v1 errorCode/errorMessage, v2
    error_code/error_msg) are read by failures.parse_error_body."""
    return error_for_answer(
        response,
        SERVICE,
        operation,
        retryable_codes=RETRYABLE_CODES,
        not_found_codes=NOT_FOUND_CODES,
    )
