"""The ops HTTP server, over real HTTP on loopback: what it answers and what it gives away."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from daemon.ops.server import OpsServer


class Source:
    def is_alive(self) -> bool:
        return True

    def readiness(self) -> list[str]:
        return []

    def status(self) -> dict[str, Any]:
        return {"config": {"version": "abc"}}


@pytest.fixture
async def ops_url() -> AsyncIterator[str]:
    registry = CollectorRegistry()
    Counter("graphnap_test", "A counter.", registry=registry).inc()
    server = OpsServer(Source(), registry, "127.0.0.1", 0)
    url = await server.start()
    yield url
    await server.stop()


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/status", "/metrics", "/nope"])
async def test_no_answer_advertises_software_versions(ops_url: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=ops_url) as http:
        response = await http.get(path)
    assert response.status_code == (404 if path == "/nope" else 200)
    assert response.headers["Server"] == "graphnap"


async def test_endpoints_answer_from_the_source(ops_url: str) -> None:
    async with httpx.AsyncClient(base_url=ops_url) as http:
        assert (await http.get("/healthz")).text == "ok\n"
        assert (await http.get("/readyz")).text == "ready\n"
        assert (await http.get("/status")).json() == {"config": {"version": "abc"}}
        assert "graphnap_test_total 1.0" in (await http.get("/metrics")).text


async def test_a_scrape_being_written_does_not_hold_the_probes() -> None:
    """The render runs off the event loop: while it is still writing, /healthz answers."""
    writing, finish = threading.Event(), threading.Event()

    def slow_render() -> bytes:
        writing.set()
        finish.wait(timeout=10)  # a bound, should the probe never answer
        return b"graphnap_test_total 1.0\n"

    server = OpsServer(Source(), CollectorRegistry(), "127.0.0.1", 0, render=slow_render)
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            scrape = asyncio.ensure_future(http.get("/metrics"))
            assert await asyncio.to_thread(writing.wait, 5)
            assert (await http.get("/healthz")).text == "ok\n"  # the scrape is still writing
            assert not scrape.done()
            finish.set()
            assert (await scrape).text == "graphnap_test_total 1.0\n"
    finally:
        finish.set()
        await server.stop()
