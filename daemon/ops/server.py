"""The ops HTTP server: /metrics, /healthz, /readyz and /status (JSON, never a secret).

It answers from state the daemon already holds; no probe ever calls GES.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, Self

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class StatusSource(Protocol):
    def is_alive(self) -> bool: ...

    def readiness(self) -> list[str]:
        """What still keeps the daemon from being ready; empty when ready."""
        ...

    def status(self) -> dict[str, Any]: ...


SOURCE: web.AppKey[StatusSource] = web.AppKey("source", StatusSource)
Render = Callable[[], bytes]
RENDER: web.AppKey[Render] = web.AppKey("render", Render)  # type: ignore[arg-type]


async def metrics(request: web.Request) -> web.Response:
    # Rendered off the event loop: probes, firings and the pacing of requests go on
    # while a scrape of a large fleet is written.
    body = await asyncio.to_thread(request.app[RENDER])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    alive = request.app[SOURCE].is_alive()
    return web.Response(
        text="ok\n" if alive else "event loop stalled\n", status=200 if alive else 503
    )


async def readyz(request: web.Request) -> web.Response:
    waiting = request.app[SOURCE].readiness()
    if waiting:
        return web.Response(text="not ready: " + "; ".join(waiting) + "\n", status=503)
    return web.Response(text="ready\n")


async def status(request: web.Request) -> web.Response:
    return web.json_response(
        request.app[SOURCE].status(), dumps=lambda o: json.dumps(o, indent=2, default=str)
    )


async def plain_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """aiohttp says `Python/3.x aiohttp/3.x` on every answer, 404s included: a version list
    for whoever scans the port. The name alone says enough."""
    response.headers["Server"] = "graphnap"


class Listener:
    """An aiohttp application on a host and port of its own, without access log: started
    (with port 0, on the port the system picks: `url` says which), and stopped. The ops
    server and the control API each run one."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host, self._port = host, port
        self.url = ""

    async def start(self) -> str:
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class OpsServer(Listener):
    def __init__(
        self,
        source: StatusSource,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        render: Render | None = None,
    ) -> None:
        """`render` writes /metrics (Metrics.render: cached per-graph text); without it,
        the registry is rendered whole."""
        app = web.Application()
        app.on_response_prepare.append(plain_server_header)
        app[SOURCE] = source
        app[RENDER] = render or partial(generate_latest, registry)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/status", status)
        super().__init__(app, host, port)
