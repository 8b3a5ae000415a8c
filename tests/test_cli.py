"""The command line as a person uses it: exit codes and what is printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main

ROOT = Path(__file__).parents[1]


def test_validate_accepts_the_shipped_configs(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["validate", str(ROOT / "config/example.yaml"), str(ROOT / "config/demo.yaml")]) == 0
    )
    assert capsys.readouterr().out.count(": ok (") == 2


def test_validate_prints_every_error_with_location_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "projects:\n  - {name: p, region: cn-north-4, project_id: abc, credentials: p}\n"
        "schedules:\n  - {name: s, action: stop, cron: '0 25 * * *', timezone: Mars/Base, targets: {projects: [p]}}\n"
    )
    assert main(["validate", str(bad), str(ROOT / "config/demo.yaml")]) == 2
    captured = capsys.readouterr()
    assert "line 4: schedules[0].cron: invalid cron expression" in captured.err
    assert "schedules[0].timezone: unknown time zone 'Mars/Base'" in captured.err
    assert "demo.yaml: ok" in captured.out


def test_schema_is_json_schema_for_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert {"projects", "schedules", "idle_rules", "calendars", "pricing"} <= set(
        schema["properties"]
    )


def test_emulator_help_documents_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["emulator", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--port",
        "--project-id",
        "--graphs",
        "--ak",
        "--sk",
        "--throttle-rps",
        "--error-rate",
    ):
        assert option in out
