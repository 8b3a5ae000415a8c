"""The notifier as the daemon builds it (daemon.ops.notices): SMN publishes go with the auth
of their project's own clients, whichever source its credential set has (static keys, pod
identity, OIDC, node metadata, an IAM user's token), and a channel that cannot be built is
named in a warning without its secrets. Real daemon, emulator and SMN over loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.app import App
from daemon.config.settings import Settings
from daemon.emulator import Cloud, EmulatorServer, ManualClock
from daemon.emulator.cloud import DEMO_AK, DEMO_DOMAIN, DEMO_PASSWORD, DEMO_SK, DEMO_USER
from daemon.emulator.identity import Identity, MetadataServer
from daemon.emulator.smn import SmnEmulator
from daemon.notify import message
from tests.conftest import PROJECT
from tests.receivers import serving
from tests.test_credentials import IDP, SA_TOKEN, sources

TOPIC = f"urn:smn:cn-north-4:{PROJECT}:graphnap"
CONFIG = """
projects:
  - name: lab
    region: cn-north-4
    project_id: {project}
    credentials: lab
    endpoints: {{ges: "{ges}", iam: "{ges}", ces: "{ges}"}}
notifications:
  channels:
    topic: {{type: smn, project: lab, topic_urn: "{topic}", endpoint: "{smn}"}}
    chat: {{type: slack}}
  routes:
    - channels: [topic, chat]
"""


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
def smn(cloud: Cloud, identity: Identity) -> SmnEmulator:
    return SmnEmulator({TOPIC}, cloud.access_keys, cloud.clock, cloud=cloud, identity=identity)


@pytest.fixture
async def smn_url(smn: SmnEmulator) -> AsyncIterator[str]:
    async with serving(smn.app()) as url:
        yield url


def credential_sets(tmp_path: Path, metadata: str, server: str) -> dict[str, dict[str, Any]]:
    token_file = tmp_path / "token"
    token_file.write_text(SA_TOKEN + "\n")
    return {
        **sources(token_file, metadata, server),
        "static": {"ak": DEMO_AK, "sk": DEMO_SK},
        "password": {"user": DEMO_USER, "password": DEMO_PASSWORD, "domain": DEMO_DOMAIN},
    }


async def running_app(
    tmp_path: Path, clock: ManualClock, server: str, smn_url: str, creds: dict[str, Any]
) -> App:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(project=PROJECT, ges=server, topic=TOPIC, smn=smn_url))
    settings = Settings(
        config=config,
        listen_host="127.0.0.1",
        listen_port=0,
        credentials={"lab": creds},  # type: ignore[dict-item]
        credential_refresh_jitter=0,
    )
    app = App(settings, clock=clock, sleep=clock.sleep)
    await app.start(serve=False, schedule=False, watch=False)
    return app


@pytest.mark.parametrize("source", ["metadata", "pod_identity", "oidc", "static", "password"])
async def test_smn_publishes_with_the_auth_the_projects_ges_client_uses(
    source: str,
    tmp_path: Path,
    clock: ManualClock,
    server: str,
    metadata: str,
    smn_url: str,
    smn: SmnEmulator,
    identity: Identity,
) -> None:
    app = await running_app(
        tmp_path, clock, server, smn_url, credential_sets(tmp_path, metadata, server)[source]
    )
    try:
        assert app.notifier is not None
        app.notifier.send_message(message.sample("topic", at=clock()))
        await asyncio.wait_for(app.notifier.drained(), 10)
    finally:
        await app.shutdown()
    [published] = smn.published
    assert published.subject == "graphnap: test message to channel topic"
    if source in ("metadata", "pod_identity", "oidc"):
        # Temporary keys, taken by the emulated gateway only with their security token,
        # signed; and the very keys the GES listing got: one exchange, one holder.
        assert published.ak in identity.keys
        assert len(identity.keys) == 1
    elif source == "static":
        assert published.ak == DEMO_AK
    else:
        assert published.ak == ""  # the project's IAM token, as GES got it
    assert (
        app.registry.get_sample_value(
            "graphnap_notifications_total", {"channel": "topic", "kind": "test", "outcome": "sent"}
        )
        == 1
    )


async def test_a_channel_left_out_is_named_without_its_secrets(
    tmp_path: Path,
    clock: ManualClock,
    server: str,
    metadata: str,
    smn_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        app = await running_app(
            tmp_path, clock, server, smn_url, credential_sets(tmp_path, metadata, server)["static"]
        )
        await app.shutdown()
    assert "notification channel left out: notifications.channels.chat: no URL" in caplog.text
    assert "notify.chat.url" in caplog.text
