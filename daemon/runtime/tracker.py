"""Follows every stop/start action GES answered to success, failure or timeout, and finds
them again after a restart through the Task Center. It never issues actions, but it is the
one place that knows which graphs have an action in flight: claimed (the request is on the
wire) or followed (a job is running), and the one that says what became of each: every look
goes through daemon.rules.jobs's table.

One poller per project follows all of its jobs. Each round reads the graphs' statuses in
one paged listing when that is cheaper than a call per graph (many jobs in flight), or
with a call per graph otherwise: the graph's own status is the proof of an outcome. A job
status is asked for only where the table needs one (a graph neither where the action leads
nor on its way there), for the reason. Rounds back off from poll_initial_s to poll_max_s, and start over
when a job joins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from daemon.cloud.errors import ApiError, NotFoundError
from daemon.domain.model import Action, Clock, Graph, GraphApi, GraphStatus, Sleep
from daemon.rules.jobs import (
    Answer,
    GraphLook,
    JobLook,
    Look,
    Reply,
    Verdict,
    confirmed,
    ended,
    failure_reason,
    judge_look,
)
from daemon.rules.planning import Decision
from daemon.runtime.looks import look_at, running_job, task_center
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
    answer: Answer = "job"  # what GES answered the request

    @property
    def key(self) -> GraphKey:
        return (self.project, self.graph_id)


@dataclass(frozen=True)
class JobOutcome:
    job: TrackedJob
    outcome: Literal["succeeded", "failed"]
    reason: str
    duration_s: float


@dataclass(frozen=True)
class Handover:
    """What the tracker made of an answered request: followed (`job` resolves to its end),
    or already ended (GES said "already" and the graph's status confirmed or refuted it)."""

    outcome: Literal["requested", "already_done", "failed"]
    reason: str
    failure: str = ""
    job_id: str = ""
    job: asyncio.Future[JobOutcome] | None = None


class Tracker:
    def __init__(
        self,
        outcomes: Outcomes,
        metrics: Metrics,
        *,
        clock: Clock,
        sleep: Sleep,
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

    async def hand_over(
        self, api: GraphApi, decision: Decision, reply: Reply, job_timeout: timedelta
    ) -> Handover:
        """Take over a claimed graph whose request GES answered. A job id is followed; an
        answer we could not read is followed by the graph's status (GES may well have
        acted); "already" is confirmed by one look at the graph, and followed if the graph
        is on its way. The claim ends here: followed, or released."""
        d = decision
        reason = d.reason if reply.answer == "job" else reply.said
        if reply.answer == "already":
            verdict, error = await self._confirm(api, d, reply)
            if verdict.ruling != "follow":
                self.release(d.project, d.graph_id)
                if error is not None:
                    reason = f"{verdict.reason}: {error}"
                    return Handover("failed", reason, failure_reason(error.code))
                return Handover(confirmed(verdict.ruling), verdict.reason, verdict.failure)
            reason = verdict.reason
        job_id = reply.job_id or await running_job(api, d.graph_name, self._clock())
        future = self.follow(
            api,
            d.project,
            d.graph_id,
            d.graph_name,
            job_id,
            d.action,
            d.rule,
            job_timeout,
            answer=reply.answer,
        )
        if reply.answer != "job":
            following = (
                f"job {job_id}" if job_id else "its status (no running job in the Task Center)"
            )
            reason = f"{reason}: following {following}"
        return Handover("requested", reason, job_id=job_id, job=future)

    async def _confirm(
        self, api: GraphApi, d: Decision, reply: Reply
    ) -> tuple[Verdict, ApiError | None]:
        """The first look after "already": that may be our own request whose answer was
        lost (a reset, a timeout) and whose job may yet fail, so the graph decides."""
        look = Look(d.action, "already", "unanswered", first=True, said=reply.said, code=reply.code)
        try:
            graph = await api.show_graph(d.graph_id)
        except ApiError as err:
            return judge_look(look), err
        return judge_look(replace(look, graph=graph.status)), None

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
        answer: Answer = "job",
    ) -> asyncio.Future[JobOutcome]:
        """Follow a job until its end; the future resolves to its outcome. Idempotent per
        graph. Without a `job_id` (GES's answer named none we could use, and the Task
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
            answer,
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
        resumed = 0
        for job in await task_center(api, self._clock()):
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
            look: GraphLook = "unanswered"
            if job.graph_id in graphs:
                graph = graphs[job.graph_id]
                look = "deleted" if graph is None else graph.status
            try:
                await self._judge(api, job, look, now)
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
        graphs, crashed = await look_at(
            project,
            api,
            [job.graph_id for job in jobs],
            list_first=len(jobs) > pages,  # one listing costs less than a call per graph
            listed=lambda size: self.note_fleet(project, size),
        )
        for job in jobs:
            exc = crashed.get(job.graph_id)
            if exc is not None:
                log.error(
                    "unexpected error following a job",
                    exc_info=exc,
                    extra={"project": project, "job_id": job.job_id},
                )
                reason = f"internal error while following: {type(exc).__name__}"
                self._finish(job, "failed", reason, "internal")
        return graphs

    async def _judge(self, api: GraphApi, job: TrackedJob, graph: GraphLook, now: datetime) -> None:
        look = Look(
            job.action,
            job.answer,
            graph,
            has_job=bool(job.job_id),
            timed_out=now >= job.requested_at + job.timeout,
            timeout_s=job.timeout.total_seconds(),
        )
        verdict = judge_look(look)
        if verdict.ruling == "ask_job":
            verdict = judge_look(replace(look, job=await self._job(api, job, look.timed_out)))
        if verdict.ruling != "follow":
            self._finish(job, ended(verdict.ruling), verdict.reason, verdict.failure)

    @staticmethod
    async def _job(api: GraphApi, job: TrackedJob, timed_out: bool) -> JobLook:
        try:
            return await api.job_status(job.graph_id, job.job_id)
        except NotFoundError:
            return "gone"  # GES.7007: the graph's status is all there is
        except ApiError as exc:
            if not timed_out:
                log.warning(
                    "polling job failed (%s); will poll again",
                    exc,
                    extra={"project": job.project, "graph_id": job.graph_id, "job_id": job.job_id},
                )
            return "unreadable"

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
