"""Huawei's own SDK providers (Pod Identity, OIDC federation) obtain keys from the emulator
unchanged and sign GES calls with them: the emulator's identity endpoints are the real
shapes, not shapes fitted to graphnap's client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.emulator import Cloud, EmulatorServer
from daemon.emulator.identity import Identity
from tests.conftest import PROJECT

provider = pytest.importorskip("huaweicloudsdkcore.auth.provider")
if not hasattr(provider, "PodIdentityCredentialProvider"):  # core < 3.1.190
    pytest.skip("this huaweicloudsdkcore has no Pod Identity provider", allow_module_level=True)

SA_TOKEN = "eyJhbGciOiJSUzI1NiJ9.sdk-service-account-token.c2ln"


@pytest.fixture
async def server(cloud: Cloud) -> AsyncIterator[tuple[str, Identity]]:
    cloud.add_graph(PROJECT, "dev-sdk")
    identity = Identity(cloud, key_ttl_s=3600)
    identity.service_account_tokens.add(SA_TOKEN)
    identity.identity_providers["cce-idp"] = {SA_TOKEN}
    async with EmulatorServer(cloud, identity=identity) as emulator:
        yield emulator.url, identity


def _ges(endpoint: str, credentials: Any) -> Any:
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkges.v1 import GesClient

    config = HttpConfig.get_default_config()
    config.timeout = (5, 10)
    return (
        GesClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoints([endpoint])
        .build()
    )


async def test_the_sdk_pod_identity_provider_gets_keys_and_lists_graphs(
    server: tuple[str, Identity], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huaweicloudsdkges.v1 import ListGraphsRequest

    url, identity = server
    token = tmp_path / "token"
    token.write_text(SA_TOKEN)
    monkeypatch.setenv("HC_CONTAINER_CREDENTIALS_FULL_URI", f"{url}/v1/credentials")
    monkeypatch.setenv("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token))
    credentials = await asyncio.to_thread(
        provider.PodIdentityCredentialProvider.get_basic().get_credentials
    )
    credentials.project_id = PROJECT
    listed = await asyncio.to_thread(
        _ges(url, credentials).list_graphs, ListGraphsRequest(offset=0, limit=10)
    )
    assert [g.name for g in listed.graphs] == ["dev-sdk"]
    assert [k.source for k in identity.keys.values()] == ["pod_identity"]


async def test_the_sdk_oidc_federation_gets_keys_and_lists_graphs(
    server: tuple[str, Identity], tmp_path: Path
) -> None:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkges.v1 import ListGraphsRequest

    url, identity = server
    token = tmp_path / "token"
    token.write_text(SA_TOKEN)
    credentials = (
        BasicCredentials()
        .with_idp_id("cce-idp")
        .with_id_token_file(str(token))
        .with_iam_endpoint(url)
        .with_project_id(PROJECT)
    )
    listed = await asyncio.to_thread(
        _ges(url, credentials).list_graphs, ListGraphsRequest(offset=0, limit=10)
    )
    assert [g.name for g in listed.graphs] == ["dev-sdk"]
    assert [k.source for k in identity.keys.values()] == ["oidc"]
    assert identity.calls["oidc"] == identity.calls["securitytokens"] == 1
