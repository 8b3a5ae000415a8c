"""Redaction: what an error answer and an error message never carry (credentials, tokens),
and what survives (ids, plain words, good answers)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from daemon.cloud.clients import Clients
from daemon.cloud.errors import ApiError
from daemon.cloud.redaction import RedactingTransport, redact
from daemon.config.loader import parse_config
from daemon.config.settings import Settings
from daemon.telemetry.metrics import Metrics
from tests.loopback import serve

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PASSWORD = "correct-Horse-7"
AK, SK, SECURITY_TOKEN = "HPUAXYZ1234567890ABC", "sk-never-sent", "st-4711-temporary"


def test_ids_and_plain_words_survive_redaction() -> None:
    text = (
        "graph aabbccdd-0000-1111-2222-333344445555 of project 0123456789abcdef0123456789abcdef"
        " is importing; dev-graph-analytics-pipeline-weekly-2026-batch-one; token expired"
    )
    assert redact(text) == text


def test_known_secrets_go_in_every_spelling() -> None:
    secret = 'pa"ss/wo rd'
    text = f"plain {secret}, json {json.dumps(secret)}, url pa%22ss%2Fwo%20rd"
    assert redact(text, [secret]) == 'plain [redacted], json "[redacted]", url [redacted]'


# --- a gateway that echoes the request in its error answers ----------------------------------


async def echo_iam(request: web.Request) -> web.Response:
    body = await request.json()
    password = body["auth"]["identity"]["password"]["user"]["password"]
    return web.json_response(
        {"error": {"code": 401, "message": f"The password {password} is wrong", "echo": body}},
        status=401,
    )


async def echo_ges(request: web.Request) -> web.Response:
    headers = dict(request.headers)
    return web.json_response(
        {
            "error_code": "APIG.0301",
            "error_msg": f"Incorrect authentication for {headers.get('X-Security-Token')}; "
            f"got {json.dumps(headers)}",
        },
        status=401,
    )


@pytest.fixture
async def echoing_gateway() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v3/auth/tokens", echo_iam)
    app.router.add_route("*", "/{tail:.*}", echo_ges)
    async with serve(app) as url:
        yield url


async def never_sleep(seconds: float) -> None:
    raise AssertionError("a refusal is not retried")


@pytest.mark.parametrize("kind", ["password", "aksk"])
async def test_secrets_echoed_by_a_gateway_stay_out_of_errors(
    echoing_gateway: str, kind: str
) -> None:
    credentials = (
        {"user": "graphnap", "password": PASSWORD, "domain": "acme"}
        if kind == "password"
        else {"ak": AK, "sk": SK, "security_token": SECURITY_TOKEN}
    )
    settings = Settings(credentials={"lab": credentials})  # type: ignore[dict-item]
    config = parse_config(
        "projects:\n  - {name: lab, region: cn-north-4, project_id: abc123, credentials: lab,"
        f" endpoints: {{ges: '{echoing_gateway}', iam: '{echoing_gateway}'}}}}\n"
    )
    clients = Clients(
        settings,
        Metrics(CollectorRegistry()),
        clock=lambda: NOW,
        monotonic=lambda: 0.0,  # one request: nothing to pace
        sleep=never_sleep,
    )
    clients.update(config)
    try:
        with pytest.raises(ApiError) as caught:
            await clients.graph_apis()["lab"].list_graphs()
    finally:
        await clients.close()
    message = str(caught.value)
    assert "[redacted]" in message
    for secret in (PASSWORD, AK, SK, SECURITY_TOKEN):
        assert secret not in message


async def test_redaction_leaves_good_answers_and_error_codes_alone() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ok":
            return httpx.Response(200, json={"graphs": [], "secret": "sk-never-sent"})
        return httpx.Response(409, json={"errorCode": "GES.7003", "errorMessage": "sk-never-sent"})

    inner = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with httpx.AsyncClient(
        base_url="http://ges.test", transport=RedactingTransport([SK], inner)
    ) as http:
        ok = await http.get("/ok")
        refused = await http.post("/action")
    assert ok.json() == {"graphs": [], "secret": "sk-never-sent"}  # only errors are rewritten
    assert refused.status_code == 409
    assert refused.json() == {"errorCode": "GES.7003", "errorMessage": "[redacted]"}


async def test_a_huge_error_answer_is_cut_before_it_is_read() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>" + "gateway down " * 500_000)

    inner = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with httpx.AsyncClient(
        base_url="http://ges.test", transport=RedactingTransport([SK], inner)
    ) as http:
        refused = await http.get("/graphs")
    assert refused.status_code == 502
    assert len(refused.content) == 256 * 1024
