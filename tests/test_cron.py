"""Cron is pure: crontab semantics, next and previous fire times, DST, on fixed datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.domain.cron import cron_trigger, fire_times, is_dst_repeat, next_fire, previous_fire

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("cron", "tz", "start", "expected_utc"),
    [
        # 20:00 in Shanghai (UTC+8, no DST) is 12:00 UTC
        (
            "0 20 * * mon-fri",
            "Asia/Shanghai",
            datetime(2026, 11, 27, 0, 0, tzinfo=UTC),
            ["2026-11-27T12:00", "2026-11-30T12:00"],
        ),
        # numeric weekdays are crontab's: 1-5 is Monday to Friday, never Saturday
        (
            "0 20 * * 1-5",
            "Asia/Shanghai",
            datetime(2026, 11, 27, 0, 0, tzinfo=UTC),
            ["2026-11-27T12:00", "2026-11-30T12:00"],
        ),
        # Berlin spring forward (2026-03-29): 20:00 CEST is 18:00 UTC; the day before 19:00 UTC
        (
            "0 20 * * *",
            "Europe/Berlin",
            datetime(2026, 3, 28, 0, 0, tzinfo=UTC),
            ["2026-03-28T19:00", "2026-03-29T18:00"],
        ),
        # 02:30 does not exist on the spring-forward day in Berlin: that day it fires at 03:30 CEST (01:30 UTC)
        (
            "30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 3, 28, 12, 0, tzinfo=UTC),
            ["2026-03-29T01:30", "2026-03-30T00:30"],
        ),
        # fall back (2026-10-25): 02:30 happens twice; it fires once, like cron
        (
            "30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 10, 24, 12, 0, tzinfo=UTC),
            ["2026-10-25T00:30", "2026-10-26T01:30"],
        ),
        # US DST end (2026-11-01): 08:00 New York is 12:00 UTC before, 13:00 UTC after
        (
            "0 8 * * *",
            "America/New_York",
            datetime(2026, 10, 31, 0, 0, tzinfo=UTC),
            ["2026-10-31T12:00", "2026-11-01T13:00"],
        ),
    ],
)
def test_fire_times_in_time_zones_and_across_dst(
    cron: str, tz: str, start: datetime, expected_utc: list[str]
) -> None:
    fires = list(fire_times(cron_trigger(cron, tz), start, start + timedelta(days=4)))[:2]
    assert [f.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") for f in fires] == expected_utc


def test_previous_fire_finds_the_last_firing_at_or_before_now() -> None:
    trigger = cron_trigger("0 20 * * mon-fri", "Asia/Shanghai")
    monday_noon = datetime(2026, 11, 30, 12, 0, tzinfo=SHANGHAI)
    assert previous_fire(trigger, monday_noon) == datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    assert previous_fire(
        cron_trigger("*/2 * * * *", "UTC"), datetime(2026, 1, 1, 0, 3, 59, tzinfo=UTC)
    ) == datetime(2026, 1, 1, 0, 2, tzinfo=UTC)


def test_the_hour_dst_fall_back_repeats_is_a_repeat_and_fires_once() -> None:
    trigger = cron_trigger("30 2 * * *", "Europe/Berlin")
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC).astimezone(BERLIN)  # 02:30 CET
    assert is_dst_repeat(first, second)
    assert not is_dst_repeat(first - timedelta(days=1), first.astimezone(BERLIN))
    assert next_fire(trigger, first) == datetime(2026, 10, 26, 2, 30, tzinfo=BERLIN)


def test_numeric_weekdays_follow_crontab_not_apscheduler() -> None:
    # 2026-11-27 is a Friday: crontab 1-5 is Monday-Friday, so the next firing after Friday
    # 21:00 is Monday 20:00 (APScheduler's own numbering would pick Saturday).
    tz = ZoneInfo("Asia/Shanghai")
    trigger = cron_trigger("0 20 * * 1-5", "Asia/Shanghai")
    after = datetime(2026, 11, 27, 21, 0, tzinfo=tz)
    assert trigger.get_next_fire_time(None, after) == datetime(2026, 11, 30, 20, 0, tzinfo=tz)
    sunday = cron_trigger("0 9 * * 0", "UTC").get_next_fire_time(
        None, datetime(2026, 11, 27, tzinfo=ZoneInfo("UTC"))
    )
    assert sunday.weekday() == 6
    assert cron_trigger("0 9 * * 7", "UTC").get_next_fire_time(None, after).weekday() == 6
