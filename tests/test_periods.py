"""Cloud Eye periods: the period picked for a live idle check or a backtest is one CES
serves, answers the whole span within its window cap, and keeps a chunk of graphs within
3,000 datapoints, so no request is cut short or silently truncated."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from daemon.domain.periods import (
    MAX_METRICS,
    MAX_POINTS,
    WINDOW_CAPS,
    choose_period,
    history_period,
)


@pytest.mark.parametrize(
    ("span", "graphs", "period"),
    [
        (timedelta(hours=2), 1, 60),
        (timedelta(hours=2), 1200, 1200),  # 500 graphs a request x 6 periods = 3000
        (timedelta(minutes=30), 1200, 300),
        (timedelta(hours=5), 1, 300),  # beyond the 1-minute window cap
        (timedelta(days=2), 500, 86400),  # 500 x 2 days; hourly would be 24,000 points
        (timedelta(days=200), 1, 86400),
    ],
)
def test_the_live_period_is_the_finest_that_fits_one_request(
    span: timedelta, graphs: int, period: int
) -> None:
    assert choose_period(span, graphs) == period


@pytest.mark.parametrize("graphs", [1, 7, 499, 500, 1200])
@pytest.mark.parametrize("hours", [0.5, 2, 6, 30, 48])
def test_a_live_period_never_asks_for_more_than_cloud_eye_answers(
    graphs: int, hours: float
) -> None:
    span = timedelta(hours=hours)
    period = choose_period(span, graphs)
    seconds = span.total_seconds()
    buckets = math.ceil(seconds / period) + (1 if seconds % period else 0)  # edges
    assert span <= WINDOW_CAPS[period]
    assert buckets * min(graphs, MAX_METRICS) <= MAX_POINTS


@pytest.mark.parametrize(("days", "period"), [(0.5, 1200), (3, 1200), (3.5, 3600), (30, 14400)])
def test_a_backtest_reads_periods_as_long_as_their_window_caps_allow(
    days: float, period: int
) -> None:
    assert history_period(days) == period
    assert timedelta(days=days) <= WINDOW_CAPS[period]


def test_a_backtest_beyond_30_days_or_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 30 days"):
        history_period(31)
    with pytest.raises(ValueError, match="at least part of a day"):
        history_period(0)
