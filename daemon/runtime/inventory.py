"""The inventory: every project's last listing (for readiness and /status), the paged
listing per project side by side, the graph gauges and savings it feeds (with the
managed-price cache), the Task Center resume of a project's jobs in flight, and since when
graphnap has known each graph stopped (kept in the Store: a platform restart comes 7 days
after a stop, across any number of graphnap restarts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TypeVar

from daemon.cloud.errors import ApiError
from daemon.config.models import Config, IdleRule
from daemon.domain.hold import Store, StoreError
from daemon.domain.model import Clock, Graph, GraphApi, GraphStatus
from daemon.rules.planning import ManagedIndex, selects, target_projects
from daemon.runtime.outcomes import Outcome
from daemon.runtime.tracker import Tracker
from daemon.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

JUDGED_PER_SLICE = 500  # graphs judged managed or not between two turns of the loop


@dataclass(frozen=True)
class ProjectState:
    """The last inventory of a project, for readiness and /status."""

    graphs: tuple[Graph, ...] = ()
    at: datetime | None = None
    error: str = ""


@dataclass(frozen=True)
class Selection:
    """The graphs a rule selects now, by project, and the projects that could not be listed
    (with why). What `graphnap backtest` replays."""

    now: datetime
    graphs: dict[str, list[Graph]] = field(default_factory=dict)
    unlisted: dict[str, str] = field(default_factory=dict)


async def side_by_side(
    projects: Sequence[str], work: Callable[[str], Awaitable[T]]
) -> dict[str, T | Exception]:
    """Run `work` for each project concurrently; a project whose work raises answers with
    its exception, which costs that project only. Cancellation is not a project's failure:
    it goes on up."""
    answers = await asyncio.gather(*(work(p) for p in projects), return_exceptions=True)
    out: dict[str, T | Exception] = {}
    for project, answer in zip(projects, answers, strict=True):
        if isinstance(answer, BaseException) and not isinstance(answer, Exception):
            raise answer
        out[project] = answer
    return out


class Inventory:
    def __init__(
        self,
        apis: Callable[[], Mapping[str, GraphApi]],
        tracker: Tracker,
        metrics: Metrics,
        *,
        job_timeout: timedelta,
        clock: Clock,
        store: Store | None = None,
    ) -> None:
        self._apis = apis
        self._tracker = tracker
        self._metrics = metrics
        self._job_timeout = job_timeout
        self._clock = clock
        self._projects: dict[str, ProjectState] = {}
        self._resumed: set[str] = set()  # projects whose Task Center has been read
        self._managed_for: Config | None = None
        self._index = ManagedIndex(())
        self._managed: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], bool] = {}
        self._store = store
        self._stopped: dict[tuple[str, str], datetime] = {}  # known stopped since
        # Graphs seen running again after a known stop, with since when they were stopped:
        # for the window pass to judge (a hand start or the platform's), once.
        self._back: dict[tuple[str, str], datetime] = {}
        self._stopped_dirty = False

    @property
    def projects(self) -> Mapping[str, ProjectState]:
        """Each project's last listing: a read-only view that follows the inventory."""
        return MappingProxyType(self._projects)

    def errors(self) -> dict[str, str]:
        """The projects whose last listing failed, and why."""
        return {p: s.error for p, s in self._projects.items() if s.error}

    # --- since when graphs are stopped ------------------------------------------------------

    async def load(self) -> None:
        """Read since when graphs were stopped before the restart; a store that cannot be
        read only loses that (a start inside a window is then judged a hand start)."""
        self._stopped, self._back = {}, {}
        if self._store is None:
            return
        try:
            section = (await self._store.read_all()).get("stopped_since")
        except StoreError as exc:
            log.warning("since when graphs are stopped is unknown: %s", exc)
            return
        value = section.value if section else {}
        for project, graphs in (value if isinstance(value, dict) else {}).items():
            for graph_id, when in (graphs if isinstance(graphs, dict) else {}).items():
                try:
                    since = datetime.fromisoformat(str(when))
                except ValueError:
                    continue
                if since.tzinfo is not None:
                    self._stopped[str(project), str(graph_id)] = since

    def note_outcome(self, outcome: Outcome) -> None:
        """A stop job's end is the best time graphnap knows a graph stopped at; a start of
        graphnap's own ends what it knew (an outcomes subscriber; saved with the next
        listing)."""
        key = (outcome.project, outcome.graph_id)
        if outcome.is_job_end and outcome.action == "stop" and outcome.outcome == "succeeded":
            self._stopped[key] = outcome.at
            self._back.pop(key, None)
            self._stopped_dirty = True
        elif outcome.action == "start" and outcome.outcome in ("requested", "succeeded"):
            # graphnap's own start (a schedule, a wake) is nobody's hand start
            self._back.pop(key, None)
            self._stopped_dirty |= self._stopped.pop(key, None) is not None

    def came_back(self, project: str, graph_id: str) -> datetime | None:
        """Since when a graph now running had been stopped, if it came back after a stop
        graphnap knew of and nobody has judged that yet; judging takes it (see judged)."""
        return self._back.get((project, graph_id))

    def judged(self, project: str, graph_id: str) -> None:
        self._back.pop((project, graph_id), None)

    def _note_statuses(self, project: str, graphs: Sequence[Graph], now: datetime) -> None:
        """Stopped: since the graph's `updated` (GES changes it at a stop), or this listing.
        Running again: moved to `_back`. Graphs gone from the listing are forgotten."""
        listed = {g.id for g in graphs}
        for key in [k for k in (*self._stopped, *self._back) if k[0] == project]:
            if key[1] not in listed:
                self._stopped.pop(key, None)
                self._back.pop(key, None)
                self._stopped_dirty = True
        for g in graphs:
            key = (project, g.id)
            if g.status == GraphStatus.STOPPED and key not in self._stopped:
                self._stopped[key] = min(g.updated or now, now)
                self._back.pop(key, None)
                self._stopped_dirty = True
            elif g.status == GraphStatus.RUNNING and key in self._stopped:
                self._back[key] = self._stopped.pop(key)
                self._stopped_dirty = True

    async def _save_stopped(self, config: Config) -> None:
        projects = {p.name for p in config.projects}
        for key in [k for k in self._stopped if k[0] not in projects]:
            del self._stopped[key]  # a project that left the config
            self._stopped_dirty = True
        if not self._stopped_dirty or self._store is None:
            return
        value: dict[str, dict[str, str]] = {}
        for (project, graph_id), since in sorted(self._stopped.items()):
            value.setdefault(project, {})[graph_id] = since.isoformat()
        try:
            await self._store.write("stopped_since", value)
        except StoreError as exc:
            log.warning("since when graphs are stopped not saved (tried again later): %s", exc)
            return
        self._stopped_dirty = False

    async def take(
        self,
        config: Config,
        apis: Mapping[str, GraphApi],
        projects: Sequence[str],
        now: datetime,
        on_page: Callable[[str, list[Graph]], None] | None = None,
    ) -> tuple[dict[str, list[Graph]], list[str]]:
        """List every graph of the projects (one paged listing each, concurrently) through
        the pass's own `apis`. A project whose listing fails is reported and left out; the
        others go on. `on_page(project, graphs)` is handed the pages as they arrive."""

        async def one(project: str) -> list[Graph]:
            if on_page is None:
                return await apis[project].list_graphs()
            return await apis[project].list_graphs(lambda graphs: on_page(project, graphs))

        found: dict[str, list[Graph]] = {}
        failed: list[str] = []
        for project, answer in (await side_by_side(projects, one)).items():
            if isinstance(answer, Exception):
                self._failed(project, answer)
                failed.append(project)
                continue
            self._projects[project] = ProjectState(tuple(answer), now)
            self._note_statuses(project, answer, now)
            found[project] = answer
            self._tracker.note_fleet(project, len(answer))
        # Every listing is in (readiness says so from here); the gauges and savings follow,
        # a slice at a time, so a first pricing of a large fleet never holds the loop.
        for project, graphs in found.items():
            priced = await self._priced(config, project, graphs)
            self._metrics.observe_inventory(project, priced, now, config.pricing.currency)
        await self._save_stopped(config)
        return found, failed

    async def selected(self, config: Config, rule: IdleRule) -> Selection:
        """The graphs `rule` selects now, from a fresh inventory, by project."""
        now = self._clock()
        projects = target_projects(rule, [p.name for p in config.projects])
        apis = dict(self._apis())
        inventory, failed = await self.take(config, apis, [p for p in projects if p in apis], now)
        graphs = {
            project: [
                g
                for g in found
                if selects(rule.targets, project, g)
                and not (rule.exclude is not None and selects(rule.exclude, project, g))
            ]
            for project, found in inventory.items()
        }
        unlisted = {p: f"inventory failed: {self._projects[p].error}" for p in failed}
        return Selection(now, graphs, unlisted)

    async def refresh(self, config: Config) -> None:
        """The inventory pass: list every project's graphs (gauges, savings, readiness). A
        project answering for the first time also has its in-flight jobs found again in the
        Task Center, so a GES outage at start-up does not lose them."""
        now = self._clock()
        apis = dict(self._apis())
        projects = [p.name for p in config.projects if p.name in apis]
        inventory, _ = await self.take(config, apis, projects, now)
        for project, graphs in inventory.items():
            if project not in self._resumed:
                await self._resume(project, apis[project], graphs)

    def forget_resumed(self) -> None:
        """The tracker stopped following (the active group stopped): the next inventory
        pass finds the jobs still in flight in the Task Center again."""
        self._resumed.clear()

    async def _resume(self, project: str, api: GraphApi, graphs: Sequence[Graph]) -> None:
        try:
            count = await self._tracker.resume(project, api, graphs, self._job_timeout)
        except Exception as exc:  # one project's Task Center must not stop the others
            log.error(
                "could not resume jobs from the Task Center; will try again: %s",
                exc,
                extra={"project": project},
            )
            return
        self._resumed.add(project)
        if count:
            log.info("resumed %d in-flight jobs", count, extra={"project": project})

    def _failed(self, project: str, error: Exception) -> None:
        if not isinstance(error, ApiError):
            log.error("unexpected error listing graphs", exc_info=error, extra={"project": project})
        last = self._projects.get(project, ProjectState())
        self._projects[project] = ProjectState(
            last.graphs, last.at, str(error) or type(error).__name__
        )
        log.error(
            "inventory failed; this project's graphs are left as they are until the next pass",
            extra={"project": project, "reason": str(error)},
        )

    async def _priced(
        self, config: Config, project: str, graphs: Sequence[Graph]
    ) -> list[tuple[str, str, int, float | None]]:
        """(id, name, status, hourly price if managed). Whether a graph is managed depends
        on the config and the graph's name and tags only: judged once per config, not on
        every pass for every graph against every schedule; the loop is let go between
        slices of graphs judged (the first pass after a start or a reload judges them all)."""
        if self._managed_for is not config:
            self._managed_for, self._managed = config, {}
            self._index = ManagedIndex(config.schedules)
        cache, index = self._managed, self._index  # this config's, should a reload come
        priced = []
        judged = 0
        for g in graphs:
            key = (project, g.id, g.name, tuple(sorted(g.tags.items())))
            managed = cache.get(key)
            if managed is None:
                managed = cache[key] = index.is_managed(project, g)
                judged += 1
                if judged % JUDGED_PER_SLICE == 0:
                    await asyncio.sleep(0)
            price = config.pricing.hourly_price(g.size_index, g.replication) if managed else None
            priced.append((g.id, g.name, g.status, price))
        return priced
