"""The schedule firing: a schedule at its fire time over every project it targets, side by
side, each page of a project's listing planned and acted on as it arrives; a project whose
listing fails is tried again until the misfire grace ends. Also what every pass shares: its
clients, its settings, and how a schedule's decisions are executed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.config.models import Config, Schedule
from daemon.domain.model import Clock, Graph, GraphApi, MetricApi, Sleep
from daemon.rules.planning import Decision, holiday_reason, plan, target_projects
from daemon.runtime.deferrals import Deferrals
from daemon.runtime.executor import Executor, Result
from daemon.runtime.fanout import fan_out, reachable
from daemon.runtime.holds import HoldBook
from daemon.runtime.inventory import Inventory
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.tracker import Tracker
from daemon.runtime.usage import defer_stops_in_use

log = logging.getLogger(__name__)

# A firing whose inventory failed tries again after this long, doubling up to the max.
INVENTORY_RETRY_S = 30.0
INVENTORY_RETRY_MAX_S = 300.0


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


@dataclass(frozen=True)
class PassApis:
    """The clients of every project as the pass started: a reload that rebuilds or removes
    a project's clients meanwhile does not reach a pass already running."""

    graph: Mapping[str, GraphApi]
    metric: Mapping[str, MetricApi]


class Firing:
    def __init__(
        self,
        inventory: Inventory,
        deferrals: Deferrals,
        executor: Executor,
        tracker: Tracker,
        outcomes: Outcomes,
        settings: PassSettings,
        *,
        holds: HoldBook,
        clock: Clock,
        sleep: Sleep,
    ) -> None:
        self._inventory = inventory
        self._deferrals = deferrals
        self._executor = executor
        self._tracker = tracker
        self._outcomes = outcomes
        self._settings = settings
        self._holds = holds
        self._clock = clock
        self._sleep = sleep

    async def fire(
        self,
        config: Config,
        schedule: Schedule,
        fire_time: datetime,
        apis: PassApis,
        now: datetime,
        retry_until: datetime | None,
        dry_run: bool,
    ) -> Report:
        """One firing of a schedule, for its scheduled `fire_time` (which decides the
        holiday), with the clients and the time its pass began with. A project whose
        inventory fails is tried again until `retry_until` (the scheduler gives the end of
        the misfire grace): GES down for a few minutes must not cost a night's stops.
        Returns once every action is requested; the tracker follows the jobs."""
        await self._holds.purge(now)
        reason = holiday_reason(schedule, config.calendars, fire_time)
        if reason:
            log.info(
                "firing skipped: %s",
                reason,
                extra={"rule": schedule.name, "action": schedule.action, "reason": reason},
            )
            return Report(schedule.name, fire_time, reason)
        names = [p.name for p in config.projects]
        projects = reachable(target_projects(schedule, names), apis.graph, schedule.name)
        planned: dict[str, set[str]] = {}  # graph ids by project, over every round
        results, failed = await self._projects(
            config, apis, schedule, projects, now, dry_run, planned
        )
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
            await self._holds.purge(now)
            more, failed = await self._projects(
                config, apis, schedule, failed, now, dry_run, planned
            )
            results += more
        for project in failed:
            self._outcomes.inventory_failed(project, schedule.action)
        log.info(
            "firing: %d graphs selected, %d actions requested",
            len(results),
            sum(r.outcome == "requested" for r in results),
            extra={"rule": schedule.name, "action": schedule.action},
        )
        await self._deferrals.keep()  # the stops it deferred outlive this process
        return Report(schedule.name, fire_time, "", tuple(results), tuple(failed))

    async def execute(
        self,
        apis: PassApis,
        schedule: Schedule,
        decisions: Sequence[Decision],
        now: datetime,
        dry_run: bool,
    ) -> list[Result]:
        """A schedule's decisions executed as its settings say (any pass acting for it)."""
        return await self._executor.execute(
            decisions,
            apis.graph,
            now=now,
            dry_run=dry_run or self._settings.dry_run or schedule.dry_run,
            job_timeout=schedule.timeout or self._settings.job_timeout,
            backup_id=schedule.backup_id,
        )

    async def _projects(
        self,
        config: Config,
        apis: PassApis,
        schedule: Schedule,
        projects: Sequence[str],
        now: datetime,
        dry_run: bool,
        planned: dict[str, set[str]],
    ) -> tuple[list[Result], list[str]]:
        """Inventory, plan and execute each project on its own, side by side, and each page
        of a project's listing as it arrives: the first stops go out once the first page is
        in, not after the last page of the last project. A listing that fails part way keeps
        what its pages started; `planned` (graph ids by project, across the firing's rounds)
        keeps a later round from planning a graph twice."""

        async def one(project: str) -> tuple[list[Result], bool]:
            mine = planned.setdefault(project, set())
            if schedule.defer_while_in_use is not None:  # Cloud Eye is asked once, for all
                inventory, failed = await self._inventory.take(config, apis.graph, [project], now)
                if failed:
                    return [], True
                graphs = [g for g in inventory[project] if g.id not in mine]
                mine.update(g.id for g in graphs)
                decisions = await defer_stops_in_use(
                    apis.metric[project], self._deferrals, schedule, project,
                    self._plan(config, schedule, project, graphs, now), now,
                    remember=not (dry_run or schedule.dry_run or self._settings.dry_run),
                )  # fmt: skip
                return await self.execute(apis, schedule, decisions, now, dry_run), False
            executions: list[asyncio.Task[list[Result]]] = []
            listing = True
            async with asyncio.TaskGroup() as pages:

                def act_on(_: str, graphs: Sequence[Graph]) -> None:
                    if not listing:  # a page after its listing ended: the next round's
                        return
                    fresh = [g for g in graphs if g.id not in mine]
                    if fresh:
                        decisions = self._plan(config, schedule, project, fresh, now)
                        execution = self.execute(apis, schedule, decisions, now, dry_run)
                        executions.append(pages.create_task(execution))
                        mine.update(g.id for g in fresh)  # planned once its actions are under way

                inventory, failed = await self._inventory.take(
                    config, apis.graph, [project], now, on_page=act_on
                )
                act_on(project, inventory.get(project, []))  # what no page handed over
                listing = False
            results = [r for execution in executions for r in execution.result()]
            order = {g.id: i for i, g in enumerate(inventory.get(project, []))}
            results.sort(key=lambda r: order.get(r.decision.graph_id, -1))  # listing order
            return results, bool(failed)

        answers = await fan_out(projects, one, "firing", schedule.name)
        results = [r for answer in answers.values() if answer is not None for r in answer[0]]
        failed = [p for p, answer in answers.items() if answer is None or answer[1]]
        return results, failed

    def _plan(
        self,
        config: Config,
        schedule: Schedule,
        project: str,
        graphs: Sequence[Graph],
        now: datetime,
    ) -> list[Decision]:
        """A firing's decisions for some of a project's graphs, with the jobs in flight and
        the holds in force as they are now (read after the listing: a hold made meanwhile
        is honoured)."""
        in_flight, holds = self._tracker.in_flight(), self._holds.holds(now)
        return plan(schedule, {project: graphs}, now, config.opt_out_tags, in_flight, holds=holds)
