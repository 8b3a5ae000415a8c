"""The warning before a stop: at its fire time minus the schedule's `notify.before`, the
firing's own planning, run dry, says which graphs it would stop, and the notifier tells each
route once, with a postpone link per graph. The dry run leaves no trace of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from daemon.config.models import Config, Schedule
from daemon.domain.cron import cron_trigger, next_fire
from daemon.domain.model import Action, Clock
from daemon.notify.message import WarnedGraph
from daemon.rules.planning import Decision
from daemon.runtime.firing import Report
from daemon.runtime.outcomes import Outcome, Outcomes

log = logging.getLogger(__name__)
TICK = timedelta(microseconds=1)

Preview = Callable[[Config, Schedule, datetime], Awaitable[Report]]
"""The firing in dry run for its fire time: Passes.fire(config, schedule, fire_at, dry_run=True)
of a Passes whose executor records into PreviewOutcomes."""
# (config, schedule, the fire time of the stop it warns of)
Warn = Callable[[Config, Schedule, datetime], Awaitable[object]]
WARNING_JOB = "warn:"  # the job id prefix of the warnings on the scheduler's APScheduler
LinkFor = Callable[[str, str, str, str, datetime], str]
"""(project, graph id, graph name, rule, fire time) -> the graph's postpone URL."""


class Warner(Protocol):
    """What the pass needs of daemon.notify.notifier.Notifier."""

    def warn(
        self, rule: str, action: str, fire_at: datetime, graphs: Sequence[WarnedGraph]
    ) -> None: ...


class PreviewOutcomes(Outcomes):
    """Where a warning's dry run records: nowhere. Its "would stop" is not an outcome: it
    must not be counted in graphnap_actions_total, shown on /status or summarised; the
    firing itself records what happens."""

    def record(self, outcome: Outcome) -> None:
        return None

    def inventory_failed(self, project: str, action: Action) -> None:
        return None  # the firing counts its own inventory failures


class Warnings:
    def __init__(self, preview: Preview, notifier: Warner, *, link_for: LinkFor | None) -> None:
        self._preview = preview
        self._notifier = notifier
        self._link_for = link_for

    async def warn(self, config: Config, schedule: Schedule, fire_at: datetime) -> int:
        """Warn of the firing of `schedule` at `fire_at`; the number of graphs warned of.
        Never raises: a warning that cannot be made costs a log line, never the firing."""
        try:
            report = await self._preview(config, schedule, fire_at)
        except Exception:
            log.exception("warning not made: its dry run failed", extra={"rule": schedule.name})
            return 0
        if report.skipped_reason:
            log.info(
                "no warning: the firing at %s will not act (%s)",
                fire_at.isoformat(),
                report.skipped_reason,
                extra={"rule": schedule.name, "reason": report.skipped_reason},
            )
            return 0
        graphs = [
            WarnedGraph(
                r.decision.project,
                r.decision.graph_id,
                r.decision.graph_name,
                self._link(r.decision, schedule.name, fire_at),
            )
            for r in report.results
            if r.outcome == "dry_run" and r.decision.act
        ]
        if report.failed_projects:
            log.warning(
                "warning without the graphs of %s: their inventory failed",
                ", ".join(report.failed_projects),
                extra={"rule": schedule.name},
            )
        if graphs:
            self._notifier.warn(schedule.name, schedule.action, fire_at, graphs)
        log.info(
            "warning: %d graphs would %s at %s",
            len(graphs),
            schedule.action,
            fire_at.isoformat(),
            extra={"rule": schedule.name, "action": schedule.action},
        )
        return len(graphs)

    def _link(self, d: Decision, rule: str, fire_at: datetime) -> str:
        if self._link_for is None:
            return ""
        try:
            return self._link_for(d.project, d.graph_id, d.graph_name, rule, fire_at)
        except Exception:  # a warning without a link still tells people what is coming
            log.exception("postpone link not made", extra={"rule": rule, "project": d.project})
            return ""


# --- when: the warning times, beside the firing's ----------------------------------------


def lead_of(schedule: Schedule) -> timedelta | None:
    """How long before its stops a schedule warns (None: it does not)."""
    if schedule.action != "stop" or schedule.notify is None:
        return None
    return schedule.notify.before


class Ahead(BaseTrigger):  # type: ignore[misc]  # APScheduler ships no type hints
    """A cron trigger's fire times moved `lead` earlier (in UTC, so a DST change between
    the warning and the stop moves neither)."""

    def __init__(self, trigger: CronTrigger, lead: timedelta) -> None:
        self._trigger = trigger
        self._lead = lead

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        start = now.astimezone(UTC)
        if previous_fire_time is not None:  # as CronTrigger does: what came due since
            start = min(start, previous_fire_time.astimezone(UTC) + TICK)
        fire: datetime | None = self._trigger.get_next_fire_time(None, start + self._lead)
        return None if fire is None else fire.astimezone(UTC) - self._lead


def warning_times(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next `count` warning times of a schedule after `after` (for plan and tests)."""
    lead = lead_of(schedule)
    if lead is None:
        return []
    trigger = Ahead(cron_trigger(schedule.cron, schedule.timezone), lead)
    times: list[datetime] = []
    at = after
    while len(times) < count and (fire := trigger.get_next_fire_time(None, at + TICK)):
        times.append(fire)
        at = fire
    return times


class WarningJobs:
    """A stop schedule with `notify.before` gets a warning job beside its firing, at fire
    time minus the lead. A warning runs once per fire time and only while its stop is ahead:
    one that comes late (a start-up, a reload, a busy loop) is still sent before the stop,
    one whose stop has come is not."""

    def __init__(
        self,
        aps: AsyncIOScheduler,
        job: Callable[[], Awaitable[None]],
        warning: Warn | None,
        *,
        clock: Clock,
        spawn: Callable[[Awaitable[None]], object],
    ) -> None:
        self._aps = aps
        self._job = job  # APScheduler's job: nothing, the scheduler's submission event acts
        self._warning = warning
        self._clock = clock
        self._spawn = spawn  # a pass of the scheduler's: cancelled at stop, not waited for
        self._config: Config | None = None
        self._warned: dict[str, datetime] = {}  # the fire time each schedule was last warned of
        self._leads: dict[str, tuple[str, str, timedelta]] = {}  # what each warning job is from

    def due(self, name: str, scheduled: datetime) -> None:
        """Warning job `name` came due for its `scheduled` run time."""
        lead = self._leads.get(name)
        if lead is not None:
            trigger = cron_trigger(lead[0], lead[1])
            fire_at = next_fire(trigger, scheduled + lead[2] - TICK)
            if fire_at is not None:
                self._spawn(self.warn(name, fire_at))

    async def warn(self, name: str, fire_at: datetime) -> None:
        """Warn of schedule `name`'s stop at `fire_at`: once per fire time, and only while
        the stop is still ahead. The daemon survives any failure inside it."""
        config = self._config
        schedule = next((s for s in config.schedules if s.name == name), None) if config else None
        if self._warning is None or config is None or schedule is None or lead_of(schedule) is None:
            return
        if self._clock() >= fire_at:
            log.info(
                "warning of the stop at %s not sent: that stop has come",
                fire_at.isoformat(),
                extra={"rule": name},
            )
            return
        if self._warned.get(name) == fire_at:
            return
        self._warned[name] = fire_at
        try:
            await self._warning(config, schedule, fire_at)
        except Exception:
            log.exception("warning crashed", extra={"rule": name})

    def apply(self, config: Config) -> None:
        """One warning job per stop schedule with a lead, in step with the config."""
        self._config = config
        wanted = {
            s.name: (s.cron, s.timezone, lead)
            for s in config.schedules
            if (lead := lead_of(s)) is not None and self._warning is not None
        }
        for name in set(self._leads) - set(wanted):
            del self._leads[name]
            if self._aps.get_job(WARNING_JOB + name) is not None:
                self._aps.remove_job(WARNING_JOB + name)
        added = []
        for name, made_of in wanted.items():
            if self._leads.get(name) == made_of:
                continue
            self._leads[name] = made_of
            added.append(name)
            cron, timezone, ahead = made_of
            self._aps.add_job(
                self._job,
                Ahead(cron_trigger(cron, timezone), ahead),
                id=WARNING_JOB + name,
                name=f"warning {name}",
                replace_existing=True,
                misfire_grace_time=None,  # judged in warn(): sent while the stop is ahead
            )
        if self._aps.running and added:  # a reload: the stop just ahead may be inside its lead
            self.catch_up(self._clock(), only=added)

    def catch_up(self, now: datetime, only: list[str] | None = None) -> None:
        """The warnings whose time came while graphnap was not watching (down, or the lead
        given by a reload) and whose stop is still ahead: sent now, late but in time."""
        for name, (cron, timezone, lead) in self._leads.items():
            if only is not None and name not in only:
                continue
            fire_at = next_fire(cron_trigger(cron, timezone), now)
            if fire_at is not None and fire_at - lead <= now:
                self._spawn(self.warn(name, fire_at))
