"""The GES client on httpx.MockTransport: parsing, error mapping, retry counts and backoff."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from daemon.cloud.errors import (
    AlreadyDoneError,
    AuthError,
    InvalidIdError,
    InvalidResponseError,
    NotFoundError,
    PermanentError,
    RetryableError,
    TransportError,
)
from daemon.cloud.ges import GesClient, Graph
from daemon.config.settings import RetrySettings
from tests.conftest import PROJECT

GRAPH_ID = "aabbccdd-0000-1111-2222-333344445555"
POLICY = RetrySettings(attempts=4, backoff_initial_s=1.0, backoff_max_s=10.0, backoff_jitter_s=0.0)
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Stands in for asyncio.sleep: remembers the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client(handler: Handler, sleep: Recorder | None = None, **kwargs: object) -> GesClient:
    http = httpx.AsyncClient(
        base_url="https://ges.cn-north-4.myhuaweicloud.com", transport=httpx.MockTransport(handler)
    )
    return GesClient(http, PROJECT, retry=POLICY, sleep=sleep or Recorder(), **kwargs)  # type: ignore[arg-type]


def error(status: int, code: str, message: str = "no", *, v1: bool = True) -> httpx.Response:
    body = (
        {"errorCode": code, "errorMessage": message}
        if v1
        else {"error_code": code, "error_msg": message}
    )
    return httpx.Response(status, json=body, headers={"X-Request-Id": "req-1"})


def graph_json(i: int, status: str = "200") -> dict[str, object]:
    return {
        "id": f"g-{i}",
        "name": f"dev-{i}",
        "status": status,
        "graphSizeTypeIndex": "4",
        "replication": 3,
        "tags": [{"key": "env", "value": "dev"}],
        "sys_tags": [],
        "unknownNewField": {"x": 1},
    }


async def test_list_graphs_reads_every_page_and_parses_camel_case() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        offset, limit = int(params["offset"]), int(params["limit"])
        graphs = [graph_json(i) for i in range(offset, min(offset + limit, 5))]
        return httpx.Response(200, json={"graphCount": 5, "graphs": graphs})

    graphs = await client(handler, page_size=2).list_graphs()
    assert [g.id for g in graphs] == [f"g-{i}" for i in range(5)]
    assert [p["offset"] for p in seen] == ["0", "2", "4"]
    first = graphs[0]
    assert isinstance(first, Graph)
    assert (first.status, first.size_index, first.replication) == (200, "4", 3)
    assert first.tags == {"env": "dev"}


async def test_stop_returns_the_job_id_from_a_post_to_the_action_path() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url.path == f"/v1.0/{PROJECT}/graphs/{GRAPH_ID}/action"
        assert request.url.params["action_id"] == "stop"
        assert request.content == b""
        return httpx.Response(200, json={"jobId": "ff00aa"})

    assert await client(handler).stop_graph(GRAPH_ID) == "ff00aa"


async def test_start_sends_the_backup_id_in_snake_case() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"graph_backup_id": "backup-1"}
        return httpx.Response(200, json={"jobId": "ff00ab"})

    assert await client(handler).start_graph(GRAPH_ID, backup_id="backup-1") == "ff00ab"


@pytest.mark.parametrize(
    ("action", "code"),
    [("stop", "GES.7001"), ("stop", "GES.7003"), ("start", "GES.7037")],
)
async def test_action_on_a_graph_already_there_is_already_done_and_not_retried(
    action: str, code: str
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return error(400, code, "The graph is not running.")

    ges = client(handler)
    with pytest.raises(AlreadyDoneError) as caught:
        await (ges.stop_graph(GRAPH_ID) if action == "stop" else ges.start_graph(GRAPH_ID))
    assert caught.value.code == code
    assert calls == 1


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [
        (error(400, "GES.7000"), NotFoundError, "GES.7000"),
        (error(400, "GES.7041"), PermanentError, "GES.7041"),
        (error(401, "APIG.0301", v1=False), AuthError, "APIG.0301"),
        (error(403, "GES.0016"), AuthError, "GES.0016"),
        (httpx.Response(404, text="<html>not found</html>"), NotFoundError, "http_404"),
        (httpx.Response(200, json={"unexpected": True}), InvalidResponseError, "invalid_response"),
        (httpx.Response(200, text="not json"), InvalidResponseError, "invalid_response"),
    ],
)
async def test_permanent_errors_are_mapped_and_never_retried(
    response: httpx.Response, kind: type[Exception], code: str
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return response

    sleep = Recorder()
    with pytest.raises(kind) as caught:
        await client(handler, sleep).show_graph(GRAPH_ID)
    assert getattr(caught.value, "code", None) == code
    assert calls == 1
    assert sleep.delays == []


@pytest.mark.parametrize(
    "failure",
    [
        error(429, "APIG.0308", "The throttling threshold has been reached", v1=False),
        error(500, "GES.7006"),
        httpx.Response(503, text="Service Unavailable"),
        error(400, "GES.7004"),
        error(408, "GES.7005"),
        error(400, "GES.7051"),
    ],
    ids=["429", "500", "503", "7004", "7005", "7051"],
)
async def test_retryable_failures_are_retried_with_growing_backoff_then_succeed(
    failure: httpx.Response,
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return failure if calls < 4 else httpx.Response(200, json={"jobId": "job1"})

    sleep = Recorder()
    assert await client(handler, sleep).stop_graph(GRAPH_ID) == "job1"
    assert calls == 4
    assert sleep.delays == [1.0, 2.0, 4.0]


async def test_retries_stop_after_the_configured_attempts_and_reraise() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return error(500, "GES.7006", "engine internal error")

    sleep = Recorder()
    with pytest.raises(RetryableError) as caught:
        await client(handler, sleep).list_graphs()
    assert calls == POLICY.attempts
    assert len(sleep.delays) == POLICY.attempts - 1
    assert caught.value.code == "GES.7006"
    assert caught.value.request_id == "req-1"


async def test_backoff_is_capped_and_jitter_stays_within_bounds() -> None:
    policy = RetrySettings(
        attempts=8, backoff_initial_s=1.0, backoff_max_s=5.0, backoff_jitter_s=0.5
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    sleep = Recorder()
    http = httpx.AsyncClient(base_url="https://ges.example", transport=httpx.MockTransport(handler))
    with pytest.raises(RetryableError):
        await GesClient(http, PROJECT, retry=policy, sleep=sleep).list_graphs()
    assert len(sleep.delays) == 7
    assert all(0 < d <= 5.0 for d in sleep.delays)
    assert sleep.delays[-1] == 5.0
    assert 1.0 <= sleep.delays[0] <= 1.5


async def test_retry_after_is_a_floor_for_the_backoff() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(
                429,
                json={"error_code": "APIG.0308", "error_msg": "slow down"},
                headers={"Retry-After": "7"},
            )
        return httpx.Response(200, json={"jobId": "j"})

    sleep = Recorder()
    await client(handler, sleep).stop_graph(GRAPH_ID)
    assert sleep.delays == [7.0]


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
async def test_network_failures_become_transport_errors_and_are_retried(exc: Exception) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise exc

    with pytest.raises(TransportError) as caught:
        await client(handler).job_status(GRAPH_ID, "abc123")
    assert calls == POLICY.attempts
    assert caught.value.code in ("timeout", "connection")


async def test_error_bodies_are_cut_short_before_they_reach_a_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return error(400, "GES.7016", "x" * 5000)

    with pytest.raises(PermanentError) as caught:
        await client(handler).show_graph(GRAPH_ID)
    assert len(str(caught.value)) < 450


@pytest.mark.parametrize("bad", ["../other", "a/b", "%2e%2e", "", "x" * 65, "g?x=1"])
async def test_ids_that_could_change_the_url_are_refused_before_any_request(bad: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    ges = client(handler)
    with pytest.raises(InvalidIdError, match="invalid"):
        await ges.stop_graph(bad)
    with pytest.raises(InvalidIdError, match="invalid"):
        await ges.job_status(GRAPH_ID, bad)
    with pytest.raises(InvalidIdError, match="invalid project id"):
        GesClient(httpx.AsyncClient(), "../../etc", sleep=Recorder())


async def test_list_jobs_sends_the_task_center_filters() -> None:
    from datetime import date

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/v1.0/{PROJECT}/graphs/jobs"
        params = dict(request.url.params)
        assert params["status"] == "running"
        assert params["startTime"] == "2026-11-20"
        job = {"jobId": "j1", "status": "running", "jobName": "StopGraph", "relatedGraph": "dev-1"}
        return httpx.Response(200, json={"jobCount": 1, "jobList": [job]})

    jobs = await client(handler).list_jobs(status="running", since=date(2026, 11, 20))
    assert [(j.id, j.graph_name, j.is_terminal) for j in jobs] == [("j1", "dev-1", False)]


async def test_every_request_including_retries_passes_the_project_rate_limiter() -> None:
    class CountingLimiter:
        def __init__(self) -> None:
            self.entered = 0
            self.inside = False

        async def __aenter__(self) -> None:
            self.entered += 1
            self.inside = True

        async def __aexit__(self, *exc: object) -> None:
            self.inside = False

    limiter = CountingLimiter()
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        assert limiter.inside, "a request went out without a rate-limit slot"
        return httpx.Response(503) if calls == 1 else httpx.Response(200, json={"jobId": "j"})

    await client(handler, limiter=limiter).stop_graph(GRAPH_ID)
    assert (calls, limiter.entered) == (2, 2)


async def test_a_listing_that_ignores_the_offset_ends_with_an_error_not_forever() -> None:
    requests = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        page = [graph_json(i) for i in range(3)]  # the same first page, whatever the offset
        return httpx.Response(200, json={"graphCount": 90_000, "graphs": page})

    with pytest.raises(InvalidResponseError, match="repeats an earlier page") as caught:
        await client(handler).list_graphs()
    assert requests == 2
    assert caught.value.code == "invalid_paging"


async def test_a_listing_claiming_millions_of_graphs_is_refused_at_once() -> None:
    requests = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        offset = int(request.url.params["offset"])
        page = [graph_json(offset + i) for i in range(3)]
        return httpx.Response(200, json={"graphCount": 5_000_000, "graphs": page})

    with pytest.raises(InvalidResponseError, match="GES reports 5000000 items"):
        await client(handler).list_graphs()
    assert requests == 1


async def test_task_center_paging_is_guarded_too() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        job = {"jobId": "j1", "status": "running", "relatedGraph": "dev-1"}
        return httpx.Response(200, json={"jobCount": 500, "jobList": [job]})

    with pytest.raises(InvalidResponseError, match="repeats an earlier page"):
        await client(handler).list_jobs(status="running")


async def test_pages_step_by_what_ges_serves_and_every_graph_comes_once() -> None:
    total, served = 23, 7  # asked for 100 a page, GES gives 7

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        page = [graph_json(i) for i in range(offset, min(offset + served, total))]
        return httpx.Response(200, json={"graphCount": total, "graphs": page})

    pages: list[list[str]] = []
    graphs = await client(handler).list_graphs(lambda page: pages.append([g.id for g in page]))
    assert [g.id for g in graphs] == [f"g-{i}" for i in range(total)]
    # Each page handed over as it came (a firing acts on it at once), in GES's pages
    assert sorted(pages) == sorted(
        [f"g-{i}" for i in range(o, min(o + 7, total))] for o in range(0, total, 7)
    )


async def test_a_failed_page_ends_the_listing_and_no_page_is_handed_over_after_it() -> None:
    """Pages after the second go side by side; when one fails, the others are cancelled: a
    page arriving after the listing failed would be acted on by a firing that already
    counts the project as failed (and lists it again in its next round)."""
    total, served = 8, 2
    cancelled: list[int] = []
    never = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        if offset == 4:
            return error(400, "GES.0001", "boom")
        if offset == 6:
            try:
                await never.wait()  # still on its way when offset 4 fails
            except asyncio.CancelledError:
                cancelled.append(offset)
                raise
        page = [graph_json(i) for i in range(offset, min(offset + served, total))]
        return httpx.Response(200, json={"graphCount": total, "graphs": page})

    handed: list[str] = []
    with pytest.raises(PermanentError, match="boom"):
        await client(handler).list_graphs(lambda page: handed.extend(g.id for g in page))
    assert cancelled == [6]  # ended before list_graphs raised, not left running
    assert handed == ["g-0", "g-1", "g-2", "g-3"]


async def test_a_page_shifted_by_a_deletion_repeats_one_graph_and_is_taken_once() -> None:
    served = 3
    ids = [f"g-{i}" for i in range(9)]

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        # g-2 is deleted after the first page was read: later pages shift back by one
        live = ids if offset == 0 else [i for i in ids if i != "g-2"]
        page = [graph_json(int(i[2:])) for i in live[offset : offset + served]]
        return httpx.Response(200, json={"graphCount": len(live), "graphs": page})

    handed: list[str] = []
    graphs = await client(handler).list_graphs(lambda page: handed.extend(g.id for g in page))
    # No error and no graph twice; g-3 slid into a page already read: offset paging cannot
    # see it until the next listing (the next pass).
    assert [g.id for g in graphs] == ["g-0", "g-1", "g-2", "g-4", "g-5", "g-6", "g-7", "g-8"]
    assert sorted(handed) == [g.id for g in graphs]  # the repeated one is handed over once


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([{"key": "env", "value": "dev"}, {"key": "team"}], {"env": "dev", "team": ""}),
        (["env=dev", "owner=a=b", "bare"], {"env": "dev", "owner": "a=b", "bare": ""}),
        ([{"key": "env", "value": "dev"}, "team=t1"], {"env": "dev", "team": "t1"}),
        (None, {}),
        ([], {}),
    ],
)
async def test_tags_are_read_in_every_shape_v1_sends(
    tags: object, expected: dict[str, str]
) -> None:
    """{"key", "value"} objects, "k=v" strings, a mix, null: one dict of tags."""

    def handler(request: httpx.Request) -> httpx.Response:
        graph = {**graph_json(0), "tags": tags}
        return httpx.Response(200, json={"graphCount": 1, "graphs": [graph]})

    (graph,) = await client(handler).list_graphs()
    assert graph.tags == expected


@pytest.mark.parametrize("tags", [{"env": "dev"}, [{"value": "dev"}], [7]])
async def test_tags_of_another_shape_refuse_the_page(tags: object) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        graph = {**graph_json(0), "tags": tags}
        return httpx.Response(200, json={"graphCount": 1, "graphs": [graph]})

    with pytest.raises(InvalidResponseError):
        await client(handler).list_graphs()


async def test_a_field_graphnap_does_not_read_never_refuses_a_page() -> None:
    """Only the fields graphnap reads are validated: GES's `created`, `createdBy`,
    `sys_tags` and the like may come in any shape."""

    def handler(request: httpx.Request) -> httpx.Response:
        graph = {**graph_json(0), "created": 17, "createdBy": None, "sys_tags": "none"}
        return httpx.Response(200, json={"graphCount": 1, "graphs": [graph]})

    (graph,) = await client(handler).list_graphs()
    assert (graph.id, graph.tags) == ("g-0", {"env": "dev"})
