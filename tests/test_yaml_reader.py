"""The bounded YAML reader: any YAML, not only a config (it knows no graphnap key), the line
of every place in it, and each bound refusing what passes it, at its place and line."""

from __future__ import annotations

import tracemalloc
from datetime import date

import pytest

from daemon.config.problems import ConfigError, Problem
from daemon.config.yaml_reader import Bounds, Document, read_yaml

SK = "Qm9vZ2llV29vZ2llMTIzNDU2Nzg5MGFiY2RlZmdo"  # 40 characters, the shape of a Huawei SK


DEFAULTS = Bounds()


def read(text: str, bounds: Bounds = DEFAULTS) -> Document:
    document = read_yaml(text, "any.yaml", bounds)
    assert document is not None
    return document


def refusal(text: str, bounds: Bounds = DEFAULTS) -> Problem:
    with pytest.raises(ConfigError) as caught:
        read_yaml(text, "any.yaml", bounds)
    (problem,) = caught.value.problems
    assert caught.value.source == "any.yaml"
    return problem


def billion_laughs(levels: int, width: int) -> str:
    rows = ["a0: &a0 [lol]"]
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(rows) + f"\ntop: *a{levels - 1}\n"


def merge_bomb(levels: int, width: int) -> str:
    rows = ["m0: &m0 {k0: 1}"]
    rows += [
        f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * width)}], k{i}: 1}}"
        for i in range(1, levels)
    ]
    return "\n".join(rows) + f"\ntop: [*m{levels - 1}]\n"


# --- any YAML, with the line of every place -------------------------------------------------


def test_it_reads_yaml_that_is_no_config_with_the_line_of_every_place() -> None:
    manifest = """apiVersion: v1
kind: ConfigMap
metadata:
  name: web
  labels: {app: web, no: 1}
data:
  - 1
  - 2026-12-24
  - yes
  - "quoted"
"""
    document = read(manifest)
    assert document.data == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "web", "labels": {"app": "web", "no": 1}},
        "data": [1, date(2026, 12, 24), True, "quoted"],
    }
    assert document.lines[("metadata", "labels", "app")] == 5
    assert document.lines[("data", 1)] == 8
    assert document.lines[()] == 1


def test_a_top_level_list_or_scalar_is_data_like_any_other() -> None:
    assert read("- a\n- b\n").data == ["a", "b"]
    assert read("42\n").data == 42
    assert read("---\n").data is None  # a document holding null is still a document


@pytest.mark.parametrize("text", ["", "  \n\n", "# only a comment\n", "\t\n"])
def test_text_without_a_document_reads_as_none(text: str) -> None:
    assert read_yaml(text, "any.yaml") is None


def test_keys_stay_the_text_written() -> None:
    assert read("{no: 1, 1: 2, on: 3, ~: 4}").data == {"no": 1, "1": 2, "on": 3, "~": 4}


def test_aliases_and_merge_keys_work_and_explicit_keys_win() -> None:
    text = """
base: &base {a: 1, b: 2}
more: &more {b: 20, c: 30}
one: {<<: *base, b: 3}
two: {<<: [*base, *more]}
list: &l [1, 2]
again: *l
"""
    data = read(text).data
    assert data["one"] == {"a": 1, "b": 3}
    assert data["two"] == {"a": 1, "b": 2, "c": 30}  # the first merged mapping wins
    assert data["again"] == [1, 2]


# --- what is refused, and where --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "line", "words"),
    [
        ("a: 1\nb:\n  a: 2\na: 3\n", "a", 4, "duplicated key 'a' (first at line 1)"),
        ("a: &a\n  - *a\n", "a[0]", 2, "recursive alias"),
        ("a: &a [*a]\n", "a[0]", 1, "recursive alias"),
        ("a: *nowhere\n", "a", 1, "names no anchor"),
        ("a: &x 1\nb: &x 2\n", "b", 2, "anchor &x is defined twice"),
        ("a: 1\nb: US\x00D\n", "(top level)", 2, "control character U+0000 at column 6"),
        ("a: " + "[" * 20_000 + "]" * 20_000 + "\n", "(top level)", 1, "nest"),
        ("a: " + "{a: " * 2_000 + "1" + "}" * 2_000 + "\n", "a.a", 1, "nested more than 32"),
        (billion_laughs(12, 10), "a5", 6, "alias bomb"),
        (merge_bomb(12, 10), "m5", 6, "alias bomb"),
        ("a: 1\n---\nb: 2\n", "(top level)", 2, "second YAML document"),
        ("a:\n\t- b\n", "(top level)", 2, "invalid YAML"),
        ("a: [1,\n", "(top level)", 2, "invalid YAML"),
        ("a: 1\nb: 2026-02-30\n", "b", 2, "'2026-02-30' is not a valid date: day is out of range"),
        ("a: {<<: 5}\n", "a", 1, "'<<' merges a mapping"),
        ("? [a]\n: 1\n", "(top level)", 1, "a key must be a plain word"),
    ],
    ids=[
        "duplicated-key",
        "recursive-alias",
        "self-alias",
        "undefined-alias",
        "anchor-twice",
        "nul-byte",
        "20000-deep-list",
        "2000-deep-map",
        "billion-laughs",
        "merge-bomb",
        "two-documents",
        "tab-indent",
        "unclosed-list",
        "impossible-date",
        "merge-of-a-scalar",
        "list-as-key",
    ],
)
def test_each_refusal_names_its_place_and_line(
    text: str, where: str, line: int, words: str
) -> None:
    problem = refusal(text)
    assert problem.where.startswith(where), str(problem)
    assert problem.line == line, str(problem)
    assert words in problem.message, str(problem)


@pytest.mark.parametrize(
    "tag", ["!!python/object/apply:os.system [id]", "!!binary aGVsbG8=", "!!set {a, b}", "!x y"]
)
def test_tags_beyond_plain_data_are_refused_before_anything_is_built(tag: str) -> None:
    problem = refusal(f"a: 1\nb: {tag}\n")
    assert (problem.where, problem.line) == ("b", 2)
    assert "is not allowed" in problem.message


def test_a_secret_shaped_value_that_fails_is_not_echoed() -> None:
    problem = refusal(f"key: !!int {SK}\n")
    assert "is not a valid integer" in problem.message
    assert SK[:8] not in str(problem)


# --- the bounds: each one counts, and refuses one past it ------------------------------------


def test_the_value_bound_counts_values_after_aliases_expand() -> None:
    # 8 values are written; with `b`'s four aliases expanded there are 24.
    text = "a: &a [x, x, x]\nb: [*a, *a, *a, *a]\n"
    assert len(read(text, Bounds(nodes=24)).data["b"]) == 4
    problem = refusal(text, Bounds(nodes=23))
    assert (problem.where, problem.line) == ("b", 2)
    assert "past 23 values (an alias bomb?)" in problem.message
    assert refusal(text, Bounds(nodes=7)).message == "more than 7 values"  # as written


def test_the_depth_bound_counts_levels_and_what_aliases_nest() -> None:
    assert read("a: [[1]]\n", Bounds(depth=3)).data == {"a": [[1]]}
    assert "nested more than 3 levels" in refusal("a: [[[1]]]\n", Bounds(depth=3)).message
    # Written three deep, but `b` holds `a`'s list inside two more levels.
    problem = refusal("a: &a [[1]]\nb: [[*a]]\n", Bounds(depth=3))
    assert "with its aliases and merges, nested more than 3" in problem.message


def test_the_length_bounds_on_a_value_and_on_the_text() -> None:
    assert read("k: 12345678\n", Bounds(value_chars=8)).data == {"k": 12345678}
    assert (
        "a value of 9 characters; at most 8"
        in refusal("k: 123456789\n", Bounds(value_chars=8)).message
    )
    problem = refusal("k: 123456789\n", Bounds(file_chars=12))
    assert "larger than" in problem.message
    assert problem.loc == ()


def test_a_billion_laughs_is_refused_within_a_small_memory_bound() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="alias bomb"):
            read_yaml(billion_laughs(levels=10, width=10), "bomb.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20  # 10**9 expanded values before the bound


def test_an_alias_bomb_of_any_size_is_refused_from_its_written_size() -> None:
    # 10**40 values expanded: counting them one by one would never end (the per-test
    # timeout guards this), counting each written node once is what the reader does.
    assert "alias bomb" in refusal(billion_laughs(levels=41, width=10)).message
