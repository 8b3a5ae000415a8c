"""The Cloud Eye client: on httpx.MockTransport for chunking, time splitting and error mapping,
and against the emulator over loopback (AK/SK and token) for the real round trip."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from daemon.cloud.ces import CesClient, time_slices
from daemon.cloud.errors import AuthError, InvalidResponseError, PermanentError, RetryableError
from daemon.config.settings import RetrySettings
from daemon.domain.model import Datapoint, MetricApi
from daemon.domain.periods import choose_period
from daemon.emulator import Cloud, ManualClock
from daemon.rules.idle import IdleCriteria, fetch_range
from tests.conftest import FAST_RETRY, PROJECT

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
POLICY = RetrySettings(attempts=3, backoff_initial_s=1.0, backoff_max_s=4.0, backoff_jitter_s=0.0)
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Stands in for asyncio.sleep: remembers the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client(handler: Handler, sleep: Recorder | None = None) -> CesClient:
    http = httpx.AsyncClient(
        base_url="https://ces.cn-north-4.myhuaweicloud.com",
        transport=httpx.MockTransport(handler),
    )
    return CesClient(http, PROJECT, retry=POLICY, sleep=sleep or Recorder())


class FakeCes:
    """Answers batch queries like CES: one point per period of the asked window, value 1,
    and remembers every request body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        step = int(body["period"]) * 1000
        first = body["from"] - body["from"] % step
        stamps = range(first, body["to"], step)
        metrics = [
            {**m, "unit": "count", "datapoints": [{"sum": 1.0, "timestamp": t} for t in stamps]}
            for m in body["metrics"]
        ]
        return httpx.Response(200, json={"metrics": metrics})

    def points_per_request(self) -> list[int]:
        return [
            len(b["metrics"]) * -(-(b["to"] - b["from"]) // (int(b["period"]) * 1000))
            for b in self.bodies
        ]


async def test_1200_graphs_over_a_2h_window_cost_three_requests() -> None:
    fake = FakeCes()
    ids = [f"g-{i}" for i in range(1200)]
    criteria = IdleCriteria(idle_for=timedelta(hours=2))
    period = choose_period(criteria.idle_for, len(ids))
    start, end = fetch_range(NOW, criteria, period)
    got = await client(fake).request_counts(ids, start=start, end=end, period_s=period)
    assert period == 1200
    assert [len(b["metrics"]) for b in fake.bodies] == [500, 500, 200]
    assert fake.bodies[0]["period"] == "1200"
    assert fake.bodies[0]["filter"] == "sum"
    assert fake.bodies[0]["metrics"][0] == {
        "namespace": "SYS.GES",
        "metric_name": "ges004_request_count",
        "dimensions": [{"name": "instance_id", "value": "g-0"}],
    }
    assert max(fake.points_per_request()) <= 3000
    assert set(got) == set(ids)
    assert [p.at for p in got["g-1199"]] == [start + timedelta(minutes=20 * i) for i in range(6)]


async def test_a_long_history_is_split_in_time_within_3000_points_and_the_window_cap() -> None:
    fake = FakeCes()
    ids = [f"g-{i}" for i in range(100)]
    start, end = NOW - timedelta(days=7), NOW
    got = await client(fake).request_counts(ids, start=start, end=end, period_s=3600)
    assert all(n <= 3000 for n in fake.points_per_request())
    assert len(fake.bodies) == 6  # 168 hours, 30 per request for 100 graphs
    hours = [p.at for p in got["g-42"]]
    assert hours == [start + timedelta(hours=h) for h in range(168)]  # no gap, no duplicate


async def test_a_window_longer_than_the_period_cap_is_split_not_cut() -> None:
    fake = FakeCes()
    start = NOW - timedelta(days=3)
    got = await client(fake).request_counts(["g-1"], start=start, end=NOW, period_s=300)
    spans = [timedelta(milliseconds=b["to"] - b["from"]) for b in fake.bodies]
    assert len(spans) == 3
    assert all(span < timedelta(days=1) for span in spans)
    assert len(got["g-1"]) == 3 * 288
    assert got["g-1"][0] == Datapoint(start, 1.0)


def test_time_slices_start_on_the_period_floor() -> None:
    slices = time_slices(NOW - timedelta(minutes=61), NOW, 1200, 500)
    assert slices == [(NOW - timedelta(minutes=80), NOW)]


async def test_the_single_query_sends_ces_parameters_and_reads_the_named_aggregate() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/V1.0/{PROJECT}/metric-data"
        params = dict(request.url.params)
        assert params["dim.0"] == "instance_id,g-1"
        assert (params["period"], params["filter"]) == ("300", "max")
        assert int(params["to"]) == int(NOW.timestamp() * 1000) - 1
        return httpx.Response(
            200,
            json={
                "metric_name": "ges004_request_count",
                "datapoints": [
                    {
                        "max": 3.0,
                        "timestamp": int(NOW.timestamp() * 1000) - 300_000,
                        "unit": "count",
                    },
                    {"max": 9.0, "timestamp": int(NOW.timestamp() * 1000), "unit": "count"},
                ],
            },
        )

    points = await client(handler).metric_data(
        "g-1", aggregation="max", start=NOW - timedelta(minutes=10), end=NOW, period_s=300
    )
    # the point at `end` belongs to the next window
    assert points == [Datapoint(NOW - timedelta(minutes=5), 3.0)]


def ces_error(status: int, code: str, message: str = "no") -> httpx.Response:
    body = {
        "code": status,
        "element": "Bad Request",
        "message": message,
        "details": {"details": message, "code": code},
    }
    return httpx.Response(status, json=body, headers={"X-Request-Id": "req-9"})


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [
        (
            ces_error(400, "ces.0014", "Some content in message body is not correct"),
            PermanentError,
            "ces.0014",
        ),
        (ces_error(401, "ces.0015"), AuthError, "ces.0015"),
        (
            httpx.Response(
                403,
                json={
                    "http_code": "403",
                    "message": {
                        "details": "Policy doesn't allow [ces:metricData:list]",
                        "code": "403",
                    },
                },
            ),
            AuthError,
            "403",
        ),
        (
            httpx.Response(401, json={"error_code": "APIG.0301", "error_msg": "token"}),
            AuthError,
            "APIG.0301",
        ),
        (
            httpx.Response(
                200,
                json={
                    "metrics": [
                        {
                            "metric_name": "ges004_request_count",
                            "dimensions": [{"name": "instance_id", "value": "g-1"}],
                            "datapoints": [{"max": 1, "timestamp": NOW_MS - 600_000}],
                        }
                    ]
                },
            ),
            InvalidResponseError,
            "invalid_response",
        ),
        (httpx.Response(200, json={"unexpected": True}), InvalidResponseError, "invalid_response"),
    ],
    ids=["bad-body", "auth", "policy", "gateway-auth", "wrong-aggregate", "no-metrics"],
)
async def test_permanent_errors_are_mapped_and_never_retried(
    response: httpx.Response, kind: type[Exception], code: str
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return response

    with pytest.raises(kind) as caught:
        await client(handler).request_counts(
            ["g-1"], start=NOW - timedelta(hours=1), end=NOW, period_s=300
        )
    assert getattr(caught.value, "code", None) == code
    assert calls == 1


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(429, json={"error_code": "APIG.0308", "error_msg": "over ratelimit"}),
        ces_error(500, "ces.0007", "Internal service error."),
        httpx.Response(503, text="Service Unavailable"),
    ],
    ids=["429", "ces-500", "503"],
)
async def test_throttling_and_5xx_are_retried_then_succeed(failure: httpx.Response) -> None:
    fake, calls = FakeCes(), 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return failure if calls < 3 else fake(request)

    sleep = Recorder()
    got = await client(handler, sleep).request_counts(
        ["g-1"], start=NOW - timedelta(hours=1), end=NOW, period_s=300
    )
    assert len(got["g-1"]) == 12
    assert sleep.delays == [1.0, 2.0]


async def test_the_last_retry_reraises_with_the_ces_code() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return ces_error(500, "ces.0008", "Database error.")

    with pytest.raises(RetryableError) as caught:
        await client(handler).request_counts(
            ["g-1"], start=NOW - timedelta(hours=1), end=NOW, period_s=300
        )
    assert (caught.value.code, caught.value.request_id) == ("ces.0008", "req-9")
    assert "ces batch_query_metric_data" in str(caught.value)


async def test_unknown_periods_and_oversized_batches_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="period 120s"):
        time_slices(NOW - timedelta(hours=1), NOW, 120, 1)
    with pytest.raises(ValueError, match="1 to 500 graphs, not 501"):
        await client(FakeCes()).batch_query(
            [f"g-{i}" for i in range(501)], start=NOW - timedelta(hours=1), end=NOW, period_s=300
        )


# --- against the emulator ------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    # on the hour, so every period is exact (the signer and the gateway share this clock)
    return ManualClock(NOW)


@pytest.fixture(params=["aksk", "token"])
def http(request: pytest.FixtureRequest) -> httpx.AsyncClient:
    return request.getfixturevalue(f"http_{request.param}")  # type: ignore[no-any-return]


@pytest.fixture
def ces(http: httpx.AsyncClient, clock: ManualClock) -> CesClient:
    """Retry sleeps move the emulator's clock instead of waiting."""
    return CesClient(http, PROJECT, retry=FAST_RETRY, sleep=clock.sleep)


async def test_1200_candidates_cost_three_batch_requests_on_the_emulator(
    cloud: Cloud, clock: ManualClock, ces: CesClient
) -> None:
    now = clock()
    graphs = [
        cloud.add_graph(PROJECT, f"dev-{i}", created=now - timedelta(hours=3), traffic=i % 2)
        for i in range(1200)
    ]
    criteria = IdleCriteria(idle_for=timedelta(hours=2))
    period = choose_period(criteria.idle_for, len(graphs))
    start, end = fetch_range(now, criteria, period)
    api: MetricApi = ces
    got = await api.request_counts([g.id for g in graphs], start=start, end=end, period_s=period)
    assert cloud.count("batch_query_metric_data") == 3
    assert [p.value for p in got[graphs[0].id]] == [0.0] * 6
    assert [p.value for p in got[graphs[1].id]] == [20.0] * 6


async def test_history_across_a_stop_and_start_round_trips_with_retries(
    cloud: Cloud, clock: ManualClock, ces: CesClient
) -> None:
    start = clock()
    graph = cloud.add_graph(PROJECT, "dev-a", traffic=1)
    clock.advance(3 * 3600)
    cloud.act(PROJECT, graph.id, "stop")
    clock.advance(5 * 3600)
    cloud.act(PROJECT, graph.id, "start")
    clock.advance(3 * 3600)
    cloud.inject("batch_query_metric_data", 429, "APIG.0308", "over ratelimit")
    cloud.inject("batch_query_metric_data", 503, "APIG.1009", "down")
    got = await ces.request_counts([graph.id], start=start, end=clock(), period_s=3600)
    hours = {p.at: p.value for p in got[graph.id]}
    assert hours[start] == 60.0
    assert start + timedelta(hours=4) not in hours  # stopped
    assert hours[start + timedelta(hours=8)] == 60.0 - 1  # started 22 s past the hour
    assert [r.status for r in cloud.requests if r.operation == "batch_query_metric_data"][:2] == [
        429,
        503,
    ]


async def test_single_query_against_the_emulator(
    cloud: Cloud, clock: ManualClock, ces: CesClient
) -> None:
    now = clock()
    graph = cloud.add_graph(PROJECT, "dev-a", created=now - timedelta(hours=1), traffic=2)
    points = await ces.metric_data(
        graph.id, start=now - timedelta(minutes=40), end=now - timedelta(minutes=20), period_s=300
    )
    assert points == [Datapoint(now - timedelta(minutes=m), 10.0) for m in (40, 35, 30, 25)]
