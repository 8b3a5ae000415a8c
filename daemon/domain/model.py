"""The domain as the daemon sees it: graphs, jobs, actions and statuses, and the Protocol of
cloud operations that the passes, executor and tracker use. No wire format lives here: the
GES v1 and v2 clients map their answers (camelCase, snake_case) into these types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import IntEnum
from typing import Literal, Protocol

Action = Literal["stop", "start"]
Clock = Callable[[], datetime]
"""Returns an aware UTC datetime. Only the composition root holds the real one."""
Sleep = Callable[[float], Awaitable[None]]
# Handed each page of a listing as it arrives (graphs not handed over before), so a caller
# can act on the first page while the rest are still on their way.
PageSink = Callable[[list["Graph"]], None]


class GraphStatus(IntEnum):
    """GES graph status codes."""

    UNKNOWN = -1  # the API sent something that is not a number
    PREPARING = 100
    RUNNING = 200
    UPGRADING = 201
    IMPORTING = 202
    ROLLING_BACK = 203
    EXPORTING = 204
    CLEARING = 205
    PREPARING_EXPANSION = 206
    EXPANDING = 207
    ROLLING_BACK_EXPANSION = 208
    PREPARING_REPLICAS = 210
    ADDING_REPLICAS = 211
    FAULTY = 300
    CREATION_FAILED = 303
    DELETED = 400
    FROZEN = 800
    STOPPED = 900
    STOPPING = 901
    BACKING_UP = 903
    STARTING = 920

    @staticmethod
    def classify(code: int) -> StatusClass:
        """The one classification of a status code (the dashboard's classes, planning's
        and the idle verdict's): codes GES adds later fall into their range's class."""
        if code == GraphStatus.RUNNING:
            return "running"
        if code == GraphStatus.STOPPED:
            return "stopped"
        if code in (GraphStatus.PREPARING, GraphStatus.STOPPING, GraphStatus.STARTING):
            return "transitional"
        if GraphStatus.RUNNING < code < GraphStatus.FAULTY or code == GraphStatus.BACKING_UP:
            return "busy"  # working on something of its own: importing, expanding, backing up
        if GraphStatus.FAULTY <= code < GraphStatus.DELETED:
            return "faulty"
        if code == GraphStatus.FROZEN:
            return "frozen"
        return "other"


StatusClass = Literal["running", "stopped", "transitional", "busy", "faulty", "frozen", "other"]
"""Few and fixed: fit for a metric label (graphnap_graphs{status})."""

# Where each action leads, and the status a graph shows on its way there.
TARGET_STATUS: Mapping[Action, GraphStatus] = {
    "stop": GraphStatus.STOPPED,
    "start": GraphStatus.RUNNING,
}
MOVING_STATUS: Mapping[Action, GraphStatus] = {
    "stop": GraphStatus.STOPPING,
    "start": GraphStatus.STARTING,
}


def describe_status(code: int) -> str:
    try:
        return GraphStatus(code).name.lower().replace("_", " ")
    except ValueError:
        return f"status {code}"


PERSISTENCE = "Persistence"  # v2's product_type of the database edition


@dataclass(frozen=True, slots=True)
class Graph:
    id: str
    name: str
    status: int  # a GraphStatus code; codes GES adds later pass through as numbers
    size_index: str = ""  # graphSizeTypeIndex: the price table's key
    replication: int = 1
    tags: Mapping[str, str] = field(default_factory=dict)
    updated: datetime | None = None  # GES's `updated`; changes at stop and start
    # v2's product_type ("InMemory", "Persistence"); None where the API does not say (v1)
    edition: str | None = None

    @property
    def is_database_edition(self) -> bool:
        """The database (Persistence) edition: GES refuses to stop it, so graphnap never
        sends it a stop, nor a start."""
        return self.edition == PERSISTENCE


JobState = Literal["pending", "running", "success", "failed", "partiallyFailed", "unknown"]


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    state: JobState
    graph_name: str | None = None  # the Task Center names the graph, not its id
    begin: datetime | None = None
    fail_reason: str | None = None

    @property
    def is_failed(self) -> bool:
        return self.state in ("failed", "partiallyFailed")

    @property
    def is_terminal(self) -> bool:
        return self.is_failed or self.state == "success"


class GraphApi(Protocol):
    """One project's graph operations. Failures raise daemon.cloud.errors: AlreadyDoneError
    for an action the graph needs no more, NotFoundError, RetryableError, PermanentError."""

    async def list_graphs(self, on_page: PageSink | None = None) -> list[Graph]:
        """Every graph of the project. `on_page`, if given, may be handed the graphs page
        by page before the listing ends; an implementation that never calls it is right
        too (a caller acts on what the return adds)."""
        ...

    async def show_graph(self, graph_id: str) -> Graph: ...

    async def stop_graph(self, graph_id: str) -> str:
        """The id of the stop job."""
        ...

    async def start_graph(self, graph_id: str, backup_id: str | None = None) -> str:
        """The id of the start job."""
        ...

    async def job_status(self, graph_id: str, job_id: str) -> Job: ...

    async def list_jobs(
        self,
        *,
        status: Literal["running", "waiting", "success", "failed"] | None = None,
        graph_name: str | None = None,
        since: date | None = None,
    ) -> list[Job]:
        """The Task Center's jobs (every page), newest first; `since` is a whole day."""
        ...


# --- Cloud Eye ---

Aggregation = Literal["average", "max", "min", "sum", "variance"]
"""Cloud Eye's `filter`: how the raw one-minute values of one period are combined."""

REQUEST_COUNT = "ges004_request_count"


def floor_time(when: datetime, period_s: int) -> datetime:
    """`when` floored to a multiple of the period since the epoch, as Cloud Eye floors `from`."""
    seconds = int(when.timestamp())
    return datetime.fromtimestamp(seconds - seconds % period_s, UTC)


@dataclass(frozen=True, slots=True)
class Datapoint:
    """One Cloud Eye value: the aggregate of the period that starts at `at` (aware UTC)."""

    at: datetime
    value: float


class MetricApi(Protocol):
    """One project's Cloud Eye reads for graphs (namespace SYS.GES, dimension instance_id).
    Failures raise daemon.cloud.errors, as GraphApi's do."""

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
        """Every graph's datapoints with start <= at < end, oldest first; a graph without
        data maps to an empty list. As many requests as the API's limits need."""
        ...
