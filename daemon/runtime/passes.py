"""The passes, sequencing only: each is inventory -> planning -> executor, with `now` read
once at its start and the API clients taken once with it (a pass finishes with the clients
it started with, whatever a reload does meanwhile):

- the schedule firing (firing.py's), for a schedule at its scheduled fire time; a stop
  schedule with `defer_while_in_use` holds back graphs Cloud Eye shows in use;
- the keep-stopped window pass, which re-stops graphs that came back inside a window;
- the idle pass, per idle rule: Cloud Eye data -> idle verdicts -> stops (with
  `notify.before`, warned of first and stopped at a check once the lead has passed);
- the deferral pass, which stops deferred graphs once quiet, or gives up at `max`.

The rules are planning's and idle's, the listing the inventory's, the deferred stops the
deferrals'; this module only sequences I/O around them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType

from daemon.config.models import Config, IdleRule, Schedule
from daemon.domain.hold import Hold
from daemon.domain.model import Clock, Graph, GraphApi, MetricApi, Sleep
from daemon.rules.planning import (
    Decision,
    hold_reason,
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
from daemon.runtime.firing import Firing, PassApis, PassSettings, Report
from daemon.runtime.handstart import judge_hand_start
from daemon.runtime.holds import HoldBook
from daemon.runtime.idle_warnings import IdleWarnings, idle_lead
from daemon.runtime.inventory import Inventory
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.tracker import Tracker
from daemon.runtime.usage import defer_stops_in_use, idle_verdicts, recent_uses
from daemon.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


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
        self._firing = Firing(
            inventory, deferrals, executor, tracker, outcomes, settings,
            holds=holds, clock=clock, sleep=sleep,
        )  # fmt: skip

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
        """One firing of a schedule now, for its scheduled `fire_time` (firing.py)."""
        now, apis = self._begin()
        return await self._firing.fire(config, schedule, fire_time, apis, now, retry_until, dry_run)

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
        await self._firing.execute(apis, schedule, held + acting, now, False)

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
        results = await self._firing.execute(
            apis, schedule, decisions + verdicts.gave_up, now, False
        )
        self._deferrals.settle(verdicts, results)


def _names(config: Config) -> list[str]:
    return [p.name for p in config.projects]
