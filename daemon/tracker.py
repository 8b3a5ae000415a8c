"""Follows every stop/start job to success, failure or timeout, and finds them again after
a restart through the Task Center. It never issues actions, but it is the one place that
knows which graphs have an action in flight: claimed (the request is on the wire) or
followed (a job is running).

Polling backs off from poll_initial_s to poll_max_s. A job that says success is confirmed
by the graph's own status; a job the API no longer knows is judged by the graph's status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from daemon.api import ApiError, NotFoundError, Sleep
from daemon.metrics import Metrics
from daemon.model import (
    MOVING_STATUS,
    TARGET_STATUS,
    Action,
    Clock,
    Graph,
    GraphApi,
    GraphStatus,
    Job,
    describe_status,
)
from daemon.outcomes import Outcome, Outcomes

log = logging.getLogger(__name__)

RESUMED_RULE = "resumed"
GraphKey = tuple[str, str]  # (project, graph id)


@dataclass(frozen=True)
class TrackedJob:
    project: str
    graph_id: str
    graph_name: str
    job_id: str
    action: Action
    rule: str
    requested_at: datetime
    timeout: timedelta

    @property
    def key(self) -> GraphKey:
        return (self.project, self.graph_id)


@dataclass(frozen=True)
class JobOutcome:
    job: TrackedJob
    outcome: Literal["succeeded", "failed"]
    reason: str
    duration_s: float


class Tracker:
    def __init__(
        self,
        outcomes: Outcomes,
        metrics: Metrics,
        *,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        poll_initial_s: float = 10.0,
        poll_max_s: float = 60.0,
    ) -> None:
        self._outcomes = outcomes
        self._gauge = metrics.jobs_in_flight
        self._clock = clock
        self._sleep = sleep
        self._poll_initial_s = poll_initial_s
        self._poll_max_s = poll_max_s
        self._claimed: set[GraphKey] = set()
        self._tasks: dict[GraphKey, tuple[TrackedJob, asyncio.Task[JobOutcome]]] = {}

    # --- what is in flight ----------------------------------------------------------------

    def claim(self, project: str, graph_id: str) -> bool:
        """Reserve a graph for one action request; False when it already has one in flight.
        The claim ends with follow() (the job is followed) or release() (no job came)."""
        key = (project, graph_id)
        if key in self._claimed or key in self._tasks:
            return False
        self._claimed.add(key)
        return True

    def release(self, project: str, graph_id: str) -> None:
        self._claimed.discard((project, graph_id))

    def in_flight(self) -> frozenset[GraphKey]:
        """Graphs with an action request or a job in flight."""
        return frozenset(self._claimed | self._tasks.keys())

    def jobs(self) -> list[TrackedJob]:
        return [job for job, _ in self._tasks.values()]

    # --- following --------------------------------------------------------------------------

    def follow(
        self,
        api: GraphApi,
        project: str,
        graph_id: str,
        graph_name: str,
        job_id: str,
        action: Action,
        rule: str,
        timeout: timedelta,
        *,
        requested_at: datetime | None = None,
    ) -> asyncio.Task[JobOutcome]:
        """Follow a job until its end; the task resolves to its outcome. Idempotent per graph.
        Without a `job_id` (GES said the graph is already on its way and the Task Center
        does not show the job), the graph's status is followed instead."""
        key = (project, graph_id)
        self._claimed.discard(key)
        if key in self._tasks:
            return self._tasks[key][1]
        job = TrackedJob(
            project,
            graph_id,
            graph_name,
            job_id,
            action,
            rule,
            requested_at or self._clock(),
            timeout,
        )
        self._gauge.labels(project, action).inc()
        task = asyncio.get_running_loop().create_task(
            self._follow(api, job), name=f"track-{job_id or graph_id}"
        )
        self._tasks[key] = (job, task)
        task.add_done_callback(lambda _: self._forget(job))
        return task

    def _forget(self, job: TrackedJob) -> None:
        self._tasks.pop(job.key, None)
        self._gauge.labels(job.project, job.action).dec()

    async def wait(self) -> None:
        """Until every job followed now has ended (for `graphnap once` and tests)."""
        tasks = [task for _, task in self._tasks.values()]
        if tasks:
            await asyncio.wait(tasks)

    async def stop(self) -> None:
        """Stop following (at shutdown). The jobs go on in the cloud; the next start resumes them."""
        tasks = [task for _, task in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def resume(
        self, project: str, api: GraphApi, graphs: Sequence[Graph], job_timeout: timedelta
    ) -> int:
        """Follow again the stop/start jobs still running in the Task Center.

        A job is taken as ours to follow when its graph is stopping (901) or starting (920):
        the graph's status says which action it is, whatever the job's (undocumented) name.
        """
        moving = {
            g.name: g for g in graphs if g.status in (GraphStatus.STOPPING, GraphStatus.STARTING)
        }
        if not moving:
            return 0
        since = (self._clock() - timedelta(days=2)).date()
        jobs: list[Job] = []
        for status in ("running", "waiting"):
            jobs += await api.list_jobs(status=status, since=since)
        resumed = 0
        for job in jobs:
            graph = moving.get(job.graph_name or "")
            if graph is None or (project, graph.id) in self.in_flight():
                continue
            action: Action = "stop" if graph.status == GraphStatus.STOPPING else "start"
            log.info(
                "resuming a %s job found in the Task Center",
                action,
                extra={
                    "project": project,
                    "graph_id": graph.id,
                    "graph": graph.name,
                    "action": action,
                    "job_id": job.id,
                    "rule": RESUMED_RULE,
                },
            )
            self.follow(
                api,
                project,
                graph.id,
                graph.name,
                job.id,
                action,
                RESUMED_RULE,
                job_timeout,
                requested_at=job.begin,
            )
            resumed += 1
        return resumed

    async def _follow(self, api: GraphApi, job: TrackedJob) -> JobOutcome:
        try:
            return await self._poll(api, job)
        except Exception as exc:  # a bug must not make a job vanish without an outcome
            log.exception(
                "unexpected error following a job",
                extra={"project": job.project, "job_id": job.job_id},
            )
            return self._finish(
                job, "failed", f"internal error while following: {type(exc).__name__}", "internal"
            )

    async def _poll(self, api: GraphApi, job: TrackedJob) -> JobOutcome:
        delay = self._poll_initial_s
        job_done = not job.job_id  # without a job id, the graph's status is all there is
        last_seen = "pending"
        while True:
            remaining = (job.requested_at + job.timeout - self._clock()).total_seconds()
            if remaining <= 0:
                return await self._judge_at_timeout(api, job, last_seen)
            await self._sleep(min(delay, remaining))
            delay = min(delay * 1.5, self._poll_max_s)
            try:
                if not job_done:
                    status = await api.job_status(job.graph_id, job.job_id)
                    last_seen = f"job {status.state}"
                    if status.is_failed:
                        return self._finish(
                            job,
                            "failed",
                            f"job failed: {status.fail_reason or 'no reason given'}",
                            "job_failed",
                        )
                    job_done = status.state == "success"
                    if not job_done:
                        continue
                graph = await api.show_graph(job.graph_id)
            except NotFoundError as exc:
                if exc.code == "GES.7000":
                    return self._finish(job, "failed", "graph deleted while its job ran", exc.code)
                job_done = True  # the job is gone (GES.7007): the graph's status decides
                continue
            except ApiError as exc:
                log.warning(
                    "polling job failed (%s); will poll again",
                    exc,
                    extra={"project": job.project, "graph_id": job.graph_id, "job_id": job.job_id},
                )
                continue
            code = graph.status
            last_seen = describe_status(code)
            if code == TARGET_STATUS[job.action]:
                return self._finish(job, "succeeded", f"graph is {describe_status(code)}", "")
            if code != MOVING_STATUS[job.action]:
                return self._finish(
                    job, "failed", f"job ended but graph is {describe_status(code)}", "job_failed"
                )

    async def _judge_at_timeout(self, api: GraphApi, job: TrackedJob, last_seen: str) -> JobOutcome:
        """A job still not ended at its timeout may be stuck in the Task Center while the
        graph got where it should: the graph's own status is the last word."""
        seconds = job.timeout.total_seconds()
        try:
            graph = await api.show_graph(job.graph_id)
        except ApiError as exc:
            return self._finish(
                job,
                "failed",
                f"timeout: still {last_seen} after {seconds:.0f}s (graph status unknown: {exc.code})",
                "timeout",
            )
        if graph.status == TARGET_STATUS[job.action]:
            return self._finish(
                job,
                "succeeded",
                f"graph is {describe_status(graph.status)} (its job still said {last_seen} "
                f"after {seconds:.0f}s)",
                "",
            )
        return self._finish(
            job,
            "failed",
            f"timeout: still {last_seen} after {seconds:.0f}s; graph is {describe_status(graph.status)}",
            "timeout",
        )

    def _finish(
        self, job: TrackedJob, outcome: Literal["succeeded", "failed"], reason: str, failure: str
    ) -> JobOutcome:
        now = self._clock()
        duration = max((now - job.requested_at).total_seconds(), 0.0)
        self._outcomes.record(
            Outcome(
                now,
                job.project,
                job.graph_id,
                job.graph_name,
                job.rule,
                job.action,
                outcome,
                reason,
                job_id=job.job_id,
                failure=failure,
                duration_s=duration,
            )
        )
        return JobOutcome(job, outcome, reason, duration)


def failure_reason(code: str) -> str:
    """An error code as a bounded metric label: http_5xx for any 5xx."""
    return "http_5xx" if code.startswith("http_5") else code
