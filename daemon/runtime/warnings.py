"""The warning before a stop: at its fire time minus the schedule's `notify.before`, the
firing's own planning, run dry, says which graphs it would stop, and the notifier tells each
route once, with a postpone link per graph. The dry run leaves no trace of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from daemon.config.models import Config, Schedule
from daemon.domain.cron import cron_trigger
from daemon.domain.model import Action
from daemon.notify.message import WarnedGraph
from daemon.rules.planning import Decision
from daemon.runtime.outcomes import Outcome, Outcomes
from daemon.runtime.passes import Report

log = logging.getLogger(__name__)
TICK = timedelta(microseconds=1)

Preview = Callable[[Config, Schedule, datetime], Awaitable[Report]]
"""The firing in dry run for its fire time: Passes.fire(config, schedule, fire_at, dry_run=True)
of a Passes whose executor records into PreviewOutcomes."""
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
