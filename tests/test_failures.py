"""Failed exchanges: a transport failure says what went wrong without the URL, and a
Retry-After is read within bounds."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from aiohttp import web

from daemon.cloud import ces, ges
from daemon.cloud.errors import (
    ApiError,
    AuthError,
    NotFoundError,
    PermanentError,
    RetryableError,
)
from daemon.cloud.failures import (
    MAX_RETRY_AFTER_S,
    error_for_answer,
    retry_after,
    transport_error,
)
from tests.loopback import serve


def test_a_retry_after_of_inf_or_an_hour_is_not_waited_for_in_full() -> None:
    def said(value: str) -> float | None:
        return retry_after(httpx.Response(429, headers={"Retry-After": value}))

    assert said("inf") is None
    assert said("nan") is None
    assert said("3600") == MAX_RETRY_AFTER_S
    assert said("2.5") == 2.5


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
    async with serve(app, ssl_context=context) as url:
        yield url


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


# --- an error answer in the vocabulary, for every service ----------------------------------

SHARED_ANSWERS = [  # status, body -> the class every service maps it to
    (429, {"error_code": "APIG.0308", "error_msg": "over ratelimit"}, RetryableError),
    (400, {"error_code": "APIGW.0308", "error_msg": "over ratelimit"}, RetryableError),
    (503, {}, RetryableError),
    (401, {"error_code": "APIG.0301", "error_msg": "bad token"}, AuthError),
    (403, {}, AuthError),
    (404, {}, NotFoundError),
    (400, {"error_code": "X.0001", "error_msg": "bad request"}, PermanentError),
]


@pytest.mark.parametrize("service", [ges, ces], ids=["ges", "ces"])
@pytest.mark.parametrize(("status", "body", "kind"), SHARED_ANSWERS)
def test_every_service_maps_throttling_5xx_and_refusals_alike(
    service: ModuleType, status: int, body: dict[str, str], kind: type[ApiError]
) -> None:
    answer = httpx.Response(status, json=body, headers={"Retry-After": "2", "X-Request-Id": "r-1"})
    error = service.error_for(answer, "op")
    assert type(error) is kind
    assert error.service == service.SERVICE
    assert error.request_id == "r-1"
    assert error.retry_after_s == (2.0 if kind is RetryableError else None)
    assert error.code == (body.get("error_code") or f"http_{status}")


@pytest.mark.parametrize(
    ("service", "body", "kind"),
    [
        (ges, {"errorCode": "GES.7005", "errorMessage": "IaaS fault"}, RetryableError),
        (ges, {"errorCode": "GES.7000", "errorMessage": "no such graph"}, NotFoundError),
        (ces, {"code": 400, "message": "m", "details": {"code": "ces.0014"}}, PermanentError),
        (ces, {"errorCode": "GES.7005", "errorMessage": "not a CES code"}, PermanentError),
    ],
)
def test_a_services_own_codes_count_only_for_that_service(
    service: ModuleType, body: dict[str, object], kind: type[ApiError]
) -> None:
    error = service.error_for(httpx.Response(400, json=body), "op")
    assert type(error) is kind


def test_an_answer_without_a_message_says_the_http_reason() -> None:
    error = error_for_answer(httpx.Response(502, text="<html>"), "ges", "op")
    assert "<html>" in error.message
    error = error_for_answer(httpx.Response(502, json={"error_code": "X"}), "ges", "op")
    assert error.message == "Bad Gateway"
