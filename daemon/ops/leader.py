"""Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: read, then
replace with the resourceVersion read; take the lease when it is free, released, or its
holder has not renewed for leaseDurationSeconds as this replica observed it; renew every
retry period. The elector is also the fence the cloud clients consult before each request:
open only until the renew deadline after the last renewal began, on the monotonic clock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.config.settings import LeaderSettings
from daemon.domain.model import Clock, Sleep
from daemon.runtime.kube import (
    KubeError,
    KubeNotFound,
    kube_client,
    kube_error,
    kube_target,
    micro_time,
)
from daemon.telemetry.metrics import Metrics

if TYPE_CHECKING:  # lightkube is imported by the methods: only a daemon using it loads it
    from lightkube import AsyncClient

    from daemon.ops.server import StatusSource  # the ops server loads aiohttp

log = logging.getLogger(__name__)

Monotonic = Callable[[], float]
Hook = Callable[[], Awaitable[None]]


def default_identity() -> str:
    """The pod's name (the chart sets POD_NAME from the downward API), else the host name."""
    return os.environ.get("POD_NAME") or socket.gethostname()


@dataclass(frozen=True, slots=True)
class Record:
    """The Lease as read: who holds it, for how long, and its resourceVersion."""

    holder: str
    duration_s: float
    transitions: int
    acquired: datetime | None
    renewed: datetime | None
    version: str | None  # None: there is no Lease yet


class LeaseLock:
    """The one Lease, through lightkube; errors as daemon.runtime.kube's."""

    def __init__(self, client: AsyncClient, name: str, namespace: str) -> None:
        self._client, self.name, self.namespace = client, name, namespace

    async def close(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]

    async def get(self) -> Record:
        from lightkube.models.coordination_v1 import LeaseSpec
        from lightkube.resources.coordination_v1 import Lease

        try:
            lease = await self._client.get(Lease, self.name, namespace=self.namespace)
        except Exception as exc:
            error = kube_error(exc, f"get lease {self.namespace}/{self.name}")
            if isinstance(error, KubeNotFound):
                return Record("", 0.0, 0, None, None, None)
            raise error from None
        spec = lease.spec or LeaseSpec()
        return Record(
            spec.holderIdentity or "",
            float(spec.leaseDurationSeconds or 0),
            spec.leaseTransitions or 0,
            spec.acquireTime,
            spec.renewTime,
            lease.metadata.resourceVersion if lease.metadata else None,
        )

    async def put(self, record: Record, version: str | None) -> str:
        """Create (no version) or replace with `version`; the new resourceVersion."""
        from lightkube.models.coordination_v1 import LeaseSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.coordination_v1 import Lease

        lease = Lease(
            metadata=ObjectMeta(name=self.name, namespace=self.namespace, resourceVersion=version),
            spec=LeaseSpec(
                holderIdentity=record.holder or None,
                leaseDurationSeconds=round(record.duration_s),
                leaseTransitions=record.transitions,
                acquireTime=micro_time(record.acquired) if record.acquired else None,
                renewTime=micro_time(record.renewed) if record.renewed else None,
            ),
        )
        what = f"{'replace' if version else 'create'} lease {self.namespace}/{self.name}"
        try:
            if version is None:
                written = await self._client.create(lease)
            else:
                written = await self._client.replace(lease)
        except Exception as exc:
            raise kube_error(exc, what) from None
        return (written.metadata.resourceVersion if written.metadata else None) or ""


class LeaderElector:
    """Campaigns, leads, and steps down; `is_open` is the fence."""

    def __init__(
        self,
        lock: LeaseLock,
        identity: str,
        settings: LeaderSettings,
        metrics: Metrics,
        *,
        clock: Clock,
        monotonic: Monotonic,
        sleep: Sleep,
    ) -> None:
        self.lock, self.identity, self._settings = lock, identity, settings
        self._metrics, self._clock, self._monotonic, self._sleep = metrics, clock, monotonic, sleep
        self._leading = False
        self._valid_until = float("-inf")  # monotonic: the fence closes then
        self._observed: Record | None = None
        self._observed_at = float("-inf")  # monotonic: when the record last changed
        self._last_error: str | None = None
        self._last_renew: datetime | None = None
        self._stopping = False
        self.changed = asyncio.Event()  # set at each transition (tests and /status wait on it)

    # --- the fence ---

    def is_open(self) -> bool:
        return self._leading and self._monotonic() < self._valid_until

    @property
    def is_leading(self) -> bool:
        return self._leading

    @property
    def leader(self) -> str:
        """Who holds the lease as last read ("" when no one)."""
        if self._leading:
            return self.identity
        return self._observed.holder if self._observed else ""

    def is_healthy(self) -> bool:
        """Reaching the API server: a follower that can, is ready to take over."""
        return self._last_error is None and self._observed is not None

    def status(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "leading": self._leading,
            "leader": self.leader or None,
            "lease": f"{self.lock.namespace}/{self.lock.name}",
            "last_renew": self._last_renew,
            "last_error": self._last_error,
        }

    # --- the loop ---

    async def run(self, on_started: Hook, on_stopped: Hook) -> None:
        """Until cancelled: campaign each retry period; lead while renewing."""
        retry = self._settings.retry_period_s
        while not self._stopping:
            began = self._monotonic()
            await self.step(on_started, on_stopped)
            left = retry - (self._monotonic() - began)
            # The loop may be late (a pause): the fence still closes on time by itself.
            wake = min(left, self._valid_until - self._monotonic()) if self._leading else left
            await self._sleep(max(0.0, wake))

    async def step(self, on_started: Hook, on_stopped: Hook) -> None:
        """One round: take or renew the lease; start or stop acting as that turned out."""
        began = self._monotonic()
        renewed = await self._try_acquire_or_renew(began)
        if renewed and not self._leading:
            self._become(True)
            await on_started()
        elif self._leading and self._monotonic() >= self._valid_until:
            log.warning(
                "leadership lost: lease %s not renewed within %.1f s; stopping acting",
                self.lock.name,
                self._settings.renew_deadline_s,
            )
            self._become(False)
            await on_stopped()

    async def _try_acquire_or_renew(self, began: float) -> bool:
        timeout = self._settings.renew_deadline_s
        if self._leading:
            timeout = max(0.01, self._valid_until - self._monotonic())
        try:
            return await asyncio.wait_for(self._attempt(began), timeout)
        except (KubeError, TimeoutError) as exc:
            self._last_error = str(exc) or "the API server did not answer in time"
            log.warning("lease %s: %s", self.lock.name, self._last_error)
            return False

    async def _attempt(self, began: float) -> bool:
        current = await self.lock.get()
        if current != self._observed:
            self._observed, self._observed_at = current, began
        self._last_error = None
        now = self._clock()
        free = (
            not current.holder
            or current.holder == self.identity
            or began >= self._observed_at + current.duration_s
        )
        if self._leading and current.holder != self.identity:
            self._valid_until = float("-inf")  # taken over: stop at once
        if not free:
            return False
        ours = current.holder == self.identity
        record = Record(
            self.identity,
            self._settings.lease_duration_s,
            current.transitions if ours else current.transitions + (1 if current.version else 0),
            current.acquired if ours and current.acquired else now,
            now,
            None,
        )
        version = await self.lock.put(record, current.version)
        # The fence counts from when this renewal began, not when it was answered: another
        # replica can only have seen it after it began.
        self._valid_until = began + self._settings.renew_deadline_s
        self._observed = replace(record, version=version)
        self._observed_at = began
        self._last_renew = now
        self._metrics.leader_last_renew.set(now.timestamp())
        return True

    def _become(self, leading: bool) -> None:
        self._leading = leading
        self._metrics.leader.set(1 if leading else 0)
        if leading:
            self._metrics.leader_transitions.inc()
            log.info("became the leader (lease %s)", self.lock.name)
        self.changed.set()
        self.changed = asyncio.Event()

    async def release(self) -> None:
        """After the active group has stopped: clear the holder so another takes the lease
        at once (client-go: leaseDurationSeconds 1, holder cleared)."""
        self._stopping = True
        if not self._leading:
            return
        self._become(False)
        self._valid_until = float("-inf")
        observed = self._observed
        if observed is None or observed.holder != self.identity:
            return
        now = self._clock()
        try:
            await asyncio.wait_for(
                self.lock.put(
                    Record("", 1.0, observed.transitions, now, now, None), observed.version
                ),
                self._settings.renew_deadline_s,
            )
            log.info("lease %s released", self.lock.name)
        except (KubeError, TimeoutError) as exc:
            log.warning("lease %s not released (%s); it expires by itself", self.lock.name, exc)


class LeaderStatus:
    """The probes and /status with leadership in them: a follower is ready when its config
    is loaded and it reads the lease (ready to take over); the leader as before."""

    def __init__(self, view: StatusSource, elector: LeaderElector, is_loaded: Callable[[], bool]):
        self._view, self._elector, self._is_loaded = view, elector, is_loaded

    def is_alive(self) -> bool:
        return self._view.is_alive()

    def readiness(self) -> list[str]:
        if self._elector.is_leading:
            return self._view.readiness()
        if not self._is_loaded():
            return ["config not loaded"]
        if not self._elector.is_healthy():
            return [f"lease not read: {self._elector.status()['last_error'] or 'not yet'}"]
        return []

    def status(self) -> dict[str, Any]:
        waiting = self.readiness()
        return {
            **self._view.status(),
            "ready": not waiting,
            "waiting_for": waiting,
            "leader": self._elector.status(),
        }


def build_elector(
    settings: LeaderSettings,
    metrics: Metrics,
    *,
    clock: Clock,
    monotonic: Monotonic,
    sleep: Sleep,
) -> LeaderElector:
    target = kube_target(settings)
    client = kube_client(target, timeout_s=settings.request_timeout_s)
    return LeaderElector(
        LeaseLock(client, settings.lease_name, target.namespace),
        settings.identity or default_identity(),
        settings,
        metrics,
        clock=clock,
        monotonic=monotonic,
        sleep=sleep,
    )
