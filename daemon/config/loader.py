"""Reading a config file: YAML with the line of every node, pydantic validation, the
cross-reference checks pydantic cannot express, and errors that name each place and its
line with a hint at the fix. The models themselves live in daemon.config.models.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import holidays
import yaml
from pydantic import BaseModel, ValidationError

from daemon.config.models import (
    Config,
    IdleRule,
    Schedule,
    close_timezone,
    looks_like_secret,
    named,
    shown,
)

Loc = tuple[str | int, ...]

# What a config file may be. A real one is a few kilobytes, a dozen levels deep at most and
# has no value longer than a URL; past these bounds it is refused before it costs time or
# memory (a 1 MiB file of nested aliases would otherwise expand to gigabytes).
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_VALUE_CHARS = 1024
MAX_NODES = 50_000  # values after aliases and merges are expanded
MAX_PROBLEMS_SHOWN = 50

# libyaml when it is there: the same events and line numbers, parsed many times faster.
_YamlLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
# What YAML allows in a stream (YAML 1.1, 5.1): NUL, other controls and lone surrogates not.
_NOT_PRINTABLE_RE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


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


def load_config(path: Path | str) -> Config:
    """Read, parse and check one config file; raise ConfigError naming every problem."""
    path = Path(path)
    source = str(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(path)
        if path.exists() and not path.is_file():  # a FIFO or a device would block or never end
            raise ConfigError(
                source, [Problem((), "is not a regular file", "name the YAML file itself")]
            )
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            source, [Problem((), "file not found", "check the path, or set GRAPHNAP_CONFIG")]
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            source, [Problem((), "is a directory, not a file", "name the YAML file itself")]
        ) from None
    except OSError as exc:
        raise ConfigError(
            source,
            [Problem((), f"cannot be read: {exc.strerror or exc}", "check its permissions")],
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(source, [_too_large()])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            source,
            [
                Problem(
                    (),
                    f"is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                    "save the file as UTF-8",
                    line,
                )
            ],
        ) from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse and check a config's text; every failure, whatever its cause, is a ConfigError."""
    try:
        return _parse(text, source)
    except ConfigError:
        raise
    except Exception as exc:  # a bug here must still end as a config error, not a traceback
        raise ConfigError(
            source,
            [
                Problem(
                    (),
                    f"could not be checked: {type(exc).__name__}",
                    "this is a graphnap bug: please report it with the file",
                )
            ],
        ) from exc


def _parse(text: str, source: str) -> Config:
    data, lines = _load_yaml(text, source)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            source,
            [
                _problem_from_pydantic(err, lines, explain=i < MAX_PROBLEMS_SHOWN)
                for i, err in enumerate(exc.errors())
            ],
        ) from None
    problems = [
        Problem(p.loc, p.message, p.hint, _line_of(p.loc, lines)) for p in check_references(config)
    ]
    if problems:
        raise ConfigError(source, problems)
    return config


def _too_large() -> Problem:
    return Problem(
        (),
        f"the file is larger than {MAX_FILE_BYTES // 1024} KiB",
        "a config is a few kilobytes: is this the right file?",
    )


def _load_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    """YAML -> plain data, plus the line of every node; duplicated keys are refused, and so
    is anything past the bounds above."""
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(source, [_too_large()])
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise ConfigError(
            source, [Problem((), "the file is empty", "start from config/example.yaml")]
        )
    bad = _NOT_PRINTABLE_RE.search(text)
    if bad:
        bad_line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise ConfigError(
            source,
            [
                Problem(
                    (),
                    f"a control character U+{ord(bad.group()):04X} at column {column}",
                    "a config is plain text; remove it (was the file copied from a binary?)",
                    bad_line,
                )
            ],
        )
    loader = _YamlLoader(text)
    try:
        node = _compose(loader, source)
        if node is None:
            raise ConfigError(
                source, [Problem((), "the file is empty", "start from config/example.yaml")]
            )
        _refuse_alias_bombs(node, source)
        builder = _Builder(loader, source)
        data = builder.build(node, (), 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = f"{exc.context + ', ' if exc.context else ''}{exc.problem or ''}"
        text_lines = text.split("\n")
        text_line = text_lines[line - 1] if line and line <= len(text_lines) else ""
        hint = (
            "YAML indents with spaces, never tabs"
            if "\t" in text_line[: len(text_line) - len(text_line.lstrip())]
            else "check indentation and quoting around that line"
        )
        raise ConfigError(
            source, [Problem((), f"invalid YAML: {_cut(what, 200)}", hint, line)]
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
    return data, builder.lines


@dataclass
class _Open:
    """A collection being composed, and for a mapping the key that waits for its value."""

    node: yaml.SequenceNode | yaml.MappingNode
    key: yaml.Node | None = None

    def add(self, child: yaml.Node) -> None:
        if isinstance(self.node, yaml.SequenceNode):
            self.node.value.append(child)
        elif self.key is None:
            self.key = child
        else:
            self.node.value.append((self.key, child))
            self.key = None

    def loc(self) -> Loc:
        if isinstance(self.node, yaml.SequenceNode):
            return (len(self.node.value),)
        if isinstance(self.key, yaml.ScalarNode):
            return (str(self.key.value),)
        return ()


def _compose(loader: Any, source: str) -> yaml.Node | None:
    """Parser events -> one document's node graph, as PyYAML's composer builds it, but
    without recursion (libyaml's composer recurses in C and 20,000 '[' overflow its stack)
    and refusing what is nested too deep, too long, or an alias inside what it names."""

    def refuse(message: str, hint: str, mark: Any) -> ConfigError:
        loc: Loc = tuple(part for frame in stack for part in frame.loc())
        return ConfigError(source, [Problem(loc, message, hint, mark.line + 1)])

    loader.get_event()  # StreamStartEvent
    if loader.check_event(yaml.StreamEndEvent):
        return None
    loader.get_event()  # DocumentStartEvent
    anchors: dict[str, yaml.Node] = {}
    stack: list[_Open] = []
    count = 0
    while True:
        event: Any = loader.get_event()
        start: Any = event.start_mark  # libyaml's marks are its own type, with the same fields
        node: yaml.Node
        if isinstance(event, yaml.AliasEvent):
            alias = _cut(str(event.anchor))
            target = anchors.get(str(event.anchor))
            if target is None:
                raise refuse(
                    f"alias *{alias} names no anchor defined before it",
                    "define &name before using *name",
                    start,
                )
            if any(frame.node is target for frame in stack):
                raise refuse(
                    f"alias *{alias} is inside the value it names (a recursive alias)",
                    "an alias can only repeat a value defined before it, not contain itself",
                    start,
                )
            node = target
        elif isinstance(event, yaml.ScalarEvent | yaml.SequenceStartEvent | yaml.MappingStartEvent):
            count += 1
            if count > MAX_NODES:
                raise refuse(
                    f"more than {MAX_NODES} values",
                    "a config is a few hundred values: is this the right file?",
                    start,
                )
            if isinstance(event, yaml.ScalarEvent):
                if len(event.value) > MAX_VALUE_CHARS or len(event.tag or "") > MAX_VALUE_CHARS:
                    raise refuse(
                        f"a value of {len(event.value)} characters; at most {MAX_VALUE_CHARS} are read",
                        "no setting needs a value that long: is this the right place?",
                        start,
                    )
                tag = event.tag
                if tag is None or tag == "!":
                    tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, start, start, style=event.style)
            else:
                if len(stack) >= MAX_DEPTH:
                    raise refuse(
                        f"nested more than {MAX_DEPTH} levels deep",
                        "a config is a few levels deep: look for unclosed '[' or '{'",
                        start,
                    )
                kind: type[yaml.SequenceNode | yaml.MappingNode] = (
                    yaml.SequenceNode
                    if isinstance(event, yaml.SequenceStartEvent)
                    else yaml.MappingNode
                )
                tag = event.tag
                if tag is None or tag == "!":
                    tag = loader.resolve(kind, None, event.implicit)
                node = kind(tag, [], start, None, flow_style=event.flow_style)
            if event.anchor is not None:
                if event.anchor in anchors:
                    raise refuse(
                        f"anchor &{_cut(event.anchor)} is defined twice",
                        "give each anchor its own name",
                        start,
                    )
                anchors[event.anchor] = node
            if not isinstance(node, yaml.ScalarNode):
                stack.append(_Open(node))
                continue
        else:  # SequenceEndEvent or MappingEndEvent
            frame = stack.pop()
            node = frame.node
        if not stack:
            break
        stack[-1].add(node)
    loader.get_event()  # DocumentEndEvent
    if not loader.check_event(yaml.StreamEndEvent):
        extra: Any = loader.get_event()
        raise refuse(
            "a second YAML document ('---'); a config is one document",
            "remove the '---' line, or split the file",
            extra.start_mark,
        )
    return node


def _refuse_alias_bombs(root: yaml.Node, source: str) -> None:
    """Refuse a document whose aliases and merges expand past MAX_NODES values, from the
    size of each node counted once (the composed graph shares what aliases repeat), so
    a billion laughs costs as much as its few lines, not as much as MAX_NODES values."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:  # recursion is bounded: nodes nest MAX_DEPTH deep
        known = sizes.get(id(node))
        if known is not None:
            return known
        children: list[yaml.Node] = (
            [part for pair in node.value for part in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
            if isinstance(node, yaml.SequenceNode)
            else []
        )
        total = 1
        for child in children:
            total = min(total + size(child), MAX_NODES + 1)
        sizes[id(node)] = total
        return total

    if size(root) <= MAX_NODES:
        return
    where: Loc = ()
    line = root.start_mark.line + 1
    if isinstance(root, yaml.MappingNode):  # name the first top-level key that explodes
        key, _ = max(root.value, key=lambda pair: size(pair[1]))
        if isinstance(key, yaml.ScalarNode):
            where, line = (str(key.value),), key.start_mark.line + 1
    raise ConfigError(
        source,
        [
            Problem(
                where,
                f"aliases expand the config past {MAX_NODES} values (an alias bomb?)",
                "repeat a value with an alias a few times, not aliases of aliases",
                line,
            )
        ],
    )


class _Builder:
    """Nodes -> plain data with the line of every place. Aliases and merge keys (`<<`)
    expand here, so here their expanded depth is bounded."""

    def __init__(self, loader: yaml.SafeLoader, source: str) -> None:
        self._loader = loader
        self._source = source
        self.lines: dict[Loc, int] = {}

    def build(self, node: yaml.Node, loc: Loc, depth: int) -> Any:
        self._visit(node, loc, depth)
        self.lines[loc] = node.start_mark.line + 1
        if node.tag not in _STANDARD_TAGS:
            # `!!python/object:...` and the like: never constructed, refused by name.
            raise self._refuse(
                loc,
                f"the YAML tag {_cut(str(node.tag).replace('tag:yaml.org,2002:', '!!'))} is not allowed",
                "remove it",
                node,
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, loc)

    def _visit(self, node: yaml.Node, loc: Loc, depth: int) -> None:
        # Their number is bounded before building (_refuse_alias_bombs); their depth here.
        if depth > MAX_DEPTH:
            raise self._refuse(
                loc,
                f"with its aliases and merges, nested more than {MAX_DEPTH} levels deep",
                "a config is a few levels deep",
                node,
            )

    def _mapping(self, node: yaml.MappingNode, loc: Loc, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}  # from `<<: *anchor`; keys written here win over them
        for key_node, value_node in node.value:
            # Keys are names: keep their text, so `no:` or `1:` stay "no" and "1".
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._refuse(loc, "a key must be a plain word", "write key: value", key_node)
            if key_node.tag == _MERGE_TAG:
                for part in self._merged(value_node, loc, depth):
                    for key, value in part.items():
                        merged.setdefault(key, value)  # the first merged mapping wins
                continue
            key = str(key_node.value)
            if key in out:
                first = self.lines.get((*loc, key))
                raise self._refuse(
                    (*loc, key),
                    f"duplicated key {_cut(key)!r} (first at line {first})",
                    "YAML would silently keep only the last one; remove or merge them",
                    key_node,
                )
            out[key] = self.build(value_node, (*loc, key), depth + 1)
            self.lines[(*loc, key)] = key_node.start_mark.line + 1
        return {**merged, **out}

    def _merged(self, value: yaml.Node, loc: Loc, depth: int) -> list[dict[str, Any]]:
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        parts = []
        for source in sources:
            self._visit(source, loc, depth + 1)
            if not isinstance(source, yaml.MappingNode):
                raise self._refuse(
                    loc,
                    "'<<' merges a mapping or a list of mappings",
                    "write <<: *anchor, where &anchor names a mapping",
                    source,
                )
            parts.append(self._mapping(source, loc, depth + 1))
        return parts

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except Exception as exc:  # 2026-02-30, an int past Python's digit limit, a bad float
            kind = _KINDS.get(str(node.tag), str(node.tag).rpartition(":")[2])
            reason = str(exc.problem if isinstance(exc, yaml.MarkedYAMLError) else exc)
            reason = "" if node.value and node.value in reason else f": {_cut(reason, 80)}"
            value = (
                repr(node.value)
                if len(node.value) <= 32 and _TYPED_VALUE_RE.fullmatch(node.value)
                else shown(node.value)
            )
            hint = (
                "a date is YYYY-MM-DD and must exist; quote a value to keep it as text"
                if kind == "date"
                else "quote the value to keep it as text"
            )
            raise self._refuse(loc, f"{value} is not a valid {kind}{reason}", hint, node) from None

    def _refuse(self, loc: Loc, message: str, hint: str, node: yaml.Node) -> ConfigError:
        return ConfigError(self._source, [Problem(loc, message, hint, node.start_mark.line + 1)])


# What a config's values can be. Others (`!!python/object:...`, `!!binary`, `!!set`) are
# refused before anything is constructed from them.
_STANDARD_TAGS = frozenset(
    f"tag:yaml.org,2002:{kind}"
    for kind in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")
)
_KINDS = {"tag:yaml.org,2002:timestamp": "date", "tag:yaml.org,2002:int": "integer"}
# Digits, signs and date punctuation only: a value of this shape is never a secret.
_TYPED_VALUE_RE = re.compile(r"[0-9:.+\-_ TtZz]*")


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line_of(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _problem_from_pydantic(
    err: Mapping[str, Any], lines: Mapping[Loc, int], *, explain: bool = True
) -> Problem:
    """One pydantic error as a Problem. `explain` adds "did you mean" suggestions; they cost
    difflib time, so only the problems that will be shown get them."""
    loc: Loc = tuple(part for part in err["loc"] if not _is_pydantic_tag(part))
    kind, message = err["type"], str(err["msg"])
    message = message.removeprefix("Value error, ")
    hint = ""
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1])
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
    line = _line_of(loc, lines)
    if kind == "string_pattern_mismatch" and "[key]" in err["loc"] and loc:
        # A key that failed its pattern: cut in the path, which then says all.
        loc = (*loc[:-1], shown(loc[-1]))
        message = f"this key is not allowed here ({err['msg']})"
    return Problem(loc, message, hint, line)


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
    project_names = {p.name for p in config.projects}
    first_named: dict[str, int] = {}
    first_pair: dict[tuple[str, str], int] = {}
    for i, project in enumerate(config.projects):
        if first_named.setdefault(project.name, i) != i:
            problems.append(
                Problem(
                    ("projects", i, "name"),
                    f"project name {named(project.name)} is used twice",
                    "give each project its own name",
                )
            )
        pair = first_pair.setdefault((project.region, project.project_id), i)
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
                    f"rule name {named(rule.name)} is already used at {format_loc(rule_names[rule.name])}",
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
                            f"unknown project {named(name)}",
                            _known("projects", [p.name for p in config.projects]),
                        )
                    )
        if isinstance(rule, Schedule):
            for j, name in enumerate(rule.skip_on):
                if name not in config.calendars:
                    problems.append(
                        Problem(
                            (*here, "skip_on", j),
                            f"unknown calendar {named(name)}",
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
            if rule.defer_while_in_use and rule.action != "stop":
                problems.append(
                    Problem(
                        (*here, "defer_while_in_use"),
                        "only a stop schedule defers graphs in use",
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
            close = (
                difflib.get_close_matches(calendar.country, list(supported), n=1)
                if len(problems) < MAX_PROBLEMS_SHOWN and len(calendar.country) <= 64
                else []
            )
            problems.append(
                Problem(
                    (*here, "country"),
                    f"{named(calendar.country)} is not a country the holidays package knows",
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
                    f"{calendar.country} has no subdivision {named(calendar.subdivision)}",
                    f"known: {', '.join(supported[calendar.country][:12])}",
                )
            )
    return problems


def _known(what: str, names: Sequence[str]) -> str:
    if not names:
        return f"no {what} are defined"
    more = f", ... ({len(names)} in all)" if len(names) > 12 else ""
    return f"known {what}: {', '.join(names[:12])}{more}"
