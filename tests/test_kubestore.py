"""The ConfigMap Store against the fake API server over real HTTP: what one writes another
reads; a write that meets a 409 merges (no section lost); a compare-and-swap on a section
someone else wrote is a StoreConflict; the size limit refuses clearly; a closed fence
writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.config.settings import LeaderSettings
from daemon.domain.hold import StoreConflict, StoreDamaged, StoreError
from daemon.runtime.kube import kube_client, kube_target
from daemon.runtime.kubestore import ConfigMapStore
from tests.kube_fake import FakeApiServer


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer() as server:
        (tmp_path / "token").write_text(server.token)
        yield server


@pytest.fixture
async def stores(api: FakeApiServer, tmp_path: Path) -> AsyncIterator[list[ConfigMapStore]]:
    settings = LeaderSettings(
        api_url=api.url, namespace="ops", token_file=tmp_path / "token", ca_file=None
    )
    made = [
        ConfigMapStore(
            kube_client(kube_target(settings), timeout_s=5), "graphnap-state", "ops", **kw
        )
        for kw in ({}, {}, {"limit_bytes": 2000})
    ]
    yield made
    for store in made:
        await store._client.close()  # type: ignore[no-untyped-call]


async def test_what_the_old_leader_wrote_the_new_one_reads(
    stores: list[ConfigMapStore], api: FakeApiServer
) -> None:
    old, new, _ = stores
    assert await new.read_all() == {}  # no ConfigMap yet: a first start
    assert await old.write("last_fire", {"night": "2025-03-01T20:00:00+00:00"}) == 1
    assert await old.write("holds", [{"id": "h1"}]) == 1
    sections = await new.read_all()
    assert sections["last_fire"].value == {"night": "2025-03-01T20:00:00+00:00"}
    assert sections["holds"].revision == 1
    stored = api.configmap("ops", "graphnap-state")
    assert stored is not None
    assert set(stored["data"]) == {"format", "last_fire.json", "holds.json"}
    assert stored["data"]["format"] == "graphnap-store/1"  # the state file's marker too


async def test_a_write_that_meets_a_conflict_is_merged_not_lost(
    stores: list[ConfigMapStore], api: FakeApiServer
) -> None:
    a, b, _ = stores
    await a.write("last_fire", {"night": "1"})
    await b.read_all()
    await a.write("holds", [{"id": "h1"}])  # b's resourceVersion is stale now
    await b.write("deferrals", [{"graph": "g"}])  # 409, re-read, merged
    assert api.conflicts == 1
    sections = await a.read_all()
    assert sections["holds"].value == [{"id": "h1"}]
    assert sections["deferrals"].value == [{"graph": "g"}]
    assert sections["last_fire"].value == {"night": "1"}


async def test_a_compare_and_swap_on_a_section_written_since_is_a_conflict(
    stores: list[ConfigMapStore],
) -> None:
    a, b, _ = stores
    await a.write("holds", [])
    revision = (await b.read_all())["holds"].revision
    await a.write("holds", [{"id": "from-a"}], revision=revision)
    with pytest.raises(StoreConflict, match="revision 2, not 1"):
        await b.write("holds", [{"id": "from-b"}], revision=revision)
    assert (await b.read_all())["holds"].value == [{"id": "from-a"}]


async def test_the_size_limit_refuses_before_the_api_server_would(
    stores: list[ConfigMapStore],
) -> None:
    small = stores[2]
    with pytest.raises(StoreError, match="over graphnap's limit of 2000"):
        await small.write("holds", ["x" * 3000])
    assert await small.read_all() == {}


async def test_a_closed_fence_writes_nothing(api: FakeApiServer, tmp_path: Path) -> None:
    class Closed:
        def is_open(self) -> bool:
            return False

    settings = LeaderSettings(api_url=api.url, token_file=tmp_path / "token", ca_file=None)
    client = kube_client(kube_target(settings), timeout_s=5)
    store = ConfigMapStore(client, "graphnap-state", "ops", fence=Closed())
    with pytest.raises(StoreError, match="does not lead"):
        await store.write("holds", [])
    assert api.requests == []
    await client.close()  # type: ignore[no-untyped-call]


async def test_a_configmap_that_is_not_a_store_is_never_overwritten(
    stores: list[ConfigMapStore], api: FakeApiServer
) -> None:
    api.objects[("configmaps", "ops", "graphnap-state")] = {
        "metadata": {"name": "graphnap-state", "resourceVersion": "5"},
        "data": {"something": "else"},
    }
    with pytest.raises(StoreDamaged, match="not a graphnap store"):
        await stores[0].read_all()
    with pytest.raises(StoreDamaged):
        await stores[1].write("holds", [])
    assert api.configmap("ops", "graphnap-state")["data"] == {"something": "else"}  # type: ignore[index]
