"""Idle stops warned of first: an idle rule with `notify.before` tells the routes which graphs
it found idle (a postpone link each) and stops one only at a check at or after the lead, if
it is still idle and not held. Who was warned and when each may stop is kept in the Store's
`idle_warned` section, so a restart neither warns again nor forgets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from daemon.config.models import IdleRule
from daemon.domain.hold import SectionName, Store, StoreError
from daemon.rules.planning import Decision

log = logging.getLogger(__name__)

SECTION: SectionName = "idle_warned"


@dataclass(frozen=True, slots=True)
class Warned:
    """A graph an idle rule warned of: it may be stopped from `stop_at` on."""

    rule: str
    project: str
    graph_id: str
    graph: str
    warned_at: datetime
    stop_at: datetime


IdleWarner = Callable[[IdleRule, datetime, Sequence[Warned]], None]
"""(rule, stop time, the graphs newly warned of): tells the routes, one message per route,
with a postpone link per graph (daemon.ops.notices). Returns at once and never raises."""


def idle_lead(rule: IdleRule) -> timedelta | None:
    """How long before its stops an idle rule warns (None: it stops at once)."""
    return rule.notify.before if rule.notify is not None else None


@dataclass(frozen=True)
class Gated:
    decisions: list[Decision]  # as planned, with the stops not yet due held back
    warned: list[Warned]  # graphs warned of now, for the first time
    kept: dict[str, Warned]  # the project's warned graphs still waiting, by graph id
    called_off: dict[str, str]  # graph id -> why its warned stop will not come


def gate(
    decisions: Sequence[Decision],
    waiting: Mapping[str, Warned],
    lead: timedelta,
    now: datetime,
) -> Gated:
    """Pure: one idle pass's decisions of one project against the graphs already warned of
    (`waiting`, by graph id). An idle graph not warned of is warned of now and stops at
    `now + lead`; one warned of stops once its time has come; one that is no longer to be
    stopped (in use again, held, stopped, gone) has its warning called off."""
    out: list[Decision] = []
    warned: list[Warned] = []
    kept: dict[str, Warned] = {}
    called_off: dict[str, str] = {}
    for d in decisions:
        entry = waiting.get(d.graph_id)
        if not d.act:
            if entry is not None:
                called_off[d.graph_id] = d.reason
            out.append(d)
        elif entry is None:
            entry = Warned(d.rule, d.project, d.graph_id, d.graph_name, now, now + lead)
            warned.append(entry)
            kept[d.graph_id] = entry
            out.append(replace(d, act=False, reason=f"{d.reason}; {_waiting(entry)}"))
        elif now >= entry.stop_at:
            out.append(
                replace(d, reason=f"{d.reason}; warned at {_at(entry.warned_at)}, not postponed")
            )
        else:
            kept[d.graph_id] = entry
            out.append(replace(d, act=False, reason=f"{d.reason}; {_waiting(entry)}"))
    seen = {d.graph_id for d in decisions}
    for graph_id in waiting.keys() - seen:
        called_off[graph_id] = "no longer selected or listed"
    return Gated(out, warned, kept, called_off)


def _waiting(entry: Warned) -> str:
    return f"warned at {_at(entry.warned_at)}: stops at {_at(entry.stop_at)} unless postponed"


def _at(moment: datetime) -> str:
    return f"{moment:%H:%M} {moment.isoformat()[-6:]}"  # as hold reasons show a time: 20:15 +00:00


class IdleWarnings:
    """The graphs warned of, per rule and project, in memory and in the Store. Call load()
    at activation; each idle pass calls hold_back() per project, then settle() once."""

    def __init__(self, store: Store | None) -> None:
        self._store = store
        self._warned: dict[tuple[str, str, str], Warned] = {}  # (rule, project, graph id)
        self._news: dict[str, list[Warned]] = {}  # rule -> warned in the pass under way
        self._changed = False
        self._warner: IdleWarner | None = None

    def attach(self, warner: IdleWarner | None) -> None:
        """Who tells people (the notifier, through daemon.ops.notices); None: nobody now."""
        self._warner = warner

    def waiting(self, rule: str) -> list[Warned]:
        return sorted(
            (w for (r, _, _), w in self._warned.items() if r == rule),
            key=lambda w: (w.stop_at, w.project, w.graph),
        )

    async def load(self) -> None:
        """What the Store kept; a store that cannot be read costs a warning given twice."""
        if self._store is None:
            return
        try:
            section = (await self._store.read_all()).get(SECTION)
        except StoreError as exc:
            log.warning("idle warnings not read (%s): a graph may be warned of twice", exc)
            return
        self._warned = _parse(section.value if section is not None else None)

    def hold_back(
        self, rule: IdleRule, project: str, decisions: Sequence[Decision], now: datetime
    ) -> list[Decision]:
        """The pass's decisions for `project`, the idle stops not yet warned of long enough
        held back (see gate)."""
        lead = idle_lead(rule)
        if lead is None:
            return list(decisions)
        waiting = {g: w for (r, p, g), w in self._warned.items() if (r, p) == (rule.name, project)}
        gated = gate(decisions, waiting, lead, now)
        for graph_id, why in gated.called_off.items():
            entry = waiting[graph_id]
            log.info(
                "warned idle stop called off: %s",
                why,
                extra={"rule": rule.name, "project": project, "graph": entry.graph,
                       "graph_id": graph_id, "action": "stop", "reason": why},
            )  # fmt: skip
            del self._warned[rule.name, project, graph_id]
            self._changed = True
        for d in gated.decisions:
            if d.act and d.graph_id in waiting:  # its time came: stopped now, warned no more
                del self._warned[rule.name, project, d.graph_id]
                self._changed = True
        for entry in gated.warned:
            self._warned[rule.name, project, entry.graph_id] = entry
            self._changed = True
        self._news.setdefault(rule.name, []).extend(gated.warned)
        return gated.decisions

    def prune(self, rules: Collection[str]) -> None:
        """Forget the graphs warned of by rules that no longer warn (a reload)."""
        for key in [k for k in self._warned if k[0] not in rules]:
            del self._warned[key]
            self._changed = True

    async def settle(self, rule: IdleRule) -> None:
        """After the pass: keep what changed, then warn of the graphs found idle in it,
        once, in one message per route."""
        news = self._news.pop(rule.name, [])
        if self._changed and self._store is not None:
            try:
                await self._store.write(SECTION, _dump(self._warned.values()))
                self._changed = False
            except StoreError as exc:
                log.warning(
                    "idle warnings not saved (%s): after a restart a graph may be warned of twice",
                    exc,
                    extra={"rule": rule.name},
                )
        if not news:
            return
        stop_at = min(w.stop_at for w in news)
        log.info(
            "idle warning: %d graphs stop at %s unless postponed",
            len(news),
            stop_at.isoformat(),
            extra={"rule": rule.name, "action": "stop"},
        )
        if self._warner is None:
            log.warning(
                "idle warning told to nobody: notifications are not running",
                extra={"rule": rule.name},
            )
            return
        try:
            self._warner(rule, stop_at, news)
        except Exception:  # a warning that cannot be told costs a log line, never the rule
            log.exception("idle warning not made", extra={"rule": rule.name})


def _dump(warned: Collection[Warned]) -> list[dict[str, str]]:
    return [
        {
            "rule": w.rule,
            "project": w.project,
            "graph_id": w.graph_id,
            "graph": w.graph,
            "warned_at": w.warned_at.isoformat(),
            "stop_at": w.stop_at.isoformat(),
        }
        for w in sorted(warned, key=lambda w: (w.rule, w.project, w.graph_id))
    ]


def _parse(value: object) -> dict[tuple[str, str, str], Warned]:
    """What _dump wrote; an entry that does not parse is dropped (its graph is warned of
    again at the next pass it is idle in), never the section."""
    found: dict[tuple[str, str, str], Warned] = {}
    if not isinstance(value, list):
        return found
    for item in value:
        try:
            entry = Warned(
                str(item["rule"]), str(item["project"]), str(item["graph_id"]),
                str(item["graph"]), datetime.fromisoformat(str(item["warned_at"])),
                datetime.fromisoformat(str(item["stop_at"])),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            continue
        if entry.stop_at.tzinfo is None or entry.warned_at.tzinfo is None:
            continue
        found[entry.rule, entry.project, entry.graph_id] = entry
    return found
