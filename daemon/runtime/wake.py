"""Wake: start a stopped graph now and hold it running for a while, for a pipeline that
needs it for a batch job. The start is an action like any other (executor: rate gate, claim,
outcome recorded; tracker: job followed); the hold is made first, so no stop pass can take
the graph back down between the start and the hold.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.config.models import Config
from daemon.domain.hold import Hold, HoldGraphs
from daemon.domain.model import Graph, GraphApi, GraphStatus, describe_status
from daemon.rules.idle import fmt_duration
from daemon.rules.planning import Decision
from daemon.runtime.executor import Executor
from daemon.runtime.holds import HoldBook
from daemon.runtime.inventory import Inventory
from daemon.runtime.outcomes import Kind
from daemon.runtime.tracker import JobOutcome

log = logging.getLogger(__name__)

WAKE_RULE = "wake"  # the `rule` of a wake's start in logs, metrics and outcomes


class UnknownGraph(LookupError):
    """No such graph in a project graphnap manages, or no such project. The message is the
    same either way, so an API answer built from it never says whether a graph exists."""

    def __init__(self) -> None:
        super().__init__("no such graph in a project graphnap manages")


@dataclass(frozen=True)
class Wake:
    """What a wake did: the hold it made, whether it asked GES for a start (`outcome`, as
    the executor recorded it, or `running` for a graph already up) and the start job."""

    hold: Hold
    project: str
    graph_id: str
    graph_name: str
    outcome: Kind | None  # None: no start was asked for (see `reason`)
    reason: str
    job: asyncio.Future[JobOutcome] | None = None  # the start job, followed by the tracker
    was_running: bool = False

    async def wait(self) -> bool:
        """Until the graph runs (True), or its start failed or was never asked (False)."""
        if self.job is not None:
            return (await asyncio.shield(self.job)).outcome == "succeeded"
        return self.was_running or self.outcome == "already_done"


def find_graph(graphs: list[Graph], graph: str) -> Graph | None:
    """A graph by id, else by name (ids win: a name may be reused after a delete)."""
    return next((g for g in graphs if g.id == graph), None) or next(
        (g for g in graphs if g.name == graph), None
    )


class Waker:
    def __init__(self, inventory: Inventory, executor: Executor, holds: HoldBook) -> None:
        self._inventory = inventory
        self._executor = executor
        self._holds = holds

    async def wake(
        self,
        config: Config,
        apis: Mapping[str, GraphApi],
        project: str,
        graph: str,
        *,
        hold_for: timedelta,
        by: str,
        reason: str,
        now: datetime,
        dry_run: bool,
        job_timeout: timedelta,
    ) -> Wake:
        """Hold the graph running for `hold_for` from `now`, then start it if it is stopped.
        UnknownGraph, HoldRefused (e.g. beyond max_hold), HoldNotSaved: nothing started.
        A `keep: stopped` hold on the graph does not stop a wake: a running hold wins over
        a stopped one (rules.holds.applicable_hold), and the person waking it asked now."""
        if project not in apis or all(p.name != project for p in config.projects):
            raise UnknownGraph()
        listing, failed = await self._inventory.take(config, apis, [project], now)
        if failed:
            raise RuntimeError(f"project {project}: its graphs cannot be listed now")
        found = find_graph(listing[project], graph)
        if found is None:
            raise UnknownGraph()
        other = self._holds.applying(project, found, now)
        hold = await self._holds.create(
            HoldGraphs(project, ids=(found.id,)),
            keep="running",
            until=now + hold_for,
            reason=reason,
            by=by,
            now=now,
        )
        if other is not None and other.keep == "stopped":
            log.info(
                "wake overrides hold %s (keep stopped, by %s) until %s",
                other.id,
                other.by,
                hold.until.isoformat(),
                extra={"project": project, "graph": found.name, "rule": WAKE_RULE},
            )
        if found.status != GraphStatus.STOPPED:
            said = (
                "already running"
                if found.status == GraphStatus.RUNNING
                else f"not started: it is {describe_status(found.status)}"
            )
            running = found.status == GraphStatus.RUNNING
            return Wake(hold, project, found.id, found.name, None, f"{said}; held", None, running)
        why = f"woken by {by} for {fmt_duration(hold_for)}: {reason}"
        decision = Decision(project, found.id, found.name, WAKE_RULE, "start", True, why)
        (result,) = await self._executor.execute(
            [decision], apis, now=now, dry_run=dry_run, job_timeout=job_timeout
        )
        return Wake(hold, project, found.id, found.name, result.outcome, result.reason, result.job)
