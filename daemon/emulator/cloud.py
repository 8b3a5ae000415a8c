"""The emulated cloud's state: projects, graphs, Task Center jobs, IAM users and tokens, faults,
and each graph's status history and request traffic (what Cloud Eye reports).

No HTTP here and no background tasks: a graph's status and a job's progress are computed
from the clock when they are read, so a test that moves a manual clock sees exact
transitions (200 -> 901 -> 900, pending -> running -> success) with no sleeping.
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from daemon.emulator import cloudeye
from daemon.emulator.cloudeye import DailyTraffic, Traffic

Clock = Callable[[], datetime]
Kind = Literal["stop", "start"]

RUNNING, STOPPED, STOPPING, STARTING = 200, 900, 901, 920
OFFICE_HOURS = DailyTraffic(1, 11, 6.0)  # some requests 09:00-19:00 in UTC+8, none at night
JOB_NAMES: dict[Kind, str] = {"stop": "StopGraph", "start": "StartGraph"}  # [UNVERIFIED] real names


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
    latency_s: float = 0.0
    throttle_rps: float | None = None  # more requests than this in one second -> 429 APIG.0308
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
    method: str
    path: str
    operation: str
    status: int


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
    ) -> None:
        self.region = region
        self.clock = clock
        self.rng = random.Random(seed)
        self.timing = timing or Timing()
        self.faults = faults or Faults()
        self.access_keys = dict(access_keys or {})  # AK -> SK
        self.users = dict(users or {})  # (domain, user) -> password
        self.graphs: dict[str, dict[str, EmuGraph]] = {pid: {} for pid in project_ids}
        self.jobs: dict[str, EmuJob] = {}
        self.tokens: dict[str, Token] = {}
        self.requests: list[RequestRecord] = []
        self._moving: dict[str, EmuGraph] = {}  # graphs with a stop/start job, by id
        self._recent: list[datetime] = []

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
    ) -> EmuGraph:
        """A graph; `created` in the past gives it a history (running since then) for backtests."""
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
        )
        self.graphs[project_id][graph.id] = graph
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
        self.settle()
        return sorted(self.graphs[project_id].values(), key=lambda g: (g.created, g.name))

    def settle(self) -> None:
        """Finish every transition whose job has ended by now."""
        now = self.clock()
        for graph in list(self._moving.values()):
            job = graph.job
            if job is not None and now >= job.end_at:
                if job.fails:
                    graph.record(graph.previous_status, job.end_at)
                else:
                    graph.record(STOPPED if job.kind == "stop" else RUNNING, job.end_at)
                graph.updated = job.end_at
                graph.job = None
                del self._moving[graph.id]

    # --- actions --------------------------------------------------------------------------

    def act(self, project_id: str, graph_id: str, kind: Kind) -> EmuJob:
        graph = self.graph(project_id, graph_id)
        if kind == "stop":
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
        graph.previous_status = graph.status
        graph.record(STOPPING if kind == "stop" else STARTING, now)
        graph.updated = now
        graph.job = job
        self._moving[graph.id] = graph
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
        now = self.clock()
        wanted = {"waiting": "pending"}.get(status or "", status)
        jobs = [
            job
            for job in self.jobs.values()
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

    def fault_for(self, operation: str) -> CloudFault | None:
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
        self.faults.scripted = [f for f in self.faults.scripted if f.times > 0]
        if self.faults.throttle_rps is not None:
            now = self.clock()
            self._recent = [t for t in self._recent if (now - t).total_seconds() < 1.0]
            if len(self._recent) >= self.faults.throttle_rps:
                return CloudFault(
                    429,
                    "APIG.0308",
                    f"The throttling threshold has been reached: policy user over ratelimit,limit:{self.faults.throttle_rps:g},time:1 second",
                    source="gateway",
                )
            self._recent.append(now)
        if self.faults.error_rate and self.rng.random() < self.faults.error_rate:
            if self.rng.random() < 0.5:
                return CloudFault(500, "GES.7006", "An internal error occurs in the graph engine.")
            return CloudFault(503, "APIG.1009", "Service unavailable.", source="gateway")
        return None

    def count(self, operation: str, *, graph_id: str | None = None) -> int:
        """How many requests of an operation reached the emulator (for tests)."""
        return sum(
            1
            for r in self.requests
            if r.operation == operation and (graph_id is None or graph_id in r.path)
        )

    def all_graphs(self) -> Iterator[EmuGraph]:
        self.settle()
        for graphs in self.graphs.values():
            yield from graphs.values()


# Fake credentials for the demo and the README's commands; they open nothing but the emulator.
DEMO_PROJECT_ID = "0123456789abcdef0123456789abcdef"
DEMO_AK = "EMULATORAK0000000000"
DEMO_SK = "emulator-secret-key-not-for-production"
DEMO_USER, DEMO_PASSWORD, DEMO_DOMAIN = "graphnap", "emulator-password", "emulator"
