"""Upcoming firings for `graphnap plan`, on fixed datetimes: order, the window's edges, DST
in both directions and holidays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from daemon.config.models import Config
from daemon.rules.upcoming import upcoming_firings


def config(*schedules: dict[str, object], dates: list[str] | None = None) -> Config:
    return Config.model_validate(
        {
            "projects": [
                {"name": "p", "region": "cn-north-4", "project_id": "abc", "credentials": "p"}
            ],
            "calendars": {"days-off": {"dates": dates or []}},
            "schedules": [
                {"action": "stop", "timezone": "Europe/Berlin", "targets": {"projects": ["p"]}, **s}
                for s in schedules
            ],
        }
    )


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_firings_come_earliest_first_ties_by_name_within_start_exclusive_end_inclusive() -> None:
    cfg = config(
        {"name": "b", "cron": "0 * * * *", "timezone": "UTC"},
        {"name": "a", "cron": "0 */2 * * *", "timezone": "UTC"},
    )
    got = upcoming_firings(cfg, at(2026, 6, 1, 10), at(2026, 6, 1, 12))
    assert [(f.schedule.name, f.fire_time.astimezone(UTC).hour) for f in got] == [
        ("b", 11),
        ("a", 12),
        ("b", 12),
    ]


def test_local_time_follows_the_schedules_zone_across_spring_forward() -> None:
    cfg = config({"name": "night", "cron": "0 20 * * *"})
    got = upcoming_firings(cfg, at(2026, 3, 28, 0), at(2026, 3, 30, 0))
    assert [f.local_time.strftime("%d %H:%M %Z") for f in got] == ["28 20:00 CET", "29 20:00 CEST"]
    assert [f.fire_time.astimezone(UTC).hour for f in got] == [19, 18]


def test_an_hour_spring_forward_skips_fires_once_and_the_fall_back_repeat_once() -> None:
    cfg = config({"name": "night", "cron": "30 2 * * *"})
    spring = upcoming_firings(cfg, at(2026, 3, 28, 12), at(2026, 3, 29, 12))
    assert [f.fire_time.astimezone(UTC) for f in spring] == [at(2026, 3, 29, 1, 30)]
    autumn = upcoming_firings(cfg, at(2026, 10, 24, 12), at(2026, 10, 25, 12))
    assert len(autumn) == 1  # 02:30 comes twice that night; cron fires at the first


def test_a_holiday_skips_the_firing_on_the_schedules_local_date_with_its_reason() -> None:
    # 06:00 in Shanghai on 31 Dec is 22:00 UTC on 30 Dec: the schedule's own date counts
    cfg = config(
        {
            "name": "early",
            "cron": "0 6 * * *",
            "timezone": "Asia/Shanghai",
            "skip_on": ["days-off"],
        },
        {"name": "other", "cron": "0 6 * * *", "timezone": "Asia/Shanghai"},
        dates=["2026-12-31"],
    )
    got = upcoming_firings(cfg, at(2026, 12, 29, 12), at(2026, 12, 31, 12))
    skipped = {(f.schedule.name, f.fire_time.astimezone(UTC).day): f.skipped for f in got}
    assert skipped == {
        ("early", 29): None,
        ("early", 30): "holiday 2026-12-31 in calendar days-off (listed date)",
        ("other", 29): None,
        ("other", 30): None,
    }


def test_an_empty_window_has_no_firings() -> None:
    cfg = config({"name": "night", "cron": "0 20 * * *"})
    start = at(2026, 6, 1, 19, 1)
    assert upcoming_firings(cfg, start, start + timedelta(minutes=30)) == []
