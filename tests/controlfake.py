"""An honest in-memory ControlBackend for the control API's tests: it keeps the holds it is
given, refuses what the real hold book refuses, and lets a test end a wake's start job."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from daemon.ops.views import GraphView, HoldRequest, HoldView, Refused, WakeView


class FakeBackend:
    def __init__(self, graphs: Sequence[GraphView], *, longest: timedelta = timedelta(days=7)):
        self._graphs = list(graphs)
        self._longest = longest
        self._ids = itertools.count(1)
        self.holds_by_id: dict[str, HoldView] = {}
        self.wakes: dict[str, WakeView] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self.woken = asyncio.Event()
        self.starts: list[str] = []

    def add_config_hold(self, project: str, graph: str, until: datetime) -> HoldView:
        hold = HoldView(
            "cfg-1", project, graph, "running", until, "release test", "config", "config"
        )
        self.holds_by_id[hold.id] = hold
        return hold

    def _matches(self, hold: HoldView, graph: GraphView) -> bool:
        return hold.project == graph.project and (
            hold.graph == graph.id or fnmatchcase(graph.name, hold.graph)
        )

    async def graphs(self, now: datetime) -> Sequence[GraphView]:
        live = await self.holds(now)
        return [
            replace(g, holds=tuple(h for h in live if self._matches(h, g))) for g in self._graphs
        ]

    async def holds(self, now: datetime) -> Sequence[HoldView]:
        return [h for h in self.holds_by_id.values() if h.until > now]

    async def create_hold(self, request: HoldRequest, *, by: str, now: datetime) -> HoldView:
        if request.until > now + self._longest:
            raise Refused(
                422, f"`until` is beyond the longest hold allowed ({self._longest.days}d)"
            )
        hold = HoldView(
            f"h-{next(self._ids)}", request.project, request.graph, request.keep,
            request.until, request.reason, by, "api",
        )  # fmt: skip
        if not any(self._matches(hold, g) for g in self._graphs):
            raise Refused(422, f"no graph matches {request.project}/{request.graph}")
        self.holds_by_id[hold.id] = hold
        return hold

    async def release_hold(self, hold_id: str, *, by: str, now: datetime) -> HoldView:
        hold = self.holds_by_id.get(hold_id)
        if hold is None:
            raise Refused(404, f"no hold {hold_id}")
        if hold.source == "config":
            raise Refused(409, f"hold {hold_id} comes from the config: remove it there")
        return self.holds_by_id.pop(hold_id)

    async def wake(
        self, project: str, graph_id: str, *, for_: timedelta, by: str, now: datetime
    ) -> WakeView:
        graph = next(g for g in self._graphs if (g.project, g.id) == (project, graph_id))
        hold = HoldView(
            f"h-{next(self._ids)}", project, graph_id, "running", now + for_, "woken", by, "api"
        )
        self.holds_by_id[hold.id] = hold
        running = graph.status == "running"
        view = WakeView(f"w-{len(self.wakes) + 1}", project, graph_id, graph.name,
                        "running" if running else "starting", hold)  # fmt: skip
        self.wakes[view.id] = view
        self._ended[view.id] = asyncio.Event()
        if running:
            self._ended[view.id].set()
        else:
            self.starts.append(graph_id)
        self.woken.set()
        return view

    def end_start(self, wake_id: str, *, ok: bool) -> None:
        view = self.wakes[wake_id]
        self.wakes[wake_id] = replace(
            view, state="running" if ok else "failed", message="" if ok else "job failed: GES.8001"
        )
        self._ended[wake_id].set()

    async def wait_wake(self, wake_id: str, *, timeout_s: float) -> WakeView:
        if wake_id not in self.wakes:
            raise Refused(404, f"no wake {wake_id}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended[wake_id].wait(), timeout_s)
        return self.wakes[wake_id]
