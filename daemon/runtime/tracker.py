"""Follows every stop/start job to success, failure or timeout, and finds them again after
a restart through the Task Center. It never issues actions, but it is the one place that
knows which graphs have an action in flight: claimed (the request is on the wire) or
followed (a job is running).

One poller per project follows all of its jobs. Each round reads the graphs' statuses in
one paged listing when that is cheaper than a call per graph (many jobs in flight), or
with a call per graph otherwise: the graph's own status is the proof of an outcome. Only
a graph that is neither where the action leads nor on its way there costs a job-status
call, for the reason. Rounds back off from poll_initial_s to poll_max_s, and start over
when a job joins.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from daemon.cloud.errors import ApiError, NotFoundError
from daemon.domain.model import (
    MOVING_STATUS,
    TARGET_STATUS,
    Action,
    Clock,
    Graph,
    GraphApi,
    GraphStatus,
    Job,
    Sleep,
    describe_status,
)
from daemon.runtime.outcomes import Outcome, Outcomes
from daemon.telemetry.metrics import Metrics

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
        page_size: int = 100,
    ) -> None:
        self._outcomes = outcomes
        self._gauge = metrics.jobs_in_flight
        self._clock = clock
        self._sleep = sleep
        self._poll_initial_s = poll_initial_s
        self._poll_max_s = poll_max_s
        self._page_size = page_size
        self._claimed: set[GraphKey] = set()
        self._jobs: dict[GraphKey, tuple[TrackedJob, asyncio.Future[JobOutcome]]] = {}
        self._apis: dict[str, GraphApi] = {}
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._fleet: dict[str, int] = {}  # graphs per project at the last inventory

    # --- what is in flight ----------------------------------------------------------------

    def claim(self, project: str, graph_id: str) -> bool:
        """Reserve a graph for one action request; False when it already has one in flight.
        The claim ends with follow() (the job is followed) or release() (no job came)."""
        key = (project, graph_id)
        if key in self._claimed or key in self._jobs:
            return False
        self._claimed.add(key)
        return True

    def release(self, project: str, graph_id: str) -> None:
        self._claimed.discard((project, graph_id))

    def in_flight(self) -> frozenset[GraphKey]:
        """Graphs with an action request or a job in flight."""
        return frozenset(self._claimed | self._jobs.keys())

    def jobs(self) -> list[TrackedJob]:
        return [job for job, _ in self._jobs.values()]

    def note_fleet(self, project: str, graphs: int) -> None:
        """How many graphs the project has (from an inventory): what a listing costs."""
        self._fleet[project] = graphs

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
    ) -> asyncio.Future[JobOutcome]:
        """Follow a job until its end; the future resolves to its outcome. Idempotent per
        graph. Without a `job_id` (GES said the graph is already on its way and the Task
        Center does not show the job), the graph's status alone is followed."""
        key = (project, graph_id)
        self._claimed.discard(key)
        if key in self._jobs:
            return self._jobs[key][1]
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
        future: asyncio.Future[JobOutcome] = asyncio.get_running_loop().create_future()
        self._jobs[key] = (job, future)
        self._apis[project] = api
        self._gauge.labels(project, action).inc()
        self._wake.setdefault(project, asyncio.Event()).set()
        poller = self._pollers.get(project)
        if poller is None or poller.done():
            self._pollers[project] = asyncio.get_running_loop().create_task(
                self._poll_project(project), name=f"track-{project}"
            )
        return future

    async def wait(self) -> None:
        """Until every job followed now has ended (for `graphnap once` and tests)."""
        futures = [future for _, future in self._jobs.values()]
        if futures:
            await asyncio.wait(futures)

    async def stop(self) -> None:
        """Stop following (at shutdown). The jobs go on in the cloud; the next start resumes them."""
        pollers = list(self._pollers.values())
        for poller in pollers:
            poller.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        for job, future in list(self._jobs.values()):
            future.cancel()
            self._forget(job)

    async def resume(
        self, project: str, api: GraphApi, graphs: Sequence[Graph], job_timeout: timedelta
    ) -> int:
        """Follow again the stop/start jobs still running in the Task Center.

        A job is taken as ours to follow when its graph is stopping (901) or starting (920):
        the graph's status says which action it is, whatever the job's (undocumented) name.
        """
        self.note_fleet(project, len(graphs))
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

    # --- the poller -------------------------------------------------------------------------

    def _project_jobs(self, project: str) -> list[TrackedJob]:
        return [job for job, _ in self._jobs.values() if job.project == project]

    async def _poll_project(self, project: str) -> None:
        wake = self._wake[project]
        delay = self._poll_initial_s
        while jobs := self._project_jobs(project):
            wake.clear()
            first_deadline = min(j.requested_at + j.timeout for j in jobs)
            until_deadline = (first_deadline - self._clock()).total_seconds()
            wait_s = min(delay, until_deadline) if until_deadline > 0 else delay
            due = self._clock() + timedelta(seconds=wait_s)
            await self._nap(wait_s, wake)
            while wake.is_set():  # a job joined: its first look within poll_initial_s
                wake.clear()
                soon = self._clock() + timedelta(seconds=self._poll_initial_s)
                due, delay = min(due, soon), self._poll_initial_s
                left_s = (due - self._clock()).total_seconds()
                if left_s > 0:
                    await self._nap(left_s, wake)
            delay = min(delay * 1.5, self._poll_max_s)
            await self._round(project)

    async def _nap(self, seconds: float, wake: asyncio.Event) -> None:
        """Sleep `seconds`, or until a job joins."""
        sleeping = asyncio.ensure_future(self._sleep(seconds))
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            woken.cancel()

    async def _round(self, project: str) -> None:
        """One look at every job of the project. A bug costs the job it touches only."""
        jobs = self._project_jobs(project)
        api = self._apis[project]
        try:
            graphs = await self._statuses(project, api, jobs)
        except Exception:  # a bug in the listing itself: no job can be judged
            log.exception("unexpected error following jobs", extra={"project": project})
            for job in jobs:
                self._finish(job, "failed", "internal error while following", "internal")
            return
        now = self._clock()
        for job in jobs:
            try:
                if job.graph_id in graphs:
                    await self._judge(api, job, graphs[job.graph_id], now)
                elif now >= job.requested_at + job.timeout:
                    seconds = job.timeout.total_seconds()
                    reason = f"timeout: no answer about the graph after {seconds:.0f}s"
                    self._finish(job, "failed", reason, "timeout")
            except Exception as exc:
                log.exception(
                    "unexpected error following a job",
                    extra={"project": project, "job_id": job.job_id},
                )
                reason = f"internal error while following: {type(exc).__name__}"
                self._finish(job, "failed", reason, "internal")

    async def _statuses(
        self, project: str, api: GraphApi, jobs: list[TrackedJob]
    ) -> dict[str, Graph | None]:
        """Each job's graph as it is now (None: deleted); a graph GES did not answer about
        is left out, to be asked again next round."""
        pages = -(-self._fleet.get(project, 0) // self._page_size) or 1
        if len(jobs) > pages:  # one listing costs less than a call per graph
            try:
                listed = await api.list_graphs()
            except ApiError as exc:
                log.warning(
                    "listing graphs to follow %d jobs failed (%s); will look again",
                    len(jobs),
                    exc,
                    extra={"project": project},
                )
                return {}
            self.note_fleet(project, len(listed))
            by_id: dict[str, Graph] = {g.id: g for g in listed}
            found: dict[str, Graph | None] = {
                job.graph_id: by_id[job.graph_id] for job in jobs if job.graph_id in by_id
            }
            # Missing from a listing is no proof of deletion (pages shift while they are
            # read): those graphs are asked about one by one.
            missing = [job for job in jobs if job.graph_id not in by_id]
            return found | await self._each(project, api, missing)
        return await self._each(project, api, jobs)

    async def _each(
        self, project: str, api: GraphApi, jobs: list[TrackedJob]
    ) -> dict[str, Graph | None]:
        graphs: dict[str, Graph | None] = {}
        for job in jobs:
            try:
                graphs[job.graph_id] = await api.show_graph(job.graph_id)
            except NotFoundError as exc:
                if exc.code == "GES.7000":
                    graphs[job.graph_id] = None
            except ApiError as exc:
                log.warning(
                    "polling job failed (%s); will poll again",
                    exc,
                    extra={"project": project, "graph_id": job.graph_id, "job_id": job.job_id},
                )
            except Exception as exc:  # a bug must cost this job only
                log.exception(
                    "unexpected error following a job",
                    extra={"project": project, "job_id": job.job_id},
                )
                reason = f"internal error while following: {type(exc).__name__}"
                self._finish(job, "failed", reason, "internal")
        return graphs

    async def _judge(
        self, api: GraphApi, job: TrackedJob, graph: Graph | None, now: datetime
    ) -> None:
        timed_out = now >= job.requested_at + job.timeout
        seconds = job.timeout.total_seconds()
        if graph is None:
            self._finish(job, "failed", "graph deleted while its job ran", "GES.7000")
            return
        where = describe_status(graph.status)
        if graph.status == TARGET_STATUS[job.action]:
            late = f" (its job still ran after {seconds:.0f}s)" if timed_out else ""
            self._finish(job, "succeeded", f"graph is {where}{late}", "")
            return
        if graph.status == MOVING_STATUS[job.action]:
            if timed_out:
                self._finish(
                    job, "failed", f"timeout: graph still {where} after {seconds:.0f}s", "timeout"
                )
            return
        # Neither there nor on its way: the job says why (or that it has not begun yet).
        state = "gone"
        if job.job_id:
            try:
                status = await api.job_status(job.graph_id, job.job_id)
            except NotFoundError:
                state = "gone"  # GES.7007: the graph's status is all there is
            except ApiError as exc:
                if not timed_out:
                    log.warning(
                        "polling job failed (%s); will poll again",
                        exc,
                        extra={
                            "project": job.project,
                            "graph_id": job.graph_id,
                            "job_id": job.job_id,
                        },
                    )
                    return
                state = "unknown"
            else:
                if status.is_failed:
                    reason = f"job failed: {status.fail_reason or 'no reason given'}"
                    self._finish(job, "failed", reason, "job_failed")
                    return
                state = status.state
        if state in ("pending", "running") and not timed_out:
            return  # accepted, not begun: the graph has not moved yet
        if timed_out and state == "unknown":
            reason = f"timeout: job status unreadable after {seconds:.0f}s; graph is {where}"
            self._finish(job, "failed", reason, "timeout")
            return
        if timed_out and state in ("pending", "running"):
            self._finish(
                job,
                "failed",
                f"timeout: job still {state} after {seconds:.0f}s; graph is {where}",
                "timeout",
            )
            return
        self._finish(job, "failed", f"job ended but graph is {where}", "job_failed")

    def _finish(
        self, job: TrackedJob, outcome: Literal["succeeded", "failed"], reason: str, failure: str
    ) -> None:
        entry = self._jobs.get(job.key)
        if entry is None or entry[0] is not job:
            return
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
        self._forget(job)
        entry[1].set_result(JobOutcome(job, outcome, reason, duration))

    def _forget(self, job: TrackedJob) -> None:
        if self._jobs.pop(job.key, None) is not None:
            self._gauge.labels(job.project, job.action).dec()


_LABELS = frozenset(
    {"timeout", "job_failed", "internal", "inventory", "connection", "request", "error"}
)


def failure_reason(code: str) -> str:
    """An error code as a bounded metric label: a service code shaped like GES.7001 or
    APIG.0308, http_5xx for any 5xx, http_NNN, or our own few words; anything else a
    gateway makes up is `other` (a hostile answer must not mint a series per request)."""
    if code.startswith("http_5"):
        return "http_5xx"
    if re.fullmatch(r"[A-Z][A-Z0-9]{1,9}\.\d{4}", code) or re.fullmatch(r"http_\d{3}", code):
        return code
    if code in _LABELS or re.fullmatch(r"(invalid|tls)_[a-z_]{1,20}", code):
        return code
    return "other"
