"""The inventory: every project's last listing (for readiness and /status), the paged
listing per project side by side, the graph gauges and savings it feeds (with the
managed-price cache), and the Task Center resume of a project's jobs in flight.
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
from daemon.domain.model import Clock, Graph, GraphApi
from daemon.rules.planning import is_managed, selects, target_projects
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
    ) -> None:
        self._apis = apis
        self._tracker = tracker
        self._metrics = metrics
        self._job_timeout = job_timeout
        self._clock = clock
        self._projects: dict[str, ProjectState] = {}
        self._resumed: set[str] = set()  # projects whose Task Center has been read
        self._managed_for: Config | None = None
        self._managed: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], bool] = {}

    @property
    def projects(self) -> Mapping[str, ProjectState]:
        """Each project's last listing: a read-only view that follows the inventory."""
        return MappingProxyType(self._projects)

    def errors(self) -> dict[str, str]:
        """The projects whose last listing failed, and why."""
        return {p: s.error for p, s in self._projects.items() if s.error}

    async def take(
        self,
        config: Config,
        apis: Mapping[str, GraphApi],
        projects: Sequence[str],
        now: datetime,
    ) -> tuple[dict[str, list[Graph]], list[str]]:
        """List every graph of the projects (one paged listing each, concurrently) through
        the pass's own `apis`. A project whose listing fails is reported and left out; the
        others go on."""

        async def one(project: str) -> list[Graph]:
            return await apis[project].list_graphs()

        found: dict[str, list[Graph]] = {}
        failed: list[str] = []
        for project, answer in (await side_by_side(projects, one)).items():
            if isinstance(answer, Exception):
                self._failed(project, answer)
                failed.append(project)
                continue
            self._projects[project] = ProjectState(tuple(answer), now)
            found[project] = answer
            self._tracker.note_fleet(project, len(answer))
        # Every listing is in (readiness says so from here); the gauges and savings follow,
        # a slice at a time, so a first pricing of a large fleet never holds the loop.
        for project, graphs in found.items():
            priced = await self._priced(config, project, graphs)
            self._metrics.observe_inventory(project, priced, now, config.pricing.currency)
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
        cache = self._managed  # this config's, should a reload come between two slices
        priced = []
        judged = 0
        for g in graphs:
            key = (project, g.id, g.name, tuple(sorted(g.tags.items())))
            managed = cache.get(key)
            if managed is None:
                managed = cache[key] = is_managed(config.schedules, project, g)
                judged += 1
                if judged % JUDGED_PER_SLICE == 0:
                    await asyncio.sleep(0)
            price = config.pricing.hourly_price(g.size_index, g.replication) if managed else None
            priced.append((g.id, g.name, g.status, price))
        return priced
