"""The shared API layer: what an error says, and what it never says (secrets, URLs)."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from daemon.cloud.api import ApiError, RedactingTransport, redact, transport_error
from daemon.cloud.clients import Clients
from daemon.config.loader import parse_config
from daemon.config.settings import Settings
from daemon.telemetry.metrics import Metrics

IAM_TOKEN = "MIIEhgYJKoZIhvcNAQcCoIIEdzCCBHMCAQExDTALBglghkgBZQMEAgEwggLXBgkqhkiG9w0B" * 4
PASSWORD = "correct-Horse-7"
AK, SK, SECURITY_TOKEN = "HPUAXYZ1234567890ABC", "sk-never-sent", "st-4711-temporary"


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ('{"user": {"name": "u", "password": "p4ss word!"}}', "p4ss word!"),
        ("X-Auth-Token: " + IAM_TOKEN, IAM_TOKEN[:20]),
        ("x-subject-token=" + IAM_TOKEN, IAM_TOKEN[:20]),
        ("access_key_id=HPUAXYZ1234567890ABC&SignedHeaders=host", "HPUAXYZ1234567890ABC"),
        ("echo: " + IAM_TOKEN + " end", IAM_TOKEN[:20]),
        ("sig 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978", "0f1e2d3c4b5a6978"),
        ("'security_token': 'abc-123'", "abc-123"),
    ],
)
def test_an_api_error_never_carries_what_looks_like_a_credential(text: str, gone: str) -> None:
    error = ApiError(f"refused: {text}", service="iam", operation="create_token", status=401)
    assert gone not in str(error)
    assert "[redacted]" in str(error)


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
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


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
        clock=lambda: datetime.now(UTC),
        monotonic=time.monotonic,
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


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(  # noqa: S603 - fixed arguments, a local tool
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def empty_answer(request: web.Request) -> web.Response:
    return web.json_response({})


@pytest.fixture
async def untrusted_https(self_signed: tuple[Path, Path]) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*self_signed)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", empty_answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"https://{host}:{port}"
    await runner.cleanup()


async def test_a_rejected_certificate_says_so_without_the_url(untrusted_https: str) -> None:
    async with httpx.AsyncClient(base_url=untrusted_https) as http:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.get("/v1.0/abc123/graphs?offset=0&signature=s3cr3t")
    error = transport_error(caught.value, "ges", "list_graphs")
    host_port = untrusted_https.removeprefix("https://")
    assert f"certificate verify failed for {host_port}: self-signed certificate" in str(error)
    assert "/v1.0" not in str(error)
    assert "s3cr3t" not in str(error)
    assert error.code == "tls_certificate"
    assert not error.retryable  # a certificate does not get better in a second


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
    error = ApiError(refused.text, service="ges", operation="list_graphs", status=502)
    assert len(error.message) <= 300
