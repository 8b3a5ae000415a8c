"""AK/SK signing against Huawei's own vectors, and the IAM token life cycle."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from daemon.cloud.auth import AkSkAuth, TokenAuth, TokenProvider, canonical_query
from daemon.cloud.errors import AuthError
from daemon.emulator import Cloud, ManualClock
from daemon.emulator.cloud import DEMO_DOMAIN, DEMO_PASSWORD, DEMO_USER
from tests.conftest import PROJECT

# A copy of ../shared/signing-vectors.json (Huawei SDK 3.1.219 signatures), so the suite
# needs nothing outside the repository; the test below keeps the two in step.
VECTORS_FILE = Path(__file__).parent / "data" / "signing-vectors.json"
SHARED_FILE = Path(__file__).parents[2] / "shared" / "signing-vectors.json"
VECTORS = json.loads(VECTORS_FILE.read_text())


@pytest.mark.skipif(not SHARED_FILE.exists(), reason="no ../shared beside this checkout")
def test_vector_copy_matches_shared() -> None:
    assert json.loads(SHARED_FILE.read_text()) == VECTORS


def _vector_request(case: dict[str, object]) -> httpx.Request:
    query = canonical_query((str(k), str(v)) for k, v in case["query"])  # type: ignore[attr-defined]
    url = f"https://{case['host']}{case['path']}" + (f"?{query}" if query else "")
    body = case["body"]
    return httpx.Request(
        str(case["method"]),
        url,
        headers=dict(case["headers"]),  # type: ignore[call-overload]
        content=str(body).encode() if body is not None else None,
    )


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_signer_reproduces_huawei_sdk_vectors(case: dict[str, object]) -> None:
    date = datetime.strptime(VECTORS["x_sdk_date"], "%Y%m%dT%H%M%SZ")
    auth = AkSkAuth(SecretStr(VECTORS["ak"]), SecretStr(VECTORS["sk"]), clock=lambda: date)
    request = _vector_request(case)
    auth.sign(request)
    assert request.headers["Authorization"] == case["authorization"]
    assert request.url.raw_path.decode() == case["request_uri"]


def test_signer_sends_query_in_canonical_order_and_keeps_secrets_out_of_repr() -> None:
    auth = AkSkAuth(
        SecretStr("AKEXAMPLE"),
        SecretStr("very-secret-sk"),
        project_id=PROJECT,
        clock=lambda: datetime(2026, 11, 27, tzinfo=UTC),
    )
    request = httpx.Request("GET", "https://ges.example/v1.0/p/graphs?offset=0&limit=100&a=x%2Cy")
    auth.sign(request)
    assert request.url.query == b"a=x%2Cy&limit=100&offset=0"
    assert request.headers["X-Project-Id"] == PROJECT
    assert "very-secret-sk" not in repr(auth)
    assert "very-secret-sk" not in str(request.headers)


async def test_token_is_cached_renewed_before_expiry_and_after_a_401(
    cloud: Cloud, emulator: str, clock: ManualClock
) -> None:
    cloud.faults.token_ttl_s = 24 * 3600
    async with httpx.AsyncClient() as iam:
        provider = TokenProvider(
            iam,
            iam_endpoint=emulator,
            user=DEMO_USER,
            password=SecretStr(DEMO_PASSWORD),
            domain=DEMO_DOMAIN,
            project_id=PROJECT,
            clock=clock,
        )
        first = await provider.token()
        assert await provider.token() == first
        assert cloud.count("create_token") == 1

        clock.advance(23.5 * 3600)  # inside the one-hour refresh margin
        second = await provider.token()
        assert second != first
        assert cloud.count("create_token") == 2

        cloud.expire_tokens()  # the cloud revokes it early: the next call gets a 401
        async with httpx.AsyncClient(base_url=emulator, auth=TokenAuth(provider, PROJECT)) as http:
            response = await http.get(f"/v1.0/{PROJECT}/graphs")
        assert response.status_code == 200
        assert cloud.count("create_token") == 3


async def test_wrong_password_is_an_auth_error_without_the_password(
    cloud: Cloud, emulator: str, clock: ManualClock
) -> None:
    async with httpx.AsyncClient() as iam:
        provider = TokenProvider(
            iam,
            iam_endpoint=emulator,
            user=DEMO_USER,
            password=SecretStr("wrong-password-123"),
            domain=DEMO_DOMAIN,
            project_id=PROJECT,
            clock=clock,
        )
        with pytest.raises(AuthError) as caught:
            await provider.token()
    assert caught.value.status == 401
    assert "wrong-password-123" not in str(caught.value)
    assert "wrong-password-123" not in repr(provider)


async def test_a_token_shorter_lived_than_the_refresh_margin_is_reused_for_half_its_life(
    cloud: Cloud, emulator: str, clock: ManualClock
) -> None:
    cloud.faults.token_ttl_s = 20 * 60  # 20 minutes, under the default one-hour margin
    async with httpx.AsyncClient() as iam:
        provider = TokenProvider(
            iam,
            iam_endpoint=emulator,
            user=DEMO_USER,
            password=SecretStr(DEMO_PASSWORD),
            domain=DEMO_DOMAIN,
            project_id=PROJECT,
            clock=clock,
        )
        first = await provider.token()
        clock.advance(9 * 60)
        assert await provider.token() == first  # not one IAM call per request
        assert cloud.count("create_token") == 1
        clock.advance(2 * 60)  # past half its life: renewed, well before it expires
        assert await provider.token() != first
        assert cloud.count("create_token") == 2
