"""Applies decisions: bounded concurrency, dry-run, and never a second action on a graph
whose job is still in flight. It does not choose targets.

Every decision ends in exactly one of: skipped (with the planner's reason), dry_run,
already_done, failed (with an error code), or a job handed to the tracker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from daemon.api import AlreadyDoneError, ApiError
from daemon.ges import GesClient
from daemon.metrics import Metrics
from daemon.model import Clock
from daemon.planning import Decision
from daemon.tracker import JobOutcome, TrackedJob, Tracker, failure_reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    decision: Decision
    outcome: str  # skipped, dry_run, already_done, failed, requested
    reason: str
    job: asyncio.Task[JobOutcome] | None = None


class Executor:
    def __init__(
        self, tracker: Tracker, metrics: Metrics, *, clock: Clock, max_concurrency: int = 8
    ) -> None:
        self._tracker = tracker
        self._metrics = metrics
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrency)
        self._claimed: set[tuple[str, str]] = set()  # graphs whose action request is on the wire

    async def execute(
        self,
        decisions: Sequence[Decision],
        clients: Mapping[str, GesClient],
        *,
        dry_run: bool,
        job_timeout: timedelta,
        backup_id: str | None = None,
    ) -> list[Result]:
        """Apply every decision; one failing graph never stops the others."""
        return list(
            await asyncio.gather(
                *(
                    self._apply(d, clients[d.project], dry_run, job_timeout, backup_id)
                    for d in decisions
                )
            )
        )

    async def _apply(
        self,
        decision: Decision,
        ges: GesClient,
        dry_run: bool,
        job_timeout: timedelta,
        backup_id: str | None,
    ) -> Result:
        key = (decision.project, decision.graph_id)
        if decision.act and (key in self._claimed or self._tracker.is_in_flight(*key)):
            decision = replace(
                decision, act=False, reason="a job for this graph is already in flight"
            )
        if not decision.act:
            return self._record(decision, "skipped", decision.reason)
        if dry_run:
            return self._record(
                decision, "dry_run", f"dry run: would {decision.action} ({decision.reason})"
            )
        self._claimed.add(key)
        try:
            async with self._slots:
                requested_at = self._clock()
                if decision.action == "stop":
                    job_id = await ges.stop_graph(decision.graph_id)
                else:
                    job_id = await ges.start_graph(decision.graph_id, backup_id)
            job = TrackedJob(
                decision.project,
                decision.graph_id,
                decision.graph_name,
                job_id,
                decision.action,
                decision.rule,
                requested_at,
                job_timeout,
            )
            task = self._tracker.follow(ges, job)
        except AlreadyDoneError as exc:
            return self._record(decision, "already_done", f"GES says {exc.code}: {exc.message}")
        except ApiError as exc:
            self._metrics.action_failures.labels(
                decision.project, decision.action, failure_reason(exc.code)
            ).inc()
            return self._record(decision, "failed", str(exc), logging.ERROR)
        except Exception as exc:  # a bug must cost this graph only, and be seen
            log.exception("unexpected error applying a decision", extra=_facts(decision))
            self._metrics.action_failures.labels(
                decision.project, decision.action, "internal"
            ).inc()
            return self._record(
                decision, "failed", f"internal error: {type(exc).__name__}", logging.ERROR
            )
        finally:
            self._claimed.discard(key)
        log.info(
            "%s requested",
            decision.action,
            extra=_facts(decision, outcome="requested", reason=decision.reason, job_id=job_id),
        )
        return Result(decision, "requested", decision.reason, task)

    def _record(
        self, decision: Decision, outcome: str, reason: str, level: int = logging.INFO
    ) -> Result:
        self._metrics.actions.labels(
            decision.project, decision.rule, decision.action, outcome
        ).inc()
        verb = {
            "skipped": "skip",
            "dry_run": "dry run",
            "already_done": "already done",
            "failed": "failed",
        }[outcome]
        log.log(
            level,
            "%s %s",
            decision.action,
            verb,
            extra=_facts(decision, outcome=outcome, reason=reason),
        )
        return Result(decision, outcome, reason)


def _facts(decision: Decision, **more: str) -> dict[str, str]:
    return {
        "project": decision.project,
        "graph_id": decision.graph_id,
        "graph": decision.graph_name,
        "rule": decision.rule,
        "action": decision.action,
        **more,
    }
