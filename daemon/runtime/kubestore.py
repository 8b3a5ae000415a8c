"""The Kubernetes `Store` (GRAPHNAP_LEADER__STORE=configmap): one ConfigMap, a key per
section (`<section>.json`: {"revision": n, "value": ...}), so a rescheduled pod or a new
leader loses nothing. Every write carries the resourceVersion last read; a 409 re-reads
and merges by section (the other sections as now stored, ours only if its revision is
still the one we wrote from), so no one's write is overwritten. Writes are refused while
the fence is closed: a paused leader's ConfigMap writes would otherwise still succeed.
Also which Store the settings ask for (`open_store`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from daemon.config.settings import Settings
from daemon.domain.fence import Fence, OpenFence
from daemon.domain.hold import (
    SECTION_NAMES,
    STORE_FORMAT,
    Section,
    SectionName,
    Store,
    StoreConflict,
    StoreDamaged,
    StoreError,
)
from daemon.runtime.kube import (
    KubeAlreadyExists,
    KubeConflict,
    KubeNotFound,
    kube_client,
    kube_error,
    kube_target,
)
from daemon.runtime.store import FileStore

if TYPE_CHECKING:  # lightkube is imported by the methods: only a daemon using it loads it
    from lightkube import AsyncClient

LIMIT_BYTES = 768 * 1024  # the API server's limit is 1 MiB for the whole object
ATTEMPTS = 5  # of a write that meets 409s: each is another writer's success


class ConfigMapStore:
    def __init__(
        self,
        client: AsyncClient,
        name: str,
        namespace: str,
        *,
        fence: Fence | None = None,
        limit_bytes: int = LIMIT_BYTES,
    ) -> None:
        self._client, self.name, self.namespace = client, name, namespace
        self._fence = fence or OpenFence()
        self._limit = limit_bytes
        self._sections: dict[SectionName, Section] = {}
        self._version: str | None = None  # the resourceVersion last read; None: none yet
        self._read = False

    @property
    def where(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    async def read_all(self) -> dict[SectionName, Section]:
        await self._refresh()
        return dict(self._sections)

    async def write(self, name: SectionName, value: object, *, revision: int | None = None) -> int:
        if not self._fence.is_open():
            raise StoreError(f"{self.where} not written: this replica does not lead now")
        if not self._read:
            await self._refresh()
        for _ in range(ATTEMPTS):
            stored = self._sections.get(name, Section(None, 0)).revision
            if revision is not None and revision != stored:
                raise StoreConflict(
                    f"{self.where}: section {name!r} is at revision {stored}, not {revision}: "
                    "written by another graphnap since it was read; read it again"
                )
            sections = {**self._sections, name: Section(value, stored + 1)}
            data = self._data(sections, name)
            try:
                self._version = await self._put(data)
            except (KubeConflict, KubeAlreadyExists):
                # Someone wrote the ConfigMap since we read it: take what they wrote, and
                # write ours over it only if they did not write this very section.
                # (With `revision`, the check above turns that into a StoreConflict.)
                await self._refresh()
                continue
            self._sections = sections
            return stored + 1
        raise StoreError(f"{self.where}: {ATTEMPTS} writes in a row lost a race; try again")

    # --- the ConfigMap ---

    async def _refresh(self) -> None:
        from lightkube.resources.core_v1 import ConfigMap

        try:
            found = await self._client.get(ConfigMap, self.name, namespace=self.namespace)
        except Exception as exc:
            error = kube_error(exc, f"read {self.where}")
            if not isinstance(error, KubeNotFound):
                raise StoreError(f"{error}; check the Role lets graphnap get it") from None
            self._sections, self._version, self._read = {}, None, True
            return
        self._sections = self._parse(found.data or {})
        self._version = found.metadata.resourceVersion if found.metadata else None
        self._read = True

    async def _put(self, data: dict[str, str]) -> str:
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ConfigMap

        cm = ConfigMap(
            metadata=ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                resourceVersion=self._version,
                labels={"app.kubernetes.io/name": "graphnap"},
            ),
            data=data,
        )
        try:
            if self._version is None:
                written = await self._client.create(cm)
            else:
                written = await self._client.replace(cm)
        except Exception as exc:
            error = kube_error(exc, f"write {self.where}")
            if isinstance(error, (KubeConflict, KubeAlreadyExists)):
                raise error from None
            raise StoreError(str(error)) from None
        return (written.metadata.resourceVersion if written.metadata else None) or ""

    def _data(self, sections: dict[SectionName, Section], name: SectionName) -> dict[str, str]:
        data = {"format": STORE_FORMAT}
        for section, entry in sorted(sections.items()):
            try:
                data[f"{section}.json"] = json.dumps(
                    {"revision": entry.revision, "value": entry.value},
                    ensure_ascii=False,
                    allow_nan=False,
                    separators=(",", ":"),
                )
            except (TypeError, ValueError) as exc:
                raise StoreError(f"section {section!r} cannot be stored as JSON: {exc}") from None
        size = sum(len(k) + len(v.encode()) for k, v in data.items())
        if size > self._limit:
            raise StoreError(
                f"{self.where} would hold {size} bytes with section {name!r}, over graphnap's "
                f"limit of {self._limit} (the API server refuses objects over 1 MiB); "
                "release holds that are no longer needed"
            )
        return data

    def _parse(self, data: dict[str, str]) -> dict[SectionName, Section]:
        if data and data.get("format") != STORE_FORMAT:
            raise self._damaged(f'not a graphnap store (no "format": "{STORE_FORMAT}")')
        found: dict[SectionName, Section] = {}
        for key, text in data.items():
            if key == "format":
                continue
            section = key.removesuffix(".json")
            if section not in SECTION_NAMES or not key.endswith(".json"):
                raise self._damaged(f"unknown key {key[:40]!r}")
            try:
                entry: Any = json.loads(text)
            except ValueError:
                raise self._damaged(f"key {key!r} is not JSON") from None
            if (
                not isinstance(entry, dict)
                or set(entry) != {"revision", "value"}
                or type(entry["revision"]) is not int
            ):
                raise self._damaged(f'key {key!r} is not {{"revision": n, "value": ...}}')
            found[section] = Section(entry["value"], entry["revision"])
        return found

    def _damaged(self, what: str) -> StoreDamaged:
        return StoreDamaged(
            f"{self.where} is damaged ({what}); graphnap will not overwrite it. Repair it "
            "(kubectl edit), or delete it and restart (holds made through the API, last "
            "fire times and deferrals are then lost)"
        )


def open_store(settings: Settings, fence: Fence | None) -> tuple[Store | None, AsyncClient | None]:
    """The ConfigMap when replicas share the state (GRAPHNAP_LEADER__STORE=configmap), else
    the state file (GRAPHNAP_STATE_FILE), else nothing outlives the process; with the
    Kubernetes client to close at shutdown, if one was made."""
    if settings.leader.store == "configmap":
        target = kube_target(settings.leader)
        client = kube_client(target, timeout_s=settings.leader.request_timeout_s)
        store = ConfigMapStore(
            client, settings.leader.configmap_name, target.namespace, fence=fence
        )
        return store, client
    return (FileStore(settings.state_file) if settings.state_file is not None else None), None
