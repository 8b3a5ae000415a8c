"""Config fuzzing: seeded mutations of config/example.yaml (types swapped, keys dropped, NUL
bytes, overflowing durations, deep nesting, impossible dates, alias bombs, ...) each end in
a valid Config or a ConfigError whose every problem is located; and `graphnap validate`
answers the nastiest of them with exit 2 and no traceback. How long they take is
bench/config_load.py's to measure; here the per-test timeout is the only clock.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.app import serve
from daemon.cli.main import main
from daemon.config.loader import parse_config
from daemon.config.models import Config
from daemon.config.problems import ConfigError
from daemon.config.settings import Settings

ROOT = Path(__file__).parents[1]
EXAMPLE = (ROOT / "config" / "example.yaml").read_text()
CASES = 600
# Whole-file problems have no line or key to name; every other problem must have one.
WHOLE_FILE = ("the file is empty", "the file is larger than")

Mutation = Callable[[random.Random, list[str]], list[str]]

ODD_VALUES = [
    "[]",
    "{}",
    "42",
    "-1",
    "3.5",
    "true",
    "no",
    "null",
    "~",
    '""',
    "[a, b]",
    "{a: 1}",
    ".inf",
    ".nan",
    "0x1F",
    "0o777",
    "1_000",
    "2026-02-30",
    "2026-13-01T25:61:00",
    "'*'",
    "99999999999999999999999w",
    "1e400s",
    "-5m",
    "9" * 1000 + "d",
    "9" * 1000,
    "x" * 5000,
    "!!python/object/apply:os.system [id]",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!custom thing",
    "*undefined",
    "&loop [*loop]",
    "https://user:secret@ges.example.com",
    "http://169.254.169.254/",
    "ftp://ges.example.com",
    "Qm9vZ2llV29vZ2llMTIzNDU2Nzg5MGFiY2RlZmdoaWo0",
    "'\\u0000'",
    '"\\x00\\ud800"',
]
NASTY_CHARS = ["\x00", "\x07", "\x1b", "\ud800", "\ufeff", "\u2028", "\x85", "\t", "\r", "\uffff"]
SYNTAX_CHARS = [":", "-", "[", "]", "{", "}", '"', "'", "&", "*", "!", "%", "@", "`", "|", ">", "#"]


def billion_laughs(levels: int, width: int) -> list[str]:
    rows = ["x-lol0: &lol0 [lol]"]
    rows += [f"x-lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * width)}]" for i in range(1, levels)]
    return rows


def _value_line(rng: random.Random, lines: list[str]) -> int | None:
    candidates = [i for i, ln in enumerate(lines) if ":" in ln and not ln.lstrip().startswith("#")]
    return rng.choice(candidates) if candidates else None


def swap_value(rng: random.Random, lines: list[str]) -> list[str]:
    i = _value_line(rng, lines)
    if i is not None:
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {rng.choice(ODD_VALUES)}"
    return lines


def drop_line(rng: random.Random, lines: list[str]) -> list[str]:
    if lines:
        del lines[rng.randrange(len(lines))]
    return lines


def drop_block(rng: random.Random, lines: list[str]) -> list[str]:
    i = _value_line(rng, lines)
    if i is None:
        return lines
    indent = len(lines[i]) - len(lines[i].lstrip())
    end = i + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    return lines[:i] + lines[end:]


def duplicate_line(rng: random.Random, lines: list[str]) -> list[str]:
    if lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    return lines


def insert_char(rng: random.Random, lines: list[str]) -> list[str]:
    if lines:
        i = rng.randrange(len(lines))
        pos = rng.randrange(len(lines[i]) + 1)
        char = rng.choice(NASTY_CHARS + SYNTAX_CHARS)
        lines[i] = lines[i][:pos] + char + lines[i][pos:]
    return lines


def reindent(rng: random.Random, lines: list[str]) -> list[str]:
    if lines:
        i = rng.randrange(len(lines))
        lines[i] = (" " * rng.randrange(0, 7)) + lines[i].lstrip()
    return lines


def rename_key(rng: random.Random, lines: list[str]) -> list[str]:
    i = _value_line(rng, lines)
    if i is not None:
        key, rest = lines[i].split(":", 1)
        name = key.strip().lstrip("- ")
        typo = "".join(rng.sample(name, len(name))) if name else "x"
        lines[i] = key.replace(name, typo or "x", 1) + ":" + rest
    return lines


def deep_nesting(rng: random.Random, lines: list[str]) -> list[str]:
    depth = rng.choice([33, 1000, 20_000])
    opener, closer = rng.choice([("[", "]"), ("{a: ", "}")])
    balanced = rng.random() < 0.7
    value = opener * depth + "1" + (closer * depth if balanced else "")
    i = _value_line(rng, lines)
    if i is not None:
        lines[i] = lines[i].split(":", 1)[0] + ": " + value
    return lines


def alias_bomb(rng: random.Random, lines: list[str]) -> list[str]:
    levels, width = rng.choice([(10, 10), (6, 8), (4, 3)])
    rows = billion_laughs(levels, width)
    if rng.random() < 0.5:  # as the value of a real key: the expansion is reached
        i = _value_line(rng, lines)
        if i is not None:
            lines[i] = lines[i].split(":", 1)[0] + f": *lol{levels - 1}"
    return rows + lines


def merge_key(rng: random.Random, lines: list[str]) -> list[str]:
    i = _value_line(rng, lines)
    if i is not None:
        indent = " " * (len(lines[i]) - len(lines[i].lstrip()))
        lines.insert(i, indent + rng.choice(["<<: *undefined", "<<: 5", "<<: [1, 2]", "<<: {}"]))
    return lines


def truncate(rng: random.Random, lines: list[str]) -> list[str]:
    text = "\n".join(lines)
    return text[: rng.randrange(len(text) + 1)].split("\n")


def second_document(rng: random.Random, lines: list[str]) -> list[str]:
    lines.insert(rng.randrange(len(lines) + 1), rng.choice(["---", "...", "%YAML 1.1", "--- !x"]))
    return lines


MUTATIONS: list[Mutation] = [
    swap_value,
    swap_value,
    swap_value,
    drop_line,
    drop_block,
    duplicate_line,
    insert_char,
    reindent,
    rename_key,
    deep_nesting,
    alias_bomb,
    merge_key,
    truncate,
    second_document,
]


def mutate(seed: int) -> str:
    rng = random.Random(seed)
    lines = EXAMPLE.split("\n")
    for _ in range(rng.randint(1, 3)):
        lines = rng.choice(MUTATIONS)(rng, lines)
    return "\n".join(lines)


def check_outcome(text: str) -> Config | ConfigError:
    """The invariant: a Config, or a ConfigError with every problem located and short."""
    try:
        return parse_config(text, "fuzz.yaml")
    except ConfigError as exc:
        for problem in exc.problems:
            rendered = str(problem)
            assert "graphnap bug" not in problem.hint, rendered
            assert (
                problem.line is not None or problem.loc or problem.message.startswith(WHOLE_FILE)
            ), rendered
            assert len(rendered) < 1200, rendered[:300]
        return exc


def test_seeded_mutations_of_the_example_end_in_a_config_or_a_located_error() -> None:
    outcomes = {"valid": 0, "refused": 0}
    for seed in range(CASES):
        result = check_outcome(mutate(seed))
        outcomes["valid" if isinstance(result, Config) else "refused"] += 1
    assert outcomes["refused"] > CASES // 2  # the mutations do reach the checks
    assert outcomes["valid"] > 0  # ... and some leave a config that still loads


NASTIEST = {
    "alias-bomb": "\n".join([*billion_laughs(12, 10), "projects: *lol11"]),
    "deep": "projects: " + "[" * 20_000 + "]" * 20_000,
    "nul": EXAMPLE.replace("USD", "US\x00D"),
    "impossible-date": EXAMPLE.replace("2026-12-24", "2026-02-30"),
    "recursive-alias": "projects: &p\n  - *p\n",
    "overflow": EXAMPLE.replace("idle_for: 2h", "idle_for: 99999999999999999999999w"),
    "python-tag": EXAMPLE.replace("currency: USD", "currency: !!python/name:os.system"),
}


def test_validate_answers_the_nastiest_inputs_with_exit_2_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for name, text in NASTIEST.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        paths.append(str(path))
    (tmp_path / "binary.yaml").write_bytes(b"projects:\n  - \xff\xfe\x00garbage\n")
    paths.append(str(tmp_path / "binary.yaml"))
    assert main(["validate", *paths, str(ROOT / "config" / "example.yaml")]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "example.yaml: ok" in out
    for path in paths:
        assert f"{path}: 1 problem\n  line " in err, err


async def test_run_refuses_a_hostile_config_with_exit_2(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(NASTIEST["alias-bomb"])
    caplog.set_level(logging.INFO)
    assert await serve(Settings(config=path, listen_host="127.0.0.1", listen_port=0)) == 2
    assert "alias bomb" in caplog.text
    assert "Traceback" not in caplog.text
