"""The passes: each is inventory -> planning -> executor, with `now` read once at its start.

- the schedule firing, for a schedule at its scheduled fire time; a stop schedule with
  `defer_while_in_use` holds back graphs Cloud Eye shows in use;
- the deferral pass, which stops deferred graphs once quiet, or gives up at `max`;
- the idle pass, per idle rule: Cloud Eye data -> idle verdicts -> stops;
- the keep-stopped window pass, which re-stops graphs that came back inside a window;
- the inventory pass: graph gauges, savings, readiness, and the Task Center resume.

The rules are planning's and idle's; this module only sequences I/O around them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from daemon.cloud.errors import ApiError
from daemon.config.models import Config, IdleRule, Schedule
from daemon.domain.model import Clock, Graph, GraphApi, GraphStatus, MetricApi, Sleep
from daemon.domain.periods import choose_period
from daemon.rules.idle import (
    DEFAULT_LAG,
    IdleCriteria,
    Verdict,
    VerdictKind,
    fetch_range,
    fmt_duration,
    judge,
    recent_range,
    recent_use,
)
from daemon.rules.planning import (
    Decision,
    defer_in_use,
    holiday_reason,
    idle_candidates,
    is_active,
    is_managed,
    plan,
    plan_idle,
    selects,
    target_projects,
    window_end,
)
from daemon.runtime.executor import Executor, Result
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.tracker import Tracker
from daemon.telemetry.metrics import Metrics

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


@dataclass
class Deferral:
    """A stop a schedule holds back while the graph is in use."""

    schedule: str
    project: str
    graph_id: str
    graph_name: str
    since: datetime
    until: datetime  # then it gives up: "not stopped: still in use after ..."
    next_check: datetime


@dataclass(frozen=True)
class PassSettings:
    dry_run: bool
    job_timeout: timedelta  # a schedule's `timeout` wins


class Passes:
    def __init__(
        self,
        apis: Callable[[], Mapping[str, GraphApi]],
        metric_apis: Callable[[], Mapping[str, MetricApi]],
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
        self._metric_apis = metric_apis
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
        self.deferrals: dict[tuple[str, str, str], Deferral] = {}  # (schedule, project, graph)
        self._deferred_rules: set[str] = set()
        self.idle_verdicts: dict[str, dict[str, str]] = {}  # rule -> graph name -> reason

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
            and (until := window_end(schedule, now, config.calendars)) is not None
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
                # A graph whose stop is deferred because it is in use is the deferral's.
                acting = [
                    d
                    for d in decisions
                    if d.act and (schedule.name, d.project, d.graph_id) not in self.deferrals
                ]
                if schedule.defer_while_in_use is not None:
                    held: list[Decision] = []
                    for project in sorted({d.project for d in acting}):
                        mine_acting = [d for d in acting if d.project == project]
                        held += await self._hold_in_use(schedule, project, mine_acting, now, False)
                    acting = [d for d in held if d.act]
                await self._execute(schedule, acting, now, False)
            except Exception:  # one schedule's window must not stop the others
                log.exception("window pass crashed", extra={"rule": schedule.name})

    async def idle(self, config: Config, rule: IdleRule) -> None:
        """Judge the running graphs an idle rule selects from Cloud Eye, and stop the idle
        ones. It speaks when it acts; every verdict is counted and kept for /status."""
        now = self._clock()
        if rule.active_hours is not None and not is_active(rule.active_hours, now):
            log.debug("idle pass skipped: outside its active hours", extra={"rule": rule.name})
            self._metrics.idle_last_check.labels(rule.name).set(now.timestamp())  # it looked
            return
        criteria = idle_criteria(rule)
        view: dict[str, str] = {}

        async def one(project: str) -> list[Result]:
            inventory, failed = await self._inventory(config, [project], now)
            if failed:
                return []
            graphs = inventory[project]
            candidates = idle_candidates(rule, project, graphs)
            span = max(criteria.idle_for, criteria.min_uptime)
            period_s = (
                int(rule.period.total_seconds())
                if rule.period is not None
                else choose_period(span, len(candidates))
            )
            verdicts = await self._judge(rule, project, candidates, criteria, period_s, now)
            for graph in candidates:
                verdict = verdicts[(project, graph.id)]
                self._metrics.idle_verdicts.labels(rule.name, verdict.kind.value).inc()
                view[f"{project}/{graph.name}"] = verdict.reason
            in_flight = self._tracker.in_flight()
            decisions = plan_idle(
                rule, {project: graphs}, verdicts, now, config.opt_out_tags, in_flight
            )
            return await self._executor.execute(
                [d for d in decisions if d.act],
                self._apis(),
                now=now,
                dry_run=self._settings.dry_run or rule.dry_run,
                job_timeout=self._settings.job_timeout,
            )

        projects = target_projects(rule, [p.name for p in config.projects])
        answers = await _side_by_side(projects, one, "idle pass", rule.name)
        results = [r for answer in answers.values() if answer is not None for r in answer]
        self.idle_verdicts[rule.name] = view
        self._metrics.idle_last_check.labels(rule.name).set(now.timestamp())
        idle = sum(reason.startswith("idle") for reason in view.values())
        log.info(
            "idle pass: %d graphs judged, %d idle, %d stops requested",
            len(view),
            idle,
            sum(r.outcome == "requested" for r in results),
            extra={"rule": rule.name, "action": "stop"},
        )

    async def selected_now(
        self, config: Config, rule: IdleRule
    ) -> tuple[datetime, dict[str, list[Graph]], dict[str, str]]:
        """The graphs `rule` selects now, from a fresh inventory, by project; with the
        projects whose listing failed and why. For `graphnap backtest`."""
        now = self._clock()
        projects = target_projects(rule, [p.name for p in config.projects])
        inventory, failed = await self._inventory(config, projects, now)
        selected = {
            project: [
                g
                for g in graphs
                if selects(rule.targets, project, g)
                and not (rule.exclude is not None and selects(rule.exclude, project, g))
            ]
            for project, graphs in inventory.items()
        }
        return now, selected, {p: f"inventory failed: {self.projects[p].error}" for p in failed}

    def metric_apis(self) -> Mapping[str, MetricApi]:
        return self._metric_apis()

    async def _judge(
        self,
        rule: IdleRule,
        project: str,
        candidates: Sequence[Graph],
        criteria: IdleCriteria,
        period_s: int,
        now: datetime,
    ) -> dict[tuple[str, str], Verdict]:
        if not candidates:
            return {}
        start, end = fetch_range(now, criteria, period_s)
        try:
            points = await self._metric_apis()[project].request_counts(
                [g.id for g in candidates],
                metric=criteria.metric,
                aggregation=criteria.aggregation,
                start=start,
                end=end,
                period_s=period_s,
            )
        except ApiError as exc:  # missing data is never idle
            log.error(
                "Cloud Eye did not answer; no graph of this project is judged idle this pass: %s",
                exc,
                extra={"project": project, "rule": rule.name},
            )
            silent = Verdict(
                VerdictKind.NOT_JUDGED, f"not judged: Cloud Eye did not answer ({exc.code})"
            )
            return {(project, g.id): silent for g in candidates}
        return {
            (project, g.id): judge(
                g, points.get(g.id, []), now=now, criteria=criteria, period_s=period_s
            )
            for g in candidates
        }

    async def _recent_use(
        self, project: str, graph_ids: Sequence[str], schedule: Schedule, now: datetime
    ) -> dict[str, Verdict] | None:
        """Each graph's use over the schedule's `within`, or None when Cloud Eye cannot say."""
        defer = schedule.defer_while_in_use
        assert defer is not None
        period_s = choose_period(defer.within + DEFAULT_LAG, len(graph_ids))
        start, end = recent_range(now, defer.within, period_s)
        try:
            points = await self._metric_apis()[project].request_counts(
                list(graph_ids), start=start, end=end, period_s=period_s
            )
        except ApiError as exc:
            log.warning(
                "Cloud Eye did not answer; cannot tell whether graphs are in use: %s",
                exc,
                extra={"project": project, "rule": schedule.name},
            )
            return None
        return {
            gid: recent_use(
                points.get(gid, []),
                now=now,
                within=defer.within,
                period_s=period_s,
                threshold=defer.threshold,
            )
            for gid in graph_ids
        }

    async def _hold_in_use(
        self,
        schedule: Schedule,
        project: str,
        decisions: list[Decision],
        now: datetime,
        dry_run: bool,
    ) -> list[Decision]:
        """Hold back the stops of graphs in use, to be stopped once quiet. When Cloud Eye
        cannot say, the stops go ahead: the schedule is the owner's wish, and deferral
        the exception that needs evidence of use. A dry run says so and remembers nothing."""
        defer = schedule.defer_while_in_use
        assert defer is not None
        acting = [d.graph_id for d in decisions if d.act]
        use = await self._recent_use(project, acting, schedule, now) if acting else None
        if not use:
            return decisions
        until = now + defer.max
        kept, deferred = defer_in_use(decisions, {(project, g): v for g, v in use.items()}, until)
        if dry_run or schedule.dry_run or self._settings.dry_run:
            return kept
        for d in deferred:
            key = (schedule.name, project, d.graph_id)
            if key in self.deferrals:  # deferred already: its time keeps running
                continue
            self.deferrals[key] = Deferral(
                schedule.name,
                project,
                d.graph_id,
                d.graph_name,
                now,
                until,
                now + defer.check_every,
            )
            self._metrics.deferrals.labels(schedule.name, "deferred").inc()
        self._count_deferred()
        return kept

    async def deferred(self, config: Config) -> None:
        """Check the deferred stops that are due: stop the graphs now quiet, give up on
        those still in use at `max`, drop those no longer running."""
        now = self._clock()
        due: dict[tuple[str, str], list[Deferral]] = {}
        for item in self.deferrals.values():
            if item.next_check <= now:
                due.setdefault((item.schedule, item.project), []).append(item)
        for (name, project), items in due.items():
            try:
                await self._check_deferred(config, name, project, items, now)
            except Exception:  # one schedule's deferrals must not stop the others
                log.exception("deferral pass crashed", extra={"rule": name, "project": project})
        self._count_deferred()

    async def _check_deferred(
        self, config: Config, name: str, project: str, items: list[Deferral], now: datetime
    ) -> None:
        schedule = next((s for s in config.schedules if s.name == name), None)
        if schedule is None or schedule.defer_while_in_use is None:
            for item in items:
                self._end_deferral(item, "dropped", "the schedule no longer defers (reload)")
            return
        if project not in self._apis():
            for item in items:
                self._end_deferral(item, "dropped", "the project left the config (reload)")
            return
        defer = schedule.defer_while_in_use
        inventory, failed = await self._inventory(config, [project], now)
        by_id = {g.id: g for g in inventory.get(project, [])}
        waiting = []
        for item in items:
            graph = by_id.get(item.graph_id)
            if failed:
                waiting.append(item)  # unknown: judged below, by time alone
            elif graph is None or graph.status != GraphStatus.RUNNING:
                where = "gone" if graph is None else f"status {graph.status}"
                self._end_deferral(item, "dropped", f"no longer running ({where})")
            elif not any(
                d.graph_id == item.graph_id
                for d in plan(schedule, {project: [graph]}, now, config.opt_out_tags)
            ):
                self._end_deferral(item, "dropped", "no longer selected by the schedule")
            else:
                waiting.append(item)
        use = None
        if waiting and not failed:
            use = await self._recent_use(project, [i.graph_id for i in waiting], schedule, now)
        quiet: dict[str, Deferral] = {}
        gave_up: list[Decision] = []
        for item in waiting:
            verdict = use[item.graph_id] if use is not None else None
            if verdict is not None and not verdict.is_in_use:
                quiet[item.graph_id] = item
            elif now >= item.until:  # in use at the last look that could tell: never stopped
                seen = verdict.reason if verdict is not None else "Cloud Eye or GES did not answer"
                reason = f"not stopped: still in use after {fmt_duration(defer.max)} ({seen})"
                gave_up.append(
                    Decision(project, item.graph_id, item.graph_name, name, "stop", False, reason)
                )
                self._end_deferral(item, "gave_up", reason)
            else:
                item.next_check = now + defer.check_every
        graphs = [by_id[g] for g in quiet]
        in_flight = self._tracker.in_flight()
        decisions = plan(schedule, {project: graphs}, now, config.opt_out_tags, in_flight)
        for i, d in enumerate(decisions):
            item = quiet[d.graph_id]
            if d.act:
                since = fmt_duration(now - item.since)
                said = use[d.graph_id].reason if use is not None else ""
                reason = f"quiet now ({said}) after {since} deferred"
                decisions[i] = Decision(
                    d.project, d.graph_id, d.graph_name, d.rule, d.action, True, reason
                )
            else:
                self._end_deferral(item, "dropped", d.reason)
        results = await self._execute(schedule, decisions + gave_up, now, False)
        for result in results:
            ended = quiet.get(result.decision.graph_id)
            if ended is not None and result.decision.act:
                outcome = (
                    "stopped" if result.outcome in ("requested", "already_done") else "dropped"
                )
                self._end_deferral(ended, outcome, result.reason)

    def _end_deferral(self, item: Deferral, outcome: str, why: str) -> None:
        if self.deferrals.pop((item.schedule, item.project, item.graph_id), None) is None:
            return  # ended already
        self._metrics.deferrals.labels(item.schedule, outcome).inc()
        if outcome == "dropped":
            log.info(
                "deferred stop dropped: %s",
                why,
                extra={"rule": item.schedule, "project": item.project, "graph": item.graph_name},
            )

    def _count_deferred(self) -> None:
        counts: dict[str, int] = {}
        for item in self.deferrals.values():
            counts[item.schedule] = counts.get(item.schedule, 0) + 1
        for rule in set(counts) | self._deferred_rules:
            self._metrics.deferred.labels(rule).set(counts.get(rule, 0))
        self._deferred_rules |= set(counts)

    def forget_resumed(self) -> None:
        """The tracker stopped following (the active group stopped): the next inventory
        pass finds the jobs still in flight in the Task Center again."""
        self._resumed.clear()

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
            if schedule.defer_while_in_use is not None:
                decisions = await self._hold_in_use(schedule, project, decisions, now, dry_run)
            return await self._execute(schedule, decisions, now, dry_run)

        answers = await _side_by_side(projects, one, "firing", schedule.name)
        results = [r for answer in answers.values() if answer is not None for r in answer]
        return results, [project for project, answer in answers.items() if answer is None]

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
                project, self._priced(config, project, answer), now, config.pricing.currency
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


def idle_criteria(rule: IdleRule) -> IdleCriteria:
    return IdleCriteria(
        idle_for=rule.idle_for,
        threshold=rule.threshold,
        min_uptime=rule.min_uptime,
        lag=rule.lag,
        metric=rule.metric,
        aggregation=rule.aggregation,
    )


T = TypeVar("T")


async def _side_by_side(
    projects: Sequence[str],
    work: Callable[[str], Awaitable[T]],
    what: str,
    rule: str,
) -> dict[str, T | None]:
    """Run `work` for each project concurrently; a project whose work crashes is logged and
    answers None: it costs that project only."""
    answers = await asyncio.gather(*(work(p) for p in projects), return_exceptions=True)
    out: dict[str, T | None] = {}
    for project, answer in zip(projects, answers, strict=True):
        if isinstance(answer, BaseException):
            if not isinstance(answer, Exception):
                raise answer  # cancelled: not a project's failure
            log.error(
                "%s crashed for this project; the others went on",
                what,
                exc_info=answer,
                extra={"rule": rule, "project": project},
            )
            out[project] = None
        else:
            out[project] = answer
    return out
