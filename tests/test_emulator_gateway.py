"""The emulator's gateway over real HTTP: signatures and tokens refused as the real one
refuses them, throttles (global and per project, sliding seconds on the emulator's clock),
injected 5xx, and the request log it keeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from daemon.cloud.auth import AkSkAuth
from daemon.cloud.errors import RetryableError
from daemon.cloud.ges import GesClient
from daemon.emulator import Cloud, EmulatorServer, ManualClock
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from tests.conftest import PROJECT

MakeGes = Callable[[httpx.AsyncClient], GesClient]
OTHER = "fedcba9876543210fedcba9876543210"


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
