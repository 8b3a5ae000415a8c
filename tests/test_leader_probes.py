"""The probes and /status of real daemons (App) under leader election, against the fake API
server and the emulator over loopback HTTP: a follower is ready when its config is loaded and
it reads the Lease (ready to take over), not ready when it cannot; /status names the leader
on the leader and on the follower; a daemon without election is the one that leads.

The elector's rounds are driven one at a time (`elector.step`, what its loop does each retry
period) on a monotonic clock the test holds still: nothing sleeps and nothing races.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.app import App
from daemon.config.settings import Settings
from daemon.emulator import ManualClock
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from tests.app.conftest import CONFIG, START
from tests.conftest import PROJECT, sample
from tests.kube_fake import FakeApiServer

TIMINGS = dict(lease_duration_s=2.0, renew_deadline_s=1.5, retry_period_s=0.25)
MakeApp = Callable[..., App]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)  # whole seconds, as the Lease's MicroTime check wants


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer() as server:
        (tmp_path / "token").write_text(server.token)
        yield server


@pytest.fixture
async def make_app(
    tmp_path: Path, emulator: str, api: FakeApiServer, clock: ManualClock
) -> AsyncIterator[MakeApp]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(project=PROJECT, url=emulator))
    apps: list[App] = []

    def make(identity: str | None) -> App:
        leader: dict[str, Any] = {}
        if identity is not None:
            leader = dict(
                enabled=True,
                identity=identity,
                namespace="ops",
                api_url=api.url,
                token_file=tmp_path / "token",
                ca_file=None,
                store="configmap",
                **TIMINGS,
            )
        settings = Settings(
            config=config,
            listen_host="127.0.0.1",
            listen_port=0,
            credentials={"lab": {"ak": DEMO_AK, "sk": DEMO_SK}},
            project_rate_per_s=1000,
            project_rate_initial_per_s=1000,
            leader=leader,
        )  # type: ignore[arg-type]
        app = App(settings, clock=clock, sleep=clock.sleep, monotonic=lambda: 1000.0)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.shutdown()


async def campaign(app: App) -> None:
    """One round of the app's elector, with the app's own start and stop of the active group
    (no schedules: nothing must fire while the probes are looked at)."""
    assert app.leader is not None
    await app.leader.step(partial(app.start_active, schedule=False), app.stop_active)


async def probe(app: App, path: str) -> httpx.Response:
    assert app.server is not None
    async with httpx.AsyncClient(base_url=app.server.url) as http:
        return await http.get(path)


async def leader_block(app: App) -> dict[str, Any]:
    response = await probe(app, "/status")
    assert response.status_code == 200
    block: dict[str, Any] = response.json()["leader"]
    return block


async def test_a_follower_that_reads_the_lease_is_ready_and_names_the_leader(
    make_app: MakeApp, api: FakeApiServer
) -> None:
    a, b = make_app("pod-a"), make_app("pod-b")
    for app in (a, b):
        await app.start_replica(watch=False)
    await campaign(a)
    await campaign(b)
    assert a.leader is not None
    assert a.leader.is_leading

    follower = await probe(b, "/readyz")
    assert (follower.status_code, follower.text) == (200, "ready\n")
    leader = await probe(a, "/readyz")  # the leader: config loaded, first inventory answered
    assert (leader.status_code, leader.text) == (200, "ready\n")

    lease = {"leader": "pod-a", "lease": "ops/graphnap", "last_error": None}
    assert await leader_block(b) == {
        **lease,
        "identity": "pod-b",
        "leading": False,
        "last_renew": None,
    }
    on_a = await leader_block(a)
    assert {k: on_a[k] for k in lease} == lease
    assert (on_a["identity"], on_a["leading"]) == ("pod-a", True)
    assert on_a["last_renew"] == str(START)  # when it took the lease, on the daemon's clock
    assert sample(a.registry, "graphnap_leader") == 1
    assert sample(b.registry, "graphnap_leader") == 0
    status = (await probe(b, "/status")).json()
    assert (status["ready"], status["waiting_for"]) == (True, [])


async def test_a_follower_that_cannot_read_the_lease_is_not_ready(
    make_app: MakeApp, api: FakeApiServer
) -> None:
    a, b = make_app("pod-a"), make_app("pod-b")
    assert b.probes.readiness() == ["config not loaded"]  # before start-up
    for app in (a, b):
        await app.start_replica(watch=False)
    not_yet = await probe(b, "/readyz")  # loaded, but the lease never read
    assert (not_yet.status_code, not_yet.text) == (503, "not ready: lease not read: not yet\n")

    await campaign(a)
    await campaign(b)
    assert (await probe(b, "/readyz")).status_code == 200

    api.token = "sa-token-rotated"  # the API server now refuses the token b holds
    await campaign(b)
    refused = await probe(b, "/readyz")
    assert refused.status_code == 503
    assert refused.text.startswith("not ready: lease not read: ")
    assert "401" in refused.text
    status = (await probe(b, "/status")).json()
    assert status["ready"] is False
    assert status["waiting_for"] == [refused.text.removeprefix("not ready: ").rstrip("\n")]
    assert status["leader"]["leader"] == "pod-a"  # as last read
    assert "401" in status["leader"]["last_error"]
    assert "sa-token" not in str(status)  # the token never shows

    (Path(b.settings.leader.token_file)).write_text(api.token)  # the kubelet's new token
    await campaign(b)
    assert (await probe(b, "/readyz")).status_code == 200


async def test_without_election_the_only_replica_leads(make_app: MakeApp) -> None:
    app = make_app(None)
    assert app.leader is None
    assert sample(app.registry, "graphnap_leader") == 0
    await app.start(schedule=False, watch=False)
    assert sample(app.registry, "graphnap_leader") == 1  # GraphnapNoLeader counts on it
    assert "leader" not in (await probe(app, "/status")).json()
