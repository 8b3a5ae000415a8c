"""Applies decisions: bounded concurrency, dry-run, and never a second action on a graph
whose request or job is still in flight (the tracker keeps that list). It issues requests
and hands every answer to the tracker; it neither chooses targets nor judges outcomes.

Every decision ends in exactly one outcome, recorded through daemon.runtime.outcomes: skipped (with
the planner's reason), dry_run, failed (the request refused, with an error code), or what
the tracker made of GES's answer: already_done, failed, or requested (followed, whose end
is recorded in turn).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.cloud.errors import AlreadyDoneError, ApiError, InvalidResponseError
from daemon.domain.model import GraphApi
from daemon.rules.jobs import Reply, failure_reason
from daemon.rules.planning import IN_FLIGHT, Decision
from daemon.runtime.outcomes import Kind, Outcome, Outcomes
from daemon.runtime.tracker import JobOutcome, Tracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    decision: Decision
    outcome: Kind
    reason: str
    job: asyncio.Future[JobOutcome] | None = None


class Executor:
    """Projects are served side by side: each call gives each project its own workers (at
    most `project_concurrency`, the most its gate lets through anyway, and never more than
    `max_concurrency`), so a slow or throttled project holds only its own workers. A
    firing calls once per page: its pages' workers then share the project's gate, which
    bounds the requests (idle workers cost a task each, no request).

    The bound on requests in flight of all projects together is the gates' (one shared
    place per request sent, taken at its turn: daemon.cloud.gate), not held here: an
    action waiting for its project's pace must not hold a place another project could
    send a request with."""

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
        self._per_project = min(project_concurrency, max_concurrency)

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
            reply = await self._issue(d, api, backup_id)
        except ApiError as exc:
            self._tracker.release(d.project, d.graph_id)
            return self._record(now, d, "failed", str(exc), failure_reason(exc.code))
        except Exception as exc:  # a bug must cost this graph only, and be seen
            self._tracker.release(d.project, d.graph_id)
            log.exception("unexpected error applying a decision", extra={"rule": d.rule})
            return self._record(
                now, d, "failed", f"internal error: {type(exc).__name__}", "internal"
            )
        try:
            handed = await self._tracker.hand_over(api, d, reply, job_timeout)
        except Exception as err:  # a bug must cost this graph only, and be seen
            self._tracker.release(d.project, d.graph_id)
            log.exception("unexpected error handing over an answer", extra={"rule": d.rule})
            return self._record(
                now, d, "failed", f"internal error: {type(err).__name__}", "internal"
            )
        self._record(now, d, handed.outcome, handed.reason, handed.failure, handed.job_id)
        return Result(d, handed.outcome, handed.reason, handed.job)

    async def _issue(self, d: Decision, api: GraphApi, backup_id: str | None) -> Reply:
        """One request, and GES's answer as the tracker reads it. "Already there or on its
        way" and an answer we could not read are answers too: GES may have acted."""
        try:
            if d.action == "stop":
                job_id = await api.stop_graph(d.graph_id)
            else:
                job_id = await api.start_graph(d.graph_id, backup_id)
        except AlreadyDoneError as exc:
            return Reply("already", said=f"GES says {exc.code}: {exc.message}", code=exc.code)
        except InvalidResponseError as exc:
            return Reply("unreadable", said=f"the answer was unreadable ({exc})")
        return Reply("job", job_id)

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
