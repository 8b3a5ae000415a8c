"""Learned request rates: for each project, the rate its gate last ran at cleanly and the
limit a 429 showed, kept in the Store's `rates` section so that a new process (and a client
rebuilt on reload) starts from them instead of probing again from the initial rate.
"""

from __future__ import annotations

import asyncio
import logging

from daemon.cloud.gate import Learned
from daemon.domain.hold import SectionName, Store, StoreError
from daemon.domain.model import Sleep

log = logging.getLogger(__name__)

SECTION: SectionName = "rates"
SAVE_EVERY_S = 30.0  # what a crash can lose: half a minute of learning


class LearnedRates:
    """What every project's gate learned, by project id (the API's limit is the project's,
    whatever the config calls it). In memory between saves; save() writes only a change."""

    def __init__(self, store: Store | None) -> None:
        self._store = store
        self._rates: dict[str, Learned] = {}
        self._saved: dict[str, Learned] = {}

    async def load(self) -> None:
        """Read what the last process learned. A store that cannot be read costs the
        learning only: every project starts from the settings, and the log says why."""
        if self._store is None:
            return
        try:
            section = (await self._store.read_all()).get(SECTION)
        except StoreError as exc:
            log.warning("learned request rates not read (%s); starting from the settings", exc)
            return
        value = section.value if section is not None else {}
        if not isinstance(value, dict):
            log.warning("%s: the rates section is not an object; ignored", self._store.where)
            return
        for key, entry in value.items():
            learned = _parse(entry)
            if learned is None:
                log.warning("%s: learned rate of %s unreadable; ignored", self._store.where, key)
                continue
            self._rates[str(key)] = learned
        self._saved = dict(self._rates)

    def get(self, key: str) -> Learned | None:
        return self._rates.get(key)

    def learn(self, key: str, learned: Learned) -> None:
        self._rates[key] = learned

    async def save(self) -> None:
        if self._store is None or self._rates == self._saved:
            return
        snapshot = dict(self._rates)
        value = {
            key: {
                "clean_per_s": round(r.clean_per_s, 3),
                "limit_per_s": None if r.limit_per_s is None else round(r.limit_per_s, 3),
            }
            for key, r in sorted(snapshot.items())
        }
        try:
            await self._store.write(SECTION, value)
        except StoreError as exc:
            log.warning("learned request rates not saved (%s); will try again", exc)
            return
        self._saved = snapshot

    async def keep(self, sleep: Sleep = asyncio.sleep, every_s: float = SAVE_EVERY_S) -> None:
        """Save every `every_s` while something changed (a background task)."""
        while True:
            await sleep(every_s)
            await self.save()


def _parse(entry: object) -> Learned | None:
    if not isinstance(entry, dict):
        return None
    clean, limit = _rate(entry.get("clean_per_s")), _rate(entry.get("limit_per_s"))
    if clean is None or (limit is None and entry.get("limit_per_s") is not None):
        return None
    return Learned(clean, limit)


def _rate(value: object) -> float | None:
    """A stored rate, or None for anything else (a bool is not a rate)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e9:
        return float(value)
    return None
