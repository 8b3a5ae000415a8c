"""Backtests over emulated Cloud Eye history: the stops, hours and money the live verdict
implies, checked against hand-computed cases; a failing project does not hide the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from daemon.cli.backtest import backtest, history_period, render
from daemon.cloud.ces import CesClient
from daemon.cloud.errors import RetryableError
from daemon.domain.model import Datapoint, Graph, MetricApi
from daemon.emulator import Cloud, ManualClock
from daemon.rules.idle import IdleCriteria
from tests.conftest import FAST_RETRY, PROJECT

NOW = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
RULE = IdleCriteria(idle_for=timedelta(hours=2), min_uptime=timedelta(minutes=30))
PRICES = {"1": 1.25, "4": 12.0}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def office_hours(minute: datetime) -> float:
    return 10.0 if 8 <= minute.hour < 20 else 0.0


def price(graph: Graph) -> float | None:
    hourly = PRICES.get(graph.size_index)
    return None if hourly is None else hourly * graph.replication


class Unreachable:
    """A project whose Cloud Eye keeps failing."""

    async def request_counts(
        self, graph_ids: list[str], **query: object
    ) -> dict[str, list[Datapoint]]:
        raise RetryableError("down", service="ces", operation="batch_query_metric_data", status=503)


async def test_a_graph_idle_every_night_shows_the_nightly_stops_and_the_money_saved(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    week_ago = NOW - timedelta(days=8)
    nightly = cloud.add_graph(PROJECT, "dev-nightly", created=week_ago, traffic=office_hours)
    busy = cloud.add_graph(
        PROJECT, "prod-busy", created=week_ago, traffic=3, size_index="4", replication=2
    )
    unpriced = cloud.add_graph(PROJECT, "dev-huge", created=week_ago, size_index="5")
    ces: MetricApi = CesClient(http_aksk, PROJECT, retry=FAST_RETRY, sleep=clock.sleep)
    graphs = {
        "analytics": [
            Graph(g.id, g.name, 200, size_index=g.size_index, replication=g.replication)
            for g in (nightly, busy, unpriced)
        ]
    }

    report = await backtest(
        "idle-dev",
        RULE,
        graphs,
        {"analytics": ces},
        now=clock(),
        days=7,
        check_every=timedelta(minutes=5),
        hourly_price=price,
    )

    by_name = {r.graph.name: r for r in report.graphs}
    stops = by_name["dev-nightly"].replay.stops
    # Judged quiet at 02:10 on the first day (the first full 2h window), then every night at
    # 22:10 (20:00-22:00 judged after the 10-minute lag) until the 08:00 traffic.
    assert [(s.start, s.end) for s in stops[:2]] == [
        (datetime(2026, 11, 20, 2, 10, tzinfo=UTC), datetime(2026, 11, 20, 8, tzinfo=UTC)),
        (datetime(2026, 11, 20, 22, 10, tzinfo=UTC), datetime(2026, 11, 21, 8, tzinfo=UTC)),
    ]
    assert len(stops) == 8
    hours = 5 + 50 / 60 + 6 * (9 + 50 / 60) + 1 + 50 / 60
    assert by_name["dev-nightly"].replay.hours_stopped == pytest.approx(hours)
    assert by_name["dev-nightly"].saved == pytest.approx(hours * 1.25)
    assert by_name["prod-busy"].replay.stops == ()
    assert by_name["prod-busy"].saved == 0
    assert by_name["dev-huge"].saved is None  # idle too, but size 5 has no price
    assert len(by_name["dev-huge"].replay.stops) == 1
    assert report.saved == pytest.approx(hours * 1.25)
    assert cloud.count("batch_query_metric_data") == 1  # 3 graphs x 168 hours in one answer

    table = render(report).splitlines()
    assert table[0].startswith("backtest idle-dev: 7 days of Cloud Eye history")
    assert "1h periods" in table[0]
    assert table[1].split() == ["project", "graph", "stops", "hours", "stopped", "saved", "(USD)"]
    assert table[2].split() == [
        "analytics",
        "dev-huge",
        "1",
        "165.8",
        "no",
        "price",
    ]  # 02:10 to the end
    assert table[3].split() == ["analytics", "dev-nightly", "8", "66.7", "83.33"]
    assert table[4].split() == ["analytics", "prod-busy", "0", "0.0", "0.00"]
    assert table[-1].split() == ["total", "9", "232.5", "83.33"]


async def test_a_project_whose_history_cannot_be_read_is_named_and_the_others_replayed(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    quiet = cloud.add_graph(PROJECT, "dev-quiet", created=NOW - timedelta(days=2))
    report = await backtest(
        "idle-dev",
        RULE,
        {
            "analytics": [Graph(quiet.id, quiet.name, 200, size_index="1")],
            "risk": [Graph("g-risk", "dev-risk", 200, size_index="1")],
        },
        {
            "analytics": CesClient(http_aksk, PROJECT, retry=FAST_RETRY, sleep=clock.sleep),
            "risk": Unreachable(),
        },
        now=clock(),
        days=1,
        check_every=timedelta(minutes=5),
        hourly_price=price,
    )
    assert report.period_s == 1200
    assert [r.graph.name for r in report.graphs] == ["dev-quiet"]
    # 20-minute data: the first full 2h window [00:00, 02:00) is judged at 02:10
    [stop] = report.graphs[0].replay.stops
    assert stop.start == NOW - timedelta(days=1) + timedelta(hours=2, minutes=10)
    lines = render(report).splitlines()
    assert lines[-2].startswith("risk: not replayed: ces batch_query_metric_data: http_503")
    assert lines[-1].split()[0] == "total"


@pytest.mark.parametrize(
    ("days", "period"), [(1, 1200), (3, 1200), (3.5, 3600), (10, 3600), (30, 14400)]
)
def test_the_history_period_is_as_fine_as_the_window_caps_allow(days: float, period: int) -> None:
    assert history_period(days) == period


def test_a_backtest_longer_than_30_days_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 30 days"):
        history_period(31)
