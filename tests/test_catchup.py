"""The start-up catch-up's reckoning: the firing missed while down that runs late within its
grace, and the firings lost beyond it, known only when the last one is; the last fire times
the Store kept, read back."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.runtime.catchup import missed_firings, parse_last_fires
from tests.test_scheduler import schedule

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_the_latest_missed_firing_runs_within_its_grace_and_unknown_ones_are_not_counted() -> None:
    rule = schedule()
    late = datetime(2026, 11, 27, 20, 40, tzinfo=SHANGHAI)
    friday = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    assert missed_firings(rule, None, late, timedelta(hours=1)) == (friday, [])
    # beyond the grace, and without a record of the last firing: not run, not counted
    assert missed_firings(rule, None, late, timedelta(minutes=30)) == (None, [])
    assert missed_firings(rule, friday, late, timedelta(hours=1)) == (None, [])  # it did run


def test_firings_lost_while_down_are_listed_when_the_last_one_is_known() -> None:
    rule = schedule()  # 20:00 Mon-Fri
    last = datetime(2026, 11, 24, 20, 0, tzinfo=SHANGHAI)  # Tuesday
    friday_late = datetime(2026, 11, 27, 20, 10, tzinfo=SHANGHAI)
    run, lost = missed_firings(rule, last, friday_late, timedelta(hours=1))
    assert run == datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    assert [d.day for d in lost] == [25, 26]  # Wednesday and Thursday
    run, lost = missed_firings(rule, last, friday_late + timedelta(hours=2), timedelta(hours=1))
    assert run is None
    assert [d.day for d in lost] == [25, 26, 27]


def test_stored_last_fire_times_are_read_and_unreadable_ones_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    stored = {
        "night-stop": "2026-11-27T20:00:00+08:00",
        "naive": "2026-11-27T20:00:00",  # no offset: which 20:00?
        "garbled": "friday",
    }
    assert parse_last_fires(stored) == {
        "night-stop": datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    }
    assert "stored last fire time of naive is unreadable" in caplog.text
    assert "stored last fire time of garbled is unreadable" in caplog.text
    assert parse_last_fires(["not", "an", "object"]) == {}
    assert "stored last fire times are not an object" in caplog.text
