"""The demo's inbox: a webhook receiver on loopback that checks each message's Standard
Webhooks signature, as a real receiver would, and prints it for a person to read."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import sys
from typing import Any, TextIO

from aiohttp import web

from daemon.notify.signatures import WHSEC_PREFIX, webhook_key, webhook_signature

PATH = "/graphnap"


def new_secret() -> str:
    """A Standard Webhooks secret for this run only."""
    return WHSEC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def render(event: dict[str, Any], verdict: str) -> str:
    """One message as a person reads it: kind, title, then its lines, indented."""
    data = event.get("data", event)
    kind = str(data.get("kind", event.get("type", "?")))
    lines = [f"inbox <- {kind} ({verdict}): {data.get('title', '')}"]
    lines += [f"    {line}" for line in str(data.get("text", "")).splitlines()]
    return "\n".join(lines)


class Inbox:
    def __init__(self, secret: str, *, out: TextIO = sys.stdout, host: str = "127.0.0.1") -> None:
        self._key = webhook_key(secret)
        self._out = out
        self._host = host
        self._runner: web.AppRunner | None = None
        self.received = 0

    async def start(self) -> str:
        """Listen on a free loopback port; the URL to give the webhook channel."""
        app = web.Application()
        app.router.add_post(PATH, self._receive)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, 0).start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}{PATH}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def verdict(self, headers: Any, body: bytes) -> str:
        msg_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        given = headers.get("webhook-signature", "")
        if not (msg_id and timestamp.isdigit() and given):
            return "UNSIGNED"
        expected = webhook_signature(self._key, msg_id, int(timestamp), body)
        ok = any(hmac.compare_digest(sig, expected) for sig in given.split())
        return "signature ok" if ok else "BAD SIGNATURE"

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        verdict = self.verdict(request.headers, body)
        try:
            event = json.loads(body)
        except ValueError:
            event = {"title": "(not JSON)"}
        self.received += 1
        print(render(event if isinstance(event, dict) else {}, verdict), file=self._out, flush=True)
        return web.Response(status=204)
