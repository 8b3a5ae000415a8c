"""A programmable HTTP receiver on loopback for the notify tests: it records every request
and answers from a script (status, body, headers, or held until released: a slow receiver)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Scripted:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    hold: asyncio.Event | None = None  # answer only once this is set


@dataclass
class Receiver:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    default: Scripted = field(default_factory=Scripted)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            Seen(
                request.path,
                dict(request.query),
                request.query_string,
                {k.lower(): v for k, v in request.headers.items()},
                await request.read(),
            )
        )
        self.arrived.set()
        answer = self.script.pop(0) if self.script else self.default
        if answer.hold is not None:
            await answer.hold.wait()
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> None:
        async def reached() -> None:
            while len(self.seen) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(reached(), timeout_s)


@asynccontextmanager
async def receiver(path: str = "/hook") -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post(path, rec.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}{path}"
    try:
        yield rec
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
