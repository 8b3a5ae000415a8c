"""Applies decisions: bounded concurrency, dry-run, and never a second action on a graph
whose request or job is still in flight (the tracker keeps that list). It does not choose
targets.

Every decision ends in exactly one outcome, recorded through daemon.outcomes: skipped (with
the planner's reason), dry_run, already_done, failed (with an error code), or requested
(a job handed to the tracker, whose end is recorded in turn).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.api import AlreadyDoneError, ApiError
from daemon.model import GraphApi
from daemon.outcomes import Kind, Outcome, Outcomes
from daemon.planning import IN_FLIGHT, Decision
from daemon.tracker import JobOutcome, Tracker, failure_reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    decision: Decision
    outcome: Kind
    reason: str
    job: asyncio.Task[JobOutcome] | None = None


class Executor:
    def __init__(self, tracker: Tracker, outcomes: Outcomes, *, max_concurrency: int = 8) -> None:
        self._tracker = tracker
        self._outcomes = outcomes
        self._slots = asyncio.Semaphore(max_concurrency)

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
        """Apply every decision; one failing graph never stops the others. `now` is the
        pass's time, stamped on the decisions' outcomes."""
        return list(
            await asyncio.gather(
                *(
                    self._apply(d, apis[d.project], now, dry_run, job_timeout, backup_id)
                    for d in decisions
                )
            )
        )

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
            self._tracker.release(d.project, d.graph_id)
            return self._record(now, d, "already_done", f"GES says {exc.code}: {exc.message}")
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
