"""A project's connections in small pools: no pool is ever given more requests than it has
connections (so nothing waits inside httpcore), a quiet client stays in its first pool, and
the project's gate in front keeps every pool within its connections over real HTTP.
Nothing here is timed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry

from daemon.cloud.clients import Clients
from daemon.cloud.pools import Shards, shard_sizes
from daemon.config.loader import parse_config
from daemon.config.settings import Settings
from daemon.emulator import Cloud, EmulatorServer, Faults
from daemon.emulator.cloud import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK
from daemon.telemetry.metrics import Metrics


def test_connections_are_split_into_as_few_small_shards_as_hold_them() -> None:
    assert shard_sizes(64) == [4] * 16
    assert shard_sizes(100) == [4] * 25
    assert shard_sizes(10) == [4, 4, 4]
    assert shard_sizes(6) == [3, 3]
    assert shard_sizes(1) == [1]


class Held:
    """Shard transports whose answers wait until released; what each one saw."""

    def __init__(self, shards: int) -> None:
        self.release = asyncio.Event()
        self.seen: list[list[str]] = [[] for _ in range(shards)]

    def transport(self, index: int) -> httpx.MockTransport:
        async def answer(request: httpx.Request) -> httpx.Response:
            self.seen[index].append(request.url.path)
            await self.release.wait()
            return httpx.Response(200, json={"ok": True})

        return httpx.MockTransport(answer)


async def until(predicate: object, rounds: int = 100) -> None:
    for _ in range(rounds):
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_no_shard_is_given_more_requests_than_its_connections() -> None:
    held = Held(3)
    shards = Shards(held.transport, 3, size=4)
    client = httpx.AsyncClient(base_url="http://api.test", transport=shards)
    calls = [asyncio.create_task(client.get(f"/r{i}")) for i in range(12)]
    await until(lambda: sum(shards.busy) == 12)
    assert shards.busy == (4, 4, 4)  # filled in order, each to its size and no further
    held.release.set()
    answers = await asyncio.gather(*calls)
    assert [a.json() for a in answers] == [{"ok": True}] * 12
    assert shards.busy == (0, 0, 0)
    assert shards.most_busy == 4
    await client.aclose()


async def test_only_when_every_shard_is_full_does_a_request_wait_in_the_least_busy() -> None:
    held = Held(2)
    shards = Shards(held.transport, 2, size=2)
    client = httpx.AsyncClient(base_url="http://api.test", transport=shards)
    calls = [asyncio.create_task(client.get(f"/r{i}")) for i in range(5)]
    await until(lambda: sum(shards.busy) == 5)
    assert shards.busy == (3, 2)  # no gate in front: the fifth goes where fewest wait
    held.release.set()
    await asyncio.gather(*calls)
    await client.aclose()


async def test_a_quiet_client_keeps_to_its_first_shard() -> None:
    held = Held(4)
    held.release.set()
    shards = Shards(held.transport, 4, size=8)
    client = httpx.AsyncClient(base_url="http://api.test", transport=shards)
    for i in range(5):
        await client.get(f"/r{i}")
    assert [len(s) for s in held.seen] == [5, 0, 0, 0]
    assert shards.built == 1  # the others were never needed, so never made
    await client.aclose()


async def test_a_request_that_fails_gives_its_place_back() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    shards = Shards(lambda _: httpx.MockTransport(refuse), 1, size=1)
    client = httpx.AsyncClient(base_url="http://api.test", transport=shards)
    for _ in range(3):
        with pytest.raises(httpx.ConnectError):
            await client.get("/r")
    assert shards.busy == (0,)
    await client.aclose()


async def test_the_answer_is_read_before_its_place_is_given_back() -> None:
    shards = Shards(
        lambda _: httpx.MockTransport(lambda r: httpx.Response(200, content=b"x" * 10)), 1, 1
    )
    response = await shards.handle_async_request(httpx.Request("GET", "http://api.test/"))
    assert response.is_closed  # its connection is back in its pool
    assert response.content == b"x" * 10


async def test_behind_the_gate_no_pool_ever_holds_more_requests_than_connections() -> None:
    """Over real HTTP, many more requests than the project may have in flight: the gate
    lets through as many as the pools have connections, and no shard gets more."""
    cloud = Cloud([DEMO_PROJECT_ID], faults=Faults(latency_s=0.02), access_keys={DEMO_AK: DEMO_SK})
    ids = [cloud.add_graph(DEMO_PROJECT_ID, f"g-{i:03d}").id for i in range(40)]
    async with EmulatorServer(cloud) as server:
        settings = Settings(
            credentials={"lab": {"ak": DEMO_AK, "sk": DEMO_SK}},  # type: ignore[dict-item]
            project_concurrency=12,
            project_rate_initial_per_s=10_000,
            project_rate_per_s=10_000,
        )
        config = parse_config(
            f"projects:\n  - {{name: lab, region: cn-north-4, project_id: {DEMO_PROJECT_ID},"
            f" credentials: lab, endpoints: {{ges: '{server.url}'}}}}\n"
        )
        clients = Clients(
            settings,
            Metrics(CollectorRegistry()),
            clock=lambda: datetime.now(UTC),
            monotonic=asyncio.get_running_loop().time,
            sleep=asyncio.sleep,
        )
        clients.update(config)
        try:
            ges = clients.graph_apis()["lab"]
            graphs = await asyncio.gather(*(ges.show_graph(i) for i in ids * 5))
        finally:
            await clients.close()
    assert len(graphs) == 200
    pool, _ = clients.pools("lab")
    assert pool.size * len(pool.busy) >= 12  # room for all the gate lets through
    assert pool.most_busy == pool.size  # the pools were full: the bound was reached...
    assert sum(pool.busy) == 0  # ...never exceeded, and every place given back


async def test_a_proxy_named_in_the_environment_is_still_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pools skip the inner client only where no proxy is named: with HTTP_PROXY set,
    requests go to the proxy, as a plain httpx client would send them."""
    from aiohttp import web

    from tests.loopback import serve

    asked: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        asked.append(str(request.url))
        return web.json_response({"graphCount": 0, "graphs": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    async with serve(app) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        settings = Settings(credentials={"lab": {"ak": DEMO_AK, "sk": DEMO_SK}})  # type: ignore[dict-item]
        config = parse_config(
            f"projects:\n  - {{name: lab, region: cn-north-4, project_id: {DEMO_PROJECT_ID},"
            " credentials: lab, endpoints: {ges: 'http://ges.invalid'}}\n"
        )
        clients = Clients(
            settings,
            Metrics(CollectorRegistry()),
            clock=lambda: datetime.now(UTC),
            monotonic=asyncio.get_running_loop().time,
            sleep=asyncio.sleep,
        )
        clients.update(config)
        try:
            assert await clients.graph_apis()["lab"].list_graphs() == []
        finally:
            await clients.close()
    assert len(asked) == 1
    assert "ges.invalid" in asked[0]  # the proxy was asked for the endpoint's URL
