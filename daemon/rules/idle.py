"""Idle verdicts, pure: is a running graph idle, judged from its Cloud Eye datapoints; is it
in use right now (a stop schedule's deferral); and what an idle rule would have done over a
graph's history (the replay behind `graphnap backtest`). No I/O and no clock: `now` is given.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from daemon.config.models import IdleRule
from daemon.domain.model import (
    REQUEST_COUNT,
    Aggregation,
    Datapoint,
    Graph,
    GraphStatus,
    describe_status,
    floor_time,
)

# Cloud Eye publishes a minute's value 5-10 minutes late, so the judged window ends this long
# before `now`: a window ending at `now` would read the newest minutes as "no requests".
DEFAULT_LAG = timedelta(minutes=10)
# GES restarts a graph that has been stopped for 7 days (ges-api.md §7).
PLATFORM_RESTART = timedelta(days=7)

# Aggregations whose value over part of a window can only grow with the rest of it: when
# part of the data already passes the threshold, the graph is in use, whatever is missing.
_GROWING: frozenset[Aggregation] = frozenset({"sum", "max"})


class VerdictKind(StrEnum):
    """Small and fixed: fit for a metric label (graphnap_idle_checks_total{verdict})."""

    IDLE = "idle"
    IN_USE = "in_use"
    NOT_JUDGED = "not_judged"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    reason: str  # for people: "idle: 0 requests in 2h", "not judged: data covers 40 of 120 min"
    value: float | None = None  # the aggregate over the data seen, when there was any

    @property
    def is_idle(self) -> bool:
        return self.kind is VerdictKind.IDLE

    @property
    def is_in_use(self) -> bool:
        return self.kind is VerdictKind.IN_USE


@dataclass(frozen=True, slots=True)
class IdleCriteria:
    """An idle rule's judgement, apart from its targets and timing."""

    idle_for: timedelta
    threshold: float = 0.0
    min_uptime: timedelta = timedelta(minutes=30)
    lag: timedelta = DEFAULT_LAG
    metric: str = REQUEST_COUNT
    aggregation: Aggregation = "sum"

    def __post_init__(self) -> None:
        if self.idle_for <= timedelta(0):
            raise ValueError("idle_for must be positive")
        if self.lag < timedelta(0) or self.min_uptime < timedelta(0):
            raise ValueError("lag and min_uptime cannot be negative")
        if self.aggregation == "variance":
            raise ValueError("variance of a window cannot be built from per-period variances")


def idle_criteria(rule: IdleRule) -> IdleCriteria:
    """An idle rule's criteria, as the live pass and the backtest judge with them."""
    return IdleCriteria(
        idle_for=rule.idle_for,
        threshold=rule.threshold,
        min_uptime=rule.min_uptime,
        lag=rule.lag,
        metric=rule.metric,
        aggregation=rule.aggregation,
    )


def judged_window(
    now: datetime, criteria: IdleCriteria, period_s: int
) -> tuple[datetime, datetime]:
    """[start, end) of the data a verdict at `now` judges: it ends `lag` before now, floored to
    the period so every bucket in it is complete, and spans `idle_for`."""
    end = floor_time(now - criteria.lag, period_s)
    return end - criteria.idle_for, end


def fetch_range(now: datetime, criteria: IdleCriteria, period_s: int) -> tuple[datetime, datetime]:
    """What to ask Cloud Eye for before `judge`: the judged window, reaching back to
    `min_uptime` too (a graph without `updated` proves its uptime with data), period-aligned."""
    start, end = judged_window(now, criteria, period_s)
    start = min(start, end - criteria.min_uptime)
    return floor_time(start, period_s), end


def recent_range(
    now: datetime, within: timedelta, period_s: int, lag: timedelta = DEFAULT_LAG
) -> tuple[datetime, datetime]:
    """What to ask Cloud Eye for before `recent_use`: the last `within`, `lag` more, aligned."""
    return floor_time(now - lag - within, period_s), now


def judge(
    graph: Graph,
    points: Sequence[Datapoint],
    *,
    now: datetime,
    criteria: IdleCriteria,
    period_s: int,
) -> Verdict:
    """The idle verdict for one graph at `now` from its datapoints of period `period_s`.

    Idle needs all of: status 200; up for `min_uptime` (by `graph.updated`, which GES moves
    at every stop and start, so it is the moment the graph last came up; if it is unknown,
    by the unbroken run of data reaching the window's end); data covering the whole judged
    window (each datapoint covers its period; Cloud Eye has data only while a graph runs,
    so a gap means the graph was down or unmeasured, and missing data is never idle); and
    the aggregate over the window at most `threshold`. Points outside the window are ignored,
    so a caller may pass a longer history.
    """
    if GraphStatus.classify(graph.status) == "busy":  # working on something of its own
        return Verdict(VerdictKind.BUSY, f"busy: {describe_status(graph.status)}")
    if graph.status != GraphStatus.RUNNING:
        return Verdict(
            VerdictKind.NOT_JUDGED, f"not judged: {describe_status(graph.status)}, not running"
        )
    period = timedelta(seconds=period_s)
    start, end = judged_window(now, criteria, period_s)
    seen = _distinct(p for p in points if p.at < end)
    window = [p for p in seen if p.at + period > start]
    value = _aggregate(window, criteria.aggregation)

    up_since = graph.updated or _run_start(seen, end, period)
    if up_since is None:  # no `updated`, and the data does not reach the window's end
        if not window:
            return Verdict(
                VerdictKind.NOT_JUDGED,
                f"not judged: no data in the last {fmt_duration(criteria.idle_for)}",
            )
        covered = _covered(window, start, end, period)
        return Verdict(
            VerdictKind.NOT_JUDGED,
            f"not judged: data covers {_minutes(covered)} of {_minutes(end - start)} min",
            value,
        )
    if now - up_since < criteria.min_uptime:
        return Verdict(
            VerdictKind.NOT_JUDGED,
            f"not judged: up {fmt_duration(max(now - up_since, timedelta(0)))}, "
            f"less than min_uptime {fmt_duration(criteria.min_uptime)}",
            value,
        )

    in_the_last = f"in the last {fmt_duration(criteria.idle_for)}"
    if value is not None and value > criteria.threshold and criteria.aggregation in _GROWING:
        return Verdict(
            VerdictKind.IN_USE, f"in use: {_measure(value, criteria)} {in_the_last}", value
        )
    covered = _covered(window, start, end, period)
    if covered < end - start:
        return Verdict(
            VerdictKind.NOT_JUDGED,
            f"not judged: data covers {_minutes(covered)} of {_minutes(end - start)} min",
            value,
        )
    assert value is not None  # full coverage means at least one point
    if value > criteria.threshold:
        return Verdict(
            VerdictKind.IN_USE, f"in use: {_measure(value, criteria)} {in_the_last}", value
        )
    over = f" (threshold {_number(criteria.threshold)})" if criteria.threshold else ""
    return Verdict(
        VerdictKind.IDLE,
        f"idle: {_measure(value, criteria)} in {fmt_duration(criteria.idle_for)}{over}",
        value,
    )


def recent_use(
    points: Sequence[Datapoint],
    *,
    now: datetime,
    within: timedelta,
    period_s: int,
    threshold: float = 0.0,
    lag: timedelta = DEFAULT_LAG,
) -> Verdict:
    """Is a graph in use now? For a stop schedule's deferral: IN_USE when the request count
    (sum) of every datapoint touching the last `within` (reaching back `lag` more, as the
    newest minutes are not published yet) is above `threshold`.

    Only IN_USE defers. Missing data is NOT_JUDGED, and unlike for an idle rule it does not
    protect the graph: the schedule is the owner's explicit wish; deferral is the exception
    that needs evidence of use."""
    since = now - lag - within
    period = timedelta(seconds=period_s)
    recent = _distinct(p for p in points if p.at + period > since and p.at <= now)
    in_the_last = f"in the last {fmt_duration(within)}"
    if not recent:
        return Verdict(VerdictKind.NOT_JUDGED, f"not judged: no data {in_the_last}")
    total = sum(p.value for p in recent)
    if total > threshold:
        return Verdict(
            VerdictKind.IN_USE, f"in use: {_number(total)} requests {in_the_last}", total
        )
    return Verdict(VerdictKind.IDLE, f"quiet: {_number(total)} requests {in_the_last}", total)


# --- replay ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulatedStop:
    """One stop an idle rule would have made, and what ended it."""

    start: datetime
    end: datetime
    reason: str  # the verdict that stopped it
    ended_by: str  # "traffic", "platform restart after 7 days", "end of history"
    billed: timedelta  # the part of [start, end) the real graph ran (had data): what it saves

    @property
    def billed_hours(self) -> float:
        return self.billed.total_seconds() / 3600


@dataclass(frozen=True, slots=True)
class Replay:
    stops: tuple[SimulatedStop, ...]

    @property
    def hours_stopped(self) -> float:
        """Hours of real running (billed) time the rule would have saved."""
        return sum(s.billed_hours for s in self.stops)

    def saved(self, hourly_price: float) -> float:
        return self.hours_stopped * hourly_price


def replay(
    graph: Graph,
    points: Sequence[Datapoint],
    *,
    start: datetime,
    end: datetime,
    criteria: IdleCriteria,
    period_s: int,
    check_every: timedelta,
) -> Replay:
    """The stops an idle rule would have made over [start, end) of a graph's real history.

    It checks every `check_every` with `judge` itself, on a copy of the graph that is running
    and came up at the simulated last start (unknown at first: then `judge` reads uptime from
    the data). Assumptions, stated because they set the numbers:
    - a simulated stop lasts until the first datapoint after it with traffic above the
      threshold: someone wanted the graph and would have started it by hand (as early as
      that period's start, which keeps the savings low rather than high); or until the
      platform restarts it after 7 days; or until the history ends;
    - a simulated stop saves only the time the real graph ran (had data): hours a person or
      a schedule had it stopped anyway save nothing twice;
    - after a simulated restart the rule sees only the periods that start from then on: the
      stopped graph would have produced no data, and a period it ran only part of would
      overstate how long it had been quiet.
    """
    if check_every <= timedelta(0):
        raise ValueError("check_every must be positive")
    period = timedelta(seconds=period_s)
    history = _distinct(points)
    ats = [p.at for p in history]
    reach = max(criteria.idle_for, criteria.min_uptime) + 2 * period

    def on_grid(when: datetime) -> datetime:
        """The first check at or after `when`: the live pass only looks every check_every."""
        return start + -((start - when) // check_every) * check_every

    stops: list[SimulatedStop] = []
    up_since: datetime | None = None  # the simulated last start; None: judge reads the data
    data_from = start
    now = start
    while now < end:
        _, window_end = judged_window(now, criteria, period_s)
        lo = bisect_left(ats, max(data_from - period, window_end - reach))
        visible = [p for p in history[lo : bisect_left(ats, window_end)] if p.at >= data_from]
        verdict = judge(
            replace(graph, status=GraphStatus.RUNNING, updated=up_since),
            visible,
            now=now,
            criteria=criteria,
            period_s=period_s,
        )
        if not verdict.is_idle:
            # Nothing can change before the next period is published, or before the graph
            # has been up for min_uptime: skip the checks in between (they would agree).
            later = window_end + period + criteria.lag
            came_up = up_since or _run_start(visible, window_end, period)
            if came_up is not None and now - came_up < criteria.min_uptime:
                later = min(later, came_up + criteria.min_uptime)
            now = on_grid(max(later, now + check_every))
            continue
        restart, ended_by = _restart(history, ats, now, end, period, criteria.threshold)
        near = history[bisect_left(ats, now - period) : bisect_left(ats, restart)]
        stops.append(
            SimulatedStop(
                start=now,
                end=restart,
                reason=verdict.reason,
                ended_by=ended_by,
                billed=_covered(near, now, restart, period),
            )
        )
        up_since = data_from = restart
        now = on_grid(max(restart, now + check_every))
    return Replay(tuple(stops))


def _restart(
    history: Sequence[Datapoint],
    ats: Sequence[datetime],
    stopped_at: datetime,
    end: datetime,
    period: timedelta,
    threshold: float,
) -> tuple[datetime, str]:
    limit = min(end, stopped_at + PLATFORM_RESTART)
    for point in history[bisect_left(ats, stopped_at - period) :]:
        if point.at >= limit:
            break
        if point.at + period > stopped_at and point.value > threshold:
            return max(point.at, stopped_at), "traffic"
    if limit < end:
        return limit, "platform restart after 7 days"
    return end, "end of history"


# --- helpers ---------------------------------------------------------------------------------


def fmt_duration(span: timedelta) -> str:
    """2h, 90m -> 1h30m, 45s; days stay hours (a rule's idle_for reads as it was written)."""
    total = int(span.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{seconds}s" if seconds else "",
    ]
    return "".join(parts) or "0s"


def _distinct(points: Iterable[Datapoint]) -> list[Datapoint]:
    """Oldest first, one point per timestamp (split queries may overlap at their edges)."""
    by_time: dict[datetime, Datapoint] = {}
    for point in points:
        by_time.setdefault(point.at, point)
    return [by_time[at] for at in sorted(by_time)]


def _aggregate(points: Sequence[Datapoint], aggregation: Aggregation) -> float | None:
    if not points:
        return None
    values = [p.value for p in points]
    if aggregation == "sum":
        return sum(values)
    if aggregation == "max":
        return max(values)
    if aggregation == "min":
        return min(values)
    return sum(values) / len(values)


def _covered(
    points: Sequence[Datapoint], start: datetime, end: datetime, period: timedelta
) -> timedelta:
    """How much of [start, end) the points' periods cover (points are distinct)."""
    total = timedelta(0)
    for point in points:
        overlap = min(point.at + period, end) - max(point.at, start)
        if overlap > timedelta(0):
            total += overlap
    return total


def _run_start(points: Sequence[Datapoint], end: datetime, period: timedelta) -> datetime | None:
    """Start of the unbroken run of data that reaches `end`, or None if the data stops short."""
    if not points or points[-1].at + period < end:
        return None
    run_start = points[-1].at
    for point in reversed(points[:-1]):
        if point.at + period < run_start:
            break
        run_start = point.at
    return run_start


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _measure(value: float, criteria: IdleCriteria) -> str:
    if criteria.metric == REQUEST_COUNT and criteria.aggregation == "sum":
        return f"{_number(value)} requests"
    return f"{criteria.aggregation} {criteria.metric} {_number(value)}"


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)
