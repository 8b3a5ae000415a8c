"""The passes, sequencing only: each is inventory -> planning -> executor, with `now` read
once at its start and the API clients taken once with it (a pass finishes with the clients
it started with, whatever a reload does meanwhile):

- the schedule firing, for a schedule at its scheduled fire time; a stop schedule with
  `defer_while_in_use` holds back graphs Cloud Eye shows in use;
- the keep-stopped window pass, which re-stops graphs that came back inside a window;
- the idle pass, per idle rule: Cloud Eye data -> idle verdicts -> stops (with
  `notify.before`, warned of first and stopped at a check once the lead has passed);
- the deferral pass, which stops deferred graphs once quiet, or gives up at `max`.

The rules are planning's and idle's, the listing the inventory's, the deferred stops the
deferrals'; this module only sequences I/O around them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType

from daemon.config.models import Config, IdleRule, Schedule
from daemon.domain.hold import Hold
from daemon.domain.model import Clock, Graph, GraphApi, MetricApi, Sleep
from daemon.rules.planning import (
    Decision,
    hold_reason,
    holiday_reason,
    idle_candidates,
    is_active,
    plan,
    plan_idle,
    target_projects,
    window_end,
)
from daemon.runtime.deferrals import Deferral, Deferrals
from daemon.runtime.executor import Executor, Result
from daemon.runtime.fanout import fan_out, reachable
from daemon.runtime.handstart import judge_hand_start
from daemon.runtime.holds import HoldBook
from daemon.runtime.idle_warnings import IdleWarnings, idle_lead
from daemon.runtime.inventory import Inventory
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.tracker import Tracker
from daemon.runtime.usage import defer_stops_in_use, idle_verdicts, recent_uses
from daemon.telemetry.metrics import Metrics

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


class Passes:
    def __init__(
        self,
        apis: Callable[[], Mapping[str, GraphApi]],
        metric_apis: Callable[[], Mapping[str, MetricApi]],
        inventory: Inventory,
        deferrals: Deferrals,
        executor: Executor,
        tracker: Tracker,
        outcomes: Outcomes,
        metrics: Metrics,
        settings: PassSettings,
        *,
        holds: HoldBook,
        clock: Clock,
        sleep: Sleep,
        idle_warnings: IdleWarnings | None = None,
    ) -> None:
        self._apis = apis
        self.idle_warnings = idle_warnings or IdleWarnings(None)
        self._metric_apis = metric_apis
        self._inventory = inventory
        self._deferrals = deferrals
        self._executor = executor
        self._tracker = tracker
        self._outcomes = outcomes
        self._holds = holds
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._idle_verdicts: dict[str, dict[str, str]] = {}  # rule -> graph name -> reason

    @property
    def idle_verdicts(self) -> Mapping[str, Mapping[str, str]]:
        """The last idle pass's verdict per rule and graph: a read-only view."""
        return MappingProxyType(self._idle_verdicts)

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
        now, apis = self._begin()
        await self._purge_holds(now)
        reason = holiday_reason(schedule, config.calendars, fire_time)
        if reason:
            log.info(
                "firing skipped: %s",
                reason,
                extra={"rule": schedule.name, "action": schedule.action, "reason": reason},
            )
            return Report(schedule.name, fire_time, reason)
        projects = reachable(target_projects(schedule, _names(config)), apis.graph, schedule.name)
        planned: dict[str, set[str]] = {}  # graph ids by project, over every round
        results, failed = await self._fire_projects(
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
            await self._purge_holds(now)
            more, failed = await self._fire_projects(
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

    async def keep_windows(self, config: Config) -> None:
        """Re-stop graphs that came back running inside a `keep_stopped_until` window. It
        speaks only when it acts: a window pass over graphs that stay stopped is silent."""
        now, apis = self._begin()
        await self._purge_holds(now)
        windows = [
            (schedule, until)
            for schedule in config.schedules
            if schedule.action == "stop"
            and (until := window_end(schedule, now, config.calendars)) is not None
        ]
        if not windows:
            return
        projects = sorted({p for s, _ in windows for p in target_projects(s, _names(config))})
        projects = reachable(projects, apis.graph, "windows")
        inventory, _ = await self._inventory.take(config, apis.graph, projects, now)
        for schedule, until in windows:
            try:
                await self._keep_window(config, apis, schedule, until, inventory, now)
            except Exception:  # one schedule's window must not stop the others
                log.exception("window pass crashed", extra={"rule": schedule.name})
        await self._deferrals.keep()

    async def idle(self, config: Config, rule: IdleRule) -> None:
        """Judge the running graphs an idle rule selects from Cloud Eye, and stop the idle
        ones. It speaks when it acts; every verdict is counted and kept for /status."""
        now, apis = self._begin()
        if rule.active_hours is not None and not is_active(rule.active_hours, now):
            log.debug("idle pass skipped: outside its active hours", extra={"rule": rule.name})
            self._metrics.idle_last_check.labels(rule.name).set(now.timestamp())  # it looked
            return
        view: dict[str, str] = {}
        await self._purge_holds(now)

        async def one(project: str) -> list[Result]:
            return await self._idle_project(config, apis, rule, project, now, view)

        projects = reachable(target_projects(rule, _names(config)), apis.graph, rule.name)
        answers = await fan_out(projects, one, "idle pass", rule.name)
        results = [r for answer in answers.values() if answer is not None for r in answer]
        self.idle_warnings.prune([r.name for r in config.idle_rules if idle_lead(r) is not None])
        await self.idle_warnings.settle(rule)  # kept, then told: once, one message per route
        self._idle_verdicts[rule.name] = view
        self._metrics.idle_last_check.labels(rule.name).set(now.timestamp())
        idle = sum(reason.startswith("idle") for reason in view.values())
        log.info(
            "idle pass: %d graphs judged, %d idle, %d stops requested",
            len(view),
            idle,
            sum(r.outcome == "requested" for r in results),
            extra={"rule": rule.name, "action": "stop"},
        )

    async def deferred(self, config: Config) -> None:
        """Check the deferred stops that are due: stop the graphs now quiet, give up on
        those still in use at `max`, drop those no longer running."""
        now, apis = self._begin()
        await self._purge_holds(now)
        for (name, project), items in self._deferrals.due(now).items():
            try:
                await self._check_deferred(config, apis, name, project, items, now)
            except Exception:  # one schedule's deferrals must not stop the others
                log.exception("deferral pass crashed", extra={"rule": name, "project": project})
        self._deferrals.count()
        await self._deferrals.keep()

    # --- the steps of each pass -----------------------------------------------------------

    def _begin(self) -> tuple[datetime, PassApis]:
        """The pass's time and its clients, taken together at its start."""
        return self._clock(), PassApis(dict(self._apis()), dict(self._metric_apis()))

    async def _purge_holds(self, now: datetime) -> None:
        """Holds that ended by the pass's `now` are dropped at its start, so an expired hold
        hands its graphs back to their rules at this very pass."""
        await self._holds.purge(now)

    def _holds_now(self, now: datetime) -> list[Hold]:
        """The holds in force at the pass's `now`, read just before planning (after the
        listing, which takes a while): a hold made meanwhile is honoured."""
        return self._holds.holds(now)

    async def _fire_projects(
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
                    self._plan_firing(config, schedule, project, graphs, now), now,
                    remember=not (dry_run or schedule.dry_run or self._settings.dry_run),
                )  # fmt: skip
                return await self._execute(apis, schedule, decisions, now, dry_run), False
            executions: list[asyncio.Task[list[Result]]] = []
            async with asyncio.TaskGroup() as pages:

                def act_on(_: str, graphs: Sequence[Graph]) -> None:
                    fresh = [g for g in graphs if g.id not in mine]
                    mine.update(g.id for g in fresh)
                    if fresh:
                        decisions = self._plan_firing(config, schedule, project, fresh, now)
                        execution = self._execute(apis, schedule, decisions, now, dry_run)
                        executions.append(pages.create_task(execution))

                inventory, failed = await self._inventory.take(
                    config, apis.graph, [project], now, on_page=act_on
                )
                act_on(project, inventory.get(project, []))  # what no page handed over
            results = [r for execution in executions for r in execution.result()]
            order = {g.id: i for i, g in enumerate(inventory.get(project, []))}
            results.sort(key=lambda r: order.get(r.decision.graph_id, -1))  # listing order
            return results, bool(failed)

        answers = await fan_out(projects, one, "firing", schedule.name)
        results = [r for answer in answers.values() if answer is not None for r in answer[0]]
        failed = [p for p, answer in answers.items() if answer is None or answer[1]]
        return results, failed

    def _plan_firing(
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
        in_flight, holds = self._tracker.in_flight(), self._holds_now(now)
        return plan(schedule, {project: graphs}, now, config.opt_out_tags, in_flight, holds=holds)

    async def _keep_window(
        self,
        config: Config,
        apis: PassApis,
        schedule: Schedule,
        until: datetime,
        inventory: Mapping[str, list[Graph]],
        now: datetime,
    ) -> None:
        mine = {
            p: inventory[p] for p in target_projects(schedule, _names(config)) if p in inventory
        }
        in_flight, holds = self._tracker.in_flight(), self._holds_now(now)
        decisions = plan(schedule, mine, now, config.opt_out_tags, in_flight, until)
        by_key = {(p, g.id): g for p, graphs in mine.items() for g in graphs}
        # A graph whose stop is deferred because it is in use is the deferral's. A held one
        # is skipped out loud: the pass would have stopped it, and a person asks why not.
        acting, held = [], []
        for d in decisions:
            if not d.act or (schedule.name, d.project, d.graph_id) in self._deferrals:
                continue
            graph = by_key[d.project, d.graph_id]
            why = hold_reason(holds, d.project, graph, "stop", now)
            if why:
                held.append(replace(d, act=False, reason=why))
                continue
            start = await judge_hand_start(
                self._holds, self._inventory, schedule, d.project, graph, now
            )
            if start is None:
                acting.append(d)
            elif start.until is not None:
                held.append(replace(d, act=False, reason=start.reason))
            else:
                acting.append(replace(d, reason=f"{d.reason}; {start.reason}"))
        if schedule.defer_while_in_use is not None:
            in_use: list[Decision] = []
            for project in sorted({d.project for d in acting}):
                mine_acting = [d for d in acting if d.project == project]
                in_use += await defer_stops_in_use(
                    apis.metric[project], self._deferrals, schedule, project, mine_acting, now,
                    remember=not (schedule.dry_run or self._settings.dry_run),
                )  # fmt: skip
            acting = [d for d in in_use if d.act]
        await self._execute(apis, schedule, held + acting, now, False)

    async def _idle_project(
        self,
        config: Config,
        apis: PassApis,
        rule: IdleRule,
        project: str,
        now: datetime,
        view: dict[str, str],
    ) -> list[Result]:
        inventory, failed = await self._inventory.take(config, apis.graph, [project], now)
        if failed:
            return []
        graphs, holds = inventory[project], self._holds_now(now)
        candidates, held = [], set()
        for graph in idle_candidates(rule, project, graphs):
            why = hold_reason(holds, project, graph, "stop", now)
            if why:  # a graph held running is not worth a Cloud Eye read
                view[f"{project}/{graph.name}"] = why
                held.add(graph.id)
            else:
                candidates.append(graph)
        verdicts = await idle_verdicts(apis.metric[project], rule, project, candidates, now)
        for graph in candidates:
            verdict = verdicts[(project, graph.id)]
            self._metrics.idle_verdicts.labels(rule.name, verdict.kind.value).inc()
            view[f"{project}/{graph.name}"] = verdict.reason
        in_flight = self._tracker.in_flight()
        decisions = plan_idle(
            rule, {project: graphs}, verdicts, now, config.opt_out_tags, in_flight, holds
        )
        if idle_lead(rule) is not None:  # idle stops warned of first, stopped once it is time
            planned = {d.graph_id: d.reason for d in decisions}
            decisions = self.idle_warnings.hold_back(rule, project, decisions, now)
            for d in decisions:
                if d.reason != planned[d.graph_id]:
                    view[f"{project}/{d.graph_name}"] = d.reason
        return await self._executor.execute(
            [d for d in decisions if d.act or d.graph_id in held],  # held: skipped out loud
            apis.graph,
            now=now,
            dry_run=self._settings.dry_run or rule.dry_run,
            job_timeout=self._settings.job_timeout,
        )

    async def _check_deferred(
        self,
        config: Config,
        apis: PassApis,
        name: str,
        project: str,
        items: list[Deferral],
        now: datetime,
    ) -> None:
        schedule = next((s for s in config.schedules if s.name == name), None)
        if schedule is None or schedule.defer_while_in_use is None:
            self._deferrals.drop(items, "the schedule no longer defers (reload)")
            return
        if project not in apis.graph:
            self._deferrals.drop(items, "the project left the config (reload)")
            return
        inventory, failed = await self._inventory.take(config, apis.graph, [project], now)
        by_id = {g.id: g for g in inventory.get(project, [])}
        mine = [by_id[i.graph_id] for i in items if i.graph_id in by_id]
        selected = {d.graph_id for d in plan(schedule, {project: mine}, now, config.opt_out_tags)}
        waiting = self._deferrals.still_waiting(items, None if failed else by_id, selected)
        use = None
        if waiting and not failed:
            use = await recent_uses(
                apis.metric[project], project, [i.graph_id for i in waiting], schedule, now
            )
        verdicts = self._deferrals.judge(schedule.defer_while_in_use, waiting, use, now)
        graphs = [by_id[g] for g in verdicts.quiet]
        in_flight = self._tracker.in_flight()
        planned = plan(
            schedule,
            {project: graphs},
            now,
            config.opt_out_tags,
            in_flight,
            holds=self._holds_now(now),
        )
        decisions = self._deferrals.release(verdicts, planned, now)
        results = await self._execute(apis, schedule, decisions + verdicts.gave_up, now, False)
        self._deferrals.settle(verdicts, results)

    async def _execute(
        self,
        apis: PassApis,
        schedule: Schedule,
        decisions: Sequence[Decision],
        now: datetime,
        dry_run: bool,
    ) -> list[Result]:
        return await self._executor.execute(
            decisions,
            apis.graph,
            now=now,
            dry_run=dry_run or self._settings.dry_run or schedule.dry_run,
            job_timeout=schedule.timeout or self._settings.job_timeout,
            backup_id=schedule.backup_id,
        )


def _names(config: Config) -> list[str]:
    return [p.name for p in config.projects]
