"""The start-up catch-up's reckoning: the firing missed while down that runs late within its
grace, and the firings lost beyond it, known only when the last one is."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from daemon.runtime.catchup import missed_firings
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
