"""The passes: each is inventory -> planning -> executor, with `now` read once at its start.

- the schedule firing, for a schedule at its scheduled fire time;
- the keep-stopped window pass, which re-stops graphs that came back inside a window;
- the inventory pass: graph gauges, savings, readiness, and the Task Center resume.

The rules are planning's; this module only sequences I/O around them. An idle pass is one
more method of the same shape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from daemon.api import ApiError, Sleep
from daemon.config import Config, Schedule
from daemon.executor import Executor, Result
from daemon.metrics import Metrics
from daemon.model import Clock, Graph, GraphApi
from daemon.outcomes import Outcomes
from daemon.planning import (
    Decision,
    holiday_reason,
    is_managed,
    plan,
    target_projects,
    window_end,
)
from daemon.tracker import Tracker

log = logging.getLogger(__name__)

# A firing whose inventory failed tries again after this long, doubling up to the max.
INVENTORY_RETRY_S = 30.0
INVENTORY_RETRY_MAX_S = 300.0


@dataclass
class ProjectState:
    """The last inventory of a project, for readiness and /status."""

    graphs: list[Graph] = field(default_factory=list)
    at: datetime | None = None
    error: str = ""


@dataclass(frozen=True)
class Report:
    rule: str
    fire_time: datetime
    skipped_reason: str = ""
    results: tuple[Result, ...] = ()
    failed_projects: tuple[str, ...] = ()


@dataclass(frozen=True)
class PassSettings:
    dry_run: bool
    job_timeout: timedelta  # a schedule's `timeout` wins


class Passes:
    def __init__(
        self,
        apis: Callable[[], Mapping[str, GraphApi]],
        executor: Executor,
        tracker: Tracker,
        outcomes: Outcomes,
        metrics: Metrics,
        settings: PassSettings,
        *,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._apis = apis
        self._executor = executor
        self._tracker = tracker
        self._outcomes = outcomes
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self.projects: dict[str, ProjectState] = {}
        self._resumed: set[str] = set()  # projects whose Task Center has been read
        self._managed_for: Config | None = None
        self._managed: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], bool] = {}

    # --- the passes -----------------------------------------------------------------------

    async def fire(
        self,
        config: Config,
        schedule: Schedule,
        fire_time: datetime,
        retry_until: datetime | None = None,
        *,
        dry_run: bool = False,
    ) -> Report:
        """One firing of a schedule, for its scheduled `fire_time` (which decides the
        holiday). A project whose inventory fails is tried again until `retry_until` (the
        scheduler gives the end of the misfire grace): GES down for a few minutes must not
        cost a night's stops. Returns once every action is requested; the tracker follows
        the jobs."""
        now = self._clock()
        reason = holiday_reason(schedule, config.calendars, fire_time)
        if reason:
            log.info(
                "firing skipped: %s",
                reason,
                extra={"rule": schedule.name, "action": schedule.action, "reason": reason},
            )
            return Report(schedule.name, fire_time, reason)
        projects = target_projects(schedule, [p.name for p in config.projects])
        results, failed = await self._fire_projects(config, schedule, projects, now, dry_run)
        wait_s = INVENTORY_RETRY_S
        while failed and retry_until is not None:
            left_s = (retry_until - self._clock()).total_seconds()
            if left_s <= 0:
                break
            log.warning(
                "inventory failed for %s; the firing tries again in %.0fs (until %s, the end of its misfire_grace)",
                ", ".join(failed),
                min(wait_s, left_s),
                retry_until.isoformat(),
                extra={"rule": schedule.name, "action": schedule.action},
            )
            await self._sleep(min(wait_s, left_s))
            wait_s = min(wait_s * 2, INVENTORY_RETRY_MAX_S)
            now = self._clock()  # a new round over fresh inventory plans with its own time
            more, failed = await self._fire_projects(config, schedule, failed, now, dry_run)
            results += more
        for project in failed:
            self._outcomes.inventory_failed(project, schedule.action)
        log.info(
            "firing: %d graphs selected, %d actions requested",
            len(results),
            sum(r.outcome == "requested" for r in results),
            extra={"rule": schedule.name, "action": schedule.action},
        )
        return Report(schedule.name, fire_time, "", tuple(results), tuple(failed))

    async def keep_windows(self, config: Config) -> None:
        """Re-stop graphs that came back running inside a `keep_stopped_until` window. It
        speaks only when it acts: a window pass over graphs that stay stopped is silent."""
        now = self._clock()
        windows = [
            (schedule, until)
            for schedule in config.schedules
            if schedule.action == "stop"
            and (until := window_end(schedule, now)) is not None  # only inside a window
        ]
        if not windows:
            return
        all_projects = [p.name for p in config.projects]
        projects = sorted({p for s, _ in windows for p in target_projects(s, all_projects)})
        inventory, _ = await self._inventory(config, projects, now)
        for schedule, until in windows:
            try:
                mine = {
                    p: inventory[p]
                    for p in target_projects(schedule, all_projects)
                    if p in inventory
                }
                decisions = plan(
                    schedule, mine, now, config.opt_out_tags, self._tracker.in_flight(), until
                )
                await self._execute(schedule, [d for d in decisions if d.act], now, False)
            except Exception:  # one schedule's window must not stop the others
                log.exception("window pass crashed", extra={"rule": schedule.name})

    async def refresh_inventory(self, config: Config) -> None:
        """List every project's graphs (gauges, savings, readiness). A project answering
        for the first time also has its in-flight jobs found again in the Task Center, so
        a GES outage at start-up does not lose them."""
        now = self._clock()
        inventory, _ = await self._inventory(config, [p.name for p in config.projects], now)
        apis = self._apis()
        for project, graphs in inventory.items():
            if project in self._resumed:
                continue
            try:
                count = await self._tracker.resume(
                    project, apis[project], graphs, self._settings.job_timeout
                )
            except Exception as exc:  # one project's Task Center must not stop the others
                log.error(
                    "could not resume jobs from the Task Center; will try again: %s",
                    exc,
                    extra={"project": project},
                )
                continue
            self._resumed.add(project)
            if count:
                log.info("resumed %d in-flight jobs", count, extra={"project": project})

    # --- the shared steps -----------------------------------------------------------------

    async def _fire_projects(
        self,
        config: Config,
        schedule: Schedule,
        projects: Sequence[str],
        now: datetime,
        dry_run: bool,
    ) -> tuple[list[Result], list[str]]:
        """Inventory, plan and execute each project on its own, side by side: the first
        stops go out as soon as the first project is listed, not after the last."""

        async def one(project: str) -> list[Result] | None:
            inventory, failed = await self._inventory(config, [project], now)
            if failed:
                return None
            in_flight = self._tracker.in_flight()
            decisions = plan(schedule, inventory, now, config.opt_out_tags, in_flight)
            return await self._execute(schedule, decisions, now, dry_run)

        answers = await asyncio.gather(*(one(p) for p in projects))
        results = [r for answer in answers if answer is not None for r in answer]
        return results, [p for p, answer in zip(projects, answers, strict=True) if answer is None]

    async def _inventory(
        self, config: Config, projects: Sequence[str], now: datetime
    ) -> tuple[dict[str, list[Graph]], list[str]]:
        """List every graph of the projects (one paged listing each, concurrently).
        A project whose listing fails is reported and left out; the others go on."""
        apis = self._apis()
        answers = await asyncio.gather(
            *(apis[p].list_graphs() for p in projects), return_exceptions=True
        )
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
            self._tracker.note_fleet(project, len(answer))
            self._metrics.observe_inventory(
                project, self._priced(config, project, answer), now, config.pricing
            )
        return found, failed

    def _priced(
        self, config: Config, project: str, graphs: Sequence[Graph]
    ) -> list[tuple[str, str, int, float | None]]:
        """(id, name, status, hourly price if managed). Whether a graph is managed depends
        on the config and the graph's name and tags only: judged once per config, not on
        every pass for every graph against every schedule."""
        if self._managed_for is not config:
            self._managed_for, self._managed = config, {}
        priced = []
        for g in graphs:
            key = (project, g.id, g.name, tuple(sorted(g.tags.items())))
            managed = self._managed.get(key)
            if managed is None:
                managed = self._managed[key] = is_managed(config.schedules, project, g)
            price = config.pricing.hourly_price(g.size_index, g.replication) if managed else None
            priced.append((g.id, g.name, g.status, price))
        return priced

    async def _execute(
        self, schedule: Schedule, decisions: Sequence[Decision], now: datetime, dry_run: bool
    ) -> list[Result]:
        return await self._executor.execute(
            decisions,
            self._apis(),
            now=now,
            dry_run=dry_run or self._settings.dry_run or schedule.dry_run,
            job_timeout=schedule.timeout or self._settings.job_timeout,
            backup_id=schedule.backup_id,
        )
