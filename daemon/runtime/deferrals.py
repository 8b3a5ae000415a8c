"""The deferred stops: a stop schedule holds back graphs in use, and each deferral ends
stopped once quiet, given up at its `max`, or dropped (no longer running, no longer
selected, its schedule or project gone). This module owns the deferrals, their transitions
and their gauges, and keeps them in the Store's `deferrals` section (so a restart or a new
leader carries on with them); the deferral pass in daemon.runtime.passes brings the
inventory and the Cloud Eye verdicts.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from daemon.config.models import DeferWhileInUse, Schedule
from daemon.domain.hold import Store, StoreError
from daemon.domain.model import Graph, GraphStatus
from daemon.rules.idle import Verdict, fmt_duration
from daemon.rules.planning import Decision
from daemon.runtime.executor import Result
from daemon.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (schedule, project, graph id)
End = Literal["stopped", "gave_up", "dropped"]


@dataclass
class Deferral:
    """A stop a schedule holds back while the graph is in use."""

    schedule: str
    project: str
    graph_id: str
    graph_name: str
    since: datetime
    until: datetime  # then it gives up: "not stopped: still in use after ..."
    next_check: datetime

    @property
    def key(self) -> Key:
        return (self.schedule, self.project, self.graph_id)


@dataclass(frozen=True)
class Verdicts:
    """A check of due deferrals, judged: the quiet ones (to stop now, by graph id), the
    decisions of those given up (ended already), and the Cloud Eye reasons by graph id."""

    quiet: dict[str, Deferral]
    gave_up: list[Decision]
    use: Mapping[str, Verdict]


FIELDS = ("schedule", "project", "graph_id", "graph_name", "since", "until", "next_check")


class Deferrals:
    def __init__(self, metrics: Metrics, store: Store | None = None) -> None:
        self._metrics = metrics
        self._store = store
        self._items: dict[Key, Deferral] = {}
        self._rules: set[str] = set()  # schedules whose gauge has been set
        self._kept: list[dict[str, str]] = []  # what the Store holds, as last written or read

    async def load(self) -> None:
        """Take up the deferrals the Store kept (a restart, a new leader). An entry that
        cannot be read is dropped with a warning; a Store that cannot be read is said."""
        if self._store is None:
            return
        try:
            section = (await self._store.read_all()).get("deferrals")
        except StoreError as exc:
            log.error("deferred stops not read back (%s); the next firing takes over", exc)
            return
        entries = section.value if section is not None else []
        for entry in entries if isinstance(entries, list) else []:
            try:
                schedule, project, graph_id, graph_name = (str(entry[f]) for f in FIELDS[:4])
                since, until, next_check = (
                    datetime.fromisoformat(str(entry[f])) for f in FIELDS[4:]
                )
                item = Deferral(schedule, project, graph_id, graph_name, since, until, next_check)
            except (KeyError, TypeError, ValueError):
                log.warning("a deferred stop in %s could not be read; dropped", self._store.where)
                continue
            self._items[item.key] = item
        self._kept = self._snapshot()
        self.count()

    async def keep(self) -> None:
        """Write the deferrals to the Store when they changed since it was last written."""
        now = self._snapshot()
        if self._store is None or now == self._kept:
            return
        try:
            await self._store.write("deferrals", now)
        except StoreError as exc:  # memory still has them: this replica goes on with them
            log.error("deferred stops not kept in %s: %s", self._store.where, exc)
            return
        self._kept = now

    def _snapshot(self) -> list[dict[str, str]]:
        return [
            {
                f: v.isoformat() if isinstance(v, datetime) else v
                for f in FIELDS
                if (v := getattr(item, f)) is not None
            }
            for item in sorted(self._items.values(), key=lambda i: i.key)
        ]

    @property
    def pending(self) -> Mapping[Key, Deferral]:
        """The deferrals in force: a read-only view that follows the store."""
        return MappingProxyType(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def defer(
        self,
        schedule: Schedule,
        defer: DeferWhileInUse,
        decisions: Sequence[Decision],
        now: datetime,
        until: datetime,
    ) -> None:
        """Remember the stops `schedule` held back; a graph deferred already keeps its own
        time."""
        for d in decisions:
            project = d.project
            key = (schedule.name, project, d.graph_id)
            if key in self._items:  # deferred already: its time keeps running
                continue
            self._items[key] = Deferral(
                schedule.name,
                project,
                d.graph_id,
                d.graph_name,
                now,
                until,
                now + defer.check_every,
            )
            self._metrics.deferrals.labels(schedule.name, "deferred").inc()
        self.count()

    def due(self, now: datetime) -> dict[tuple[str, str], list[Deferral]]:
        """The deferrals whose check is due, by (schedule, project)."""
        due: dict[tuple[str, str], list[Deferral]] = {}
        for item in self._items.values():
            if item.next_check <= now:
                due.setdefault((item.schedule, item.project), []).append(item)
        return due

    def drop(self, items: Sequence[Deferral], why: str) -> None:
        for item in items:
            self.end(item, "dropped", why)

    def still_waiting(
        self,
        items: Sequence[Deferral],
        graphs: Mapping[str, Graph] | None,
        selected: Collection[str],
    ) -> list[Deferral]:
        """Drop the deferrals whose graph is gone, no longer running or no longer selected
        (`selected`: the graph ids the schedule still selects); the rest still wait. Without an inventory (`graphs` None)
        nothing can be told: all wait, to be judged by time alone."""
        if graphs is None:
            return list(items)
        waiting = []
        for item in items:
            graph = graphs.get(item.graph_id)
            if graph is None or graph.status != GraphStatus.RUNNING:
                where = "gone" if graph is None else f"status {graph.status}"
                self.end(item, "dropped", f"no longer running ({where})")
            elif item.graph_id not in selected:
                self.end(item, "dropped", "no longer selected by the schedule")
            else:
                waiting.append(item)
        return waiting

    def judge(
        self,
        defer: DeferWhileInUse,
        waiting: Sequence[Deferral],
        use: Mapping[str, Verdict] | None,
        now: datetime,
    ) -> Verdicts:
        """Quiet now: to stop. In use (or unknown) at `until`: given up, never stopped.
        Otherwise: checked again after `check_every`."""
        quiet: dict[str, Deferral] = {}
        gave_up: list[Decision] = []
        for item in waiting:
            verdict = use.get(item.graph_id) if use is not None else None
            if verdict is not None and not verdict.is_in_use:
                quiet[item.graph_id] = item
            elif now >= item.until:  # in use at the last look that could tell: never stopped
                seen = verdict.reason if verdict is not None else "Cloud Eye or GES did not answer"
                reason = f"not stopped: still in use after {fmt_duration(defer.max)} ({seen})"
                gave_up.append(
                    Decision(
                        item.project,
                        item.graph_id,
                        item.graph_name,
                        item.schedule,
                        "stop",
                        False,
                        reason,
                    )
                )
                self.end(item, "gave_up", reason)
            else:
                item.next_check = now + defer.check_every
        return Verdicts(quiet, gave_up, use or {})

    def release(
        self, verdicts: Verdicts, decisions: Sequence[Decision], now: datetime
    ) -> list[Decision]:
        """The planned stops of the quiet graphs, each with why it goes now; a quiet graph
        planning no longer stops (opted out, in flight) ends its deferral with that reason."""
        out = []
        for d in decisions:
            item = verdicts.quiet[d.graph_id]
            if d.act:
                since = fmt_duration(now - item.since)
                said = verdicts.use[d.graph_id].reason if d.graph_id in verdicts.use else ""
                reason = f"quiet now ({said}) after {since} deferred"
                d = Decision(d.project, d.graph_id, d.graph_name, d.rule, d.action, True, reason)
            else:
                self.end(item, "dropped", d.reason)
            out.append(d)
        return out

    def settle(self, verdicts: Verdicts, results: Sequence[Result]) -> None:
        """End the deferrals of the quiet graphs whose stop went out (or was done already);
        one whose request failed is dropped with the failure's reason."""
        for result in results:
            item = verdicts.quiet.get(result.decision.graph_id)
            if item is not None and result.decision.act:
                done = result.outcome in ("requested", "already_done")
                self.end(item, "stopped" if done else "dropped", result.reason)

    def end(self, item: Deferral, outcome: End, why: str) -> None:
        if self._items.pop(item.key, None) is None:
            return  # ended already
        self._metrics.deferrals.labels(item.schedule, outcome).inc()
        if outcome == "dropped":
            log.info(
                "deferred stop dropped: %s",
                why,
                extra={"rule": item.schedule, "project": item.project, "graph": item.graph_name},
            )

    def count(self) -> None:
        """Set the gauge of deferred graphs per schedule (to 0 for a schedule that had some)."""
        counts: dict[str, int] = {}
        for item in self._items.values():
            counts[item.schedule] = counts.get(item.schedule, 0) + 1
        for rule in set(counts) | self._rules:
            self._metrics.deferred.labels(rule).set(counts.get(rule, 0))
        self._rules |= set(counts)
