"""The keys of messages already delivered (a warning per firing, route and channel), so a
restart does not send a warning twice: in memory, or kept in a Store section.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

from daemon.domain.hold import SectionName, Store, StoreError

log = logging.getLogger(__name__)

KEEP = timedelta(days=8)  # longer than any warning's firing is in the future (24h) plus a week


class SentKeys(Protocol):
    def has(self, key: str) -> bool: ...

    async def add(self, key: str, at: datetime) -> None:
        """Remember `key`; never raises (a key not kept costs, at worst, a message twice)."""
        ...


class MemorySentKeys:
    def __init__(self) -> None:
        self._keys: dict[str, datetime] = {}

    def has(self, key: str) -> bool:
        return key in self._keys

    async def add(self, key: str, at: datetime) -> None:
        self._keys[key] = at


class StoreSentKeys:
    """The keys in one Store section, {key: ISO time sent}, those older than KEEP dropped
    at each write. Call load() once before use."""

    def __init__(self, store: Store, section: SectionName) -> None:
        self._store = store
        self._section = section
        self._keys: dict[str, datetime] = {}

    async def load(self) -> None:
        try:
            sections = await self._store.read_all()
        except StoreError as exc:
            log.warning("sent notification keys not read (%s): a warning may go twice", exc)
            return
        stored = sections.get(self._section)
        value = stored.value if stored is not None else None
        if not isinstance(value, dict):
            return
        for key, when in value.items():
            try:
                self._keys[str(key)] = datetime.fromisoformat(str(when))
            except ValueError:
                continue  # one bad entry is one key forgotten, not a store refused

    def has(self, key: str) -> bool:
        return key in self._keys

    async def add(self, key: str, at: datetime) -> None:
        self._keys[key] = at
        self._keys = {k: t for k, t in self._keys.items() if at - t <= KEEP}
        try:
            await self._store.write(
                self._section, {k: t.isoformat() for k, t in sorted(self._keys.items())}
            )
        except StoreError as exc:
            log.warning(
                "sent notification keys not saved (%s): after a restart a warning may go twice", exc
            )
