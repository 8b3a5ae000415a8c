"""Turns the config's schedules into APScheduler cron jobs, and swaps them on reload.

Misfire policy, explicitly: firings coalesce; one firing of a schedule runs at a time; a
firing that comes late (the loop was busy, the host slept) still runs within the
schedule's misfire_grace and is counted as a misfire beyond it. It knows nothing of GES.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from daemon.config import Config, Schedule
from daemon.cron import cron_trigger, next_fire, previous_fire
from daemon.metrics import Metrics

log = logging.getLogger(__name__)

Fire = Callable[[str], Awaitable[None]]
_PERIODIC_PREFIX = "__"


class Scheduler:
    def __init__(self, fire: Fire, metrics: Metrics, *, default_grace: timedelta) -> None:
        self._fire = fire
        self._metrics = metrics
        self._default_grace = default_grace
        self._aps = AsyncIOScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1}
        )
        self._aps.add_listener(self._on_missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    def start(self) -> None:
        self._aps.start()

    def shutdown(self) -> None:
        """No new firings from now on; running ones are the caller's to wait for."""
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def apply(self, config: Config) -> None:
        """Make the cron jobs match the config: add, replace, remove. A firing that is
        running keeps the config it started with."""
        wanted = {s.name for s in config.schedules}
        for job in self._aps.get_jobs():
            if not job.id.startswith(_PERIODIC_PREFIX) and job.id not in wanted:
                job.remove()
                log.info("schedule removed", extra={"rule": job.id})
        for schedule in config.schedules:
            grace = schedule.misfire_grace or self._default_grace
            self._aps.add_job(
                self._fire,
                cron_trigger(schedule.cron, schedule.timezone),
                args=[schedule.name],
                id=schedule.name,
                name=schedule.name,
                replace_existing=True,
                misfire_grace_time=max(int(grace.total_seconds()), 1),
            )
        self.publish_next_fire_times()

    def every(self, name: str, interval_s: float, func: Callable[[], Awaitable[None]]) -> None:
        """A periodic housekeeping job (inventory, window pass) on the same scheduler."""
        self._aps.add_job(
            func,
            IntervalTrigger(seconds=interval_s),
            id=f"{_PERIODIC_PREFIX}{name}",
            name=name,
            replace_existing=True,
            misfire_grace_time=max(int(interval_s), 1),
        )

    def next_fire_times(self) -> dict[str, datetime | None]:
        return {
            job.id: getattr(job, "next_run_time", None)  # unset until the scheduler runs
            for job in self._aps.get_jobs()
            if not job.id.startswith(_PERIODIC_PREFIX)
        }

    def publish_next_fire_times(self) -> None:
        self._metrics.set_next_fire_times(self.next_fire_times())

    def _on_missed(self, event: JobExecutionEvent | JobSubmissionEvent) -> None:
        if event.job_id.startswith(_PERIODIC_PREFIX):
            return
        why = (
            "another firing still running" if event.code == EVENT_JOB_MAX_INSTANCES else "too late"
        )
        self._metrics.misfires.labels(event.job_id).inc()
        log.warning("firing missed (%s)", why, extra={"rule": event.job_id, "reason": why})


def missed_firings(
    schedule: Schedule,
    last_fired: datetime | None,
    now: datetime,
    grace: timedelta,
    limit: int = 1000,
) -> tuple[datetime | None, list[datetime]]:
    """At start-up: (the firing to run late, the firings lost) since `last_fired`.

    The latest scheduled firing runs late if it is at most `grace` old. Without a record of
    the last firing (no state file) nothing can be called lost: graphnap may simply not
    have been deployed then.
    """
    trigger = cron_trigger(schedule.cron, schedule.timezone)
    latest = previous_fire(trigger, now)
    if latest is None or (last_fired is not None and latest <= last_fired):
        return None, []
    run = latest if now - latest <= grace else None
    lost: list[datetime] = []
    if last_fired is not None:
        fire = next_fire(trigger, last_fired)
        while fire is not None and fire < latest and len(lost) < limit:
            lost.append(fire)
            fire = next_fire(trigger, fire)
        if run is None:
            lost.append(latest)
    return run, lost
