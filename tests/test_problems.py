"""Problems: how a place, its line and a hint render; the cap on what is shown; pydantic's
errors translated into located problems against any model."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from daemon.config.problems import (
    MAX_PROBLEMS_SHOWN,
    ConfigError,
    Loc,
    Problem,
    format_loc,
    line_of,
    problems_from_pydantic,
)

SK = "Qm9vZ2llV29vZ2llMTIzNDU2Nzg5MGFiY2RlZmdo"  # 40 characters, the shape of a Huawei SK


def test_a_problem_renders_its_line_place_and_hint() -> None:
    problem = Problem(("schedules", 2, "cron"), "has 4 fields", "write five", 7)
    assert str(problem) == "line 7: schedules[2].cron: has 4 fields\n    hint: write five"
    assert str(Problem((), "the file is empty")) == "(top level): the file is empty"


def test_an_error_counts_its_problems_and_shows_at_most_the_cap() -> None:
    one = ConfigError("a.yaml", [Problem(("projects",), "bad")])
    assert one.render() == "a.yaml: 1 problem\n  projects: bad"
    many = ConfigError("b.yaml", [Problem(("k", i), "bad") for i in range(MAX_PROBLEMS_SHOWN + 7)])
    lines = many.render().splitlines()
    assert lines[0] == f"b.yaml: {MAX_PROBLEMS_SHOWN + 7} problems"
    assert lines[-1] == "  ... and 7 more"
    assert len(lines) == MAX_PROBLEMS_SHOWN + 2
    assert str(many) == many.render()


def test_a_place_cuts_a_key_that_looks_like_a_secret() -> None:
    assert format_loc(("calendars", "cn", "dates", 0)) == "calendars.cn.dates[0]"
    where = format_loc(("opt_out_tags", SK))
    assert where.startswith("opt_out_tags.'Qm9v…'")
    assert SK[:8] not in where


def test_the_line_of_a_place_is_its_own_or_the_nearest_above() -> None:
    lines: dict[Loc, int] = {(): 1, ("a",): 2, ("a", 0): 3}
    assert line_of(("a", 0), lines) == 3
    assert line_of(("a", 0, "missing"), lines) == 3
    assert line_of(("b",), lines) == 1
    assert line_of(("b",), {}) is None


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    color: str
    size: int = 1
    code: Annotated[str, StringConstraints(pattern=r"^[a-z]{1,8}$")] = "x"


class Root(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Item]


def translated(data: object) -> list[Problem]:
    lines: dict[Loc, int] = {(): 1, ("items",): 2, ("items", 0): 3, ("items", 0, "colour"): 4}
    with pytest.raises(ValidationError) as caught:
        Root.model_validate(data)
    return problems_from_pydantic(caught.value, lines, Root)


def test_an_unknown_key_gets_did_you_mean_and_the_keys_allowed_there() -> None:
    found = {p.where: p for p in translated({"items": [{"colour": "red"}]})}
    unknown, missing = found["items[0].colour"], found["items[0].color"]
    assert (unknown.where, unknown.line) == ("items[0].colour", 4)
    assert unknown.message == "unknown key 'colour' (did you mean 'color'?)"
    assert unknown.hint == "allowed here: color, size, code"
    assert (missing.where, missing.message, missing.hint) == (
        "items[0].color",
        "required key is missing",
        "add 'color:'",
    )
    assert missing.line == 3  # the key is not there: the line of its mapping


def test_a_yaml_boolean_where_text_is_asked_gets_a_quoting_hint() -> None:
    (problem,) = translated({"items": [{"color": True}]})
    assert "quote the value" in problem.hint


def test_a_value_that_fails_a_pattern_is_never_echoed_in_full() -> None:
    (problem,) = translated({"items": [{"color": "red", "code": SK}]})
    assert problem.where == "items[0].code"
    assert "is not allowed here" in problem.message
    assert SK[:8] not in str(problem)
