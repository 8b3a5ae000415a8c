"""The daily digest's figures per project and calendar day (in the digest's zone): money saved,
accrued from where the savings counter grows (Metrics.on_savings: one source of truth), stops
done and failed (from the outcomes seam), and totals since counting began. Kept in the Store
section `savings_days` (the last KEEP_DAYS days, at most one write a WRITE_EVERY_S), so a
restart mid-day loses at most a minute of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from daemon.domain.hold import SectionName, Store, StoreError
from daemon.notify.message import OutcomeFacts, ProjectDay

log = logging.getLogger(__name__)

SECTION: SectionName = "savings_days"
# A digest reads yesterday: three days cover a digest sent late and a zone changed by a
# reload, and keep the section small beside the holds in one ConfigMap (1 MiB in all).
KEEP_DAYS = 3
WRITE_EVERY_S = 60.0  # the Store is written at most this often (a ConfigMap PUT each time)
DIGITS = 4  # amounts kept to 1/100 of a cent


@dataclass
class _Day:
    saved: dict[str, float] = field(default_factory=dict)  # currency -> amount
    stopped: int = 0
    failed: int = 0


def split_by_day(
    amount: float, since: datetime, until: datetime, zone: tzinfo
) -> list[tuple[date, float]]:
    """`amount`, accrued evenly from `since` to `until`, shared among the calendar days of
    `zone` that the time touches (an inventory pass at 00:03 after one at 23:58 gives 2/5
    to the day before)."""
    span_s = (until - since).total_seconds()
    if span_s <= 0:
        return [(until.astimezone(zone).date(), amount)]
    shares: list[tuple[date, float]] = []
    start = since
    while start < until:
        day = start.astimezone(zone).date()
        midnight = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
        end = min(until, midnight) if midnight > start else until
        shares.append((day, amount * (end - start).total_seconds() / span_s))
        start = end
    return shares


class Ledger:
    """Takes notes at any time; writes to the Store only between load() and close() (the
    active term), so a follower never writes and a new term adds to what the last one kept."""

    def __init__(
        self,
        store: Store | None,
        *,
        zone: Callable[[], tzinfo],
        monotonic: Callable[[], float],
        projects: Callable[[], Collection[str]] | None = None,
    ) -> None:
        self._store = store
        self._zone = zone
        self._monotonic = monotonic
        self._projects = projects  # those of the config: a project that left it is dropped
        self._written_at: float | None = None
        self._days: dict[date, dict[str, _Day]] = {}
        self._totals: dict[str, dict[str, float]] = {}  # project -> currency -> since `since`
        self.since: date | None = None  # the first day counted
        self._loaded = False
        self._dirty = False
        self._writer: asyncio.Task[None] | None = None

    # --- notes (synchronous, never raise) ---

    def savings(
        self, project: str, currency: str, amount: float, since: datetime, until: datetime
    ) -> None:
        """A Metrics.on_savings hook: the counter just grew by `amount` for [since, until]."""
        try:
            for day, share in split_by_day(amount, since, until, self._zone()):
                saved = self._day(day, project).saved
                saved[currency] = saved.get(currency, 0.0) + share
            totals = self._totals.setdefault(project, {})
            totals[currency] = totals.get(currency, 0.0) + amount
            self._changed()
        except Exception:
            log.exception("savings not noted for the digest", extra={"project": project})

    def outcome(self, o: OutcomeFacts) -> None:
        """An Outcomes subscriber: stops that ended, done or failed."""
        if o.action != "stop" or o.outcome not in ("succeeded", "failed"):
            return
        try:
            figures = self._day(o.at.astimezone(self._zone()).date(), o.project)
            if o.outcome == "succeeded":
                figures.stopped += 1
            else:
                figures.failed += 1
            self._changed()
        except Exception:
            log.exception("outcome not noted for the digest", extra={"project": o.project})

    def _day(self, day: date, project: str) -> _Day:
        if self.since is None or day < self.since:
            self.since = day
        return self._days.setdefault(day, {}).setdefault(project, _Day())

    # --- what a digest reads ---

    def report(self, day: date, projects: Collection[str], currency: str) -> list[ProjectDay]:
        """`day`'s figures for `projects`, with the totals through that day (a digest sent
        at 09:00 does not count the morning of the day it is sent)."""
        rows = []
        for project in projects:
            figures = self._days.get(day, {}).get(project, _Day())
            total = dict(self._totals.get(project, {}))
            for later, by_project in self._days.items():
                if later > day and project in by_project:
                    for cur, amount in by_project[project].saved.items():
                        total[cur] = total.get(cur, 0.0) - amount
            rows.append(
                ProjectDay(
                    project,
                    saved=figures.saved or {currency: 0.0},
                    stopped=figures.stopped,
                    failed=figures.failed,
                    total={cur: max(v, 0.0) for cur, v in total.items()} or {currency: 0.0},
                )
            )
        return rows

    # --- the Store ---

    async def load(self, today: date) -> None:
        """Add what the Store kept to the notes taken since the last term; counting begins
        `today` if it never began."""
        if self._store is not None:
            try:
                stored = (await self._store.read_all()).get(SECTION)
            except StoreError as exc:
                log.warning("digest figures not read (%s): they start again from now", exc)
                stored = None
            if stored is not None:
                self._merge(stored.value)
        if self.since is None:
            self.since = today
        self._loaded = True
        self._changed()

    async def close(self) -> None:
        """Write what is not yet written and stop writing (the end of an active term); the
        notes are the Store's now, so the next term's load() does not count them twice. A
        last write that fails (the lease lost, its fence closed) loses what was noted since
        the write before it, at most WRITE_EVERY_S of it: the notes also hold what the Store
        has, so keeping them would count that twice at the next load()."""
        if not self._loaded:
            return
        self._loaded = False
        if self._writer is not None:
            await self._writer
        if self._store is None:
            return
        if self._dirty and not await self._write():
            log.warning("the digest figures noted since the last write are lost")
        self._days, self._totals, self.since, self._dirty = {}, {}, None, False

    def _changed(self) -> None:
        self._dirty = True
        self.keep()

    def keep(self) -> None:
        """Write the notes if they changed and the last write is WRITE_EVERY_S old (a note
        calls it, and the notifier's tick, so the last notes of a quiet spell are written
        too)."""
        if not self._dirty or not self._loaded or self._store is None or self._writer:
            return
        if self._written_at is not None and (self._monotonic() - self._written_at < WRITE_EVERY_S):
            return
        try:
            self._writer = asyncio.get_running_loop().create_task(self._write_once())
        except RuntimeError:  # no loop (a test's direct call): close() writes it
            return

    async def saved(self) -> None:
        """Until what was noted so far is written, whatever the pace (tests)."""
        while self._writer is not None:
            await self._writer
        if self._dirty and self._loaded and self._store is not None:
            await self._write()

    async def _write_once(self) -> None:
        try:
            await self._write()
        finally:
            self._writer = None

    async def _write(self) -> bool:
        assert self._store is not None
        self._dirty = False
        self._written_at = self._monotonic()  # a failed write waits its turn too
        self._prune()
        try:
            await self._store.write(SECTION, self._dump())
        except StoreError as exc:
            self._dirty = True  # tried again at the next turn
            log.warning("digest figures not saved (%s): a restart would lose today's", exc)
            return False
        return True

    def _prune(self) -> None:
        if self._days:
            newest = max(self._days)
            for day in [d for d in self._days if d <= newest - timedelta(days=KEEP_DAYS)]:
                del self._days[day]
        if self._projects is not None:
            known = set(self._projects())
            for project in [p for p in self._totals if p not in known]:
                del self._totals[project]
            for by_project in self._days.values():
                for project in [p for p in by_project if p not in known]:
                    del by_project[project]

    def _dump(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "totals": {p: _rounded(by_currency) for p, by_currency in self._totals.items()},
            "days": {
                day.isoformat(): {
                    p: {"saved": _rounded(f.saved), "stopped": f.stopped, "failed": f.failed}
                    for p, f in sorted(by_project.items())
                }
                for day, by_project in sorted(self._days.items())
            },
        }

    def _merge(self, value: object) -> None:
        """Add a stored section to the notes; what cannot be read is left out and said so."""
        try:
            if not isinstance(value, dict):
                raise TypeError("not an object")
            if value.get("since"):
                stored_since = date.fromisoformat(str(value["since"]))
                self.since = min(self.since or stored_since, stored_since)
            for project, by_currency in dict(value.get("totals") or {}).items():
                totals = self._totals.setdefault(str(project), {})
                for cur, amount in dict(by_currency).items():
                    totals[str(cur)] = totals.get(str(cur), 0.0) + float(amount)
            for day_text, by_project in dict(value.get("days") or {}).items():
                day = date.fromisoformat(str(day_text))
                for project, f in dict(by_project).items():
                    figures = self._days.setdefault(day, {}).setdefault(str(project), _Day())
                    for cur, amount in dict(f.get("saved") or {}).items():
                        figures.saved[str(cur)] = figures.saved.get(str(cur), 0.0) + float(amount)
                    figures.stopped += int(f.get("stopped", 0))
                    figures.failed += int(f.get("failed", 0))
        except (TypeError, ValueError, AttributeError) as exc:
            log.warning("digest figures in the store not read in full (%s)", exc)


def _rounded(amounts: dict[str, float]) -> dict[str, float]:
    return {currency: round(amount, DIGITS) for currency, amount in amounts.items()}
