"""What the ops server shows: liveness (the event loop's heartbeat), readiness (config
loaded, every project's first inventory answered) and the /status document, each built
from the parts' own read-only views. Nothing here calls GES or shows a secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from daemon import __version__
from daemon.config.models import Config
from daemon.config.problems import format_loc
from daemon.domain.hold import Hold
from daemon.domain.model import Clock, Graph, describe_status
from daemon.ops.reload import ConfigSource
from daemon.rules.holds import holds_graph
from daemon.rules.planning import selects
from daemon.rules.upcoming import upcoming_firings
from daemon.runtime.deferrals import Deferral
from daemon.runtime.holds import HoldBook
from daemon.runtime.inventory import ProjectState
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.tracker import Tracker

GraphView = dict[str, Any]
UPCOMING = timedelta(days=8)  # a weekly schedule's next firing, a holiday skipped

STALL_AFTER_S = 30.0  # no heartbeat for this long: the event loop is stuck


class Heartbeat:
    """Beats on the event loop; /healthz says alive while the beats keep coming."""

    def __init__(self, every_s: float = 5.0) -> None:
        self._every_s = every_s
        self._beat = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._beat = loop.time()
            await asyncio.sleep(self._every_s)

    def is_alive(self) -> bool:
        return asyncio.get_running_loop().time() - self._beat < STALL_AFTER_S


class StatusView:
    def __init__(
        self,
        source: ConfigSource,
        heartbeat: Heartbeat,
        projects: Mapping[str, ProjectState],
        idle_verdicts: Mapping[str, Mapping[str, str]],
        deferrals: Mapping[tuple[str, str, str], Deferral],
        tracker: Tracker,
        outcomes: Outcomes,
        holds: HoldBook,
        *,
        next_fires: Callable[[], Mapping[str, datetime | None]],
        last_fires: Callable[[], Mapping[str, datetime]],
        dry_run: bool,
        clock: Clock,
        store: str | None,
    ) -> None:
        self._source = source
        self._heartbeat = heartbeat
        self._projects = projects
        self._idle_verdicts = idle_verdicts
        self._deferrals = deferrals
        self._tracker = tracker
        self._outcomes = outcomes
        self._holds = holds
        self._clock = clock
        self._store = store
        self._next_fires = next_fires
        self._last_fires = last_fires
        self._dry_run = dry_run

    def is_alive(self) -> bool:
        return self._heartbeat.is_alive()

    def readiness(self) -> list[str]:
        """What still keeps the daemon from being ready; empty when ready."""
        if not self._source.is_loaded:
            return ["config not loaded"]
        waiting = []
        for project in self._source.config.projects:
            state = self._projects.get(project.name)
            if state is None or state.at is None:
                error = f" ({state.error})" if state is not None and state.error else ""
                waiting.append(f"project {project.name}: no inventory yet{error}")
        return waiting

    def holds(self) -> dict[str, Any]:
        """The holds in force, where API holds are kept, and why a store or config hold
        is not in use (so a person sees why a hold they made is not honoured)."""
        book = self._holds
        return {
            "kept_in": self._store
            or "memory only (no GRAPHNAP_STATE_FILE): API holds end at a restart",
            "store_problem": book.store_problem,
            "config_problems": [f"{format_loc(p.loc)}: {p.message}" for p in book.config_problems],
            "in_force": [hold_view(h) for h in book.holds(self._clock())],
        }

    def status(self) -> dict[str, Any]:
        config = self._source.config
        next_fire, last_fire = self._next_fires(), self._last_fires()
        waiting = self.readiness()
        return {
            "version": __version__,
            "config": {
                "path": str(self._source.path),
                "version": self._source.version,
                "loaded_at": self._source.loaded_at,
                "last_reload_error": self._source.last_error,
            },
            "ready": not waiting,
            "waiting_for": waiting,
            "dry_run": self._dry_run,
            "schedules": [
                {
                    "name": s.name,
                    "action": s.action,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "next_fire": next_fire.get(s.name),
                    "last_fire": last_fire.get(s.name),
                    "keep_stopped_until": s.keep_stopped_until,
                    "skip_on": s.skip_on,
                    "dry_run": s.dry_run,
                }
                for s in config.schedules
            ],
            "idle_rules": [
                {
                    "name": r.name,
                    "idle_for": str(r.idle_for),
                    "check_every": str(r.check_every),
                    "dry_run": r.dry_run,
                    # the latest verdict per graph, from the last pass
                    "verdicts": dict(sorted(self._idle_verdicts.get(r.name, {}).items())[:200]),
                }
                for r in config.idle_rules
            ],
            "deferred_stops": [
                {
                    "schedule": d.schedule,
                    "project": d.project,
                    "graph": d.graph_name,
                    "since": d.since,
                    "gives_up_at": d.until,
                    "next_check": d.next_check,
                }
                for d in self._deferrals.values()
            ],
            "projects": [
                {
                    "name": p.name,
                    "region": p.region,
                    "project_id": p.project_id,
                    "graphs": len(state.graphs) if (state := self._projects.get(p.name)) else None,
                    "last_inventory": state.at if state else None,
                    "error": state.error if state else "",
                }
                for p in config.projects
            ],
            "jobs_in_flight": [
                {
                    "project": j.project,
                    "graph_id": j.graph_id,
                    "graph": j.graph_name,
                    "job_id": j.job_id,
                    "action": j.action,
                    "rule": j.rule,
                    "requested_at": j.requested_at,
                }
                for j in self._tracker.jobs()
            ],
            "holds": self.holds(),
            "recent_outcomes": self._outcomes.job_ends(20),
            "last_decisions": self._outcomes.decisions(50),
        }


def hold_view(hold: Hold) -> dict[str, Any]:
    """A hold as /status (and the control API) shows it."""
    return {
        "id": hold.id,
        "graphs": {
            "project": hold.graphs.project,
            "ids": list(hold.graphs.ids),
            "names": list(hold.graphs.names),
        },
        "keep": hold.keep,
        "until": hold.until.isoformat(),
        "reason": hold.reason,
        "by": hold.by,
        "source": hold.source,
        "made_at": hold.made_at.isoformat() if hold.made_at else None,
    }


def graph_views(
    config: Config,
    projects: Mapping[str, ProjectState],
    book: HoldBook,
    outcomes: Outcomes,
    now: datetime,
    is_in_scope: Callable[[str, Graph], bool] | None = None,
) -> list[GraphView]:
    """Every graph of the last listing (in scope), with its status, each selecting
    schedule's next firing (holidays skipped, within 8 days), its holds and last outcome."""
    firings = [f for f in upcoming_firings(config, now, now + UPCOMING) if not f.skipped]
    holds = book.holds(now)
    views: list[GraphView] = []
    for project in config.projects:
        state = projects.get(project.name)
        for graph in state.graphs if state else ():
            if is_in_scope is not None and not is_in_scope(project.name, graph):
                continue
            next_actions: dict[str, dict[str, str]] = {}
            for firing in firings:
                s = firing.schedule
                if s.action in next_actions or not selects(s.targets, project.name, graph):
                    continue
                if s.exclude is not None and selects(s.exclude, project.name, graph):
                    continue
                next_actions[s.action] = {"schedule": s.name, "at": firing.local_time.isoformat()}
            held = book.applying(project.name, graph, now)
            views.append(
                {
                    "project": project.name,
                    "id": graph.id,
                    "name": graph.name,
                    "status": describe_status(graph.status),
                    "next_stop": next_actions.get("stop"),
                    "next_start": next_actions.get("start"),
                    "held_by": held.id if held else None,
                    "holds": [hold_view(h) for h in holds if holds_graph(h, project.name, graph)],
                    "last_outcome": outcomes.last(project.name, graph.id),
                }
            )
    return views
