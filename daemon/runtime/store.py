"""The JSON-file `Store` (GRAPHNAP_STATE_FILE; outside Kubernetes, or on an emptyDir): every
write replaces the file atomically (temp file, fsync, rename, fsync of the directory), so a
crash leaves the old file or the new one, never half of one; a damaged file is never overwritten.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any, cast

from daemon.domain.hold import (
    SECTION_NAMES,
    STORE_FORMAT,
    Section,
    SectionName,
    StoreConflict,
    StoreDamaged,
    StoreError,
)

# What graphnap wrote before the Store (the scheduler alone): {"last_fire": {rule: iso time}}.
_LEGACY_SECTION: SectionName = "last_fire"


class FileStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        # One read-modify-write at a time; the file I/O runs off the loop (fsync can take
        # a while on a busy disk) but never two of it at once.
        self._lock = asyncio.Lock()

    @property
    def where(self) -> str:
        return f"state file {self.path}"

    async def read_all(self) -> dict[SectionName, Section]:
        async with self._lock:
            return await asyncio.to_thread(self._read)

    async def write(self, name: SectionName, value: object, *, revision: int | None = None) -> int:
        async with self._lock:
            return await asyncio.to_thread(self._write, name, value, revision)

    # --- the file, off the loop ---

    def _read(self) -> dict[SectionName, Section]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}  # a first start
        except UnicodeDecodeError:
            raise self._damaged("not UTF-8 text") from None
        except OSError as exc:
            raise StoreError(
                f"{self.where} cannot be read ({exc.strerror or exc}); make it readable by "
                "graphnap's user, or point GRAPHNAP_STATE_FILE elsewhere"
            ) from None
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as exc:  # line and column, never the file's text
            raise self._damaged(f"not JSON: {_position(exc)}") from None
        return self._sections(raw)

    def _sections(self, raw: object) -> dict[SectionName, Section]:
        if isinstance(raw, dict) and set(raw) == {_LEGACY_SECTION}:
            return {_LEGACY_SECTION: Section(raw[_LEGACY_SECTION], 0)}
        if not isinstance(raw, dict) or raw.get("format") != STORE_FORMAT:
            raise self._damaged(f'not a graphnap store (no "format": "{STORE_FORMAT}")')
        sections = raw.get("sections")
        if not isinstance(sections, dict):
            raise self._damaged('"sections" is not an object')
        found: dict[SectionName, Section] = {}
        for name, entry in sections.items():
            if name not in SECTION_NAMES:
                raise self._damaged(f"unknown section {str(name)[:40]!r}")
            if (
                not isinstance(entry, dict)
                or set(entry) != {"revision", "value"}
                or type(entry["revision"]) is not int
            ):
                raise self._damaged(f'section {name!r} is not {{"revision": n, "value": ...}}')
            found[cast(SectionName, name)] = Section(entry["value"], entry["revision"])
        return found

    def _write(self, name: SectionName, value: object, revision: int | None) -> int:
        sections = self._read()
        stored = sections.get(name, Section(None, 0)).revision
        if revision is not None and revision != stored:
            raise StoreConflict(
                f"{self.where}: section {name!r} is at revision {stored}, not {revision}: "
                "written by another graphnap since it was read; read it again"
            )
        sections[name] = Section(value, stored + 1)
        body: dict[str, Any] = {
            "format": STORE_FORMAT,
            "sections": {
                n: {"revision": s.revision, "value": s.value} for n, s in sorted(sections.items())
            },
        }
        try:
            text = json.dumps(body, indent=1, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"section {name!r} cannot be stored as JSON: {exc}") from None
        self._replace(text)
        return stored + 1

    def _replace(self, text: str) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(text)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            # The rename is durable only once the directory entry is on disk too.
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StoreError(
                f"{self.where} cannot be written ({exc.strerror or exc}); "
                "check the volume is mounted writable and has space"
            ) from None

    def _damaged(self, what: str) -> StoreDamaged:
        return StoreDamaged(
            f"{self.where} is damaged ({what}); graphnap will not overwrite it. Repair it, "
            "or move it aside and restart (what it kept is then lost: holds made through "
            "the API, last fire times, deferrals)"
        )


def _position(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "invalid"
