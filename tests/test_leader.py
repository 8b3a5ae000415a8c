"""Leader election against the fake API server over real HTTP, on a monotonic clock the test
moves: one leads, the fence closes before the lease can be taken, a paused leader wakes to a
closed fence, a release hands over at once; and a closed fence keeps requests from leaving."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from daemon.cloud.clients import fenced
from daemon.cloud.errors import FencedError
from daemon.cloud.redaction import RedactingTransport
from daemon.config.settings import LeaderSettings
from daemon.emulator import ManualClock
from daemon.ops.leader import LeaderElector, build_elector
from daemon.telemetry.metrics import Metrics
from tests.conftest import sample
from tests.kube_fake import FakeApiServer

SETTINGS = dict(lease_duration_s=2.0, renew_deadline_s=1.5, retry_period_s=0.25)


@dataclass
class Monotonic:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Replica:
    elector: LeaderElector
    registry: CollectorRegistry
    events: list[str] = field(default_factory=list)

    async def step(self) -> None:
        await self.elector.step(self._started, self._stopped)

    async def _started(self) -> None:
        self.events.append("started")

    async def _stopped(self) -> None:
        self.events.append("stopped")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer() as server:
        (tmp_path / "token").write_text(server.token + "\n")
        yield server


@pytest.fixture
def clock() -> ManualClock:
    # Whole seconds: a renewTime without microseconds is what the API server refuses.
    return ManualClock(datetime(2025, 3, 1, 12, 0, tzinfo=UTC))


def replica(
    api: FakeApiServer, tmp_path: Path, name: str, mono: Monotonic, clock: ManualClock
) -> Replica:
    settings = LeaderSettings(
        enabled=True,
        identity=name,
        namespace="ops",
        api_url=api.url,
        token_file=tmp_path / "token",
        ca_file=None,
        **SETTINGS,
    )
    registry = CollectorRegistry()
    elector = build_elector(
        settings, Metrics(registry), clock=clock, monotonic=mono, sleep=clock.sleep
    )
    return Replica(elector, registry)


async def test_one_leads_and_the_other_follows(
    api: FakeApiServer, tmp_path: Path, clock: ManualClock
) -> None:
    mono = Monotonic()
    a, b = (replica(api, tmp_path, n, mono, clock) for n in ("pod-a", "pod-b"))
    await a.step()
    await b.step()
    assert (a.events, b.events) == (["started"], [])
    assert a.elector.is_open()
    assert not b.elector.is_open()
    assert b.elector.leader == "pod-a"
    assert b.elector.is_healthy()
    lease = api.lease("ops", "graphnap")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "pod-a"
    assert lease["spec"]["leaseDurationSeconds"] == 2
    assert lease["spec"]["renewTime"].endswith(".000001Z")  # six digits, as MicroTime wants
    assert sample(a.registry, "graphnap_leader") == 1
    assert sample(b.registry, "graphnap_leader") == 0
    assert sample(a.registry, "graphnap_leader_transitions_total") == 1
    assert sample(a.registry, "graphnap_leader_last_renew_timestamp_seconds") > 0
    await a.elector.lock.close()
    await b.elector.lock.close()


async def test_a_leader_that_cannot_renew_stops_acting_before_the_lease_can_be_taken(
    api: FakeApiServer, tmp_path: Path, clock: ManualClock
) -> None:
    mono = Monotonic()
    a, b = (replica(api, tmp_path, n, mono, clock) for n in ("pod-a", "pod-b"))
    await a.step()
    await b.step()  # b observes a's renewal now
    # a renews no more (paused, or cut off from the API server).
    mono.now += SETTINGS["renew_deadline_s"]
    assert not a.elector.is_open()  # fenced: nothing leaves a
    await b.step()
    assert b.events == []  # and b may not take the lease yet
    mono.now += SETTINGS["lease_duration_s"] - SETTINGS["renew_deadline_s"]
    await b.step()
    assert b.events == ["started"]
    assert b.elector.is_open()
    # a wakes up: its fence is closed, and its first round finds it lost the lease.
    assert not a.elector.is_open()
    await a.step()
    assert a.events == ["started", "stopped"]
    assert not a.elector.is_open()
    assert a.elector.leader == "pod-b"
    lease = api.lease("ops", "graphnap")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "pod-b"
    assert lease["spec"]["leaseTransitions"] == 1  # created by a (0), taken by b (1)
    assert sample(a.registry, "graphnap_leader") == 0
    await a.elector.lock.close()
    await b.elector.lock.close()


async def test_a_released_lease_is_taken_at_once(
    api: FakeApiServer, tmp_path: Path, clock: ManualClock
) -> None:
    mono = Monotonic()
    a, b = (replica(api, tmp_path, n, mono, clock) for n in ("pod-a", "pod-b"))
    await a.step()
    await b.step()
    await a.elector.release()
    assert not a.elector.is_open()
    lease = api.lease("ops", "graphnap")
    assert lease is not None
    assert "holderIdentity" not in lease["spec"]
    assert lease["spec"]["leaseDurationSeconds"] == 1
    await b.step()  # no time has passed
    assert b.events == ["started"]
    await a.elector.lock.close()
    await b.elector.lock.close()


async def test_a_write_that_loses_a_race_is_a_conflict_and_the_loser_follows(
    api: FakeApiServer, tmp_path: Path, clock: ManualClock
) -> None:
    mono = Monotonic()
    a, b = (replica(api, tmp_path, n, mono, clock) for n in ("pod-a", "pod-b"))
    # Both read "no lease"; a creates it first; b's create is AlreadyExists.
    first = await b.elector.lock.get()
    await a.step()
    with pytest.raises(Exception, match="AlreadyExists"):
        await b.elector.lock.put(first, first.version)
    # A replace with the version read before a's renewal is a 409 Conflict.
    read = await b.elector.lock.get()
    await a.step()
    with pytest.raises(Exception, match="409 Conflict"):
        await b.elector.lock.put(read, read.version)
    assert api.conflicts == 1
    await a.elector.lock.close()
    await b.elector.lock.close()


async def test_the_token_is_read_again_when_the_kubelet_rotates_it(
    api: FakeApiServer, tmp_path: Path, clock: ManualClock
) -> None:
    mono = Monotonic()
    a = replica(api, tmp_path, "pod-a", mono, clock)
    await a.step()
    api.token = "sa-token-2"
    (tmp_path / "token.new").write_text("sa-token-2")
    (tmp_path / "token.new").replace(tmp_path / "token")  # as the kubelet swaps it
    mono.now += SETTINGS["retry_period_s"]
    await a.step()
    assert a.elector.is_open()
    assert a.elector.is_healthy()
    api.token = "sa-token-3"  # rotated on the server, not yet in the file
    mono.now += SETTINGS["retry_period_s"]
    await a.step()
    status = a.elector.status()
    assert "401" in status["last_error"]
    assert "sa-token" not in str(status)  # the token never shows
    await a.elector.lock.close()


async def test_a_closed_fence_sends_nothing() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    class Switch:
        open = True

        def is_open(self) -> bool:
            return self.open

    fence = Switch()
    inner = httpx.AsyncClient(
        transport=httpx.MockTransport(answer), event_hooks={"request": [fenced(fence)]}
    )
    async with httpx.AsyncClient(
        base_url="http://ges.test", transport=RedactingTransport([], inner)
    ) as http:
        await http.get("/graphs")
        fence.open = False
        with pytest.raises(FencedError, match="not the leader"):
            await http.get("/graphs")
    assert len(sent) == 1
