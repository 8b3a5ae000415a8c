"""The demo's inbox: what the webhook channel sends arrives, its signature is checked as a
receiver checks it, and a person can read what is printed."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr

from daemon.cli.inbox import Inbox, new_secret
from daemon.notify import channels as ch
from daemon.notify import message as msg
from daemon.notify.message import WarnedGraph

NOW = datetime(2026, 11, 27, 11, 45, tzinfo=UTC)


async def test_a_signed_warning_arrives_readable_and_a_forged_one_is_told_apart() -> None:
    secret = new_secret()
    out = io.StringIO()
    inbox = Inbox(secret, out=out)
    url = await inbox.start()
    warning = msg.warning(
        "dev-stop", "stop", NOW, [WarnedGraph("demo", "g1", "dev-a", "http://127.0.0.1:9465/postpone/v1.x")],
        max_items=20, key="k",
    )  # fmt: skip
    try:
        async with httpx.AsyncClient() as http:
            signed = ch.WebhookChannel("inbox", http, url=SecretStr(url), secret=SecretStr(secret),
                                       clock=lambda: NOW)  # fmt: skip
            forged = ch.WebhookChannel("inbox", http, url=SecretStr(url),
                                       secret=SecretStr(new_secret()), clock=lambda: NOW)  # fmt: skip
            assert (await signed.send(warning)).status == 204
            await forged.send(warning)
    finally:
        await inbox.stop()
    first, second = out.getvalue().split("inbox <- ")[1:]
    assert first.splitlines() == [
        "warning (signature ok): graphnap: dev-stop will stop 1 graph at 11:45 +0000",
        "    Postpone a graph to keep it running:",
        "    - dev-a (demo) postpone: http://127.0.0.1:9465/postpone/v1.x",
    ]
    assert second.startswith("warning (BAD SIGNATURE)")
    assert inbox.received == 2
