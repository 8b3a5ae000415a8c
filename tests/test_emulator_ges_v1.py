"""The emulator's GES v1 API over real HTTP: our client with both auth methods, state
transitions on its clock, failed jobs, and Huawei's own SDK working against it unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from daemon.cloud.errors import AlreadyDoneError
from daemon.cloud.ges import GesClient
from daemon.emulator import Cloud, ManualClock
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
