"""Holds (a person's "keep these graphs running/stopped until T") and the `Store` protocol
that keeps what must outlive the process: named JSON sections, read all at activation,
written one at a time, compare-and-swap by a per-section revision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, get_args

Keep = Literal["running", "stopped"]
HoldSource = Literal["config", "api", "auto"]
"""config: the config's `holds:`; api: the control API (a token, a wake, a postpone link);
auto: graphnap itself (a start by hand held for `manual_start_hold`)."""

MAX_GLOB_LENGTH = 64
MAX_REASON_LENGTH = 200  # shown in every skip line and on /status


@dataclass(frozen=True, slots=True)
class HoldGraphs:
    """The graphs a hold keeps: of one project, those whose id is listed or whose name
    matches one of the shell-style globs (either list may be empty, not both)."""

    project: str
    ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.ids or self.names)


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    graphs: HoldGraphs
    keep: Keep
    until: datetime  # aware, in the offset it was given (shown in that offset)
    reason: str
    by: str  # who: "token search-team", "alice", "schedule night-stop"
    source: HoldSource
    made_at: datetime | None = None  # None for a config hold: git knows when


def glob_problem(pattern: str) -> str | None:
    """What is wrong with a name glob, or None. fnmatch accepts any string, so these are the
    mistakes it would silently turn into a glob that matches nothing, or everything by luck."""
    if not pattern:
        return "an empty glob matches no graph"
    if len(pattern) > MAX_GLOB_LENGTH:
        return f"a glob longer than {MAX_GLOB_LENGTH} characters matches no graph name"
    if any(c.isspace() or not c.isprintable() for c in pattern):
        return "a graph name has no spaces or control characters, so this glob matches nothing"
    opened = pattern.rfind("[")
    first = opened + (2 if pattern[opened + 1 : opened + 2] == "!" else 1)
    if opened != -1 and pattern.find("]", first + 1) == -1:
        # fnmatch reads an unclosed '[' as a literal '[', which no graph name contains.
        return "'[' opens a character class that is never closed with ']'"
    return None


# --- what outlives the process --------------------------------------------------------------

SectionName = Literal[
    "last_fire",
    "holds",
    "deferrals",
    "stopped_since",
    "rates",
    "notify_sent",
    "link_key",  # the postpone links' signing key when no key file is given (daemon.ops.links)
    "idle_warned",  # graphs an idle rule warned of and when each may stop (daemon.runtime.idle_warnings)
    "savings_days",  # the daily digest's figures per day and project (daemon.notify.ledger)
]
SECTION_NAMES: tuple[SectionName, ...] = get_args(SectionName)


# What every Store's content says it is (the state file's "format", the ConfigMap's
# `format` key): one marker, so a store without it is not graphnap's and is never overwritten.
STORE_FORMAT = "graphnap-store/1"


@dataclass(frozen=True, slots=True)
class Section:
    value: object  # what json.loads gives: the owner parses it at this edge
    revision: int  # bumped by every write; 0 for a section never written


class StoreError(Exception):
    """The store cannot be read or written; the message names the place and the fix."""


class StoreDamaged(StoreError):
    """What is stored cannot be parsed. Nothing overwrites it until a person repairs or
    removes it: it may hold API holds someone still counts on."""


class StoreConflict(StoreError):
    """A write carried a revision the section no longer has: someone else wrote it since."""


class Store(Protocol):
    """Named JSON sections kept across restarts (a file; a ConfigMap under HA). One writer
    at a time is assumed (the leader); `revision` lets it notice it is no longer the only one."""

    @property
    def where(self) -> str:
        """The place for messages, e.g. "state file /var/lib/graphnap/state.json"."""
        ...

    async def read_all(self) -> dict[SectionName, Section]:
        """Every section that has been written; an empty store is an empty dict.
        Raises StoreDamaged or StoreError."""
        ...

    async def write(self, name: SectionName, value: object, *, revision: int | None = None) -> int:
        """Replace one section and leave the others as stored; with `revision`, only if the
        section still has it (else StoreConflict). Returns the section's new revision."""
        ...
