"""Problems in a config: each names its place (and line) with a hint at the fix; the error
that carries them and how it renders; pydantic's errors translated into them.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from daemon.config.models import close_timezone, looks_like_secret, named, shown

Loc = tuple[str | int, ...]

MAX_PROBLEMS_SHOWN = 50


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str
    hint: str = ""
    line: int | None = None

    @property
    def where(self) -> str:
        return format_loc(self.loc) or "(top level)"

    def __str__(self) -> str:
        line = f"line {self.line}: " if self.line else ""
        hint = f"\n    hint: {self.hint}" if self.hint else ""
        return f"{line}{self.where}: {self.message}{hint}"


class ConfigError(Exception):
    """A config that cannot be used; `problems` says every place that is wrong."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''}"
        shown_problems = [f"  {p}" for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        if count > MAX_PROBLEMS_SHOWN:
            shown_problems.append(f"  ... and {count - MAX_PROBLEMS_SHOWN} more")
        return "\n".join([head, *shown_problems])


def format_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and (looks_like_secret(part) or len(part) > 64):
            part = shown(part)  # a key can be a pasted secret too
        out += (
            f"[{part}]"
            if isinstance(part, int) and not isinstance(part, bool)
            else (f".{part}" if out else str(part))
        )
    return out


def line_of(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    """The line of `loc`, or of the nearest place above it that has one."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def problems_from_pydantic(
    exc: ValidationError, lines: Mapping[Loc, int], root: type[BaseModel]
) -> list[Problem]:
    """Each error of validating data against `root` as a located Problem with a hint. Only
    the problems that will be shown get "did you mean" suggestions: they cost difflib time."""
    return [
        _problem_from_pydantic(err, lines, root, explain=i < MAX_PROBLEMS_SHOWN)
        for i, err in enumerate(exc.errors())
    ]


def _problem_from_pydantic(
    err: Mapping[str, Any], lines: Mapping[Loc, int], root: type[BaseModel], *, explain: bool
) -> Problem:
    loc: Loc = tuple(part for part in err["loc"] if not _is_pydantic_tag(part))
    kind, message = err["type"], str(err["msg"])
    message = message.removeprefix("Value error, ")
    hint = ""
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(root, loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1) if explain and len(key) <= 64 else []
        message = f"unknown key {named(key)}" + (f" (did you mean {close[0]!r}?)" if close else "")
        hint = f"allowed here: {', '.join(allowed)}" if allowed else "remove it"
    elif kind == "missing":
        message = "required key is missing"
        hint = f"add '{loc[-1]}:'"
    elif kind == "string_type" and isinstance(err.get("input"), bool):
        hint = "YAML reads yes/no/on/off/true/false as booleans; quote the value"
    elif kind == "string_pattern_mismatch":
        # Never the value in full: a secret pasted under the wrong key fails exactly here.
        message = f"{shown(err.get('input'))} is not allowed here ({message})"
    elif kind == "unknown_timezone" and explain:
        close_zone = close_timezone(str(err.get("ctx", {}).get("name", "")))
        if close_zone:
            message = message.replace(";", f" (did you mean {close_zone!r}?);", 1)
    line = line_of(loc, lines)
    if kind == "string_pattern_mismatch" and "[key]" in err["loc"] and loc:
        # A key that failed its pattern: cut in the path, which then says all.
        loc = (*loc[:-1], shown(loc[-1]))
        message = f"this key is not allowed here ({err['msg']})"
    return Problem(loc, message, hint, line)


def _is_pydantic_tag(part: object) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _allowed_keys(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys a mapping at `loc` accepts, by walking the model types down from `root`."""
    tp: Any = root
    for part in loc:
        tp = _strip_optional(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        else:
            return []
    tp = _strip_optional(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _strip_optional(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    return tp
