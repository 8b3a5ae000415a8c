"""The emulated cloud's state: projects, graphs, Task Center jobs, IAM users and tokens, faults,
and each graph's status history and request traffic (what Cloud Eye reports).

No HTTP here and no background tasks: a graph's status and a job's progress are computed
from the clock when they are read, so a test that moves a manual clock sees exact
transitions (200 -> 901 -> 900, pending -> running -> success) with no sleeping.

Built for benchmarks too: nothing a request does grows with the fleet. Transitions end
from a heap ordered by end time, listings page a cached order, the Task Center indexes
jobs by project and graph, throttles and the request log keep running counts.
"""

from __future__ import annotations

import heapq
import random
import secrets
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from daemon.emulator import cloudeye
from daemon.emulator.cloudeye import DailyTraffic, Traffic

Clock = Callable[[], datetime]
Monotonic = Callable[[], float]
Kind = Literal["stop", "start"]

RUNNING, STOPPED, STOPPING, STARTING = 200, 900, 901, 920
OFFICE_HOURS = DailyTraffic(1, 11, 6.0)  # some requests 09:00-19:00 in UTC+8, none at night
JOB_NAMES: dict[Kind, str] = {"stop": "StopGraph", "start": "StartGraph"}  # [UNVERIFIED] real names
PERSISTENCE = "Persistence"  # v2's product_type of the database edition, which cannot stop


class ManualClock:
    """A clock that moves only when told; `sleep` advances it (for clients under test)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


def system_clock() -> datetime:
    return datetime.now(UTC)


class CloudFault(Exception):
    """An error answer: HTTP status plus the body shape of whoever produced it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        source: Literal["ges", "gateway", "iam", "ces"] = "ges",
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.source = source


@dataclass
class Timing:
    """How long actions take on the emulator's clock."""

    pending_s: float = 1.0
    stop_s: float = 8.0
    start_s: float = 15.0
    # Cloud Eye publishes a minute this long after it ends (the real service: 5-10 minutes).
    metrics_lag_s: float = 360.0


@dataclass
class ScriptedFault:
    """Answer the next `times` requests of `operation` ('*' = any) with this error."""

    operation: str
    status: int
    code: str
    message: str = "injected fault"
    times: int = 1


@dataclass
class Faults:
    """Throttles are sliding windows of one second on the emulator's clock: a request is
    answered 429 APIG.0308 when the window already holds `limit` admitted requests (the
    refused ones do not count, as the gateway's do not). `throttle_rps` is the gateway's
    limit for everyone together; `throttle_rps_per_project` one limit for each project
    (a number for all, or {project_id: limit}); a request must pass both. IAM token
    requests name no project and meet only the global limit."""

    latency_s: float = 0.0
    throttle_rps: float | None = None  # more requests than this in one second -> 429 APIG.0308
    throttle_rps_per_project: float | dict[str, float] | None = None
    error_rate: float = 0.0  # fraction of API requests answered with a 5xx
    job_failure_rate: float = 0.0  # fraction of jobs that end failed
    token_ttl_s: float = 24 * 3600.0
    scripted: list[ScriptedFault] = field(default_factory=list)
    failing_jobs: int = 0  # the next N jobs fail, whatever the rate


@dataclass
class EmuJob:
    id: str
    project_id: str
    graph_id: str
    graph_name: str
    kind: Kind
    created: datetime
    begin_at: datetime
    end_at: datetime
    fails: bool
    fail_reason: str = ""

    def status(self, now: datetime) -> str:
        if now < self.begin_at:
            return "pending"
        if now < self.end_at:
            return "running"
        return "failed" if self.fails else "success"


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


@dataclass
class Token:
    value: str
    user: str
    project_id: str
    expires_at: datetime


@dataclass
class RequestRecord:
    """One request as the gateway saw it. Times are seconds on the emulator's monotonic
    clock (time.monotonic by default: the same clock in every process of the machine, so
    a benchmark can compare them with its own instants)."""

    method: str
    path: str
    operation: str
    status: int
    project_id: str = ""
    graph_id: str = ""
    arrived_s: float = 0.0
    answered_s: float = 0.0


class SlidingWindow:
    """At most `limit` admissions in any one second: the admission times of the last
    second, dropped as they age (each at most once: O(1) amortised per request)."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def is_full(self, now_s: float, limit: float) -> bool:
        while self._times and now_s - self._times[0] >= 1.0:
            self._times.popleft()
        return len(self._times) >= limit

    def admit(self, now_s: float) -> None:
        self._times.append(now_s)


class RequestLog:
    """Every request with its arrival and answer times, and running counts per operation,
    per (operation, graph) and per graph, so that counting never scans the log."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self._by_operation: Counter[str] = Counter()
        self._by_graph: Counter[tuple[str, str]] = Counter()
        self.per_graph: Counter[str] = Counter()  # graph id -> requests naming it

    def add(self, record: RequestRecord) -> None:
        self.records.append(record)
        self._by_operation[record.operation] += 1
        if record.graph_id:
            self._by_graph[(record.operation, record.graph_id)] += 1
            self.per_graph[record.graph_id] += 1

    def count(self, operation: str, graph_id: str | None = None) -> int:
        if graph_id is None:
            return self._by_operation[operation]
        return self._by_graph[(operation, graph_id)]

    def clear(self) -> None:
        self.records.clear()
        self._by_operation.clear()
        self._by_graph.clear()
        self.per_graph.clear()


class Cloud:
    """Every project's graphs and jobs, the IAM accounts, and the faults to inject."""

    def __init__(
        self,
        project_ids: list[str],
        *,
        region: str = "cn-north-4",
        clock: Clock = system_clock,
        seed: int = 0,
        timing: Timing | None = None,
        faults: Faults | None = None,
        access_keys: dict[str, str] | None = None,
        users: dict[tuple[str, str], str] | None = None,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self.region = region
        self.clock = clock
        self.monotonic = monotonic  # request log times only; states follow `clock`
        self.rng = random.Random(seed)
        self.timing = timing or Timing()
        self.faults = faults or Faults()
        self.access_keys = dict(access_keys or {})  # AK -> SK
        self.users = dict(users or {})  # (domain, user) -> password
        self.graphs: dict[str, dict[str, EmuGraph]] = {pid: {} for pid in project_ids}
        self.jobs: dict[str, EmuJob] = {}
        self.tokens: dict[str, Token] = {}
        self.log = RequestLog()
        self.requests: list[RequestRecord] = self.log.records  # the log, oldest first
        # Graphs with a stop/start job, as (end, sequence, graph) in end order: settling
        # pops the ended ones only, whatever the number moving.
        self._moving: list[tuple[datetime, int, EmuGraph, EmuJob]] = []
        self._sequence = 0
        self._order: dict[str, list[EmuGraph]] = {}  # each project's listing order, cached
        self._project_jobs: dict[str, list[EmuJob]] = {pid: [] for pid in project_ids}
        self._graph_jobs: dict[tuple[str, str], list[EmuJob]] = {}  # (project, graph name)
        self._active_jobs: dict[str, dict[str, EmuJob]] = {pid: {} for pid in project_ids}
        self._window = SlidingWindow()
        self._project_windows: dict[str, SlidingWindow] = {}

    # --- graphs ---------------------------------------------------------------------------

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
            self._active_jobs[graph.project_id].pop(job.id, None)
            if graph.job is not job:
                continue  # the graph was reset or has moved again since
            if job.fails:
                graph.record(graph.previous_status, job.end_at)
            else:
                graph.record(STOPPED if job.kind == "stop" else RUNNING, job.end_at)
            graph.updated = job.end_at
            graph.job = None

    # --- actions --------------------------------------------------------------------------

    def act(self, project_id: str, graph_id: str, kind: Kind) -> EmuJob:
        graph = self.graph(project_id, graph_id)
        if kind == "stop":
            if graph.edition == PERSISTENCE:
                # The docs say only that the database edition "cannot be stopped by calling
                # this API"; the code is the table's "invalid graph operation". [UNVERIFIED]
                raise CloudFault(
                    400,
                    "GES.7048",
                    "Invalid graph operation: a Persistence graph cannot be stopped.",
                )
            if graph.status == STOPPING:
                raise CloudFault(400, "GES.7003", "The graph is being stopped or has been stopped.")
            if graph.status != RUNNING:
                raise CloudFault(400, "GES.7001", "The graph is not running.")
        elif graph.status != STOPPED:
            raise CloudFault(400, "GES.7037", "The graph is not in the Stopped state.")
        now = self.clock()
        duration = self.timing.stop_s if kind == "stop" else self.timing.start_s
        fails = self.faults.failing_jobs > 0 or self.rng.random() < self.faults.job_failure_rate
        if self.faults.failing_jobs > 0:
            self.faults.failing_jobs -= 1
        job = EmuJob(
            id=self._uuid().replace("-", ""),
            project_id=project_id,
            graph_id=graph.id,
            graph_name=graph.name,
            kind=kind,
            created=now,
            begin_at=now + timedelta(seconds=self.timing.pending_s),
            end_at=now + timedelta(seconds=self.timing.pending_s + duration),
            fails=fails,
            fail_reason="emulated failure: ECS operation timed out" if fails else "",
        )
        self.jobs[job.id] = job
        self._project_jobs[project_id].append(job)
        self._graph_jobs.setdefault((project_id, graph.name), []).append(job)
        self._active_jobs[project_id][job.id] = job
        graph.previous_status = graph.status
        graph.record(STOPPING if kind == "stop" else STARTING, now)
        graph.updated = now
        graph.job = job
        self._sequence += 1
        heapq.heappush(self._moving, (job.end_at, self._sequence, graph, job))
        return job

    def job(self, project_id: str, graph_id: str, job_id: str) -> EmuJob:
        self.graph(project_id, graph_id)
        job = self.jobs.get(job_id)
        if job is None or job.project_id != project_id or job.graph_id != graph_id:
            raise CloudFault(400, "GES.7007", "The job does not exist.")
        return job

    def list_jobs(
        self,
        project_id: str,
        *,
        status: str | None,
        graph_name: str | None,
        since: date | None,
        until: date | None,
    ) -> list[EmuJob]:
        """Newest first. Only the jobs that can match are looked at: a graph's own with
        `graph_name`, the unfinished ones for running/waiting, else the project's."""
        self.settle()
        now = self.clock()
        wanted = {"waiting": "pending"}.get(status or "", status)
        if graph_name is not None:
            pool: list[EmuJob] = self._graph_jobs.get((project_id, graph_name), [])
        elif wanted in ("pending", "running"):
            pool = list(self._active_jobs[project_id].values())
        else:
            pool = self._project_jobs[project_id]
        jobs = [
            job
            for job in pool
            if job.project_id == project_id
            and (wanted is None or job.status(now) == wanted)
            and (graph_name is None or job.graph_name == graph_name)
            and (since is None or job.created.date() >= since)
            and (until is None or job.created.date() <= until)
        ]
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    def set_status(self, project_id: str, graph_id: str, status: int) -> None:
        """Move a graph to any status now (a busy import, a fault), remembered for Cloud Eye."""
        graph = self.graph(project_id, graph_id)
        graph.record(status, self.clock())
        graph.updated = self.clock()

    # --- Cloud Eye ------------------------------------------------------------------------

    def set_traffic(self, project_id: str, graph_id: str, traffic: Traffic) -> None:
        """Requests per minute while the graph runs: a number, or a function of the minute."""
        self.graph(project_id, graph_id).traffic = traffic

    def add_gap(self, project_id: str, graph_id: str, start: datetime, end: datetime) -> None:
        """Cloud Eye has no data for [start, end) although the graph runs (a collector hiccup)."""
        self.graph(project_id, graph_id).gaps.append((start, end))

    def metric_points(
        self,
        project_id: str,
        graph_id: str,
        metric_name: str,
        how: str,
        *,
        period_s: int,
        from_ms: int,
        to_ms: int,
        limit: int,
    ) -> list[tuple[int, float]]:
        """(timestamp ms, value) as Cloud Eye answers: `from` moved to the window cap and
        floored to the period; no data for unknown graphs and metrics."""
        self.settle()
        graph = self.graphs.get(project_id, {}).get(graph_id)
        metric = cloudeye.METRICS.get(metric_name)
        if graph is None or metric is None:
            return []
        now = self.clock()
        if not graph.history or graph.history[-1][1] != graph.status:
            graph.record(graph.status, now)  # a test set the status directly: known from now
        cap_ms = int(cloudeye.WINDOW_CAPS[period_s].total_seconds() * 1000)
        from_ms = max(from_ms, to_ms - cap_ms)
        step_ms = period_s * 1000
        from_ms -= from_ms % step_ms
        ranges = cloudeye.reporting_minutes(
            graph.history,
            graph.gaps,
            visible_until=now - timedelta(seconds=self.timing.metrics_lag_s),
        )
        return cloudeye.series(
            ranges,
            graph.traffic,
            metric,
            how=how,
            period_s=period_s,
            start=datetime.fromtimestamp(from_ms / 1000, UTC),
            end=datetime.fromtimestamp(to_ms / 1000, UTC),
            limit=limit,
        )

    # --- IAM ------------------------------------------------------------------------------

    def issue_token(self, domain: str, user: str, password: str, project_id: str) -> Token:
        if self.users.get((domain, user)) is None or not secrets.compare_digest(
            self.users[(domain, user)], password
        ):
            raise CloudFault(401, "IAM.0004", "The username or password is wrong.", source="iam")
        if project_id not in self.graphs:
            raise CloudFault(
                400, "IAM.0011", "Request parameter error: unknown project.", source="iam"
            )
        token = Token(
            value="MII" + secrets.token_urlsafe(48),
            user=user,
            project_id=project_id,
            expires_at=self.clock() + timedelta(seconds=self.faults.token_ttl_s),
        )
        self.tokens[token.value] = token
        return token

    def check_token(self, value: str) -> Token:
        token = self.tokens.get(value)
        if token is None:
            raise CloudFault(
                401,
                "APIG.0301",
                "Incorrect IAM authentication information: token invalid",
                source="gateway",
            )
        if self.clock() >= token.expires_at:
            raise CloudFault(
                401,
                "APIG.0301",
                "Incorrect IAM authentication information: the token expires",
                source="gateway",
            )
        return token

    def expire_tokens(self) -> None:
        now = self.clock()
        for token in self.tokens.values():
            token.expires_at = min(token.expires_at, now)

    # --- faults ---------------------------------------------------------------------------

    def inject(
        self,
        operation: str,
        status: int,
        code: str,
        message: str = "injected fault",
        times: int = 1,
    ) -> None:
        self.faults.scripted.append(ScriptedFault(operation, status, code, message, times))

    def fault_for(self, operation: str, project_id: str = "") -> CloudFault | None:
        """The error, if any, this request meets before reaching the graph (throttle, 5xx)."""
        for fault in self.faults.scripted:
            if fault.times > 0 and fault.operation in (operation, "*"):
                fault.times -= 1
                source: Literal["ges", "gateway", "ces"] = (
                    "gateway"
                    if fault.code.startswith("APIG")
                    else "ces"
                    if fault.code.startswith("ces.")
                    else "ges"
                )
                return CloudFault(fault.status, fault.code, fault.message, source=source)
        if self.faults.scripted:
            self.faults.scripted = [f for f in self.faults.scripted if f.times > 0]
        throttled = self._throttle(project_id)
        if throttled is not None:
            return throttled
        if self.faults.error_rate and self.rng.random() < self.faults.error_rate:
            if self.rng.random() < 0.5:
                return CloudFault(500, "GES.7006", "An internal error occurs in the graph engine.")
            return CloudFault(503, "APIG.1009", "Service unavailable.", source="gateway")
        return None

    def _throttle(self, project_id: str) -> CloudFault | None:
        """429 when the project's window or the gateway's is full. The project's is asked
        first: a request it refuses takes no place in the gateway's window."""
        limits: list[tuple[SlidingWindow, float, str]] = []
        per_project = self.faults.throttle_rps_per_project
        if project_id and per_project is not None:
            limit = per_project.get(project_id) if isinstance(per_project, dict) else per_project
            if limit is not None:
                window = self._project_windows.setdefault(project_id, SlidingWindow())
                limits.append((window, limit, "user"))
        if self.faults.throttle_rps is not None:
            limits.append((self._window, self.faults.throttle_rps, "ip"))
        if not limits:
            return None
        now_s = self.clock().timestamp()
        for window, limit, policy in limits:
            if window.is_full(now_s, limit):
                return CloudFault(
                    429,
                    "APIG.0308",
                    f"The throttling threshold has been reached: policy {policy} over ratelimit,limit:{limit:g},time:1 second",
                    source="gateway",
                )
        for window, _, _ in limits:
            window.admit(now_s)
        return None

    def count(self, operation: str, *, graph_id: str | None = None) -> int:
        """How many requests of an operation reached the emulator (for tests): a running
        count, not a scan of the log."""
        return self.log.count(operation, graph_id)

    def reset(self) -> None:
        """Every graph back to running with no job, the Task Center and the request log
        emptied, throttle windows forgotten: a benchmark's next round starts clean. Walks
        the fleet once; a control-plane call, never on a request's path."""
        now = self.clock()
        for graph in self.all_graphs():
            graph.job = None
            graph.record(RUNNING, now)
            graph.updated = now
        self._moving.clear()
        self.jobs.clear()
        for jobs in self._project_jobs.values():
            jobs.clear()
        for active in self._active_jobs.values():
            active.clear()
        self._graph_jobs.clear()
        self.log.clear()
        self._window = SlidingWindow()
        self._project_windows.clear()

    def all_graphs(self) -> Iterator[EmuGraph]:
        self.settle()
        for graphs in self.graphs.values():
            yield from graphs.values()


# Fake credentials for the demo and the README's commands; they open nothing but the emulator.
DEMO_PROJECT_ID = "0123456789abcdef0123456789abcdef"
DEMO_AK = "EMULATORAK0000000000"
DEMO_SK = "emulator-secret-key-not-for-production"
DEMO_USER, DEMO_PASSWORD, DEMO_DOMAIN = "graphnap", "emulator-password", "emulator"
