"""Cross-reference checks: each name a rule uses exists, names are unique, and each option
fits its schedule's action; every problem names its place and a hint with what is known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.config.loader import load_config
from daemon.config.models import Config
from daemon.config.references import check_references

ROOT = Path(__file__).parents[1]


def project(name: str = "analytics", project_id: str = "0123456789abcdef") -> dict[str, str]:
    return {"name": name, "region": "cn-north-4", "project_id": project_id, "credentials": name}


def stop(name: str = "night", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "action": "stop",
        "cron": "@daily",
        "timezone": "UTC",
        "targets": {"projects": ["analytics"]},
        **fields,
    }


def found(**sections: Any) -> dict[str, tuple[str, str]]:
    config = Config.model_validate({"projects": [project()], **sections})
    return {p.where: (p.message, p.hint) for p in check_references(config)}


def test_the_shipped_example_has_no_problem() -> None:
    assert check_references(load_config(ROOT / "config" / "example.yaml")) == []


def test_a_project_listed_twice_by_name_or_by_id_is_refused() -> None:
    config = Config.model_validate(
        {"projects": [project(), project("lab"), project("analytics", "fedcba9876543210")]}
    )
    problems = {p.where: p.message for p in check_references(config)}
    assert problems == {
        "projects[1].project_id": "same region and project id as projects[0]",
        "projects[2].name": "project name 'analytics' is used twice",
    }


def test_rule_names_are_unique_across_schedules_and_idle_rules() -> None:
    problems = found(
        schedules=[stop("a")],
        idle_rules=[{"name": "a", "targets": {"projects": ["analytics"]}, "idle_for": "2h"}],
    )
    message, hint = problems["idle_rules[0].name"]
    assert message == "rule name 'a' is already used at schedules[0]"
    assert "metric labels" in hint


def test_unknown_projects_in_targets_and_exclude_are_named_with_the_known_ones() -> None:
    problems = found(
        schedules=[stop(targets={"projects": ["analytics", "nope"]}, exclude={"projects": ["x"]})]
    )
    assert problems["schedules[0].targets.projects[1]"] == (
        "unknown project 'nope'",
        "known projects: analytics",
    )
    assert "schedules[0].exclude.projects[0]" in problems


def test_targets_that_select_nothing_in_particular_are_refused() -> None:
    assert "schedules[0].targets" in found(schedules=[stop(targets={})])


def test_an_unknown_calendar_names_the_defined_ones() -> None:
    problems = found(schedules=[stop(skip_on=["cn"])])
    assert problems["schedules[0].skip_on[0]"] == (
        "unknown calendar 'cn'",
        "no calendars are defined",
    )


def test_each_option_must_fit_its_schedule_action() -> None:
    start = {"action": "start"}
    problems = found(
        schedules=[
            stop("a", **start, keep_stopped_until="0 8 * * *"),
            stop("b", **start, defer_while_in_use={"within": "15m"}),
            stop("c", backup_id="b1"),
        ]
    )
    assert problems["schedules[0].keep_stopped_until"][0] == (
        "only a stop schedule keeps graphs stopped"
    )
    assert problems["schedules[1].defer_while_in_use"][0] == (
        "only a stop schedule defers graphs in use"
    )
    assert problems["schedules[2].backup_id"][0] == "only a start schedule starts from a backup"


def test_calendars_need_a_known_country_and_subdivision_or_dates() -> None:
    problems = found(
        calendars={
            "empty": {},
            "typo": {"country": "XX"},
            "close": {"country": "GBB"},
            "sub": {"country": "DE", "subdivision": "ZZ"},
        }
    )
    assert problems["calendars.empty"][0] == "a calendar needs a country, dates, or both"
    assert problems["calendars.typo.country"] == (
        "'XX' is not a country the holidays package knows",
        "use an ISO 3166-1 alpha-2 code such as CN or DE",
    )
    assert problems["calendars.close.country"][1] == "did you mean 'GB'?"
    assert problems["calendars.sub.subdivision"][0] == "DE has no subdivision 'ZZ'"
    assert "BY" in problems["calendars.sub.subdivision"][1]  # the known ones, Bavaria among them


def test_a_hold_of_an_unknown_project_is_refused_with_the_known_ones() -> None:
    hold = {
        "graphs": {"project": "analytcs", "names": ["search-*"]},
        "keep": "running",
        "until": "2026-12-01T23:00:00+08:00",
        "reason": "release test",
    }
    assert found(holds=[hold])["holds[0].graphs.project"] == (
        "unknown project 'analytcs'",
        "known projects: analytics",
    )
