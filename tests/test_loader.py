"""Config intake: the shipped files load; a file that cannot be read, is not UTF-8, too large,
empty or not a mapping is one located ConfigError; so is every later problem, with its line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.config.loader import load_config, parse_config
from daemon.config.problems import ConfigError, Problem
from tests.test_config import PROJECT

ROOT = Path(__file__).parents[1]


def refusal(text: str) -> Problem:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.yaml")
    (problem,) = caught.value.problems
    return problem


@pytest.mark.parametrize("name", ["example.yaml", "demo.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(ROOT / "config" / name)
    assert config.projects
    assert config.schedules


def test_example_covers_every_feature() -> None:
    config = load_config(ROOT / "config" / "example.yaml")
    assert {s.action for s in config.schedules} == {"stop", "start"}
    assert any(s.keep_stopped_until for s in config.schedules)
    assert any(s.skip_on for s in config.schedules)
    assert any(s.dry_run for s in config.schedules)
    assert any(s.exclude for s in config.schedules)
    assert config.idle_rules
    assert config.pricing.hourly
    assert any(p.endpoints.ges for p in config.projects)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("projects: [1,\n", "invalid YAML"),
        ("a: 1\na: 2\n", "duplicated key 'a' (first at line 1)"),
        ("- just\n- a list\n", "not a mapping"),
        ("---\n", "the top level is a NoneType, not a mapping"),
        ("projects: []\n", "at least 1 item"),
    ],
)
def test_broken_files_get_their_own_clear_message(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert words in caught.value.render()


def test_an_empty_file_or_a_list_gets_a_hint_at_what_a_config_starts_with() -> None:
    assert refusal("# nothing yet\n").hint == "start from config/example.yaml"
    problem = refusal("- projects\n")
    assert (problem.line, problem.hint) == (1, "start with 'projects:'")


def test_missing_file_directory_and_special_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_config(fifo)  # opening it would wait for a writer forever


def test_limits_on_size_and_values(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(PROJECT + "# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_config(big)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(PROJECT.encode() + "# café\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(latin1)
    assert "line 7: (top level): is not UTF-8 text (byte 0xe9)" in caught.value.render()
    wide = "projects: [" + ", ".join(["1"] * 60_000) + "]\n"
    with pytest.raises(ConfigError, match="more than 50000 values"):
        parse_config(wide)


def test_a_cross_reference_problem_carries_the_line_of_its_place() -> None:
    text = PROJECT + (
        "schedules:\n"
        "  - name: night\n"
        "    action: stop\n"
        '    cron: "@daily"\n'
        "    timezone: UTC\n"
        "    targets:\n"
        "      projects: [analytics, nope]\n"
    )
    problem = refusal(text)
    assert (problem.where, problem.line) == ("schedules[0].targets.projects[1]", 13)
    assert problem.message == "unknown project 'nope'"


def test_the_source_names_the_file_in_the_rendered_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(PROJECT + "schedule: []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.render().startswith(f"{path}: 1 problem\n  line 7: schedule: unknown key")
