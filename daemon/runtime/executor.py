"""Applies decisions: bounded concurrency, dry-run, and never a second action on a graph
whose request or job is still in flight (the tracker keeps that list). It does not choose
targets.

Every decision ends in exactly one outcome, recorded through daemon.runtime.outcomes: skipped (with
the planner's reason), dry_run, already_done, failed (with an error code), or requested
(a job handed to the tracker, whose end is recorded in turn).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.cloud.errors import AlreadyDoneError, ApiError
from daemon.domain.model import MOVING_STATUS, TARGET_STATUS, GraphApi, describe_status
from daemon.rules.planning import IN_FLIGHT, Decision
from daemon.runtime.outcomes import Kind, Outcome, Outcomes
from daemon.runtime.tracker import JobOutcome, Tracker, failure_reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    decision: Decision
    outcome: Kind
    reason: str
    job: asyncio.Future[JobOutcome] | None = None


class Executor:
    """Projects are served side by side: each gets its own workers (at most
    `project_concurrency`, the most its gate lets through anyway), so a slow or throttled
    project holds only its own share of the `max_concurrency` actions in flight."""

    def __init__(
        self,
        tracker: Tracker,
        outcomes: Outcomes,
        *,
        max_concurrency: int = 64,
        project_concurrency: int = 16,
    ) -> None:
        self._tracker = tracker
        self._outcomes = outcomes
        self._slots = asyncio.Semaphore(max_concurrency)
        self._per_project = project_concurrency

    async def execute(
        self,
        decisions: Sequence[Decision],
        apis: Mapping[str, GraphApi],
        *,
        now: datetime,
        dry_run: bool,
        job_timeout: timedelta,
        backup_id: str | None = None,
    ) -> list[Result]:
        """Apply every decision; one failing graph never stops the others. Results come in
        the decisions' order. `now` is the pass's time, stamped on the outcomes."""
        results: list[Result | None] = [None] * len(decisions)
        queues: dict[str, deque[int]] = {}
        for i, d in enumerate(decisions):
            if d.act and not dry_run:
                queues.setdefault(d.project, deque()).append(i)
            else:  # no request to make: recorded at once
                results[i] = await self._apply(
                    d, apis[d.project], now, dry_run, job_timeout, backup_id
                )

        async def worker(queue: deque[int]) -> None:
            while queue:
                i = queue.popleft()
                d = decisions[i]
                results[i] = await self._apply(
                    d, apis[d.project], now, dry_run, job_timeout, backup_id
                )

        await asyncio.gather(
            *(
                worker(queue)
                for queue in queues.values()
                for _ in range(min(len(queue), self._per_project))
            )
        )
        return [r for r in results if r is not None]

    async def _apply(
        self,
        decision: Decision,
        api: GraphApi,
        now: datetime,
        dry_run: bool,
        job_timeout: timedelta,
        backup_id: str | None,
    ) -> Result:
        d = decision
        if not d.act:
            return self._record(now, d, "skipped", d.reason)
        if dry_run:
            return self._record(now, d, "dry_run", f"dry run: would {d.action} ({d.reason})")
        # Planning saw the graph free; another pass may have claimed it since.
        if not self._tracker.claim(d.project, d.graph_id):
            return self._record(now, d, "skipped", IN_FLIGHT)
        try:
            async with self._slots:
                if d.action == "stop":
                    job_id = await api.stop_graph(d.graph_id)
                else:
                    job_id = await api.start_graph(d.graph_id, backup_id)
        except AlreadyDoneError as exc:
            try:
                return await self._confirm(d, api, exc, now, job_timeout)
            except Exception as err:  # a bug must cost this graph only, and be seen
                self._tracker.release(d.project, d.graph_id)
                log.exception("unexpected error confirming a graph", extra={"rule": d.rule})
                reason = f"internal error: {type(err).__name__}"
                return self._record(now, d, "failed", reason, "internal")
        except ApiError as exc:
            self._tracker.release(d.project, d.graph_id)
            return self._record(now, d, "failed", str(exc), failure_reason(exc.code))
        except Exception as exc:  # a bug must cost this graph only, and be seen
            self._tracker.release(d.project, d.graph_id)
            log.exception("unexpected error applying a decision", extra={"rule": d.rule})
            return self._record(
                now, d, "failed", f"internal error: {type(exc).__name__}", "internal"
            )
        task = self._tracker.follow(
            api, d.project, d.graph_id, d.graph_name, job_id, d.action, d.rule, job_timeout
        )
        self._record(now, d, "requested", d.reason, job_id=job_id)
        return Result(d, "requested", d.reason, task)

    async def _confirm(
        self,
        d: Decision,
        api: GraphApi,
        exc: AlreadyDoneError,
        now: datetime,
        job_timeout: timedelta,
    ) -> Result:
        """GES says the graph is already there or on its way. "On its way" may be our own
        request whose answer was lost (a reset, a timeout) and whose job may yet fail, so
        the graph decides: there is already_done; moving there is followed to a real end;
        anywhere else is a failure."""
        said = f"GES says {exc.code}: {exc.message}"
        try:
            graph = await api.show_graph(d.graph_id)
        except ApiError as err:
            self._tracker.release(d.project, d.graph_id)
            reason = f"{said}; its status could not be read to confirm: {err}"
            return self._record(now, d, "failed", reason, failure_reason(err.code))
        where = describe_status(graph.status)
        if graph.status == TARGET_STATUS[d.action]:
            self._tracker.release(d.project, d.graph_id)
            return self._record(now, d, "already_done", f"{said}; graph is {where}")
        if graph.status != MOVING_STATUS[d.action]:
            self._tracker.release(d.project, d.graph_id)
            return self._record(now, d, "failed", f"{said}, but graph is {where}", exc.code)
        job_id = await self._running_job(api, graph.name, now)
        task = self._tracker.follow(
            api, d.project, d.graph_id, d.graph_name, job_id, d.action, d.rule, job_timeout
        )
        following = f"job {job_id}" if job_id else "its status (no running job in the Task Center)"
        reason = f"{said}; graph is {where}: following {following}"
        self._record(now, d, "requested", reason, job_id=job_id)
        return Result(d, "requested", reason, task)

    @staticmethod
    async def _running_job(api: GraphApi, graph_name: str, now: datetime) -> str:
        """The id of the graph's running job in the Task Center, or "" if none shows."""
        try:
            jobs = await api.list_jobs(
                status="running", graph_name=graph_name, since=(now - timedelta(days=1)).date()
            )
            jobs += await api.list_jobs(
                status="waiting", graph_name=graph_name, since=(now - timedelta(days=1)).date()
            )
        except ApiError:
            return ""
        return jobs[0].id if jobs else ""

    def _record(
        self,
        now: datetime,
        d: Decision,
        outcome: Kind,
        reason: str,
        failure: str = "",
        job_id: str = "",
    ) -> Result:
        self._outcomes.record(
            Outcome(
                now,
                d.project,
                d.graph_id,
                d.graph_name,
                d.rule,
                d.action,
                outcome,
                reason,
                job_id=job_id,
                failure=failure,
            )
        )
        return Result(d, outcome, reason)
