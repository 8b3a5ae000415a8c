"""The bounded YAML reader: any YAML text -> plain data and the line of every place in it,
refusing what is too large, too deep, an alias bomb or an unsafe tag before it costs time or
memory. It knows YAML, not graphnap: what the data means is the models' business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from daemon.config.models import shown
from daemon.config.problems import ConfigError, Loc, Problem

# What a config file may be. A real one is a few kilobytes, a dozen levels deep at most and
# has no value longer than a URL; past these bounds it is refused before it costs time or
# memory (a 1 MiB file of nested aliases would otherwise expand to gigabytes).
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_VALUE_CHARS = 1024
MAX_NODES = 50_000  # values after aliases and merges are expanded


@dataclass(frozen=True)
class Bounds:
    """How much one document may be; the defaults are the MAX_* above."""

    file_chars: int = MAX_FILE_BYTES
    depth: int = MAX_DEPTH
    value_chars: int = MAX_VALUE_CHARS
    nodes: int = MAX_NODES


@dataclass(frozen=True)
class Document:
    """One YAML document as plain data, and the line of every place in it (`()` is the root)."""

    data: Any
    lines: dict[Loc, int]


# libyaml when it is there: the same events and line numbers, parsed many times faster.
_YamlLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
# What YAML allows in a stream (YAML 1.1, 5.1): NUL, other controls and lone surrogates not.
_NOT_PRINTABLE_RE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def too_large(limit_bytes: int = MAX_FILE_BYTES) -> Problem:
    return Problem(
        (),
        f"the file is larger than {limit_bytes // 1024} KiB",
        "a config is a few kilobytes: is this the right file?",
    )


def read_yaml(text: str, source: str, bounds: Bounds = Bounds()) -> Document | None:
    """One YAML document as plain data with the line of every place, or None when the text
    holds no document (blank, or only comments). Duplicated keys are refused, and so is
    anything past `bounds`: each refusal is a ConfigError naming its place and line."""
    if len(text) > bounds.file_chars:
        raise ConfigError(source, [too_large(bounds.file_chars)])
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        return None
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
        node = _compose(loader, source, bounds)
        if node is None:
            return None
        _refuse_alias_bombs(node, source, bounds.nodes)
        builder = _Builder(loader, source, bounds.depth)
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
    return Document(data, builder.lines)


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


def _compose(loader: Any, source: str, bounds: Bounds) -> yaml.Node | None:
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
            if count > bounds.nodes:
                raise refuse(
                    f"more than {bounds.nodes} values",
                    "a config is a few hundred values: is this the right file?",
                    start,
                )
            if isinstance(event, yaml.ScalarEvent):
                longest = max(len(event.value), len(event.tag or ""))
                if longest > bounds.value_chars:
                    raise refuse(
                        f"a value of {longest} characters; at most {bounds.value_chars} are read",
                        "no setting needs a value that long: is this the right place?",
                        start,
                    )
                tag = event.tag
                if tag is None or tag == "!":
                    tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, start, start, style=event.style)
            else:
                if len(stack) >= bounds.depth:
                    raise refuse(
                        f"nested more than {bounds.depth} levels deep",
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


def _refuse_alias_bombs(root: yaml.Node, source: str, max_nodes: int) -> None:
    """Refuse a document whose aliases and merges expand past `max_nodes` values, from the
    size of each node counted once (the composed graph shares what aliases repeat), so
    a billion laughs costs as much as its few lines, not as much as `max_nodes` values."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:  # recursion is bounded: nodes nest bounds.depth deep
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
            total = min(total + size(child), max_nodes + 1)
        sizes[id(node)] = total
        return total

    if size(root) <= max_nodes:
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
                f"aliases expand the config past {max_nodes} values (an alias bomb?)",
                "repeat a value with an alias a few times, not aliases of aliases",
                line,
            )
        ],
    )


class _Builder:
    """Nodes -> plain data with the line of every place. Aliases and merge keys (`<<`)
    expand here, so here their expanded depth is bounded."""

    def __init__(self, loader: yaml.SafeLoader, source: str, max_depth: int) -> None:
        self._loader = loader
        self._source = source
        self._max_depth = max_depth
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
        if depth > self._max_depth:
            raise self._refuse(
                loc,
                f"with its aliases and merges, nested more than {self._max_depth} levels deep",
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
        if node.tag == _STR_TAG:  # what SafeConstructor makes of it, without its machinery
            return node.value  # (a 1,000-schedule file is 7,000 scalars, most of them text)
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
_STR_TAG = "tag:yaml.org,2002:str"
_KINDS = {"tag:yaml.org,2002:timestamp": "date", "tag:yaml.org,2002:int": "integer"}
# Digits, signs and date punctuation only: a value of this shape is never a secret.
_TYPED_VALUE_RE = re.compile(r"[0-9:.+\-_ TtZz]*")


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
