"""What the control API and its backend hand each other: the views it shows (graphs, holds,
wakes), what it asks for, `Refused` when the backend will not, and the `ControlBackend`
protocol the daemon implements.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol

Keep = Literal["running", "stopped"]
WakeState = Literal["starting", "running", "failed"]


@dataclasses.dataclass(frozen=True)
class NextAction:
    """When a schedule will next stop or start this graph (None: not within its horizon)."""

    rule: str
    action: Literal["stop", "start"]
    at: datetime | None


@dataclasses.dataclass(frozen=True)
class HoldView:
    id: str
    project: str
    graph: str  # a graph id, a name or a name glob, as the hold was made
    keep: Keep
    until: datetime
    reason: str
    by: str  # "token <name>" or "config"
    source: Literal["api", "config"]


@dataclasses.dataclass(frozen=True)
class GraphView:
    project: str
    id: str
    name: str
    status: str  # running, stopped, stopping, starting, busy, faulty, ...
    next_actions: tuple[NextAction, ...] = ()
    holds: tuple[HoldView, ...] = ()
    last_outcome: str | None = None  # e.g. "stopped by weeknight-stop at 20:00 +08:00"


@dataclasses.dataclass(frozen=True)
class HoldRequest:
    project: str
    graph: str  # an id or name of a graph the token may touch, or a glob inside its scope
    keep: Keep
    until: datetime
    reason: str


@dataclasses.dataclass(frozen=True)
class WakeView:
    id: str
    project: str
    graph_id: str
    name: str
    state: WakeState  # starting: the start job is being followed; running; failed
    hold: HoldView
    message: str = ""  # what went wrong, for `failed`


class Refused(Exception):
    """The backend will not do it; `message` is shown to the person who asked."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ControlBackend(Protocol):
    """What the control API needs of the daemon: its graphs, its hold book, its starts.

    The API checks tokens and scopes and filters what it shows; the backend checks what only
    it knows (the longest hold allowed, whether a glob names any graph) by raising Refused.
    """

    async def graphs(self, now: datetime) -> Sequence[GraphView]: ...

    async def holds(self, now: datetime) -> Sequence[HoldView]: ...

    async def create_hold(self, request: HoldRequest, *, by: str, now: datetime) -> HoldView: ...

    async def release_hold(self, hold_id: str, *, by: str, now: datetime) -> HoldView: ...

    async def wake(
        self, project: str, graph_id: str, *, for_: timedelta, by: str, now: datetime
    ) -> WakeView: ...

    async def wait_wake(self, wake_id: str, *, timeout_s: float) -> WakeView:
        """The wake's state once it is no longer `starting`, or after `timeout_s`.
        Refused(404) for an id it does not know."""
        ...
