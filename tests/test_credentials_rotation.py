"""Static keys rotated without a restart: the kubelet swaps a Secret volume's `..data`
link, the next request signs with the new keys; invalid new files keep the old keys.
And the settings of each source: chosen explicitly, refused with the fix when incomplete."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from daemon.cloud.clients import Clients
from daemon.config.loader import parse_config
from daemon.config.settings import METADATA_URL, CredentialSet, Settings
from daemon.emulator import Cloud, EmulatorServer, ManualClock
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from daemon.telemetry.metrics import Metrics
from tests.conftest import PROJECT, sample

NEW_AK, NEW_SK = "ROTATEDAK00000000001", "rotated-secret-key-0000000000000000000001"


class SecretVolume:
    """A directory laid out as the kubelet lays out a Secret volume."""

    def __init__(self, root: Path) -> None:
        self.root, self._version = root, 0

    def write(self, files: dict[str, str]) -> None:
        self._version += 1
        version = self.root / f"..2026_{self._version:02d}"
        version.mkdir()
        for name, value in files.items():
            (version / name).write_text(value)
            (version / name).chmod(0o600)
        staged = self.root / "..data_tmp"
        staged.symlink_to(version.name)
        os.replace(staged, self.root / "..data")  # the atomic swap
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")


@pytest.fixture
async def emulator_url(cloud: Cloud) -> AsyncIterator[str]:
    cloud.add_graph(PROJECT, "dev-a")
    async with EmulatorServer(cloud) as server:
        yield server.url


async def test_a_swapped_secret_takes_effect_and_an_invalid_one_keeps_the_old_keys(
    tmp_path: Path,
    cloud: Cloud,
    clock: ManualClock,
    emulator_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    volume = SecretVolume(tmp_path)
    volume.write({"lab.ak": DEMO_AK, "lab.sk": DEMO_SK})
    registry = CollectorRegistry()
    clients = Clients(
        Settings(secrets_dir=tmp_path, secret_check_s=10),
        Metrics(registry),
        clock=clock,
        monotonic=time.monotonic,  # the gate paces on real time
        sleep=clock.sleep,
    )
    clients.update(
        parse_config(
            f"projects:\n  - {{name: lab, region: cn-north-4, project_id: {PROJECT}, "
            f"credentials: lab, endpoints: {{ges: '{emulator_url}'}}}}\n"
        )
    )
    ges = clients.graph_apis()["lab"]
    try:
        await ges.list_graphs()
        cloud.access_keys = {NEW_AK: NEW_SK}  # the old key is deleted in IAM
        volume.write({"lab.ak": NEW_AK, "lab.sk": NEW_SK})
        clock.advance(11)
        assert [g.name for g in await ges.list_graphs()] == ["dev-a"]
        assert sample(registry, "graphnap_credential_rotations_total", set="lab") == 1

        with caplog.at_level(logging.WARNING):
            volume.write({"lab.ak": "HALF WRITTEN", "lab.sk": ""})
            clock.advance(11)
            assert [g.name for g in await ges.list_graphs()] == ["dev-a"]  # the keys in use
        assert "new secret files are refused" in caplog.text
        assert "credential set lab" in caplog.text
        assert (
            sample(
                registry,
                "graphnap_credential_refresh_total",
                set="lab",
                source="static",
                outcome="invalid",
            )
            == 1
        )
        clock.advance(11)  # the refused files are reported once, not at every look
        await ges.list_graphs()
        assert caplog.text.count("new secret files are refused") == 1
        assert NEW_SK not in caplog.text
        assert DEMO_SK not in caplog.text
    finally:
        await clients.close()


def test_each_source_is_named_explicitly_and_takes_only_its_own_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError, match="source oidc takes no ak"):
        CredentialSet.model_validate(
            {"source": "oidc", "idp_id": "x", "token_file": "/t", "ak": "A"}
        )
    with pytest.raises(ValidationError, match="belong to another source"):
        CredentialSet.model_validate({"ak": "A", "sk": "S", "idp_id": "x"})
    with pytest.raises(ValidationError, match="needs __IDP_ID"):
        CredentialSet.model_validate({"source": "oidc", "token_file": "/t"})
    monkeypatch.delenv("HC_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    with pytest.raises(ValidationError, match="HC_CONTAINER_CREDENTIALS_FULL_URI"):
        CredentialSet.model_validate({"source": "pod_identity"})
    monkeypatch.setenv("HC_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:8080/v1/credentials")
    monkeypatch.setenv("HC_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(tmp_path / "token"))
    pod = CredentialSet.model_validate({"source": "pod_identity"})
    assert pod.credentials_uri == "http://127.0.0.1:8080/v1/credentials"
    assert pod.token_file == tmp_path / "token"


@pytest.mark.parametrize(
    "url", ["http://169.254.170.2", "http://10.0.0.5", "http://metadata.example.com", "ftp://[::1]"]
)
def test_the_metadata_source_goes_to_the_metadata_address_or_loopback_only(url: str) -> None:
    with pytest.raises(ValidationError, match="metadata_url must be"):
        CredentialSet.model_validate({"source": "metadata", "metadata_url": url})


def test_the_metadata_source_defaults_to_the_real_address_and_accepts_loopback() -> None:
    assert CredentialSet.model_validate({"source": "metadata"}).metadata_url == METADATA_URL
    local = CredentialSet.model_validate(
        {"source": "metadata", "metadata_url": "http://127.0.0.1:4000/"}
    )
    assert local.metadata_url == "http://127.0.0.1:4000"


def test_an_endpoint_override_to_the_metadata_address_stays_refused() -> None:
    from daemon.config.problems import ConfigError

    with pytest.raises(ConfigError, match="metadata"):
        parse_config(
            "projects:\n  - {name: lab, region: cn-north-4, project_id: abc123, "
            "credentials: lab, endpoints: {ges: 'http://169.254.169.254'}}\n"
        )


def test_sources_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHNAP_CREDENTIALS__PROD__SOURCE", "oidc")
    monkeypatch.setenv("GRAPHNAP_CREDENTIALS__PROD__IDP_ID", "cce-prod")
    monkeypatch.setenv("GRAPHNAP_CREDENTIALS__PROD__TOKEN_FILE", "/var/run/secrets/iam/token")
    creds = Settings().credential_set("prod")
    assert creds is not None
    assert (creds.source, creds.idp_id, creds.kind) == ("oidc", "cce-prod", "temporary")
