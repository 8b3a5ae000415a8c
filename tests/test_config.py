"""Config loading: the shipped files are valid, and every bad case names its exact place."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from daemon.config import parse_duration
from daemon.loader import ConfigError, load_config, parse_config

ROOT = Path(__file__).parents[1]
PROJECT = """
projects:
  - name: analytics
    region: cn-north-4
    project_id: 0123456789abcdef0123456789abcdef
    credentials: analytics
"""


def schedule(extra: str = "", **fields: str) -> str:
    values = {
        "name": "night",
        "action": "stop",
        "cron": '"0 20 * * mon-fri"',
        "timezone": "Asia/Shanghai",
        "targets": "{projects: [analytics]}",
        **fields,
    }
    body = "\n".join(f"    {k}: {v}" for k, v in values.items())
    return f"{PROJECT}\nschedules:\n  - {body.lstrip()}\n{extra}"


def problems(text: str) -> list[tuple[str, str, int | None]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.yaml")
    return [(p.where, p.message, p.line) for p in caught.value.problems]


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


def test_a_good_schedule_is_parsed_into_typed_values() -> None:
    config = parse_config(schedule(misfire_grace="90s", timeout="1h30m"))
    night = config.schedule("night")
    assert night.misfire_grace == timedelta(seconds=90)
    assert night.timeout == timedelta(hours=1, minutes=30)
    assert config.project("analytics").ges_endpoint == "https://ges.cn-north-4.myhuaweicloud.com"


@pytest.mark.parametrize(
    ("fields", "where", "words"),
    [
        ({"cron": '"0 25 * * *"'}, "schedules[0].cron", "higher than the maximum"),
        ({"cron": '"0 20 * *"'}, "schedules[0].cron", "has 4 fields"),
        ({"cron": '"0 8 1 * mon"'}, "schedules[0].cron", "split it into two schedules"),
        ({"timezone": "Asia/Shanghia"}, "schedules[0].timezone", "did you mean 'Asia/Shanghai'"),
        ({"action": "pause"}, "schedules[0].action", "'stop' or 'start'"),
        ({"misfire_grace": "5"}, "schedules[0].misfire_grace", "is not a duration"),
        ({"misfire_grace": "soon"}, "schedules[0].misfire_grace", "is not a duration"),
        ({"name": '"bad name!"'}, "schedules[0].name", "not allowed"),
        (
            {"targets": "{projects: [analytics], tagz: {a: b}}"},
            "schedules[0].targets.tagz",
            "did you mean 'tags'",
        ),
        (
            {"targets": "{projects: [nope]}"},
            "schedules[0].targets.projects[0]",
            "unknown project 'nope'",
        ),
        ({"targets": "{}"}, "schedules[0].targets", "selects nothing"),
        ({"skip_on": "missing-cal"}, "schedules[0].skip_on[0]", "unknown calendar"),
        ({"backup_id": "b1"}, "schedules[0].backup_id", "only a start schedule"),
        (
            {"action": "start", "keep_stopped_until": '"0 8 * * *"'},
            "schedules[0].keep_stopped_until",
            "only a stop schedule",
        ),
    ],
)
def test_each_schedule_error_names_its_location(
    fields: dict[str, str], where: str, words: str
) -> None:
    found = problems(schedule(**fields))
    assert any(w == where and words in m for w, m, _ in found), found


def test_errors_carry_the_line_number_of_the_offending_key() -> None:
    found = problems(schedule(cron='"0 25 * * *"'))
    assert (
        found[0][2]
        == schedule(cron='"0 25 * * *"').splitlines().index('    cron: "0 25 * * *"') + 1
    )


def test_duplicate_rule_names_and_projects_are_refused() -> None:
    text = (
        PROJECT
        + PROJECT.replace("projects:\n", "")
        + """
schedules:
  - {name: a, action: stop, cron: "@daily", timezone: UTC, targets: {projects: [analytics]}}
idle_rules:
  - {name: a, targets: {projects: [analytics]}, idle_for: 2h}
"""
    )
    found = {w: m for w, m, _ in problems(text)}
    assert "used twice" in found["projects[1].name"]
    assert "already used at schedules[0]" in found["idle_rules[0].name"]


def test_unknown_top_level_key_lists_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(PROJECT + "schedule: []\n")
    problem = caught.value.problems[0]
    assert problem.where == "schedule"
    assert "did you mean 'schedules'" in problem.message
    assert "idle_rules" in problem.hint


def test_yaml_booleans_get_a_quoting_hint_and_numeric_keys_stay_names() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(PROJECT + "calendars:\n  no: {country: NO}\npricing: {hourly: {1: 1.25}}\n")
    (problem,) = caught.value.problems
    assert problem.where == "calendars.no.country"
    assert "quote" in problem.hint


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("projects: [1,\n", "invalid YAML"),
        ("a: 1\na: 2\n", "duplicated key 'a' (first at line 1)"),
        ("- just\n- a list\n", "not a mapping"),
        ("projects: []\n", "at least 1 item"),
    ],
)
def test_broken_files_get_their_own_clear_message(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert words in caught.value.render()


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_calendars_know_countries_and_inline_dates() -> None:
    config = parse_config(
        PROJECT + "calendars:\n  cn: {country: CN}\n  own: {dates: [2026-12-24]}\n"
    )
    assert config.calendars["cn"].is_holiday(date(2026, 10, 1))  # National Day
    assert not config.calendars["cn"].is_holiday(date(2026, 11, 26))
    assert config.calendars["own"].is_holiday(date(2026, 12, 24))
    with pytest.raises(ConfigError, match="not a country"):
        parse_config(PROJECT + "calendars:\n  x: {country: XX}\n")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_a_single_name_is_accepted_where_a_list_of_names_is_asked_for() -> None:
    text = schedule(
        "calendars:\n  cn-holidays: {country: CN}\n",
        targets='{projects: analytics, names: "dev-*"}',
        exclude='{names: "*-keep"}',
        skip_on="cn-holidays",
    )
    (rule,) = parse_config(text).schedules
    assert rule.targets.projects == ["analytics"]
    assert rule.targets.names == ["dev-*"]
    assert rule.exclude is not None
    assert rule.exclude.names == ["*-keep"]
    assert rule.skip_on == ["cn-holidays"]
