"""The emulator's Cloud Eye over real HTTP: request and answer shapes, data only while a graph
runs, the lag, period floors, window caps, the 500-metric and 3,000-datapoint limits, the
gateway's auth and faults, and Huawei's own Cloud Eye SDK reading from it unchanged."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from daemon.emulator import Cloud, ManualClock
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from tests.conftest import PROJECT

BATCH = f"/V1.0/{PROJECT}/batch-query-metric-data"
SINGLE = f"/V1.0/{PROJECT}/metric-data"
MIN = 60_000


@pytest.fixture
def clock() -> ManualClock:
    # On a 5-minute boundary for exact buckets, and near the real time for Huawei's SDK.
    now = int(datetime.now(UTC).timestamp())
    return ManualClock(datetime.fromtimestamp(now - now % 300, UTC))


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def body(
    graph_ids: list[str],
    start: datetime,
    end: datetime,
    *,
    period: str = "300",
    how: str = "sum",
    metric: str = "ges004_request_count",
) -> dict[str, Any]:
    return {
        "metrics": [
            {
                "namespace": "SYS.GES",
                "metric_name": metric,
                "dimensions": [{"name": "instance_id", "value": gid}],
            }
            for gid in graph_ids
        ],
        "from": ms(start),
        "to": ms(end),
        "period": period,
        "filter": how,
    }


def points(answer: dict[str, Any], how: str = "sum") -> list[tuple[int, float]]:
    [metric] = answer["metrics"]
    return [(p["timestamp"], p[how]) for p in metric["datapoints"]]


async def test_batch_sums_requests_per_period_up_to_the_lag(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    now = clock()
    graph = cloud.add_graph(PROJECT, "dev-a", created=now - timedelta(hours=3), traffic=5)
    response = await http_aksk.post(BATCH, json=body([graph.id], now - timedelta(hours=2), now))
    assert response.status_code == 200
    answer = response.json()
    metric = answer["metrics"][0]
    assert (metric["namespace"], metric["metric_name"], metric["unit"]) == (
        "SYS.GES",
        "ges004_request_count",
        "count",
    )
    assert metric["dimensions"] == [{"name": "instance_id", "value": graph.id}]
    got = points(answer)
    start = ms(now - timedelta(hours=2))
    # 22 complete 5-minute periods; the minutes of the last 6 are not published yet (lag)
    assert got[:22] == [(start + i * 5 * MIN, 25.0) for i in range(22)]
    assert got[22:] == [(start + 22 * 5 * MIN, 20.0)]


async def test_data_exists_only_while_the_graph_runs_across_stop_and_start(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    begin = clock()
    graph = cloud.add_graph(PROJECT, "dev-a", traffic=2)
    clock.advance(3600)
    cloud.act(PROJECT, graph.id, "stop")  # 901 from now, 900 at +12 s
    clock.advance(3600)
    cloud.act(PROJECT, graph.id, "start")  # 920 from now, 200 at +22 s
    clock.advance(3600)
    response = await http_aksk.post(
        BATCH, json=body([graph.id], begin, clock(), period="60", how="max")
    )
    stamps = [ts for ts, _ in points(response.json(), "max")]
    first_hour = [ms(begin) + i * MIN for i in range(60)]
    back_up = ms(begin + timedelta(hours=2, seconds=22))
    assert stamps[:60] == first_hour
    assert all(ts >= back_up for ts in stamps[60:])
    assert len(stamps[60:]) == 60 - 1 - 6  # the start minute, and the lag


async def test_from_is_floored_to_the_period_and_moved_to_the_window_cap(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    now = clock()
    graph = cloud.add_graph(PROJECT, "dev-a", created=now - timedelta(days=5))
    floored = await http_aksk.post(
        BATCH, json=body([graph.id], now - timedelta(hours=1, minutes=3), now)
    )
    assert points(floored.json())[0][0] == ms(now - timedelta(hours=1, minutes=5))
    capped = await http_aksk.post(BATCH, json=body([graph.id], now - timedelta(days=3), now))
    assert points(capped.json())[0][0] == ms(now - timedelta(days=1))
    hourly = await http_aksk.post(
        BATCH, json=body([graph.id], now - timedelta(days=3), now, period="3600")
    )
    three_days_ago = int((now - timedelta(days=3)).timestamp())
    assert points(hourly.json())[0][0] == (three_days_ago - three_days_ago % 3600) * 1000


async def test_more_than_500_metrics_is_a_cloud_eye_error(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    now = clock()
    ids = [f"g-{i}" for i in range(501)]
    response = await http_aksk.post(BATCH, json=body(ids, now - timedelta(hours=1), now))
    assert response.status_code == 400
    error = response.json()
    assert error["details"]["code"] == "ces.0014"
    assert "at most" not in error["message"]
    assert "501" in error["message"]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"period": 300}, "period"),
        ({"period": "7"}, "period"),
        ({"filter": "median"}, "filter"),
        ({"from": 10, "to": 5}, "earlier"),
    ],
    ids=["period-not-a-string", "unknown-period", "unknown-filter", "from-after-to"],
)
async def test_bad_batch_bodies_are_refused_as_cloud_eye_does(
    clock: ManualClock, http_aksk: httpx.AsyncClient, change: dict[str, Any], where: str
) -> None:
    now = clock()
    response = await http_aksk.post(
        BATCH, json={**body(["g-1"], now - timedelta(hours=1), now), **change}
    )
    assert response.status_code == 400
    assert response.json()["details"]["code"] == "ces.0014"
    assert where in response.json()["message"]


async def test_at_most_3000_datapoints_come_back_however_many_are_asked(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    now = clock()
    graphs = [
        cloud.add_graph(PROJECT, f"dev-{i}", created=now - timedelta(hours=5)) for i in range(20)
    ]
    response = await http_aksk.post(
        BATCH, json=body([g.id for g in graphs], now - timedelta(hours=4), now, period="60")
    )
    counts = [len(m["datapoints"]) for m in response.json()["metrics"]]
    assert sum(counts) == 3000
    assert counts[0] == 240 - 6
    assert counts[-1] == 0


async def test_single_metric_query_with_a_token_carries_the_unit(
    cloud: Cloud, clock: ManualClock, http_token: httpx.AsyncClient
) -> None:
    now = clock()
    graph = cloud.add_graph(PROJECT, "dev-a", created=now - timedelta(hours=1))
    cloud.set_traffic(PROJECT, graph.id, lambda minute: 4 if minute.minute % 5 == 0 else 0)
    params = {
        "namespace": "SYS.GES",
        "metric_name": "ges004_request_count",
        "dim.0": f"instance_id,{graph.id}",
        "filter": "average",
        "period": "300",
        "from": str(ms(now - timedelta(minutes=40))),
        "to": str(ms(now)),
    }
    response = await http_token.get(SINGLE, params=params)
    answer = response.json()
    assert answer["metric_name"] == "ges004_request_count"
    assert answer["datapoints"][0] == {
        "average": 0.8,
        "timestamp": ms(now - timedelta(minutes=40)),
        "unit": "count",
    }
    bad = await http_token.get(SINGLE, params={**params, "period": "abc"})
    assert (bad.status_code, bad.json()["details"]["code"]) == (400, "ces.0013")


async def test_busy_graphs_report_stopped_and_faulty_ones_do_not_and_gaps_are_gaps(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    now = clock()
    start = now - timedelta(hours=1)
    importing = cloud.add_graph(PROJECT, "dev-imp", status=202, created=start)
    stopped = cloud.add_graph(PROJECT, "dev-stop", status=900, created=start)
    gappy = cloud.add_graph(PROJECT, "dev-gap", created=start)
    cloud.add_gap(PROJECT, gappy.id, now - timedelta(minutes=40), now - timedelta(minutes=20))
    answer = (
        await http_aksk.post(
            BATCH, json=body([importing.id, stopped.id, gappy.id], start, now, period="300")
        )
    ).json()
    counts = {m["dimensions"][0]["value"]: len(m["datapoints"]) for m in answer["metrics"]}
    assert counts == {importing.id: 11, stopped.id: 0, gappy.id: 11 - 4}


async def test_traffic_and_gaps_can_be_set_over_the_control_plane(
    cloud: Cloud, clock: ManualClock, emulator: str, http_aksk: httpx.AsyncClient
) -> None:
    now = clock()
    graph = cloud.add_graph(PROJECT, "dev-a", created=now - timedelta(hours=1))
    async with httpx.AsyncClient(base_url=emulator) as control:
        ok = await control.post(
            "/_emulator/traffic",
            json={"project_id": PROJECT, "graph_id": graph.id, "requests_per_minute": 3},
        )
        unknown = await control.post(
            "/_emulator/traffic",
            json={"project_id": PROJECT, "graph_id": "nope", "requests_per_minute": 3},
        )
    assert ok.status_code == 200
    assert unknown.status_code == 400
    answer = (
        await http_aksk.post(BATCH, json=body([graph.id], now - timedelta(minutes=30), now))
    ).json()
    assert points(answer)[0][1] == 15.0

    hour = now.hour
    async with httpx.AsyncClient(base_url=emulator) as control:
        daily = {"from_hour": (hour + 1) % 24, "to_hour": (hour + 2) % 24, "requests_per_minute": 9}
        await control.post(
            "/_emulator/traffic", json={"project_id": PROJECT, "graph_id": graph.id, "daily": daily}
        )
        await control.post("/_emulator/traffic", json={"metrics_lag_s": 0})
    answer = (
        await http_aksk.post(BATCH, json=body([graph.id], now - timedelta(minutes=30), now))
    ).json()
    # outside its daily hours: quiet; and with no lag the newest period is complete
    assert [value for _, value in points(answer)] == [0.0] * 6


async def test_a_token_for_another_project_is_refused_in_cloud_eye_terms(
    cloud: Cloud, emulator: str
) -> None:
    token = cloud.issue_token("emulator", "graphnap", "emulator-password", PROJECT)
    async with httpx.AsyncClient(base_url=emulator) as http:
        response = await http.get(
            "/V1.0/ffffffffffffffffffffffffffffffff/metric-data",
            headers={"X-Auth-Token": token.value},
        )
    assert (response.status_code, response.json()["details"]["code"]) == (400, "ces.0003")


async def test_the_gateway_guards_cloud_eye_like_ges(
    cloud: Cloud, clock: ManualClock, emulator: str, http_aksk: httpx.AsyncClient
) -> None:
    now = clock()
    async with httpx.AsyncClient(base_url=emulator) as anonymous:
        refused = await anonymous.post(BATCH, json=body(["g"], now - timedelta(hours=1), now))
    assert (refused.status_code, refused.json()["error_code"]) == (401, "APIG.0301")

    cloud.inject("batch_query_metric_data", 429, "APIG.0308", "over ratelimit")
    cloud.inject("batch_query_metric_data", 500, "GES.7006")
    throttled = await http_aksk.post(BATCH, json=body(["g"], now - timedelta(hours=1), now))
    assert (throttled.status_code, throttled.json()["error_code"]) == (429, "APIG.0308")
    failed = await http_aksk.post(BATCH, json=body(["g"], now - timedelta(hours=1), now))
    assert (failed.status_code, failed.json()["details"]["code"]) == (500, "ces.0007")
    assert [r.status for r in cloud.requests if r.operation == "batch_query_metric_data"] == [
        401,
        429,
        500,
    ]


# --- Huawei's own Cloud Eye SDK, unchanged, against the emulator -----------------------------


async def test_huawei_ces_sdk_reads_batch_and_single_metric_data(
    cloud: Cloud, clock: ManualClock, emulator: str
) -> None:
    pytest.importorskip("huaweicloudsdkces", reason="huaweicloudsdkces is a test dependency")
    from huaweicloudsdkces.v1 import (
        BatchListMetricDataRequest,
        BatchListMetricDataRequestBody,
        CesClient,
        MetricInfo,
        MetricsDimension,
        ShowMetricDataRequest,
    )
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig

    now = clock()
    graph = cloud.add_graph(PROJECT, "dev-sdk", created=now - timedelta(hours=2), traffic=1)
    config = HttpConfig.get_default_config()
    config.timeout = (5, 10)
    sdk = (
        CesClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(DEMO_AK, DEMO_SK, PROJECT))
        .with_endpoints([emulator])
        .build()
    )
    batch = BatchListMetricDataRequest(
        body=BatchListMetricDataRequestBody(
            metrics=[
                MetricInfo(
                    namespace="SYS.GES",
                    metric_name="ges004_request_count",
                    dimensions=[MetricsDimension(name="instance_id", value=graph.id)],
                )
            ],
            period="300",
            filter="sum",
            _from=ms(now - timedelta(minutes=30)),
            to=ms(now),
        )
    )
    answer = await asyncio.to_thread(sdk.batch_list_metric_data, batch)
    [metric] = answer.metrics
    assert [p.sum for p in metric.datapoints] == [5.0, 5.0, 5.0, 5.0, 4.0]
    single = ShowMetricDataRequest(
        namespace="SYS.GES",
        metric_name="ges004_request_count",
        dim_0=f"instance_id,{graph.id}",
        filter="max",
        period=300,
        _from=ms(now - timedelta(minutes=30)),
        to=ms(now),
    )
    shown = await asyncio.to_thread(sdk.show_metric_data, single)
    assert shown.metric_name == "ges004_request_count"
    assert {p.max for p in shown.datapoints} == {1.0}
    assert shown.datapoints[0].unit == "count"


async def test_populated_graphs_can_come_with_history_and_traffic_by_environment(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    cloud.populate(PROJECT, 8, history=timedelta(days=2))
    graphs = cloud.list_graphs(PROJECT)
    today = clock().replace(hour=0, minute=0, second=0)
    yesterday = today - timedelta(days=1)
    answer = (
        await http_aksk.post(
            BATCH, json=body([g.id for g in graphs], yesterday, today, period="3600")
        )
    ).json()
    daily = {
        next(g.tags["env"] for g in graphs if g.id == m["dimensions"][0]["value"]): sum(
            p["sum"] for p in m["datapoints"]
        )
        for m in answer["metrics"]
    }
    assert daily["dev"] == 0  # nobody queries dev: what an idle rule is for
    assert daily["test"] == 6 * 60 * 10  # ten office hours a day
    assert daily["prod"] > daily["test"]


@pytest.mark.parametrize(
    ("how", "value"),
    [("sum", 4.0), ("max", 4.0), ("min", 0.0), ("average", 0.8), ("variance", 2.56)],
)
async def test_each_filter_aggregates_the_minutes_of_a_period(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient, how: str, value: float
) -> None:
    now = clock()
    graph = cloud.add_graph(PROJECT, "dev-a", created=now - timedelta(hours=1))
    cloud.set_traffic(PROJECT, graph.id, lambda minute: 4 if minute.minute % 5 == 0 else 0)
    answer = (
        await http_aksk.post(
            BATCH, json=body([graph.id], now - timedelta(minutes=30), now, how=how)
        )
    ).json()
    assert points(answer, how)[0] == (ms(now - timedelta(minutes=30)), pytest.approx(value))
