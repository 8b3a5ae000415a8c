"""Cloud Eye periods: the periods CES aggregates over, the longest window it answers for
each, its per-request limits, and which period a live idle check or a backtest asks for.
"""

from __future__ import annotations

import math
from datetime import timedelta

# The emulator (daemon/emulator/cloudeye.py) keeps its own copy of these limits on purpose:
# it fakes Cloud Eye and imports nothing of the daemon.
MAX_METRICS = 500  # per batch request (SDK 3.1.219; older docs say 10)
MAX_POINTS = 3000  # per answer, all metrics together; CES drops the rest silently
# period (s) -> the longest window CES answers for it (ges-api.md §5.2). 60 is missing from
# the table: treated like raw data, the smallest cap, so a request is never cut short.
WINDOW_CAPS: dict[int, timedelta] = {
    1: timedelta(hours=4),
    60: timedelta(hours=4),
    300: timedelta(days=1),
    1200: timedelta(days=3),
    3600: timedelta(days=10),
    14400: timedelta(days=30),
    86400: timedelta(days=180),
}
# The periods a backtest reads, coarsest data its length needs: 20-minute periods for up
# to 3 days, hourly up to 10, 4-hourly up to 30 (each as long as its window cap, so the
# history of up to 3000 // periods-worth of graphs comes in one request per chunk).
HISTORY_PERIODS = (1200, 3600, 14400)


def choose_period(span: timedelta, graphs: int) -> int:
    """The finest period that answers `span` (from a period-aligned start, as
    idle.fetch_range gives) for up to 500 graphs in one request per chunk: for the live idle
    pass, where 1,200 candidates should cost 3 requests, not 60."""
    per_request = min(graphs, MAX_METRICS) or 1
    for period_s in sorted(p for p in WINDOW_CAPS if p >= 60):
        seconds = span.total_seconds()
        # a span that is not whole periods may touch one period more at its edges
        buckets = math.ceil(seconds / period_s) + (1 if seconds % period_s else 0)
        if buckets * per_request <= MAX_POINTS and span <= WINDOW_CAPS[period_s]:
            return period_s
    return max(WINDOW_CAPS)


def history_period(days: float) -> int:
    """Cloud Eye period (s) for a backtest of `days`; ValueError beyond 30 days."""
    span = timedelta(days=days)
    if span <= timedelta(0):
        raise ValueError("a backtest needs at least part of a day")
    for period_s in HISTORY_PERIODS:
        if span <= WINDOW_CAPS[period_s]:
            return period_s
    raise ValueError(f"a backtest covers at most {WINDOW_CAPS[HISTORY_PERIODS[-1]].days} days")
