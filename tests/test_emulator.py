"""The emulator over real HTTP: our client with both auth methods, the gateway's refusals,
state transitions on its clock, faults, and Huawei's own SDK working against it unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from daemon.cloud.auth import AkSkAuth
from daemon.cloud.errors import AlreadyDoneError, RetryableError
from daemon.cloud.ges import GesClient
from daemon.emulator import Cloud, EmulatorServer, ManualClock
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from tests.conftest import PROJECT

MakeGes = Callable[[httpx.AsyncClient], GesClient]


@pytest.fixture(params=["aksk", "token"])
def http(request: pytest.FixtureRequest) -> httpx.AsyncClient:
    return request.getfixturevalue(f"http_{request.param}")  # type: ignore[no-any-return]


async def test_stop_then_start_follows_jobs_and_statuses_on_the_emulator_clock(
    cloud: Cloud, clock: ManualClock, http: httpx.AsyncClient, ges_factory: MakeGes
) -> None:
    graph = cloud.add_graph(PROJECT, "dev-recsys", tags={"env": "dev"})
    ges = ges_factory(http)

    job_id = await ges.stop_graph(graph.id)
    assert (await ges.show_graph(graph.id)).status == 901
    assert (await ges.job_status(graph.id, job_id)).state == "pending"
    clock.advance(3)
    assert (await ges.job_status(graph.id, job_id)).state == "running"
    clock.advance(10)
    job = await ges.job_status(graph.id, job_id)
    assert (job.state, job.graph_name) == ("success", "dev-recsys")
    assert (await ges.show_graph(graph.id)).status == 900

    with pytest.raises(AlreadyDoneError) as caught:
        await ges.stop_graph(graph.id)
    assert caught.value.code == "GES.7001"

    start_job = await ges.start_graph(graph.id)
    assert (await ges.show_graph(graph.id)).status == 920
    clock.advance(30)
    assert (await ges.job_status(graph.id, start_job)).state == "success"
    assert (await ges.show_graph(graph.id)).status == 200


async def test_list_graphs_pages_and_list_jobs_reports_the_task_center(
    cloud: Cloud, http: httpx.AsyncClient, ges_factory: MakeGes
) -> None:
    cloud.populate(PROJECT, 23, busy=3, stopped=4)
    ges = ges_factory(http)  # page size 7: four pages
    graphs = await ges.list_graphs()
    assert len(graphs) == 23
    assert len({g.id for g in graphs}) == 23
    assert sum(g.status == 900 for g in graphs) == 4
    assert sum(g.status in (202, 204, 205) for g in graphs) == 3
    running = [g for g in graphs if g.status == 200]
    for graph in running[:9]:
        await ges.stop_graph(graph.id)
    jobs = await ges.list_jobs()
    assert len(jobs) == 9
    assert {j.graph_name for j in jobs} == {g.name for g in running[:9]}
    assert await ges.list_jobs(status="success") == []


async def test_a_failed_job_reports_its_reason_and_the_graph_keeps_running(
    cloud: Cloud, clock: ManualClock, http: httpx.AsyncClient, ges_factory: MakeGes
) -> None:
    graph = cloud.add_graph(PROJECT, "test-fraud")
    cloud.faults.failing_jobs = 1
    ges = ges_factory(http)
    job_id = await ges.stop_graph(graph.id)
    clock.advance(60)
    job = await ges.job_status(graph.id, job_id)
    assert job.state == "failed"
    assert job.fail_reason
    assert (await ges.show_graph(graph.id)).status == 200


async def test_throttling_and_5xx_from_the_emulator_are_retried_to_success(
    cloud: Cloud, http_aksk: httpx.AsyncClient, ges_factory: MakeGes
) -> None:
    graph = cloud.add_graph(PROJECT, "dev-a")
    cloud.inject("graph_action", 429, "APIG.0308", "over ratelimit", times=2)
    cloud.inject("graph_action", 500, "GES.7006", times=1)
    ges = ges_factory(http_aksk)
    assert await ges.stop_graph(graph.id)
    assert [r.status for r in cloud.requests if r.operation == "graph_action"] == [
        429,
        429,
        500,
        200,
    ]


async def test_rate_throttling_is_lifted_as_the_clock_moves(
    cloud: Cloud, http_aksk: httpx.AsyncClient, ges_factory: MakeGes
) -> None:
    cloud.add_graph(PROJECT, "dev-a")
    cloud.faults.throttle_rps = 2
    ges = ges_factory(http_aksk)  # its retry sleep advances the emulator's clock
    results = [await ges.list_graphs() for _ in range(5)]
    assert all(len(r) == 1 for r in results)
    assert any(r.status == 429 for r in cloud.requests)


async def test_persistent_5xx_surfaces_as_retryable_error_after_the_last_attempt(
    cloud: Cloud, http_aksk: httpx.AsyncClient, ges_factory: MakeGes
) -> None:
    cloud.inject("*", 503, "APIG.1009", "down", times=100)
    with pytest.raises(RetryableError) as caught:
        await ges_factory(http_aksk).list_graphs()
    assert caught.value.status == 503
    assert cloud.count("list_graphs") == 4


async def _raw(
    emulator: str, headers: dict[str, str], path: str = f"/v1.0/{PROJECT}/graphs"
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=emulator) as http:
        return await http.get(path, headers=headers)


def _signed_headers(
    emulator: str, *, sk: str = DEMO_SK, when: datetime | None = None
) -> dict[str, str]:
    auth = AkSkAuth(
        SecretStr(DEMO_AK),
        SecretStr(sk),
        project_id=PROJECT,
        clock=lambda: when or datetime.now(UTC),
    )
    request = httpx.Request(
        "GET", f"{emulator}/v1.0/{PROJECT}/graphs", headers={"Content-Type": "application/json"}
    )
    auth.sign(request)
    return dict(request.headers)


async def test_gateway_accepts_a_good_signature(emulator: str) -> None:
    assert (await _raw(emulator, _signed_headers(emulator))).status_code == 200


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (lambda h, e: _signed_headers(e, sk="not-the-secret"), "APIG.0301"),
        (lambda h, e: {k: v for k, v in h.items() if k.lower() != "x-project-id"}, "APIG.0301"),
        (lambda h, e: {k: v for k, v in h.items() if k.lower() != "authorization"}, "APIG.0301"),
        (lambda h, e: {**h, "X-Sdk-Date": "20200101T000000Z"}, "APIGW.0303"),
        (
            lambda h, e: _signed_headers(e, when=datetime.now(UTC) - timedelta(minutes=16)),
            "APIGW.0303",
        ),
        (lambda h, e: {**h, "Authorization": "Basic abc"}, "APIG.0301"),
        (lambda h, e: {"X-Auth-Token": "MIInot-a-token"}, "APIG.0301"),
    ],
    ids=[
        "wrong-sk",
        "missing-signed-header",
        "no-auth",
        "date-tampered",
        "16-min-skew",
        "malformed",
        "bad-token",
    ],
)
async def test_gateway_refuses_bad_credentials_with_401(
    emulator: str, tamper: Callable[[dict[str, str], str], dict[str, str]], code: str
) -> None:
    response = await _raw(emulator, tamper(_signed_headers(emulator), emulator))
    assert response.status_code == 401
    assert response.json()["error_code"] == code


async def test_a_token_for_another_project_is_refused(emulator: str, cloud: Cloud) -> None:
    token = cloud.issue_token("emulator", "graphnap", "emulator-password", PROJECT)
    response = await _raw(
        emulator, {"X-Auth-Token": token.value}, "/v1.0/ffffffffffffffffffffffffffffffff/graphs"
    )
    assert response.status_code == 400
    assert response.json()["errorCode"] == "GES.0016"


# --- Huawei's own SDK, unchanged, against the emulator ------------------------------------


def _sdk_client(endpoint: str):  # type: ignore[no-untyped-def]
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkges.v1 import GesClient as SdkGesClient

    config = HttpConfig.get_default_config()
    config.timeout = (5, 10)
    credentials = BasicCredentials(DEMO_AK, DEMO_SK, PROJECT)
    return (
        SdkGesClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoints([endpoint])
        .build()
    )


async def test_huawei_sdk_lists_stops_and_follows_a_job(
    cloud: Cloud, clock: ManualClock, emulator: str
) -> None:
    from huaweicloudsdkges.v1 import (
        ListGraphsRequest,
        ListJobsRequest,
        ShowJobRequest,
        StopGraphRequest,
    )

    graph = cloud.add_graph(PROJECT, "dev-sdk", size_index="2", tags={"env": "dev"})
    cloud.add_graph(PROJECT, "prod-sdk")
    sdk = _sdk_client(emulator)

    listed = await asyncio.to_thread(sdk.list_graphs, ListGraphsRequest(offset=0, limit=10))
    assert listed.graph_count == 2
    assert {g.name for g in listed.graphs} == {"dev-sdk", "prod-sdk"}
    assert next(g for g in listed.graphs if g.name == "dev-sdk").graph_size_type_index == "2"

    stopped = await asyncio.to_thread(
        sdk.stop_graph, StopGraphRequest(graph_id=graph.id, action_id="stop")
    )
    assert stopped.job_id
    clock.advance(30)
    job = await asyncio.to_thread(
        sdk.show_job, ShowJobRequest(graph_id=graph.id, job_id=stopped.job_id)
    )
    assert (job.status, job.related_graph) == ("success", "dev-sdk")
    jobs = await asyncio.to_thread(sdk.list_jobs, ListJobsRequest())
    assert [j.job_id for j in jobs.job_list] == [stopped.job_id]


async def test_huawei_sdk_sees_ges_and_gateway_errors_as_its_own_exceptions(
    cloud: Cloud, emulator: str
) -> None:
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdkges.v1 import ListGraphsRequest, StopGraphRequest

    graph = cloud.add_graph(PROJECT, "dev-stopped", status=900)
    sdk = _sdk_client(emulator)
    with pytest.raises(ClientRequestException) as caught:
        await asyncio.to_thread(
            sdk.stop_graph, StopGraphRequest(graph_id=graph.id, action_id="stop")
        )
    assert caught.value.status_code == 400
    # GES v1 says errorCode/errorMessage; the SDK looks for errorMsg, so its error_code falls
    # back to the HTTP status and the GES code is in error_msg. Real GES behaves the same.
    assert "GES.7001" in caught.value.error_msg
    assert caught.value.request_id

    cloud.inject("list_graphs", 429, "APIG.0308", "over ratelimit")
    with pytest.raises(ClientRequestException) as throttled:
        await asyncio.to_thread(sdk.list_graphs, ListGraphsRequest())
    # The SDK's urllib3 layer turns a 429 into its own "too many 429 error responses".
    assert (throttled.value.status_code, throttled.value.error_code) == (429, "429")


# --- built for benchmarks: per-project throttle, request log, work per request ---------------

OTHER = "fedcba9876543210fedcba9876543210"


async def test_a_per_project_throttle_refuses_one_project_and_lets_the_other_through(
    clock: ManualClock,
) -> None:
    cloud = Cloud([PROJECT, OTHER], clock=clock, users={("d", "u"): "p"})
    cloud.faults.throttle_rps_per_project = {PROJECT: 2}
    tokens = {pid: cloud.issue_token("d", "u", "p", pid).value for pid in (PROJECT, OTHER)}
    async with EmulatorServer(cloud) as server, httpx.AsyncClient(base_url=server.url) as http:

        async def get(pid: str) -> int:
            headers = {"X-Auth-Token": tokens[pid]}
            return (await http.get(f"/v1.0/{pid}/graphs", headers=headers)).status_code

        assert [await get(PROJECT) for _ in range(3)] == [200, 200, 429]
        assert [await get(OTHER) for _ in range(5)] == [200] * 5  # no limit of its own
        clock.advance(0.5)
        assert await get(PROJECT) == 429  # a sliding second: both still inside it
        clock.advance(0.5)
        assert await get(PROJECT) == 200

        # one number for every project; the gateway's own limit still applies on top
        cloud.faults.throttle_rps_per_project = 1
        cloud.faults.throttle_rps = 3
        clock.advance(1)
        assert [await get(PROJECT), await get(PROJECT)] == [200, 429]
        assert [await get(OTHER), await get(OTHER)] == [200, 429]
        clock.advance(1)
        cloud.faults.throttle_rps_per_project = None
        assert [await get(OTHER) for _ in range(4)] == [200, 200, 200, 429]
    refused = [r for r in cloud.requests if r.status == 429]
    assert {r.project_id for r in refused} == {PROJECT, OTHER}
    assert all(r.operation == "list_graphs" for r in refused)


async def test_the_request_log_has_times_projects_graphs_and_running_counts(
    cloud: Cloud, http_aksk: httpx.AsyncClient, ges_factory: MakeGes, emulator: str
) -> None:
    a, b = cloud.add_graph(PROJECT, "dev-a"), cloud.add_graph(PROJECT, "dev-b")
    ges = ges_factory(http_aksk)
    job_id = await ges.stop_graph(a.id)
    await ges.job_status(a.id, job_id)
    await ges.show_graph(b.id)
    await ges.list_graphs()

    assert cloud.count("graph_action") == 1
    assert cloud.count("graph_action", graph_id=a.id) == 1
    assert cloud.count("graph_action", graph_id=b.id) == 0
    assert cloud.log.per_graph == {a.id: 2, b.id: 1}
    action = cloud.requests[0]
    assert (action.operation, action.project_id, action.graph_id) == (
        "graph_action",
        PROJECT,
        a.id,
    )
    assert all(0 < r.arrived_s <= r.answered_s for r in cloud.requests)
    assert cloud.requests[-1].graph_id == ""  # a listing names no graph

    async with httpx.AsyncClient(base_url=emulator) as control:
        log = (await control.get("/_emulator/requests", params={"since": 2})).json()
        assert log["next"] == 4
        assert [row[:5] for row in log["requests"]] == [
            ["GET", "show_graph", 200, PROJECT, b.id],
            ["GET", "list_graphs", 200, PROJECT, ""],
        ]
        assert (await control.post("/_emulator/reset")).json() == {"ok": True}
        assert (await control.get("/_emulator/requests")).json()["requests"] == []
    assert cloud.count("graph_action") == 0
    assert cloud.graph(PROJECT, a.id).status == 200
    assert cloud.list_jobs(PROJECT, status=None, graph_name=None, since=None, until=None) == []


async def test_the_per_project_throttle_is_set_at_run_time(cloud: Cloud, emulator: str) -> None:
    async with httpx.AsyncClient(base_url=emulator) as control:
        answer = await control.post(
            "/_emulator/faults", json={"throttle_rps_per_project": {PROJECT: 20}}
        )
    assert answer.status_code == 200
    assert cloud.faults.throttle_rps_per_project == {PROJECT: 20}


def test_transitions_end_in_order_and_the_task_center_filters_by_index(
    cloud: Cloud, clock: ManualClock
) -> None:
    graphs = [cloud.add_graph(PROJECT, f"dev-{i}") for i in range(4)]
    jobs = []
    for graph in graphs:  # each a second after the other: ends 12 s later each
        jobs.append(cloud.act(PROJECT, graph.id, "stop"))
        clock.advance(1)

    def listed(status: str | None = None, name: str | None = None) -> list[str]:
        found = cloud.list_jobs(PROJECT, status=status, graph_name=name, since=None, until=None)
        return [j.id for j in found]

    assert listed() == [j.id for j in reversed(jobs)]
    assert listed("waiting") == [jobs[3].id]  # pending 2 s: only the last has not begun
    clock.advance(12 - 4 + 1.5)  # the first two have ended, the others not
    assert [g.status for g in cloud.list_graphs(PROJECT)] == [900, 900, 901, 901]
    assert listed("running") == [jobs[3].id, jobs[2].id]
    assert listed("success") == [jobs[1].id, jobs[0].id]
    assert listed(name="dev-2") == [jobs[2].id]
    restart = cloud.act(PROJECT, graphs[0].id, "start")
    assert listed(name="dev-0") == [restart.id, jobs[0].id]
    clock.advance(60)
    assert [g.status for g in cloud.list_graphs(PROJECT)] == [200, 900, 900, 900]
    assert listed("running") == []

    late = cloud.add_graph(PROJECT, "dev-late")  # the cached listing order learns of it
    assert cloud.list_graphs(PROJECT)[-1] is late
