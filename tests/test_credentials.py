"""Credential sources against the emulator over real HTTP: each source obtains temporary
keys, signs with X-Security-Token, refreshes before expiry, survives a failed refresh
while its keys are valid and says clearly when they are not (clock controlled, no sleep)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from daemon.cloud.clients import Clients
from daemon.cloud.credentials import CredentialError, parse_timestamp
from daemon.config.loader import parse_config
from daemon.config.settings import Settings
from daemon.emulator import Cloud, EmulatorServer, ManualClock
from daemon.emulator.identity import Identity, MetadataServer
from daemon.telemetry.metrics import Metrics
from tests.conftest import PROJECT, sample

SA_TOKEN = "eyJhbGciOiJSUzI1NiJ9.service-account-token-for-tests.c2lnbmF0dXJl"
IDP = "graphnap-cce"


@pytest.fixture
def identity(cloud: Cloud) -> Identity:
    identity = Identity(cloud, key_ttl_s=3600)
    identity.service_account_tokens.add(SA_TOKEN)
    identity.identity_providers[IDP] = {SA_TOKEN}
    return identity


@pytest.fixture
async def server(cloud: Cloud, identity: Identity) -> AsyncIterator[str]:
    cloud.add_graph(PROJECT, "dev-a")
    async with EmulatorServer(cloud, identity=identity) as emulator:
        yield emulator.url


@pytest.fixture
async def metadata(identity: Identity) -> AsyncIterator[str]:
    async with MetadataServer(identity) as node:
        yield node.url


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(SA_TOKEN + "\n")
    return path


Make = Callable[[dict[str, Any]], Clients]


@pytest.fixture
async def make_clients(
    server: str, clock: ManualClock, registry: CollectorRegistry
) -> AsyncIterator[Make]:
    made: list[Clients] = []

    def make(credentials: dict[str, Any]) -> Clients:
        settings = Settings(credentials={"lab": credentials}, credential_refresh_jitter=0)  # type: ignore[dict-item]
        config = parse_config(
            f"projects:\n  - {{name: lab, region: cn-north-4, project_id: {PROJECT}, "
            f"credentials: lab, endpoints: {{ges: '{server}', iam: '{server}'}}}}\n"
        )
        clients = Clients(
            settings,
            Metrics(registry),
            clock=clock,
            monotonic=time.monotonic,
            sleep=clock.sleep,  # the gate paces on real time
        )
        clients.update(config)
        made.append(clients)
        return clients

    yield make
    for clients in made:
        await clients.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def sources(token_file: Path, metadata_url: str, server: str) -> dict[str, dict[str, Any]]:
    return {
        "pod_identity": {
            "source": "pod_identity",
            "credentials_uri": f"{server}/v1/credentials",
            "token_file": str(token_file),
        },
        "oidc": {
            "source": "oidc",
            "idp_id": IDP,
            "token_file": str(token_file),
            "duration_s": 3600,
        },
        "metadata": {"source": "metadata", "metadata_url": metadata_url},
    }


FAILING = {"pod_identity": "pod_identity", "oidc": "oidc", "metadata": "metadata"}


@pytest.fixture(params=["pod_identity", "oidc", "metadata"])
def source(
    request: pytest.FixtureRequest, token_file: Path, metadata: str, server: str
) -> tuple[str, dict[str, Any]]:
    name = str(request.param)
    return name, sources(token_file, metadata, server)[name]


async def test_each_source_gets_keys_signs_with_the_token_and_refreshes_before_expiry(
    source: tuple[str, dict[str, Any]],
    make_clients: Make,
    identity: Identity,
    clock: ManualClock,
    registry: CollectorRegistry,
) -> None:
    kind, creds = source
    clients = make_clients(creds)
    ges = clients.graph_apis()["lab"]
    assert [g.name for g in await ges.list_graphs()] == ["dev-a"]
    assert len(identity.keys) == 1  # one exchange, temporary keys accepted with their token
    first = next(iter(identity.keys.values()))
    assert sample(registry, "graphnap_credential_expiry_timestamp_seconds", set="lab") == (
        pytest.approx(first.expires_at.timestamp(), abs=1)
    )

    clock.advance(20 * 60)  # 40 minutes left of 60: not yet due (half the life: 30)
    await ges.list_graphs()
    assert len(identity.keys) == 1
    clock.advance(11 * 60)  # 29 minutes left: refreshed before the request, old keys valid
    await ges.list_graphs()
    assert len(identity.keys) == 2
    assert (
        sample(
            registry, "graphnap_credential_refresh_total", set="lab", source=kind, outcome="success"
        )
        == 2
    )


async def test_a_failed_refresh_keeps_valid_keys_then_fails_clearly_once_they_expire(
    source: tuple[str, dict[str, Any]],
    make_clients: Make,
    identity: Identity,
    clock: ManualClock,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kind, creds = source
    ges = make_clients(creds).graph_apis()["lab"]
    await ges.list_graphs()
    identity.failing[FAILING[kind]] = 1000  # the identity service is down from now on
    clock.advance(35 * 60)
    with caplog.at_level(logging.WARNING):
        await ges.list_graphs()  # the refresh fails; the keys still valid sign it
    assert "refresh failed" in caplog.text
    assert "stay in use" in caplog.text
    assert (
        sample(
            registry, "graphnap_credential_refresh_total", set="lab", source=kind, outcome="failed"
        )
        == 1
    )
    clock.advance(10)  # within the retry interval: no new attempt, no hammering
    await ges.list_graphs()
    assert (
        sample(
            registry, "graphnap_credential_refresh_total", set="lab", source=kind, outcome="failed"
        )
        == 1
    )

    clock.advance(30 * 60)  # past expiry, still unrefreshable
    with pytest.raises(CredentialError) as caught:
        await ges.list_graphs()
    message = str(caught.value)
    assert "credential set 'lab'" in message
    assert f"source {kind}" in message
    assert "expired at" in message

    identity.failing.clear()  # the service is back: the next try after the interval works
    clock.advance(60)
    assert [g.name for g in await ges.list_graphs()] == ["dev-a"]
    secrets = {v for key in identity.keys.values() for v in (key.sk, key.security_token)}
    assert not any(secret in caplog.text or secret in message for secret in secrets)
    assert SA_TOKEN not in caplog.text


async def test_keys_refused_by_the_gateway_are_renewed_once_and_the_request_resent(
    make_clients: Make, identity: Identity, token_file: Path, metadata: str, server: str
) -> None:
    ges = make_clients(sources(token_file, metadata, server)["oidc"]).graph_apis()["lab"]
    await ges.list_graphs()
    identity.expire_keys()  # revoked early: the gateway says the token has expired
    assert [g.name for g in await ges.list_graphs()] == ["dev-a"]
    assert identity.calls["securitytokens"] == 2


async def test_the_gateway_refuses_temporary_keys_without_their_security_token(
    identity: Identity, server: str, clock: ManualClock
) -> None:
    import httpx
    from pydantic import SecretStr

    from daemon.cloud.auth import AkSkAuth

    key = identity.issue("oidc", 900)
    for token, expected in ((None, "need X-Security-Token"), ("forged", "is invalid")):
        auth = AkSkAuth(
            SecretStr(key.ak),
            SecretStr(key.sk),
            project_id=PROJECT,
            security_token=SecretStr(token) if token else None,
            clock=clock,
        )
        async with httpx.AsyncClient(base_url=server, auth=auth) as http:
            refused = await http.get(f"/v1.0/{PROJECT}/graphs")
        assert refused.status_code == 401
        assert expected in refused.text


async def test_a_token_file_that_cannot_be_read_names_the_file_and_the_fix(
    make_clients: Make, tmp_path: Path, server: str
) -> None:
    missing = tmp_path / "no-such-token"
    ges = make_clients({"source": "oidc", "idp_id": IDP, "token_file": str(missing)}).graph_apis()[
        "lab"
    ]
    with pytest.raises(CredentialError) as caught:
        await ges.list_graphs()
    assert str(missing) in str(caught.value)
    assert "projected volume" in str(caught.value)


async def test_the_token_file_is_read_again_at_every_refresh(
    make_clients: Make,
    identity: Identity,
    token_file: Path,
    clock: ManualClock,
    metadata: str,
    server: str,
) -> None:
    ges = make_clients(sources(token_file, metadata, server)["pod_identity"]).graph_apis()["lab"]
    await ges.list_graphs()
    identity.service_account_tokens = {"rotated-by-the-kubelet"}
    token_file.write_text("rotated-by-the-kubelet")
    clock.advance(31 * 60)
    await ges.list_graphs()
    assert len(identity.keys) == 2  # the old token would have been refused


async def test_metadata_asks_for_a_session_token_first(
    make_clients: Make, identity: Identity, metadata: str, server: str, tmp_path: Path
) -> None:
    identity.metadata_token_required = True
    ges = make_clients({"source": "metadata", "metadata_url": metadata}).graph_apis()["lab"]
    await ges.list_graphs()  # token mode: PUT first, then the GET carries the token
    assert len(identity.metadata_tokens) == 1


async def test_a_node_without_an_agency_is_reported_with_the_fix(
    make_clients: Make, identity: Identity, metadata: str
) -> None:
    identity.node_agency = False
    ges = make_clients({"source": "metadata", "metadata_url": metadata}).graph_apis()["lab"]
    with pytest.raises(CredentialError) as caught:
        await ges.list_graphs()
    assert "source metadata" in str(caught.value)
    assert "agency" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-08T03:50:07.574000Z",
        "2026-01-08T03:50:07Z",
        "2026-01-08t03:50:07.5z",
        "2026-01-08T11:50:07.574000123+08:00",
        "2026-01-08 03:50:07",
    ],
)
def test_expiry_times_are_read_leniently(text: str) -> None:
    parsed = parse_timestamp(text)
    assert parsed.astimezone(UTC).replace(microsecond=0) == datetime(
        2026, 1, 8, 3, 50, 7, tzinfo=UTC
    )


async def test_an_answer_without_fractions_in_its_expiry_is_understood(
    make_clients: Make, identity: Identity, metadata: str
) -> None:
    identity.time_format = "%Y-%m-%dT%H:%M:%SZ"
    ges = make_clients({"source": "metadata", "metadata_url": metadata}).graph_apis()["lab"]
    assert [g.name for g in await ges.list_graphs()] == ["dev-a"]
