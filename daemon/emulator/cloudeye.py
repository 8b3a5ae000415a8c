"""Cloud Eye's view of the emulated graphs: one-minute values computed from each graph's status
history and scripted traffic, aggregated per period as CES does (from floored to the period,
window caps, lag, data only while a graph runs). Nothing is stored per minute: a query walks
only the minutes of the periods it returns, so years of history cost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

NAMESPACE = "SYS.GES"
DIMENSION = "instance_id"
FILTERS = ("average", "max", "min", "sum", "variance")
# CES's limits below stand again in daemon/domain/periods.py, by design: the emulator imports
# nothing of the daemon it fakes (import-linter), so a limit the daemon gets wrong meets
# Cloud Eye's own here instead of agreeing with itself. Change both from ges-api.md §5.2.
# period (s) -> the longest window CES answers for it; a longer one silently loses its start.
# ges-api.md §5.2; 60 is not in the table [UNVERIFIED]: treated like raw data.
WINDOW_CAPS: dict[int, timedelta] = {
    1: timedelta(hours=4),
    60: timedelta(hours=4),
    300: timedelta(days=1),
    1200: timedelta(days=3),
    3600: timedelta(days=10),
    14400: timedelta(days=30),
    86400: timedelta(days=180),
}
MAX_POINTS = 3000  # datapoints in one answer, all metrics together
MAX_METRICS = 500  # metrics in one batch request
# Cloud Eye has GES data only for running, importing, exporting and clearing graphs.
REPORTING = frozenset({200, 202, 204, 205})

Traffic = float | Callable[[datetime], float]
"""Requests a graph receives in the minute that starts at the given time (while it runs)."""


@dataclass(frozen=True)
class DailyTraffic:
    """`requests_per_minute` from `from_hour` to `to_hour` (UTC) every day, none otherwise;
    a window may wrap midnight (22 -> 6)."""

    from_hour: int
    to_hour: int
    requests_per_minute: float

    def __call__(self, minute: datetime) -> float:
        hour = minute.hour
        if self.from_hour <= self.to_hour:
            inside = self.from_hour <= hour < self.to_hour
        else:
            inside = hour >= self.from_hour or hour < self.to_hour
        return self.requests_per_minute if inside else 0.0


@dataclass(frozen=True)
class Metric:
    unit: str
    value: Callable[[float], float]  # from the minute's request count


# ges004 is what idle rules read; the others are there so a dashboard-like query gets answers.
METRICS: dict[str, Metric] = {
    "ges004_request_count": Metric("count", lambda requests: requests),
    "ges001_vertex_util": Metric("%", lambda requests: 12.5),
    "ges002_edge_util": Metric("%", lambda requests: 8.0),
    "ges005_average_response_time": Metric("ms", lambda requests: 20.0 if requests else 0.0),
}


def _minute(when: datetime, *, up: bool = False) -> int:
    seconds = when.timestamp() / 60
    return math.ceil(seconds) if up else math.floor(seconds)


def reporting_minutes(
    history: Sequence[tuple[datetime, int]],
    gaps: Iterable[tuple[datetime, datetime]],
    *,
    visible_until: datetime,
) -> list[tuple[int, int]]:
    """[first, last) epoch-minute ranges with data: the graph reported when each minute began,
    the minute is not in a gap, and it ended before `visible_until` (now minus the lag)."""
    limit = _minute(visible_until) - 1  # minute m is published once m+1 is over
    ranges: list[tuple[int, int]] = []
    for i, (since, status) in enumerate(history):
        if status not in REPORTING:
            continue
        first = _minute(since, up=True)
        last = _minute(history[i + 1][0], up=True) if i + 1 < len(history) else limit + 1
        last = min(last, limit + 1)
        if first < last:
            ranges.append((first, last))
    for gap_start, gap_end in gaps:
        g0, g1 = _minute(gap_start), _minute(gap_end, up=True)
        cut: list[tuple[int, int]] = []
        for first, last in ranges:
            if last <= g0 or first >= g1:
                cut.append((first, last))
                continue
            if first < g0:
                cut.append((first, g0))
            if last > g1:
                cut.append((g1, last))
        ranges = cut
    return ranges


def aggregate(values: Sequence[tuple[float, int]], how: str) -> float:
    """Combine (value, how many minutes had it) pairs as CES combines a period's minutes."""
    if how == "max":
        return float(max(v for v, _ in values))
    if how == "min":
        return float(min(v for v, _ in values))
    total = sum(v * n for v, n in values)
    if how == "sum":
        return float(total)
    count = sum(n for _, n in values)
    mean = total / count
    if how == "average":
        return mean
    return sum(n * (v - mean) ** 2 for v, n in values) / count  # variance


def _values(traffic: Traffic, metric: Metric, first: int, last: int) -> list[tuple[float, int]]:
    """(value, minutes) for the minutes [first, last): constant traffic in one piece, daily
    traffic one piece per hour, any other function minute by minute."""
    if isinstance(traffic, int | float):
        return [(metric.value(float(traffic)), last - first)]
    if isinstance(traffic, DailyTraffic):
        pieces = []
        while first < last:
            upto = min(last, (first // 60 + 1) * 60)
            hour = datetime.fromtimestamp(first * 60, UTC)
            pieces.append((metric.value(traffic(hour)), upto - first))
            first = upto
        return pieces
    return [
        (metric.value(traffic(datetime.fromtimestamp(m * 60, UTC))), 1) for m in range(first, last)
    ]


def series(
    ranges: Sequence[tuple[int, int]],
    traffic: Traffic,
    metric: Metric,
    *,
    how: str,
    period_s: int,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[tuple[int, float]]:
    """(timestamp ms, value) per period with data, periods starting in [start, end), at most
    `limit` of them; `start` is already floored to the period."""
    step = max(period_s, 60) // 60  # period 1 is the raw one-minute data
    bucket = _minute(start)
    stop = _minute(end, up=True)
    points: list[tuple[int, float]] = []
    while bucket < stop and len(points) < limit:
        values = [
            piece
            for first, last in ranges
            if first < bucket + step and last > bucket
            for piece in _values(traffic, metric, max(first, bucket), min(last, bucket + step))
        ]
        if values:
            points.append((bucket * 60_000, aggregate(values, how)))
        bucket += step
    return points


def query(
    history: Sequence[tuple[datetime, int]],
    gaps: Iterable[tuple[datetime, datetime]],
    traffic: Traffic,
    metric: Metric,
    *,
    how: str,
    period_s: int,
    from_ms: int,
    to_ms: int,
    limit: int,
    visible_until: datetime,
) -> list[tuple[int, float]]:
    """(timestamp ms, value) as CES answers a query of one graph's metric: `from` moved to
    the period's window cap (a longer window silently loses its start) and floored to the
    period, minutes published up to `visible_until`."""
    cap_ms = int(WINDOW_CAPS[period_s].total_seconds() * 1000)
    from_ms = max(from_ms, to_ms - cap_ms)
    step_ms = period_s * 1000
    from_ms -= from_ms % step_ms
    return series(
        reporting_minutes(history, gaps, visible_until=visible_until),
        traffic,
        metric,
        how=how,
        period_s=period_s,
        start=datetime.fromtimestamp(from_ms / 1000, UTC),
        end=datetime.fromtimestamp(to_ms / 1000, UTC),
        limit=limit,
    )
