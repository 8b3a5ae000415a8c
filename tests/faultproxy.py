"""A fault-injecting HTTP proxy on 127.0.0.1 in front of the emulator, for the fault suite.

It forwards requests unchanged (the Host header included, so AK/SK signatures still verify)
and, for the requests a rule matches, misbehaves the way a hostile network or a broken
gateway does: resets the connection before or after the request reaches the cloud, never
answers, answers with an HTML error page, or sends half an answer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp import web

Fault = Literal["reset_before", "reset_after", "hang", "html", "truncate"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass
class Rule:
    method: str
    path: re.Pattern[str]
    fault: Fault
    times: int  # how many matching requests it hits; then it is spent


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self._upstream = upstream.rstrip("/")
        self._rules: list[Rule] = []
        self._hung = asyncio.Event()  # set at exit, so hung handlers end
        self.faulted: list[tuple[Fault, str]] = []
        self._fault_seen = asyncio.Event()
        self.url = ""

    def add(self, method: str, path: str, fault: Fault, *, times: int = 1) -> None:
        """Misbehave for the next `times` requests whose path matches the regex `path`."""
        self._rules.append(Rule(method, re.compile(path), fault, times))

    async def wait_for_fault(self) -> None:
        """Until a rule has hit a request."""
        await asyncio.wait_for(self._fault_seen.wait(), timeout=30)

    def _take(self, request: web.Request) -> Fault | None:
        for rule in self._rules:
            if rule.times > 0 and rule.method == request.method and rule.path.search(request.path):
                rule.times -= 1
                self.faulted.append((rule.fault, request.path))
                self._fault_seen.set()
                return rule.fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._take(request)
        if fault == "reset_before":
            return self._reset(request)
        if fault == "hang":
            await self._hung.wait()
            return web.Response(status=504)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.request(
                request.method,
                self._upstream + request.path_qs,
                data=body,
                headers=headers,
                skip_auto_headers={"User-Agent", "Content-Type"},
            ) as upstream,
        ):
            answer = await upstream.read()
            status, answer_headers = upstream.status, dict(upstream.headers)
        if fault == "reset_after":  # the cloud acted; the answer is lost on the way back
            return self._reset(request)
        if fault == "html":
            return web.Response(
                status=502,
                text="<html><body>502 Bad Gateway</body></html>",
                content_type="text/html",
            )
        passed = {k: v for k, v in answer_headers.items() if k.lower() not in _HOP_BY_HOP}
        if fault == "truncate":
            response = web.StreamResponse(status=status, headers=passed)
            response.content_length = len(answer)
            await response.prepare(request)
            await response.write(answer[: len(answer) // 2])
            return self._reset(request)
        return web.Response(status=status, body=answer, headers=passed)

    @staticmethod
    def _reset(request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=599)  # never reaches the client


@asynccontextmanager
async def fault_proxy(upstream: str) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(upstream)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy._handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    proxy.url = f"http://{host}:{port}"
    try:
        yield proxy
    finally:
        proxy._hung.set()
        await runner.cleanup()
