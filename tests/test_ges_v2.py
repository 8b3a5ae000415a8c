"""The GES v2 client: its exact wire on httpx.MockTransport (paths, bodies, snake_case
queries and answers), then stop, start and jobs over real HTTP against the emulator."""

from __future__ import annotations

import json
from datetime import date

import httpx
import pytest

from daemon.cloud.errors import AlreadyDoneError, NotFoundError, PermanentError, RetryableError
from daemon.cloud.ges_v2 import GesV2Client
from daemon.config.settings import RetrySettings
from daemon.emulator import Cloud, ManualClock
from tests.conftest import FAST_RETRY, PROJECT

GRAPH_ID = "aabbccdd-0000-1111-2222-333344445555"
NO_RETRY = RetrySettings(attempts=1)


async def _nothing(seconds: float) -> None:
    return None


def _client(handler: httpx.MockTransport | None, seen: list[httpx.Request]) -> GesV2Client:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    http = httpx.AsyncClient(
        base_url="https://ges.cn-north-4.myhuaweicloud.com",
        transport=handler or httpx.MockTransport(record),
    )
    return GesV2Client(http, PROJECT, retry=NO_RETRY, sleep=_nothing, page_size=2)


def answer(request: httpx.Request) -> httpx.Response:
    """A v2 GES in snake_case only: a client reading camelCase would find nothing here."""
    path = request.url.path
    if path.endswith("/graphs"):
        offset = int(request.url.params["offset"])
        graphs = [
            {"id": "g-1", "name": "dev-a", "status": "200", "product_type": "InMemory",
             "graph_size_type_index": "4", "replication": 3,
             "tags": [{"key": "env", "value": "dev"}], "updated": "2026-03-01 08:00:00"},
            {"id": "g-2", "name": "db-b", "status": "200", "product_type": "Persistence"},
            {"id": "g-3", "name": "dev-c", "status": "210"},
        ]  # fmt: skip
        return httpx.Response(200, json={"graph_count": 3, "graphs": graphs[offset : offset + 2]})
    if path.endswith(("/stop", "/start")):
        return httpx.Response(200, json={"job_id": "job-1"})
    if path.endswith("/status"):
        job = {"job_id": "job-1", "status": "failed", "related_graph": "dev-a",
               "begin_time": "2026-03-01T08:00:00", "fail_reason": "ECS quota exceeded"}  # fmt: skip
        return httpx.Response(200, json=job)
    if path.endswith("/jobs"):
        jobs = [{"job_id": "job-1", "status": "running", "related_graph": "dev-a"}]
        return httpx.Response(200, json={"job_count": 1, "job_list": jobs})
    return httpx.Response(404, json={"error_code": "APIG.0101", "error_msg": "no such API"})


async def test_lists_every_page_in_snake_case_with_each_graphs_edition() -> None:
    seen: list[httpx.Request] = []
    graphs = await _client(None, seen).list_graphs()
    assert [(g.name, g.edition) for g in graphs] == [
        ("dev-a", "InMemory"),
        ("db-b", "Persistence"),
        ("dev-c", None),  # a v2 answer without product_type says nothing of the edition
    ]
    first = graphs[0]
    assert (first.size_index, first.replication, first.tags) == ("4", 3, {"env": "dev"})
    assert first.updated is not None
    assert first.updated.hour == 8
    assert [g.is_database_edition for g in graphs] == [False, True, False]
    assert graphs[2].status == 210  # adding replicas: a status only v2 lists
    assert {r.url.path for r in seen} == {f"/v2/{PROJECT}/graphs"}


async def test_stop_and_start_post_to_their_own_paths_without_query_or_stop_body() -> None:
    seen: list[httpx.Request] = []
    ges = _client(None, seen)
    assert await ges.stop_graph(GRAPH_ID) == "job-1"
    assert await ges.start_graph(GRAPH_ID) == "job-1"
    stop, start = seen
    assert (stop.method, stop.url.path, stop.url.query) == (
        "POST",
        f"/v2/{PROJECT}/graphs/{GRAPH_ID}/stop",
        b"",
    )
    assert stop.content == b""  # as Huawei's SDK sends it
    assert start.url.path == f"/v2/{PROJECT}/graphs/{GRAPH_ID}/start"


async def test_a_failed_job_carries_its_fail_reason_and_the_task_center_uses_snake_case() -> None:
    seen: list[httpx.Request] = []
    ges = _client(None, seen)
    job = await ges.job_status(GRAPH_ID, "job-1")
    assert (job.state, job.is_failed, job.fail_reason) == ("failed", True, "ECS quota exceeded")
    assert job.graph_name == "dev-a"
    jobs = await ges.list_jobs(status="running", since=date(2026, 3, 1), until=date(2026, 3, 2))
    assert [(j.id, j.state) for j in jobs] == [("job-1", "running")]
    params = seen[-1].url.params
    assert (params["start_time"], params["end_time"]) == ("2026-03-01", "2026-03-02")
    assert "startTime" not in params


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "GES.7001", AlreadyDoneError),  # stop on a graph that is not running
        (400, "GES.7048", PermanentError),  # a Persistence graph refuses a stop
        (400, "GES.7000", NotFoundError),
        (400, "GES.7006", RetryableError),
        (429, "APIG.0308", RetryableError),
    ],
)
async def test_v2_error_bodies_map_into_the_same_vocabulary_as_v1(
    status: int, code: str, error: type[Exception]
) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(status, json={"error_code": code, "error_msg": "refused"})
    )
    with pytest.raises(error) as caught:
        await _client(transport, []).stop_graph(GRAPH_ID)
    assert getattr(caught.value, "code", None) == code
    assert "refused" in str(caught.value)


async def test_an_answer_in_v1_shape_is_refused_as_invalid_not_taken_for_an_empty_list() -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, json={"graphCount": 1, "graphs": []})
    )
    with pytest.raises(PermanentError) as caught:
        await _client(transport, []).list_graphs()
    assert "graph_count" in str(caught.value)


# --- over real HTTP, against the emulator's v2 -------------------------------------------


async def test_stop_then_start_follows_jobs_on_the_emulator_clock(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    graph = cloud.add_graph(PROJECT, "dev-v2", tags={"env": "dev"})
    ges = GesV2Client(http_aksk, PROJECT, retry=FAST_RETRY, sleep=clock.sleep, page_size=7)

    job_id = await ges.stop_graph(graph.id)
    assert (await ges.show_graph(graph.id)).status == 901
    clock.advance(15)
    assert (await ges.job_status(graph.id, job_id)).state == "success"
    assert (await ges.show_graph(graph.id)).status == 900
    with pytest.raises(AlreadyDoneError):
        await ges.stop_graph(graph.id)

    start_job = await ges.start_graph(graph.id)
    clock.advance(30)
    assert (await ges.job_status(graph.id, start_job)).state == "success"
    assert (await ges.show_graph(graph.id)).status == 200
    assert [j.id for j in await ges.list_jobs(graph_name="dev-v2")] == [start_job, job_id]
    assert all(r.path.startswith("/v2/") for r in cloud.requests)


async def test_the_emulator_reports_editions_and_refuses_to_stop_a_persistence_graph(
    cloud: Cloud, clock: ManualClock, http_token: httpx.AsyncClient
) -> None:
    db = cloud.add_graph(PROJECT, "db-graph", size_index="6", edition="Persistence")
    cloud.populate(PROJECT, 9)
    ges = GesV2Client(http_token, PROJECT, retry=FAST_RETRY, sleep=clock.sleep, page_size=4)
    graphs = {g.id: g for g in await ges.list_graphs()}
    assert len(graphs) == 10
    assert [g.name for g in graphs.values() if g.is_database_edition] == ["db-graph"]
    with pytest.raises(PermanentError) as caught:
        await ges.stop_graph(db.id)
    assert not isinstance(caught.value, AlreadyDoneError)
    assert caught.value.code == "GES.7048"
    assert (await ges.show_graph(db.id)).status == 200


async def test_a_failed_job_on_the_emulator_reports_its_reason(
    cloud: Cloud, clock: ManualClock, http_aksk: httpx.AsyncClient
) -> None:
    graph = cloud.add_graph(PROJECT, "test-v2")
    cloud.faults.failing_jobs = 1
    ges = GesV2Client(http_aksk, PROJECT, retry=FAST_RETRY, sleep=clock.sleep)
    job_id = await ges.stop_graph(graph.id)
    clock.advance(15)
    job = await ges.job_status(graph.id, job_id)
    assert job.is_failed
    assert job.fail_reason == "emulated failure: ECS operation timed out"
    body = json.dumps([j.fail_reason for j in await ges.list_jobs(status="failed")])
    assert "ECS operation timed out" in body


# --- the config's choice ------------------------------------------------------------------

_PROJECT_YAML = f"""
projects:
  - name: lab
    region: cn-north-4
    project_id: {PROJECT}
    credentials: lab
"""


def test_ges_api_defaults_to_v1_and_anything_but_v1_or_v2_is_refused_where_it_stands() -> None:
    from daemon.config.loader import parse_config
    from daemon.config.problems import ConfigError

    assert parse_config(_PROJECT_YAML).projects[0].ges_api == "v1"
    assert parse_config(_PROJECT_YAML + "    ges_api: v2\n").projects[0].ges_api == "v2"
    with pytest.raises(ConfigError) as caught:
        parse_config(_PROJECT_YAML + "    ges_api: v2.0\n", "graphnap.yaml")
    text = str(caught.value)
    assert "projects[0].ges_api" in text
    assert "v1" in text
    assert "v2" in text
