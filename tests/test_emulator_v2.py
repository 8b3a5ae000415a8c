"""The emulator's GES v2 over real HTTP: its snake_case wire and v2 error shape as raw
answers, the same cloud seen through v1 and v2, and Huawei's own v2 SDK client working
against it unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from daemon.emulator import Cloud, ManualClock
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from tests.conftest import PROJECT


async def test_graphs_and_jobs_are_snake_case_with_the_edition(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    graph = cloud.add_graph(PROJECT, "dev-raw", tags={"env": "dev"})
    cloud.add_graph(PROJECT, "db-raw", size_index="6", edition="Persistence")
    listed = (await http_aksk.get(f"/v2/{PROJECT}/graphs", params={"limit": "1"})).json()
    assert listed["graph_count"] == 2
    assert len(listed["graphs"]) == 1
    first = listed["graphs"][0]
    assert (first["name"], first["product_type"]) == (
        "db-raw",
        "Persistence",
    )  # oldest, then by name
    assert first["graph_size_type_index"] == "6"
    assert not [key for key in first if any(c.isupper() for c in key)]  # no camelCase at all

    stopped = await http_aksk.post(f"/v2/{PROJECT}/graphs/{graph.id}/stop")
    job_id = stopped.json()["job_id"]
    clock.advance(15)
    job = (await http_aksk.get(f"/v2/{PROJECT}/graphs/{graph.id}/jobs/{job_id}/status")).json()
    assert (job["job_id"], job["status"], job["related_graph"]) == (job_id, "success", "dev-raw")
    assert {"job_type", "job_name", "begin_time", "end_time", "fail_reason"} <= set(job)
    jobs = (await http_aksk.get(f"/v2/{PROJECT}/graphs/jobs")).json()
    assert (jobs["job_count"], jobs["job_list"][0]["job_id"]) == (1, job_id)


async def test_errors_have_v2s_shape_and_a_persistence_graph_refuses_a_stop(
    cloud: Cloud, http_aksk: httpx.AsyncClient
) -> None:
    db = cloud.add_graph(PROJECT, "db", size_index="6", edition="Persistence")
    refused = await http_aksk.post(f"/v2/{PROJECT}/graphs/{db.id}/stop", json={})
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "GES.7048"
    assert "Persistence" in refused.json()["error_msg"]
    assert "errorCode" not in refused.json()

    stopped_graph = cloud.add_graph(PROJECT, "dev-stopped", status=900)
    again = await http_aksk.post(f"/v2/{PROJECT}/graphs/{stopped_graph.id}/stop")
    assert again.json() == {"error_code": "GES.7001", "error_msg": "The graph is not running."}
    cloud.inject("list_graphs", 500, "GES.7006", "engine down")  # a fault of the gateway's
    faulty = await http_aksk.get(f"/v2/{PROJECT}/graphs")
    assert (faulty.status_code, faulty.json()["error_code"]) == (500, "GES.7006")
    unknown = await http_aksk.get(f"/v2/{'f' * 32}/graphs")
    assert unknown.json()["error_code"] in ("GES.0016", "APIG.0301")


async def test_v2_needs_the_same_authentication_as_v1(cloud: Cloud, emulator: str) -> None:
    async with httpx.AsyncClient(base_url=emulator) as anonymous:
        answer = await anonymous.get(f"/v2/{PROJECT}/graphs")
    assert (answer.status_code, answer.json()["error_code"]) == (401, "APIG.0301")


async def test_one_cloud_behind_both_versions(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    graph = cloud.add_graph(PROJECT, "dev-both")
    started = await http_aksk.post(f"/v1.0/{PROJECT}/graphs/{graph.id}/action?action_id=stop")
    job_id = started.json()["jobId"]
    shown = (await http_aksk.get(f"/v2/{PROJECT}/graphs/{graph.id}")).json()["graph"]
    assert shown["status"] == "901"  # a stop asked through v1 is seen moving through v2
    clock.advance(15)
    job = (await http_aksk.get(f"/v2/{PROJECT}/graphs/{graph.id}/jobs/{job_id}/status")).json()
    assert job["status"] == "success"


@pytest.mark.parametrize(
    ("v1_action", "v2_path"),
    [("stop", "stop"), ("start", "start")],
)
async def test_v1_and_v2_refuse_the_same_bodies_and_page_alike(
    cloud: Cloud, http_aksk: httpx.AsyncClient, v1_action: str, v2_path: str
) -> None:
    for name in ("a", "b", "c"):
        cloud.add_graph(PROJECT, f"dev-{name}", status=200 if v1_action == "stop" else 900)
    v1 = f"/v1.0/{PROJECT}/graphs"
    v2 = f"/v2/{PROJECT}/graphs"
    paged = {"offset": "1", "limit": "1"}
    one_v1 = (await http_aksk.get(v1, params=paged)).json()
    one_v2 = (await http_aksk.get(v2, params=paged)).json()
    assert (one_v1["graphCount"], one_v2["graph_count"]) == (3, 3)
    assert [g["name"] for g in one_v1["graphs"]] == [g["name"] for g in one_v2["graphs"]]
    assert len(one_v1["graphs"]) == 1
    bad_limit = await http_aksk.get(v2, params={"limit": "x"})
    assert bad_limit.json()["error_code"] == "GES.0001"

    graph_id = one_v1["graphs"][0]["id"]
    for body, code in [
        (b"not json", "GES.7016"),
        (b"[]", "GES.7016"),
        (b'{"other": 1}', "GES.7016"),
    ]:
        old = await http_aksk.post(
            f"{v1}/{graph_id}/action", params={"action_id": v1_action}, content=body
        )
        new = await http_aksk.post(f"{v2}/{graph_id}/{v2_path}", content=body)
        assert (old.status_code, old.json()["errorCode"]) == (400, code)
        assert (new.status_code, new.json()["error_code"]) == (400, code)
    backup = b'{"graph_backup_id": "b-1"}'
    old = await http_aksk.post(
        f"{v1}/{graph_id}/action", params={"action_id": v1_action}, content=backup
    )
    new = await http_aksk.post(f"{v2}/{graph_id}/{v2_path}", content=backup)
    want = "GES.7016" if v1_action == "stop" else "GES.7024"  # a stop takes no field at all
    assert (old.json()["errorCode"], new.json()["error_code"]) == (want, want)


# --- Huawei's own v2 SDK, unchanged, against the emulator ------------------------------------


def _sdk_client(endpoint: str) -> Any:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkges.v2 import GesClient as SdkGesClient

    config = HttpConfig.get_default_config()
    config.timeout = (5, 10)
    return (
        SdkGesClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(DEMO_AK, DEMO_SK, PROJECT))
        .with_endpoints([endpoint])
        .build()
    )


async def test_huawei_v2_sdk_lists_stops_starts_and_follows_jobs(
    cloud: Cloud, clock: ManualClock, emulator: str
) -> None:
    from huaweicloudsdkges.v2 import (
        ListGraphs2Request,
        ListJobs2Request,
        ShowGraph2Request,
        ShowJob2Request,
        StartGraph2Request,
        StartGraphReq,
        StopGraph2Request,
    )

    graph = cloud.add_graph(PROJECT, "dev-sdk2", size_index="2", tags={"env": "dev"})
    cloud.add_graph(PROJECT, "db-sdk2", size_index="6", edition="Persistence")
    sdk = _sdk_client(emulator)

    listed = await asyncio.to_thread(sdk.list_graphs2, ListGraphs2Request(offset=0, limit=10))
    assert listed.graph_count == 2
    by_name = {g.name: g for g in listed.graphs}
    assert by_name["db-sdk2"].product_type == "Persistence"
    assert by_name["dev-sdk2"].product_type == "InMemory"
    assert by_name["dev-sdk2"].graph_size_type_index == "2"
    assert [(t.key, t.value) for t in by_name["dev-sdk2"].tags] == [("env", "dev")]

    stopped = await asyncio.to_thread(sdk.stop_graph2, StopGraph2Request(graph_id=graph.id))
    assert stopped.job_id
    clock.advance(15)
    job = await asyncio.to_thread(
        sdk.show_job2, ShowJob2Request(graph_id=graph.id, job_id=stopped.job_id)
    )
    assert (job.status, job.related_graph) == ("success", "dev-sdk2")
    shown = await asyncio.to_thread(sdk.show_graph2, ShowGraph2Request(graph_id=graph.id))
    assert shown.graph.status == "900"

    started = await asyncio.to_thread(
        sdk.start_graph2, StartGraph2Request(graph_id=graph.id, body=StartGraphReq())
    )
    clock.advance(30)
    jobs = await asyncio.to_thread(sdk.list_jobs2, ListJobs2Request(graph_name="dev-sdk2"))
    assert [(j.job_id, j.status) for j in jobs.job_list] == [
        (started.job_id, "success"),
        (stopped.job_id, "success"),
    ]


async def test_huawei_v2_sdk_reads_the_ges_code_of_a_refused_stop(
    cloud: Cloud, emulator: str
) -> None:
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdkges.v2 import StopGraph2Request

    db = cloud.add_graph(PROJECT, "db", size_index="6", edition="Persistence")
    sdk = _sdk_client(emulator)
    with pytest.raises(ClientRequestException) as caught:
        await asyncio.to_thread(sdk.stop_graph2, StopGraph2Request(graph_id=db.id))
    # v2's error_code/error_msg is the shape the SDK reads first: the GES code is its own,
    # unlike v1's errorMessage, which it does not know.
    assert (caught.value.status_code, caught.value.error_code) == (400, "GES.7048")
    assert caught.value.request_id
