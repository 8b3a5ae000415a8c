"""The emulated cloud assembled: every project's graphs (`Fleet`) with the Task Center, IAM,
the faults to inject and the request log around them; a stop or start, which takes all of
them; Cloud Eye's data points from a graph's history.

No HTTP here and no background tasks: a graph's status and a job's progress are computed
from the clock when they are read, so a test that moves a manual clock sees exact
transitions (200 -> 901 -> 900, pending -> running -> success) with no sleeping.

Built for benchmarks too: nothing a request does grows with the fleet. Transitions end
from a heap ordered by end time, listings page a cached order, the Task Center indexes
jobs by project and graph, throttles and the request log keep running counts.
"""

from __future__ import annotations

import random
import time
from datetime import date, datetime, timedelta

from daemon.emulator import cloudeye
from daemon.emulator.clock import Clock, Monotonic, Timing, system_clock
from daemon.emulator.cloudeye import Traffic
from daemon.emulator.faults import CloudFault, FaultInjector, Faults, ScriptedFault
from daemon.emulator.graphs import PERSISTENCE, RUNNING, STOPPED, STOPPING, Fleet
from daemon.emulator.iam import Iam, Token
from daemon.emulator.jobs import EmuJob, Kind, TaskCenter
from daemon.emulator.request_log import RequestLog, RequestRecord


class Cloud(Fleet):
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
        self.task_center = TaskCenter(project_ids)
        super().__init__(
            project_ids, clock=clock, rng=random.Random(seed), task_center=self.task_center
        )
        self.region = region
        self.monotonic = monotonic  # request log times only; states follow `clock`
        self.timing = timing or Timing()
        self.faults = faults or Faults()
        self.injector = FaultInjector(self.faults, clock=clock, rng=self.rng)
        self.access_keys = dict(access_keys or {})  # AK -> SK
        self.iam = Iam(dict(users or {}), projects=self.graphs, clock=clock, faults=self.faults)
        self.users = self.iam.users  # (domain, user) -> password
        self.tokens: dict[str, Token] = self.iam.tokens
        self.jobs: dict[str, EmuJob] = self.task_center.jobs
        self.log = RequestLog()
        self.requests: list[RequestRecord] = self.log.records  # the log, oldest first

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
        self.task_center.add(job)
        self.begin(graph, job, now)
        return job

    def job(self, project_id: str, graph_id: str, job_id: str) -> EmuJob:
        self.graph(project_id, graph_id)
        return self.task_center.job(project_id, graph_id, job_id)

    def list_jobs(
        self,
        project_id: str,
        *,
        status: str | None,
        graph_name: str | None,
        since: date | None,
        until: date | None,
    ) -> list[EmuJob]:
        """The Task Center's listing (newest first), graphs settled first."""
        self.settle()
        return self.task_center.list_jobs(
            project_id,
            status=status,
            graph_name=graph_name,
            since=since,
            until=until,
            now=self.clock(),
        )

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
        """(timestamp ms, value) as Cloud Eye answers (cloudeye.query); no data for unknown
        graphs and metrics."""
        self.settle()
        graph = self.graphs.get(project_id, {}).get(graph_id)
        metric = cloudeye.METRICS.get(metric_name)
        if graph is None or metric is None:
            return []
        now = self.clock()
        if not graph.history or graph.history[-1][1] != graph.status:
            graph.record(graph.status, now)  # a test set the status directly: known from now
        return cloudeye.query(
            graph.history,
            graph.gaps,
            graph.traffic,
            metric,
            how=how,
            period_s=period_s,
            from_ms=from_ms,
            to_ms=to_ms,
            limit=limit,
            visible_until=now - timedelta(seconds=self.timing.metrics_lag_s),
        )

    # --- IAM ------------------------------------------------------------------------------

    def issue_token(self, domain: str, user: str, password: str, project_id: str) -> Token:
        return self.iam.issue_token(domain, user, password, project_id)

    def expire_tokens(self) -> None:
        self.iam.expire_tokens()

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

    def count(self, operation: str, *, graph_id: str | None = None) -> int:
        """How many requests of an operation reached the emulator (for tests): a running
        count, not a scan of the log."""
        return self.log.count(operation, graph_id)

    def reset(self) -> None:
        """Every graph back to running with no job, the Task Center and the request log
        emptied, throttle windows forgotten: a benchmark's next round starts clean. Walks
        the fleet once; a control-plane call, never on a request's path."""
        self.rewind()
        self.task_center.clear()
        self.log.clear()
        self.injector.forget_windows()


# Fake credentials for the demo and the README's commands; they open nothing but the emulator.
DEMO_PROJECT_ID = "0123456789abcdef0123456789abcdef"
DEMO_AK = "EMULATORAK0000000000"
DEMO_SK = "emulator-secret-key-not-for-production"
DEMO_USER, DEMO_PASSWORD, DEMO_DOMAIN = "graphnap", "emulator-password", "emulator"
