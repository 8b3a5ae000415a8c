"""Crontab expressions as graphnap reads them: translation to APScheduler, and next and
previous fire times with DST handled like cron (a wall-clock time that DST fall-back
repeats fires once). Pure: every function takes the time it reasons about.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_CRON_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * sun",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday_names(part: str) -> list[str]:
    """One comma part of a crontab day-of-week field (0 or 7 = Sunday) as APScheduler names."""
    match = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
    if not match:
        if re.fullmatch(r"[a-zA-Z]{3}(-[a-zA-Z]{3})?", part):
            return [part.lower()]
        raise ValueError(f"day-of-week {part!r} mixes names and numbers; use one or the other")
    span, step = match.group(1), int(match.group(2) or 1)
    if span == "*":
        first, last = 0, 6
    else:
        bounds = [int(x) for x in span.split("-")]
        first, last = bounds[0], bounds[-1]
    if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last and step > 0):
        raise ValueError(f"day-of-week {part!r} is out of range; use 0-7 (0 and 7 are Sunday)")
    return [_WEEKDAYS[day % 7] for day in range(first, last + 1, step)]


def to_apscheduler_crontab(expr: str) -> str:
    """Standard crontab semantics -> APScheduler 3 semantics.

    APScheduler numbers weekdays from Monday = 0, so a plain `1-5` would mean Tue-Sat there;
    numeric weekdays are rewritten as names. Cron ORs a restricted day-of-month with a
    restricted day-of-week while APScheduler ANDs them; that case is refused, not guessed.
    """
    text = _CRON_MACROS.get(expr.strip().lower(), expr.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expr!r} has {len(fields)} fields; a cron expression has 5: "
            "minute hour day-of-month month day-of-week (e.g. '0 20 * * mon-fri')"
        )
    minute, hour, day, month, dow = fields
    if day != "*" and dow != "*":
        raise ValueError(
            f"{expr!r} restricts both day-of-month and day-of-week, which cron treats as "
            "'either' and APScheduler as 'both'; split it into two schedules"
        )
    if dow != "*":
        names: list[str] = []
        for part in dow.split(","):
            names.extend(n for n in _weekday_names(part) if n not in names)
        dow = ",".join(names)
    return f"{minute} {hour} {day} {month} {dow}"


@lru_cache(maxsize=4096)
def cron_trigger(expr: str, timezone: str) -> CronTrigger:
    """The APScheduler trigger for a validated crontab expression in a time zone. Built
    once per (expression, zone): a trigger holds no state of a job's, and the config's
    validation, the scheduler and the window pass all ask for the same ones."""
    return CronTrigger.from_crontab(to_apscheduler_crontab(expr), timezone=ZoneInfo(timezone))


_LOOKBACKS = (
    timedelta(minutes=2),
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=8),
    timedelta(days=32),
    timedelta(days=370),
)


def next_fire(trigger: CronTrigger, after: datetime) -> datetime | None:
    """The first fire time strictly after `after`, skipping the repeat of a wall-clock
    time that a DST fall-back makes happen twice (cron runs it once).

    The step is taken in UTC: adding to a folded local time (02:30, fold=1) would land on
    the same instant again and APScheduler would hand back that same fire time.
    """
    start = after.astimezone(UTC) + timedelta(microseconds=1)
    fire: datetime | None = trigger.get_next_fire_time(None, start)
    if fire is not None and is_dst_repeat(after, fire):
        fire = trigger.get_next_fire_time(None, fire.astimezone(UTC) + timedelta(microseconds=1))
    return fire


def is_dst_repeat(previous: datetime | None, fire: datetime) -> bool:
    """True when `fire` shows the same local wall-clock time as `previous` within a few
    hours: the second pass through an hour that DST fall-back repeats."""
    if previous is None or fire.tzinfo is None:
        return False
    local_previous = previous.astimezone(fire.tzinfo)
    return (
        local_previous.replace(tzinfo=None, fold=0) == fire.replace(tzinfo=None, fold=0)
        # in UTC: with one shared tzinfo, Python subtracts wall-clock times
        and timedelta(0) < fire.astimezone(UTC) - previous.astimezone(UTC) <= timedelta(hours=3)
    )


def previous_fire(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The last fire time at or before `now` (within a year), found without a reverse API:
    widen the look-back until a firing lies inside it, then walk forward."""
    for lookback in _LOOKBACKS:
        fire: datetime | None = trigger.get_next_fire_time(None, now - lookback)
        if fire is not None and fire <= now:
            while (later := next_fire(trigger, fire)) is not None and later <= now:
                fire = later
            return fire
    return None


def fire_times(trigger: CronTrigger, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every fire time of a trigger in (start, end]."""
    fire = next_fire(trigger, start)
    while fire is not None and fire <= end:
        yield fire
        fire = next_fire(trigger, fire)
