"""`graphnap check-credentials`: one real exchange and one list call per project, its
outcome printed without a key or token; a refused exchange fails the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli.credentials import check
from daemon.cli.main import build_parser
from daemon.config.loader import parse_config
from daemon.config.settings import Settings
from daemon.emulator import Cloud, EmulatorServer
from daemon.emulator.identity import Identity
from tests.conftest import PROJECT

SA_TOKEN = "eyJhbGciOiJSUzI1NiJ9.cli-service-account-token.c2ln"


@pytest.mark.parametrize("idp", ["cce-idp", "someone-else"])
async def test_check_credentials_exchanges_once_lists_once_and_prints_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], idp: str
) -> None:
    cloud = Cloud([PROJECT])  # the wall clock, as the command has
    cloud.add_graph(PROJECT, "dev-a")
    identity = Identity(cloud)
    identity.identity_providers["cce-idp"] = {SA_TOKEN}
    token = tmp_path / "token"
    token.write_text(SA_TOKEN)
    async with EmulatorServer(cloud, identity=identity) as server:
        settings = Settings(
            credentials={"lab": {"source": "oidc", "idp_id": idp, "token_file": token}}  # type: ignore[dict-item]
        )
        config = parse_config(
            f"projects:\n  - {{name: lab, region: cn-north-4, project_id: {PROJECT}, "
            f"credentials: lab, endpoints: {{ges: '{server.url}', iam: '{server.url}'}}}}\n"
        )
        status = await check(settings, config)
    out, err = capsys.readouterr()
    if idp == "cce-idp":
        assert status == 0
        assert "project lab (credential set lab, source oidc): keys obtained, valid until" in out
        assert "1 graphs listed" in out
    else:
        assert status == 1
        assert "FAILED" in err
        assert "source oidc" in err
    secrets = {v for k in identity.keys.values() for v in (k.ak, k.sk, k.security_token)}
    for secret in {SA_TOKEN, *secrets}:
        assert secret not in out + err


def test_check_credentials_is_a_command() -> None:
    args = build_parser().parse_args(["check-credentials", "--config", "c.yaml"])
    assert args.config == Path("c.yaml")
