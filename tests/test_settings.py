"""Runtime settings: GRAPHNAP_* variables, credential sets from env and secret files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from daemon.settings import Settings


def test_defaults_and_nested_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHNAP_LISTEN_PORT", "9500")
    monkeypatch.setenv("GRAPHNAP_RETRY__ATTEMPTS", "7")
    monkeypatch.setenv("GRAPHNAP_CREDENTIALS__ANALYTICS__AK", "AKFROMENV")
    monkeypatch.setenv("GRAPHNAP_CREDENTIALS__ANALYTICS__SK", "sk-from-env")
    settings = Settings()
    assert settings.listen_port == 9500
    assert settings.retry.attempts == 7
    creds = settings.credential_set("analytics")
    assert creds is not None
    assert creds.kind == "aksk"
    assert "sk-from-env" not in repr(settings)
    assert "sk-from-env" not in str(settings.model_dump())


def test_secret_files_fill_credential_sets_and_env_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lab.user").write_text("graphnap\n")
    (tmp_path / "lab.password").write_text("pw-from-file\n")
    (tmp_path / "lab.domain").write_text("acme\n")
    (tmp_path / "prod.ak").write_text("AKFILE")
    (tmp_path / "prod.sk").write_text("sk-file")
    monkeypatch.setenv("GRAPHNAP_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("GRAPHNAP_CREDENTIALS__PROD__SK", "sk-env")
    settings = Settings()
    lab, prod = settings.credential_set("lab"), settings.credential_set("prod")
    assert lab is not None
    assert lab.kind == "password"
    assert lab.password is not None
    assert lab.password.get_secret_value() == "pw-from-file"
    assert prod is not None
    assert prod.sk is not None
    assert prod.sk.get_secret_value() == "sk-env"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"ak": "AK"}, "needs its SK"),
        ({"ak": "AK", "sk": "s", "user": "u"}, "not both"),
        ({"user": "u", "password": "p"}, "user, password and domain"),
        ({}, "empty"),
    ],
)
def test_incomplete_credential_sets_are_refused_without_echoing_secrets(
    fields: dict[str, str], words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(credentials={"x": fields})  # type: ignore[dict-item]
    assert words in str(caught.value)
