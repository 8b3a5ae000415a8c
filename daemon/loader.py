"""Reading a config file: YAML with the line of every node, pydantic validation, the
cross-reference checks pydantic cannot express, and errors that name each place and its
line with a hint at the fix. The models themselves live in daemon.config.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import holidays
import yaml
from pydantic import BaseModel, ValidationError

from daemon.config import Config, IdleRule, Schedule

Loc = tuple[str | int, ...]


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
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def format_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += (
            f"[{part}]"
            if isinstance(part, int) and not isinstance(part, bool)
            else (f".{part}" if out else str(part))
        )
    return out


def load_config(path: Path | str) -> Config:
    """Read, parse and check one config file; raise ConfigError naming every problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            source, [Problem((), "file not found", "check the path, or set GRAPHNAP_CONFIG")]
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            source, [Problem((), "is a directory, not a file", "name the YAML file itself")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            source,
            [Problem((), f"cannot be read: {exc}", "check permissions and encoding (UTF-8)")],
        ) from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<config>") -> Config:
    data, lines = _load_yaml(text, source)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            source, [_problem_from_pydantic(err, lines) for err in exc.errors()]
        ) from None
    problems = [
        Problem(p.loc, p.message, p.hint, _line_of(p.loc, lines)) for p in check_references(config)
    ]
    if problems:
        raise ConfigError(source, problems)
    return config


def _load_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """YAML -> plain data, plus the line of every node; duplicated keys are refused."""
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise ConfigError(
            source, [Problem((), "the file is empty", "start from config/example.yaml")]
        )
    loader = yaml.SafeLoader(text)
    lines: dict[Loc, int] = {}
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(
                source, [Problem((), "the file is empty", "start from config/example.yaml")]
            )

        def build(node: yaml.Node, loc: Loc) -> Any:
            lines[loc] = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                loader.flatten_mapping(node)
                out: dict[Any, Any] = {}
                for key_node, value_node in node.value:
                    # Keys are names: keep their text, so `no:` or `1:` stay "no" and "1".
                    if not isinstance(key_node, yaml.ScalarNode):
                        raise ConfigError(
                            source,
                            [
                                Problem(
                                    loc,
                                    "a key must be a plain word",
                                    "write key: value",
                                    key_node.start_mark.line + 1,
                                )
                            ],
                        )
                    key = str(key_node.value)
                    if key in out:
                        first = lines.get((*loc, key))
                        raise ConfigError(
                            source,
                            [
                                Problem(
                                    (*loc, key),
                                    f"duplicated key {key!r} (first at line {first})",
                                    "YAML would silently keep only the last one; remove or merge them",
                                    key_node.start_mark.line + 1,
                                )
                            ],
                        )
                    lines[(*loc, key)] = key_node.start_mark.line + 1
                    out[key] = build(value_node, (*loc, key))
                    lines[(*loc, key)] = key_node.start_mark.line + 1
                return out
            if isinstance(node, yaml.SequenceNode):
                return [build(item, (*loc, i)) for i, item in enumerate(node.value)]
            return loader.construct_object(node, deep=True)

        data = build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = f"{exc.context + ', ' if exc.context else ''}{exc.problem or ''}"
        raise ConfigError(
            source,
            [
                Problem(
                    (),
                    f"invalid YAML: {what}",
                    "check indentation and quoting around that line",
                    line,
                )
            ],
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            source, [Problem((), f"invalid YAML: {exc}", "check the file's syntax")]
        ) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(
            source,
            [
                Problem(
                    (),
                    f"the top level is a {type(data).__name__}, not a mapping",
                    "start with 'projects:'",
                    1,
                )
            ],
        )
    return data, lines


def _line_of(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _problem_from_pydantic(err: Mapping[str, Any], lines: Mapping[Loc, int]) -> Problem:
    loc: Loc = tuple(part for part in err["loc"] if not _is_pydantic_tag(part))
    kind, message = err["type"], str(err["msg"])
    message = message.removeprefix("Value error, ")
    hint = ""
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        message = f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
        hint = f"allowed here: {', '.join(allowed)}" if allowed else "remove it"
    elif kind == "missing":
        message = "required key is missing"
        hint = f"add '{loc[-1]}:'"
    elif kind == "string_type" and isinstance(err.get("input"), bool):
        hint = "YAML reads yes/no/on/off/true/false as booleans; quote the value"
    elif kind == "string_pattern_mismatch":
        message = f"{err.get('input')!r} is not allowed here ({message})"
    return Problem(loc, message, hint, _line_of(loc, lines))


def _is_pydantic_tag(part: object) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys a mapping at `loc` accepts, by walking the model types."""
    tp: Any = Config
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


def check_references(config: Config) -> list[Problem]:
    """Cross-checks pydantic cannot express: names that must exist, be unique, or fit the action."""
    problems: list[Problem] = []
    project_names = [p.name for p in config.projects]
    for i, project in enumerate(config.projects):
        if project_names.index(project.name) != i:
            problems.append(
                Problem(
                    ("projects", i, "name"),
                    f"project name {project.name!r} is used twice",
                    "give each project its own name",
                )
            )
        pair = [(p.region, p.project_id) for p in config.projects].index(
            (project.region, project.project_id)
        )
        if pair != i:
            problems.append(
                Problem(
                    ("projects", i, "project_id"),
                    f"same region and project id as projects[{pair}]",
                    "list each project once",
                )
            )
    rule_names: dict[str, Loc] = {}
    rules: list[tuple[str, int, Schedule | IdleRule]] = [
        *(("schedules", i, s) for i, s in enumerate(config.schedules)),
        *(("idle_rules", i, r) for i, r in enumerate(config.idle_rules)),
    ]
    for section, i, rule in rules:
        here: Loc = (section, i)
        if rule.name in rule_names:
            problems.append(
                Problem(
                    (*here, "name"),
                    f"rule name {rule.name!r} is already used at {format_loc(rule_names[rule.name])}",
                    "rule names are metric labels: make them unique",
                )
            )
        rule_names.setdefault(rule.name, here)
        if rule.targets.is_empty():
            problems.append(
                Problem(
                    (*here, "targets"),
                    "targets selects nothing in particular",
                    "name projects, ids, names or tags; to mean every graph of a project, say 'projects: [name]'",
                )
            )
        for part in ("targets", "exclude"):
            selector = getattr(rule, part)
            for j, name in enumerate(selector.projects if selector else []):
                if name not in project_names:
                    problems.append(
                        Problem(
                            (*here, part, "projects", j),
                            f"unknown project {name!r}",
                            _known("projects", project_names),
                        )
                    )
        if isinstance(rule, Schedule):
            for j, name in enumerate(rule.skip_on):
                if name not in config.calendars:
                    problems.append(
                        Problem(
                            (*here, "skip_on", j),
                            f"unknown calendar {name!r}",
                            _known("calendars", list(config.calendars)),
                        )
                    )
            if rule.keep_stopped_until and rule.action != "stop":
                problems.append(
                    Problem(
                        (*here, "keep_stopped_until"),
                        "only a stop schedule keeps graphs stopped",
                        "remove it, or make the action 'stop'",
                    )
                )
            if rule.backup_id and rule.action != "start":
                problems.append(
                    Problem(
                        (*here, "backup_id"),
                        "only a start schedule starts from a backup",
                        "remove it, or make the action 'start'",
                    )
                )
    supported = holidays.list_supported_countries()
    for name, calendar in config.calendars.items():
        here = ("calendars", name)
        if calendar.country is None and not calendar.dates:
            problems.append(
                Problem(
                    here,
                    "a calendar needs a country, dates, or both",
                    "e.g. {country: CN} or {dates: [2026-12-24]}",
                )
            )
        elif calendar.country is not None and calendar.country not in supported:
            close = difflib.get_close_matches(calendar.country, list(supported), n=1)
            problems.append(
                Problem(
                    (*here, "country"),
                    f"{calendar.country!r} is not a country the holidays package knows",
                    f"did you mean {close[0]!r}?"
                    if close
                    else "use an ISO 3166-1 alpha-2 code such as CN or DE",
                )
            )
        elif (
            calendar.country is not None
            and calendar.subdivision is not None
            and calendar.subdivision not in supported[calendar.country]
        ):
            problems.append(
                Problem(
                    (*here, "subdivision"),
                    f"{calendar.country} has no subdivision {calendar.subdivision!r}",
                    f"known: {', '.join(supported[calendar.country][:12])}",
                )
            )
    return problems


def _known(what: str, names: Sequence[str]) -> str:
    return f"known {what}: {', '.join(names)}" if names else f"no {what} are defined"
