"""The control API's backend over the running daemon: the API's views and requests turned
into people's operations (`People`: its graphs, its hold book, its wakes), and the runtime's
errors into answers a person reads. Scopes are the API's; what only the daemon knows is
checked here.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, Protocol

from daemon.domain.hold import Hold, HoldGraphs, Keep
from daemon.domain.model import Graph
from daemon.ops.status import GraphView as GraphDocument
from daemon.ops.views import GraphView, HoldRequest, HoldView, NextAction, Refused, WakeView
from daemon.rules.holds import HoldProblem
from daemon.runtime.holds import ConfigHoldRelease, HoldNotSaved, HoldRefused, UnknownHold
from daemon.runtime.wake import UnknownGraph, Wake

# The words the API itself uses for a graph outside a token's scope: a graph that does not
# exist must read the same.
NOT_FOUND = "no such graph that this token may touch"
WAKES_KEPT = 200  # the latest wakes `wait_wake` can still answer for


class Daemon(Protocol):
    """What the backend needs of the daemon (daemon.ops.people.People has these)."""

    def not_acting(self) -> str | None:
        """Why this replica does not act now (a follower), or None when it does."""
        ...

    def graphs(
        self, is_in_scope: Callable[[str, Graph], bool] | None = None
    ) -> list[GraphDocument]: ...

    def list_holds(self) -> list[Hold]: ...

    async def create_hold(
        self, graphs: HoldGraphs, *, keep: Keep, until: datetime, reason: str, by: str
    ) -> Hold: ...

    async def release_hold(self, hold_id: str, *, by: str) -> Hold: ...

    async def wake(
        self, project: str, graph: str, *, hold_for: timedelta, by: str, reason: str = "woken"
    ) -> Wake: ...


def hold_view(hold: Hold) -> HoldView:
    graphs = hold.graphs
    named = ",".join((*graphs.ids, *graphs.names))
    return HoldView(
        hold.id,
        graphs.project,
        named,
        hold.keep,
        hold.until,
        hold.reason,
        hold.by,
        "config" if hold.source == "config" else "api",
    )


def _problems(problems: Sequence[HoldProblem]) -> str:
    said = []
    for p in problems:
        where = ".".join(str(part) for part in p.loc)
        said.append(f"`{where}`: {p.message}" + (f" ({p.hint})" if p.hint else ""))
    return "; ".join(said)


@dataclass
class _Woken:
    wake: Wake
    view: WakeView


class DaemonBackend:
    """ControlBackend over the daemon's People. `now` from the API is not used to decide:
    People read the daemon's own clock, the one every pass plans with."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._wakes: dict[str, _Woken] = {}
        self._ids = itertools.count(1)

    def _acting(self) -> None:
        """A follower's hold book is not the leader's: it answers nothing, rather than
        something stale or a hold the leader never sees."""
        why = self._daemon.not_acting()
        if why is not None:
            raise Refused(503, f"{why}: ask the leader (graphnap's /status names it)")

    async def graphs(self, now: datetime) -> Sequence[GraphView]:
        self._acting()
        # The holds once, as the hold book has them; each graph's document names its own.
        holds = {hold.id: hold_view(hold) for hold in self._daemon.list_holds()}
        return [self._graph(doc, holds) for doc in self._daemon.graphs()]

    async def holds(self, now: datetime) -> Sequence[HoldView]:
        self._acting()
        return [hold_view(h) for h in self._daemon.list_holds()]

    async def create_hold(self, request: HoldRequest, *, by: str, now: datetime) -> HoldView:
        self._acting()
        known = [g for g in self._daemon.graphs() if g["project"] == request.project]
        if any(g["id"] == request.graph for g in known):
            graphs = HoldGraphs(request.project, ids=(request.graph,))
        elif any(fnmatchcase(g["name"], request.graph) for g in known):
            graphs = HoldGraphs(request.project, names=(request.graph,))
        else:
            raise Refused(422, f"no graph of {request.project} matches {request.graph!r}")
        try:
            hold = await self._daemon.create_hold(
                graphs, keep=request.keep, until=request.until, reason=request.reason, by=by
            )
        except UnknownGraph:
            raise Refused(403, NOT_FOUND) from None
        except HoldRefused as refused:
            raise Refused(422, _problems(refused.problems)) from None
        except HoldNotSaved as exc:
            raise Refused(503, f"the hold was not made: {exc}; try again") from None
        return hold_view(hold)

    async def release_hold(self, hold_id: str, *, by: str, now: datetime) -> HoldView:
        self._acting()
        try:
            return hold_view(await self._daemon.release_hold(hold_id, by=by))
        except UnknownHold:
            raise Refused(404, f"no hold {hold_id} (it may have ended)") from None
        except ConfigHoldRelease:
            raise Refused(409, f"hold {hold_id} comes from the config: remove it there") from None
        except HoldNotSaved as exc:
            raise Refused(503, f"the hold was not released: {exc}; try again") from None

    async def wake(
        self, project: str, graph_id: str, *, for_: timedelta, by: str, now: datetime
    ) -> WakeView:
        self._acting()
        try:
            wake = await self._daemon.wake(project, graph_id, hold_for=for_, by=by)
        except UnknownGraph:
            raise Refused(403, NOT_FOUND) from None
        except HoldRefused as refused:
            raise Refused(422, _problems(refused.problems)) from None
        except HoldNotSaved as exc:
            raise Refused(503, f"nothing was started: {exc}; try again") from None
        wake_id = f"w-{next(self._ids)}"
        view = self._view(wake_id, wake)
        self._wakes[wake_id] = _Woken(wake, view)
        while len(self._wakes) > WAKES_KEPT:
            self._wakes.pop(next(iter(self._wakes)))
        return view

    async def wait_wake(self, wake_id: str, *, timeout_s: float) -> WakeView:
        woken = self._wakes.get(wake_id)
        if woken is None:
            raise Refused(404, f"no wake {wake_id} (only the latest {WAKES_KEPT} are kept)")
        if woken.view.state == "starting" and woken.wake.job is not None:
            try:
                await asyncio.wait_for(asyncio.shield(woken.wake.job), timeout_s)
            except TimeoutError:
                return woken.view
            woken.view = self._view(wake_id, woken.wake)
        return woken.view

    @staticmethod
    def _view(wake_id: str, wake: Wake) -> WakeView:
        hold = hold_view(wake.hold)
        job = wake.job
        if job is not None and not job.done():
            return WakeView(wake_id, wake.project, wake.graph_id, wake.graph_name, "starting", hold)
        if job is not None:
            ended = job.result()
            if ended.outcome == "succeeded":
                return WakeView(
                    wake_id, wake.project, wake.graph_id, wake.graph_name, "running", hold
                )
            return WakeView(
                wake_id, wake.project, wake.graph_id, wake.graph_name, "failed", hold, ended.reason
            )
        if wake.was_running or wake.outcome == "already_done":
            return WakeView(wake_id, wake.project, wake.graph_id, wake.graph_name, "running", hold)
        return WakeView(
            wake_id, wake.project, wake.graph_id, wake.graph_name, "failed", hold, wake.reason
        )

    @staticmethod
    def _graph(doc: dict[str, Any], holds: dict[str, HoldView]) -> GraphView:
        actions: list[NextAction] = []
        if planned := doc.get("next_stop"):
            actions.append(
                NextAction(planned["schedule"], "stop", datetime.fromisoformat(planned["at"]))
            )
        if planned := doc.get("next_start"):
            actions.append(
                NextAction(planned["schedule"], "start", datetime.fromisoformat(planned["at"]))
            )
        mine = tuple(holds[h["id"]] for h in doc["holds"] if h["id"] in holds)
        last = doc.get("last_outcome")
        said = None
        if last:
            said = f"{last['outcome']} {last['action']} by {last['rule']} at {last['time']}: {last['reason']}"
        return GraphView(
            doc["project"], doc["id"], doc["name"], doc["status"], tuple(actions), mine, said
        )
