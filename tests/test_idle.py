"""Idle verdicts are pure: fixed datetimes and datapoints in, a verdict with a reason out;
the backtest replay is checked against hand-computed stops and hours."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from daemon.domain.model import Datapoint, Graph
from daemon.rules.idle import (
    IdleCriteria,
    Replay,
    VerdictKind,
    fetch_range,
    fmt_duration,
    judge,
    judged_window,
    recent_range,
    recent_use,
    replay,
)

NOW = datetime(2026, 11, 27, 12, 3, tzinfo=UTC)
# period 300 and lag 10 min: the judged window is [09:50, 11:50)
RULE = IdleCriteria(idle_for=timedelta(hours=2))
P5 = 300


def at(hh: int, mm: int = 0, day: int = 27) -> datetime:
    return datetime(2026, 11, day, hh, mm, tzinfo=UTC)


def series(
    start: datetime,
    end: datetime,
    value: float | Callable[[datetime], float] = 0,
    period_s: int = P5,
) -> list[Datapoint]:
    out, when = [], start
    while when < end:
        out.append(Datapoint(when, value(when) if callable(value) else value))
        when += timedelta(seconds=period_s)
    return out


UP_SINCE = at(6)


def running(updated: datetime | None = UP_SINCE, status: int = 200) -> Graph:
    return Graph(id="g1", name="dev-recsys", status=status, updated=updated)


def test_the_window_ends_lag_before_now_on_a_period_boundary() -> None:
    assert judged_window(NOW, RULE, P5) == (at(9, 50), at(11, 50))
    assert fetch_range(NOW, IdleCriteria(idle_for=timedelta(minutes=20)), P5) == (
        at(11, 20),
        at(11, 50),
    )


CASES: list[tuple[str, Graph, list[Datapoint], IdleCriteria, VerdictKind, str]] = [
    (
        "quiet for the whole window",
        running(),
        series(at(6), at(12)),
        RULE,
        VerdictKind.IDLE,
        "idle: 0 requests in 2h",
    ),
    (
        "one busy period",
        running(),
        series(at(6), at(12), lambda t: 312 if t == at(10, 15) else 0),
        RULE,
        VerdictKind.IN_USE,
        "in use: 312 requests in the last 2h",
    ),
    (
        "up only since 11:10 by its data (no updated time)",
        running(updated=None),
        series(at(11, 10), at(11, 50)),
        RULE,
        VerdictKind.NOT_JUDGED,
        "not judged: data covers 40 of 120 min",
    ),
    (
        "a gap in the data (stopped by hand for a while)",
        running(),
        series(at(6), at(10, 30)) + series(at(11, 10), at(12)),
        RULE,
        VerdictKind.NOT_JUDGED,
        "not judged: data covers 80 of 120 min",
    ),
    (
        "no updated time and the data stops before the window ends",
        running(updated=None),
        series(at(6), at(11, 0)),
        RULE,
        VerdictKind.NOT_JUDGED,
        "not judged: data covers 70 of 120 min",
    ),
    (
        "no data at all",
        running(updated=None),
        [],
        RULE,
        VerdictKind.NOT_JUDGED,
        "not judged: no data in the last 2h",
    ),
    (
        "started 12 minutes ago",
        running(updated=NOW - timedelta(minutes=12)),
        series(at(6), at(12)),
        RULE,
        VerdictKind.NOT_JUDGED,
        "not judged: up 12m, less than min_uptime 30m",
    ),
    (
        "importing",
        running(status=202),
        series(at(6), at(12)),
        RULE,
        VerdictKind.BUSY,
        "busy: importing",
    ),
    (
        "stopped",
        running(status=900),
        [],
        RULE,
        VerdictKind.NOT_JUDGED,
        "not judged: stopped, not running",
    ),
    (
        "requests in part of the data are use, whatever is missing",
        running(),
        series(at(11, 0), at(11, 50), lambda t: 5 if t == at(11, 5) else 0),
        RULE,
        VerdictKind.IN_USE,
        "in use: 5 requests in the last 2h",
    ),
    (
        "below the threshold",
        running(),
        series(at(6), at(12), lambda t: 1 if t.minute == 0 else 0),
        IdleCriteria(idle_for=timedelta(hours=2), threshold=5),
        VerdictKind.IDLE,
        "idle: 2 requests in 2h (threshold 5)",
    ),
    (
        "Cloud Eye has not published the newest minutes yet: not a gap",
        running(),
        series(at(6), at(11, 50)),
        RULE,
        VerdictKind.IDLE,
        "idle: 0 requests in 2h",
    ),
    (
        "requests newer than the lag are judged at a later check",
        running(),
        series(at(6), at(12), lambda t: 50 if t >= at(11, 50) else 0),
        RULE,
        VerdictKind.IDLE,
        "idle: 0 requests in 2h",
    ),
    (
        "another metric and aggregation",
        running(),
        series(at(6), at(12), lambda t: 2 if t == at(11) else 0),
        IdleCriteria(
            idle_for=timedelta(minutes=90),
            metric="ges011_read_task_running_queue_size",
            aggregation="max",
        ),
        VerdictKind.IN_USE,
        "in use: max ges011_read_task_running_queue_size 2 in the last 1h30m",
    ),
]


@pytest.mark.parametrize(
    ("graph", "points", "criteria", "kind", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_verdicts_say_why(
    graph: Graph,
    points: list[Datapoint],
    criteria: IdleCriteria,
    kind: VerdictKind,
    reason: str,
) -> None:
    verdict = judge(graph, points, now=NOW, criteria=criteria, period_s=P5)
    assert (verdict.kind, verdict.reason) == (kind, reason)


def test_coarse_periods_judge_whole_buckets_and_verdict_kinds_fit_a_label() -> None:
    hourly = series(at(0), at(12), period_s=3600)
    verdict = judge(running(), hourly, now=NOW, criteria=RULE, period_s=3600)
    # window [09:00, 11:00): the 11:00 bucket is still filling up
    assert verdict.reason == "idle: 0 requests in 2h"
    assert {str(kind) for kind in VerdictKind} == {"idle", "in_use", "not_judged", "busy"}


@pytest.mark.parametrize(
    ("points", "kind", "reason"),
    [
        (
            series(at(11), at(12), lambda t: 7 if t == at(11, 45) else 0),
            VerdictKind.IN_USE,
            "in use: 7 requests in the last 15m",
        ),
        (
            series(at(11), at(12), lambda t: 7 if t == at(11, 5) else 0),
            VerdictKind.IDLE,
            "quiet: 0 requests in the last 15m",
        ),
        ([], VerdictKind.NOT_JUDGED, "not judged: no data in the last 15m"),
    ],
    ids=["in-use", "quiet", "no-data"],
)
def test_recent_use_for_a_deferred_stop(
    points: list[Datapoint], kind: VerdictKind, reason: str
) -> None:
    verdict = recent_use(points, now=NOW, within=timedelta(minutes=15), period_s=P5)
    assert (verdict.kind, verdict.reason) == (kind, reason)
    assert recent_range(NOW, timedelta(minutes=15), P5) == (at(11, 35), NOW)


def test_durations_read_as_a_rule_was_written() -> None:
    assert [fmt_duration(timedelta(seconds=s)) for s in (7200, 5400, 45, 0, 86400)] == [
        "2h",
        "1h30m",
        "45s",
        "0s",
        "24h",
    ]


# --- replay --------------------------------------------------------------------------------

HOUR = 3600


def replay_hourly(graph: Graph, history: list[Datapoint], start: datetime, end: datetime) -> Replay:
    """RULE over hourly data, checked every 5 minutes, as `graphnap backtest` replays it."""
    return replay(
        graph,
        history,
        start=start,
        end=end,
        criteria=RULE,
        period_s=HOUR,
        check_every=timedelta(minutes=5),
    )


def office_hours(t: datetime) -> float:
    return 100 if 8 <= t.hour < 20 else 0


def test_a_graph_quiet_every_night_is_stopped_every_night_until_someone_comes() -> None:
    start, end = at(0, day=25), at(0, day=27)
    history = series(start, end, office_hours, HOUR)
    result = replay_hourly(running(updated=None), history, start, end)
    # 02:10 is the first check whose window [00:00, 02:00) is fully covered and quiet; the
    # 20:00-22:00 window is judged at 22:10 (data lags 10 min); the 08:00 traffic starts it.
    assert [(s.start, s.end, s.ended_by) for s in result.stops] == [
        (at(2, 10, day=25), at(8, day=25), "traffic"),
        (at(22, 10, day=25), at(8, day=26), "traffic"),
        (at(22, 10, day=26), at(0, day=27), "end of history"),
    ]
    assert result.stops[0].reason == "idle: 0 requests in 2h"
    assert result.hours_stopped == pytest.approx(5 + 50 / 60 + 9 + 50 / 60 + 1 + 50 / 60)
    assert result.saved(1.25) == pytest.approx(17.5 * 1.25)


def test_a_graph_queried_all_day_is_never_stopped() -> None:
    start, end = at(0, day=20), at(0, day=27)
    history = series(start, end, 3, HOUR)
    result = replay_hourly(running(), history, start, end)
    assert result.stops == ()
    assert result.hours_stopped == 0


def test_hours_a_schedule_had_the_graph_stopped_anyway_save_nothing() -> None:
    start, end = at(0, day=24), at(0, day=27)
    # really stopped by a schedule every night: no data from 20:00 to 08:00
    history = [p for p in series(start, end, office_hours, HOUR) if 8 <= p.at.hour < 20]
    result = replay_hourly(running(updated=None), history, start, end)
    assert result.stops == ()


def test_the_platform_restarts_a_graph_after_seven_days_and_the_rule_stops_it_again() -> None:
    start, end = at(0, day=1), at(0, day=10)
    history = series(start, end, 0, HOUR)
    result = replay_hourly(running(updated=None), history, start, end)
    assert [(s.start, s.end, s.ended_by) for s in result.stops] == [
        (at(2, 10, day=1), at(2, 10, day=8), "platform restart after 7 days"),
        # back up at 02:10; the data since then covers a 2h window at 05:10 (hourly buckets)
        (at(5, 10, day=8), at(0, day=10), "end of history"),
    ]
    assert result.hours_stopped == pytest.approx(7 * 24 + 24 + 18 + 50 / 60)


def test_a_stop_undone_by_traffic_the_lag_hid_saves_nothing_but_is_counted() -> None:
    start, end = at(0, day=25), at(6, day=25)
    # requests at 02:00-03:00 are not yet visible at the 02:10 check
    history = series(start, end, lambda t: 9 if t.hour == 2 else 0, HOUR)
    result = replay_hourly(running(updated=None), history, start, end)
    first = result.stops[0]
    assert (first.start, first.end, first.ended_by, first.billed) == (
        at(2, 10, day=25),
        at(2, 10, day=25),
        "traffic",
        timedelta(0),
    )
