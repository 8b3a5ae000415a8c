"""The hold book: the config's holds and those made through the API (or by graphnap for a
start by hand), checked by the same rules, kept in the Store so they outlive a restart,
ended at their `until`, counted in graphnap_holds and logged at every change.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from daemon.config.problems import format_loc
from daemon.domain.hold import Hold, HoldGraphs, Keep, Store, StoreError
from daemon.domain.model import Graph
from daemon.rules.holds import (
    HoldProblem,
    applicable_hold,
    is_expired,
    validate_hold,
)
from daemon.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

_HOLD = TypeAdapter(Hold)


class HoldRefused(ValueError):
    """The hold breaks a rule; `problems` says where and why (the control API's 400)."""

    def __init__(self, problems: Sequence[HoldProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{format_loc(p.loc)}: {p.message}" for p in self.problems))


class UnknownHold(LookupError):
    """No hold has this id (any more)."""


class ConfigHoldRelease(ValueError):
    """A config hold is released by removing it from the config, where it was reviewed."""


class HoldNotSaved(RuntimeError):
    """The Store refused the change, so it was not made: a hold that would not survive a
    restart is not promised (the control API's 503)."""


def new_hold_id() -> str:
    return f"h-{secrets.token_hex(4)}"


class HoldBook:
    def __init__(
        self,
        store: Store | None,
        *,
        metrics: Metrics | None = None,
        new_id: Callable[[], str] = new_hold_id,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._new_id = new_id
        self._config: list[Hold] = []
        self._made: list[Hold] = []  # api and auto holds: what the Store keeps
        self._revision: int | None = None  # of the Store's section, as last read or written
        self._max_hold = timedelta(days=7)
        self._published: set[tuple[str, str]] = set()
        self._projects: frozenset[str] | None = None  # the config's; None: every project
        self.store_problem: str | None = None  # for /status: why API holds are not kept
        self.config_problems: list[HoldProblem] = []  # config holds refused at the last load
        self._listeners: list[Callable[[str, Hold], None]] = []

    def subscribe(self, listener: Callable[[str, Hold], None]) -> None:
        """`listener(event, hold)` after each change is saved: "made", "released" or
        "expired" (holds made through the API or by graphnap; the config's are in git).
        It must return at once; what it raises is logged, never the change's."""
        self._listeners.append(listener)

    def _tell(self, event: str, hold: Hold) -> None:
        for listener in self._listeners:
            try:
                listener(event, hold)
            except Exception:
                log.exception("hold %s %s: listener failed", hold.id, event)

    # --- activation and reload ---

    async def load(self, now: datetime) -> None:
        """Read the holds made before the restart; those that ended meanwhile are dropped.
        A store that cannot be read leaves the config's holds only, and says so."""
        self._made, self._revision, self.store_problem = [], None, None
        if self._store is None:
            log.info("no state file: holds made through the API last until graphnap restarts")
        else:
            try:
                section = (await self._store.read_all()).get("holds")
            except StoreError as exc:
                self.store_problem = str(exc)
                log.error("%s; running with the config's holds only", exc)
            else:
                self._revision = section.revision if section else 0
                self._made = self._parse(section.value if section else [])
        for hold in [h for h in self._made if is_expired(h, now)]:
            log.info("hold %s ended at %s while graphnap was down", hold.id, hold.until.isoformat())
        self._made = [h for h in self._made if not is_expired(h, now)]
        self._publish(now)

    def set_config(
        self,
        holds: Sequence[Hold],
        *,
        max_hold: timedelta,
        now: datetime,
        projects: Collection[str] | None = None,
    ) -> None:
        """The config's holds (config_holds(config.holds), in the config's order) and its
        longest hold. One that has expired holds nothing; one that breaks a rule is refused
        with an error line (and in config_problems), the others stand. `projects`, the
        config's, bound graphnap_holds: a project that left the config has no series."""
        self._max_hold = max_hold
        if projects is not None:
            self._projects = frozenset(projects)
            self._published = {k for k in self._published if k[0] in self._projects}
        kept: list[Hold] = []
        self.config_problems = []
        for i, hold in enumerate(holds):
            problems = validate_hold(hold, now=now, max_hold=max_hold)
            if not problems:
                kept.append(hold)
            elif not is_expired(hold, now):
                located = [HoldProblem(("holds", i, *p.loc), p.message, p.hint) for p in problems]
                self.config_problems.extend(located)
                log.error("config hold refused: %s", HoldRefused(located))
        self._config = kept
        self._publish(now)

    # --- what planning asks ---

    def holds(self, now: datetime) -> list[Hold]:
        """Every hold in force at `now`, the first to end first."""
        live = [h for h in (*self._config, *self._made) if not is_expired(h, now)]
        return sorted(live, key=lambda h: (h.until.timestamp(), h.id))

    def applying(self, project: str, graph: Graph, now: datetime) -> Hold | None:
        return applicable_hold([*self._config, *self._made], project, graph, now)

    # --- changes: each saved first, then made, then logged ---

    async def create(
        self,
        graphs: HoldGraphs,
        *,
        keep: Keep,
        until: datetime,
        reason: str,
        by: str,
        now: datetime,
        source: Literal["api", "auto"] = "api",
    ) -> Hold:
        """Make a hold (HoldRefused, HoldNotSaved) and return it, with its new id."""
        hold = Hold(self._new_id(), graphs, keep, until, reason, by, source, made_at=now)
        return await self.add(hold, now=now)

    async def add(self, hold: Hold, *, now: datetime) -> Hold:
        """Make a hold built elsewhere (rules.holds.hand_start_hold); one with the id of a
        hold already made replaces it."""
        problems = validate_hold(hold, now=now, max_hold=self._max_hold)
        if problems:
            raise HoldRefused(problems)
        await self._save([*(h for h in self._made if h.id != hold.id), hold])
        log.info(
            "hold %s made by %s: keep %s %s until %s: %s",
            hold.id,
            hold.by,
            hold.keep,
            _graphs(hold.graphs),
            hold.until.isoformat(),
            hold.reason,
            extra={"project": hold.graphs.project, "reason": hold.reason},
        )
        self._publish(now)
        self._tell("made", hold)
        return hold

    async def release(self, hold_id: str, *, by: str, now: datetime) -> Hold:
        """End a hold now (UnknownHold, ConfigHoldRelease, HoldNotSaved)."""
        if any(h.id == hold_id for h in self._config):
            raise ConfigHoldRelease(f"hold {hold_id} comes from the config: remove it there")
        found = next((h for h in self._made if h.id == hold_id), None)
        if found is None or is_expired(found, now):
            raise UnknownHold(f"no hold {hold_id}")
        await self._save([h for h in self._made if h.id != hold_id])
        log.info(
            "hold %s released by %s: it kept %s %s until %s, made by %s",
            found.id,
            by,
            found.keep,
            _graphs(found.graphs),
            found.until.isoformat(),
            found.by,
            extra={"project": found.graphs.project},
        )
        self._publish(now)
        self._tell("released", found)
        return found

    async def purge(self, now: datetime) -> list[Hold]:
        """Drop the holds that ended by `now` (they already hold nothing) and return them.
        A store that refuses the write is logged: the next purge or change writes again."""
        ended = [h for h in self._made if is_expired(h, now)]
        if ended:
            self._made = [h for h in self._made if not is_expired(h, now)]
            for hold in ended:
                log.info(
                    "hold %s ended at %s: %s is back under its rules",
                    hold.id,
                    hold.until.isoformat(),
                    _graphs(hold.graphs),
                    extra={"project": hold.graphs.project},
                )
            try:
                await self._save(self._made)
            except HoldNotSaved as exc:
                log.warning("%s", exc)
            for hold in ended:
                self._tell("expired", hold)
        self._publish(now)
        return ended

    # --- the Store and the gauge ---

    async def _save(self, made: list[Hold]) -> None:
        if self._store is not None:
            value = [_HOLD.dump_python(h, mode="json") for h in made]
            try:
                self._revision = await self._store.write("holds", value, revision=self._revision)
            except StoreError as exc:
                raise HoldNotSaved(f"holds not saved, so not changed: {exc}") from None
        self._made = made

    def _parse(self, value: object) -> list[Hold]:
        if not isinstance(value, list):
            self.store_problem = "the store's holds are not a list"
            log.error("%s; running with the config's holds only", self.store_problem)
            return []
        found: list[Hold] = []
        for i, entry in enumerate(value):
            try:
                hold = _HOLD.validate_python(entry)
            except ValidationError as exc:
                log.warning(
                    "stored hold %d is unreadable (%d problems); dropped", i, exc.error_count()
                )
                continue
            if hold.until.utcoffset() is None:
                log.warning("stored hold %s has an until without offset; dropped", hold.id)
                continue
            found.append(hold)
        return found

    def _publish(self, now: datetime) -> None:
        if self._metrics is None:
            return
        counts: dict[tuple[str, str], int] = {}
        for hold in self.holds(now):
            if self._projects is not None and hold.graphs.project not in self._projects:
                continue
            counts[hold.graphs.project, hold.keep] = (
                counts.get((hold.graphs.project, hold.keep), 0) + 1
            )
        # A project whose last hold ended shows 0, not a vanished series.
        for project, keep in self._published | set(counts):
            self._metrics.holds.labels(project, keep).set(counts.get((project, keep), 0))
        self._published |= set(counts)


def _graphs(graphs: HoldGraphs) -> str:
    listed = [*graphs.ids, *graphs.names]
    return f"{graphs.project}/{','.join(listed)}"
