"""What people ask of the running daemon (the control API's operations, `graphnap demo`):
holds made, listed and released, wakes, the managed graphs as a person sees them, and
whether this replica acts on any of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from daemon.config.models import Config
from daemon.domain.hold import Hold, HoldGraphs, Keep
from daemon.domain.model import Clock, Graph, GraphApi
from daemon.ops.leader import LeaderElector
from daemon.ops.status import GraphView, graph_views
from daemon.runtime.executor import Executor
from daemon.runtime.holds import HoldBook
from daemon.runtime.inventory import Inventory
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.wake import UnknownGraph, Wake, Waker


class People:
    def __init__(
        self,
        config: Callable[[], Config],
        inventory: Inventory,
        executor: Executor,
        holds: HoldBook,
        outcomes: Outcomes,
        graph_apis: Callable[[], Mapping[str, GraphApi]],
        *,
        leader: LeaderElector | None,
        clock: Clock,
        dry_run: bool,
        job_timeout: timedelta,
    ) -> None:
        self._config = config
        self._inventory = inventory
        self._holds = holds
        self._outcomes = outcomes
        self._graph_apis = graph_apis
        self._leader = leader
        self._clock = clock
        self._dry_run = dry_run
        self._job_timeout = job_timeout
        self._waker = Waker(inventory, executor, holds)

    async def create_hold(
        self, graphs: HoldGraphs, *, keep: Keep, until: datetime, reason: str, by: str
    ) -> Hold:
        """Make a hold now. UnknownGraph for a project not in the config; HoldRefused (its
        `problems`: a 400) for one the rules refuse; HoldNotSaved (503) when the Store
        would not keep it."""
        if all(p.name != graphs.project for p in self._config().projects):
            raise UnknownGraph()
        return await self._holds.create(
            graphs, keep=keep, until=until, reason=reason, by=by, now=self._clock()
        )

    def list_holds(self) -> list[Hold]:
        """Every hold in force now, config ones included, the first to end first."""
        return self._holds.holds(self._clock())

    async def release_hold(self, hold_id: str, *, by: str) -> Hold:
        """End a hold now: UnknownHold (404), ConfigHoldRelease (409), HoldNotSaved (503)."""
        return await self._holds.release(hold_id, by=by, now=self._clock())

    async def wake(
        self, project: str, graph: str, *, hold_for: timedelta, by: str, reason: str = "woken"
    ) -> Wake:
        """Start a stopped graph (id or name) now and hold it running for `hold_for`; a graph
        already running just gets the hold. `await wake.wait()` for the start job's end.
        UnknownGraph, HoldRefused, HoldNotSaved: nothing started."""
        return await self._waker.wake(
            self._config(),
            self._graph_apis(),
            project,
            graph,
            hold_for=hold_for,
            by=by,
            reason=reason,
            now=self._clock(),
            dry_run=self._dry_run,
            job_timeout=self._job_timeout,
        )

    def graphs(self, is_in_scope: Callable[[str, Graph], bool] | None = None) -> list[GraphView]:
        """The managed graphs as last listed (no GES call), each with its status, the next
        stop and start of the schedules that select it, the holds on it and its last
        outcome; `is_in_scope` (a token's projects and globs) filters them."""
        return graph_views(
            self._config(),
            self._inventory.projects,
            self._holds,
            self._outcomes,
            self._clock(),
            is_in_scope,
        )

    def not_acting(self) -> str | None:
        """Why this replica does not act now, or None: a follower (or a leader that is no
        longer sure it leads) answers people's requests with this."""
        if self._leader is None or self._leader.is_open():
            return None
        leader = self._leader.leader or "no replica (an election is under way)"
        return f"this replica ({self._leader.identity}) does not lead; {leader} does"
