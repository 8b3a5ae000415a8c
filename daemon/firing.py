"""One firing of a schedule, end to end: inventory -> planning -> executor -> tracker.

Also the periodic inventory (graph gauges, savings, readiness) and the reconcile pass
that keeps graphs stopped inside `keep_stopped_until` windows. The rules themselves live
in planning; this module only sequences I/O around them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from daemon.api import ApiError
from daemon.config import Config, Schedule
from daemon.executor import Executor, Result
from daemon.ges import GesClient
from daemon.metrics import Metrics
from daemon.model import Clock, Graph
from daemon.planning import holiday_reason, plan, selects, target_projects, window_end
from daemon.tracker import Tracker

log = logging.getLogger(__name__)


@dataclass
class ProjectState:
    """The last inventory of a project, for readiness and /status."""

    graphs: list[Graph] = field(default_factory=list)
    at: datetime | None = None
    error: str = ""


@dataclass(frozen=True)
class Report:
    rule: str
    fired_at: datetime
    skipped_reason: str = ""
    results: tuple[Result, ...] = ()
    failed_projects: tuple[str, ...] = ()


class Pipeline:
    def __init__(
        self, executor: Executor, tracker: Tracker, metrics: Metrics, *, clock: Clock
    ) -> None:
        self._executor = executor
        self._tracker = tracker
        self._metrics = metrics
        self._clock = clock
        self.projects: dict[str, ProjectState] = {}
        self.decisions: deque[dict[str, Any]] = deque(maxlen=200)

    async def inventory(
        self, config: Config, clients: Mapping[str, GesClient], projects: Sequence[str]
    ) -> tuple[dict[str, list[Graph]], list[str]]:
        """List every graph of the projects (one paged listing each, concurrently).
        A project whose listing fails is reported and left out; the others go on."""
        answers = await asyncio.gather(
            *(clients[p].list_graphs() for p in projects), return_exceptions=True
        )
        now = self._clock()
        found: dict[str, list[Graph]] = {}
        failed: list[str] = []
        for project, answer in zip(projects, answers, strict=True):
            state = self.projects.setdefault(project, ProjectState())
            if isinstance(answer, BaseException):
                if not isinstance(answer, Exception):
                    raise answer  # cancellation and the like are not a project's failure
                if not isinstance(answer, ApiError):
                    log.error(
                        "unexpected error listing graphs",
                        exc_info=answer,
                        extra={"project": project},
                    )
                state.error = str(answer) or type(answer).__name__
                failed.append(project)
                log.error(
                    "inventory failed; this project's graphs are left as they are until the next pass",
                    extra={"project": project, "reason": str(answer)},
                )
                continue
            state.graphs, state.at, state.error = answer, now, ""
            found[project] = answer
            self._metrics.observe_inventory(
                project, _priced(config, project, answer), now, config.pricing
            )
        return found, failed

    async def fire(
        self,
        config: Config,
        clients: Mapping[str, GesClient],
        schedule: Schedule,
        fired_at: datetime,
        *,
        dry_run: bool = False,
        default_timeout: timedelta = timedelta(minutes=20),
        reconcile: bool = False,
    ) -> Report:
        """Fire one schedule now. Returns once every action is requested; the tracker
        follows the jobs on its own."""
        window_until = window_end(schedule, fired_at) if reconcile else None
        if reconcile and window_until is None:
            return Report(schedule.name, fired_at, "outside its keep-stopped window")
        if not reconcile:
            reason = holiday_reason(schedule, config.calendars, fired_at)
            if reason:
                log.info(
                    "firing skipped: %s",
                    reason,
                    extra={"rule": schedule.name, "action": schedule.action, "reason": reason},
                )
                return Report(schedule.name, fired_at, reason)
        projects = target_projects(schedule, [p.name for p in config.projects])
        inventory, failed = await self.inventory(config, clients, projects)
        for project in failed:
            self._metrics.action_failures.labels(project, schedule.action, "inventory").inc()
        decisions = plan(
            schedule,
            inventory,
            self._clock(),
            config.opt_out_tags,
            self._tracker.in_flight(),
            window_until,
        )
        if reconcile:
            decisions = [d for d in decisions if d.act]  # a window pass speaks only when it acts
        results = await self._executor.execute(
            decisions,
            clients,
            dry_run=dry_run or schedule.dry_run,
            job_timeout=schedule.timeout or default_timeout,
            backup_id=schedule.backup_id,
        )
        for result in results:
            d = result.decision
            self.decisions.append(
                {
                    "time": fired_at.isoformat(),
                    "rule": d.rule,
                    "project": d.project,
                    "graph_id": d.graph_id,
                    "graph": d.graph_name,
                    "action": d.action,
                    "outcome": result.outcome,
                    "reason": result.reason,
                }
            )
        acted = sum(r.outcome == "requested" for r in results)
        log.info(
            "%s: %d graphs selected, %d actions requested",
            "window pass" if reconcile else "firing",
            len(results),
            acted,
            extra={"rule": schedule.name, "action": schedule.action},
        )
        return Report(schedule.name, fired_at, "", tuple(results), tuple(failed))


def is_managed(config: Config, project: str, graph: Graph) -> bool:
    """A graph some stop schedule selects (and does not exclude): its stopped hours count."""
    return any(
        s.action == "stop"
        and selects(s.targets, project, graph)
        and not (s.exclude is not None and selects(s.exclude, project, graph))
        for s in config.schedules
    )


def _priced(
    config: Config, project: str, graphs: Sequence[Graph]
) -> list[tuple[str, str, int, float | None]]:
    return [
        (
            g.id,
            g.name,
            g.status,
            config.pricing.hourly_price(g.size_index, g.replication)
            if is_managed(config, project, g)
            else None,
        )
        for g in graphs
    ]
