"""Runtime settings: GRAPHNAP_* variables, credential sets from env and secret files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from daemon.cli.main import main
from daemon.config.settings import Settings


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


def test_secret_files_open_to_others_are_named_in_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, mode in (("prod.ak", 0o600), ("prod.sk", 0o644), ("lab.password", 0o400)):
        (tmp_path / name).write_text("secret-value")
        (tmp_path / name).chmod(mode)
    (tmp_path / "lab.user").write_text("graphnap")
    (tmp_path / "lab.domain").write_text("acme")
    (tmp_path / "lab.user").chmod(0o640)  # group-readable, and the file is our own
    (tmp_path / "lab.domain").chmod(0o600)
    monkeypatch.setenv("GRAPHNAP_SECRETS_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        Settings()
    warned = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert len(warned) == 2, warned
    assert (
        f"secret file {tmp_path / 'lab.user'} is readable by group or others (mode 0640)"
        in warned[0]
    )
    assert (
        f"secret file {tmp_path / 'prod.sk'} is readable by group or others (mode 0644)"
        in warned[1]
    )
    assert "secret-value" not in caplog.text


def test_a_secret_file_that_is_not_utf8_is_named_and_not_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "prod.ak").write_text("AKFILE")
    (tmp_path / "prod.sk").write_bytes(b"sk-\xff\xfe-latin1-\xe9t\xe9")
    for file in tmp_path.iterdir():
        file.chmod(0o600)
    monkeypatch.setenv("GRAPHNAP_SECRETS_DIR", str(tmp_path))
    with pytest.raises(ValidationError, match=f"secret file {tmp_path / 'prod.sk'} is not UTF-8"):
        Settings()
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert f"secret file {tmp_path / 'prod.sk'} is not UTF-8 text" in err
    assert "latin1" not in err
    assert "Traceback" not in err


def test_secret_values_are_every_credential_value_given() -> None:
    settings = Settings(
        credentials={  # type: ignore[arg-type]
            "a": {"ak": "AKAAAA", "sk": "sk-long-secret"},
            "b": {"user": "graphnap", "password": "pw-1234", "domain": "acme"},
        }
    )
    assert settings.secret_values() == ["sk-long-secret", "pw-1234", "AKAAAA"]
