"""Upcoming firings, for `graphnap plan`: every fire time of every schedule in a window,
and the holiday that skips one. Pure: the window is an argument."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from daemon.config.models import Config, Schedule
from daemon.domain.cron import cron_trigger, fire_times
from daemon.rules.planning import holiday_reason


@dataclass(frozen=True)
class PlannedFiring:
    schedule: Schedule
    fire_time: datetime  # aware
    skipped: str | None  # the holiday that skips it, or None: it acts

    @property
    def local_time(self) -> datetime:
        """The fire time on the schedule's own clock (its time zone, DST included)."""
        return self.fire_time.astimezone(ZoneInfo(self.schedule.timezone))


def upcoming_firings(config: Config, start: datetime, end: datetime) -> list[PlannedFiring]:
    """Every firing of the config's schedules in (start, end], earliest first (ties by
    schedule name), each with the holiday that skips it."""
    firings = [
        PlannedFiring(schedule, fire, holiday_reason(schedule, config.calendars, fire))
        for schedule in config.schedules
        for fire in fire_times(cron_trigger(schedule.cron, schedule.timezone), start, end)
    ]
    return sorted(firings, key=lambda f: (f.fire_time, f.schedule.name))
