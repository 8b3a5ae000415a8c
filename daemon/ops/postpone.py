"""Postpone links: the signed URL a warning gives per graph, its confirmation page (a GET that
changes nothing) and the page's POST that makes the hold. A link is bound by HMAC-SHA256 to
one graph, one firing and an expiry; its key comes from a secret file or lives in the Store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web

from daemon.domain.hold import SectionName, Store, StoreError
from daemon.ops.guard import CONTROL, OUTCOME
from daemon.ops.limits import TokenBuckets
from daemon.ops.views import HoldRequest, Refused

log = logging.getLogger(__name__)

KEY_MIN_BYTES = 32
KEY_SECTION: SectionName = "link_key"
HOLD_FOR = timedelta(hours=2)  # the page's one-click choice
MAX_TOKEN_CHARS = 1024
_VERSION = "v1"


class LinkKeyError(ValueError):
    """The key file cannot be used; the message names the file and the fix, never the key."""


async def link_key(key_file: Path | None, store: Store | None) -> bytes:
    """The signing key: the file's content (GRAPHNAP_CONTROL_LINK_KEY_FILE) if given, else the
    one kept in the Store (generated there at the first start, so links survive a restart),
    else one for this process only."""
    if key_file is not None:
        return key_from_file(key_file)
    if store is None:
        log.warning(
            "no state file and no GRAPHNAP_CONTROL_LINK_KEY_FILE: postpone links stop working "
            "when graphnap restarts"
        )
        return secrets.token_bytes(KEY_MIN_BYTES)
    return await _stored_key(store)


def key_from_file(key_file: Path) -> bytes:
    try:
        raw = key_file.read_bytes().strip()
    except OSError as exc:
        raise LinkKeyError(
            f"GRAPHNAP_CONTROL_LINK_KEY_FILE={key_file} cannot be read "
            f"({exc.strerror or exc}); mount the Secret there, or unset it"
        ) from None
    if len(raw) < KEY_MIN_BYTES:
        raise LinkKeyError(
            f"GRAPHNAP_CONTROL_LINK_KEY_FILE={key_file} holds {len(raw)} bytes; a link key "
            f"has at least {KEY_MIN_BYTES}: write one with `openssl rand -base64 48 > FILE`"
        )
    return raw


async def _stored_key(store: Store) -> bytes:
    try:
        section = (await store.read_all()).get(KEY_SECTION)
        value = section.value if section is not None else None
        if isinstance(value, dict) and isinstance(value.get("key"), str):
            key = bytes.fromhex(value["key"])
            if len(key) >= KEY_MIN_BYTES:
                return key
        key = secrets.token_bytes(KEY_MIN_BYTES)
        # A revision check: two replicas starting together end up with one key, not two.
        await store.write(
            KEY_SECTION, {"key": key.hex()}, revision=section.revision if section else 0
        )
        return key
    except (StoreError, ValueError) as exc:
        log.warning(
            "postpone link key not kept in %s (%s): links stop working when graphnap restarts",
            store.where,
            type(exc).__name__,
        )
        return secrets.token_bytes(KEY_MIN_BYTES)


# --- links ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    """What a postpone link says, every field signed."""

    project: str
    graph_id: str
    graph: str  # the name, shown on the page
    rule: str
    fire_at: datetime
    expires: datetime


class BadLink(Exception):
    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status, self.outcome, self.message = status, outcome, message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, key: bytes, base_url: str) -> None:
        self._key = key
        self.base_url = base_url.rstrip("/")

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, f"{_VERSION}.{body}".encode(), hashlib.sha256).digest()

    def token(self, link: Link) -> str:
        payload = {
            "p": link.project,
            "g": link.graph_id,
            "n": link.graph,
            "r": link.rule,
            "f": link.fire_at.isoformat(),
            "e": int(link.expires.timestamp()),
        }
        body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{_VERSION}.{body}.{_b64(self._sign(body))}"

    def url(self, link: Link) -> str:
        return f"{self.base_url}/postpone/{self.token(link)}"

    def read(self, token: str, now: datetime) -> Link:
        """The link a token carries (BadLink: malformed, tampered with, or expired)."""
        version, _, rest = token.partition(".")
        body, _, signature = rest.partition(".")
        if len(token) > MAX_TOKEN_CHARS or version != _VERSION or not body or not signature:
            raise BadLink(400, "invalid", "this is not a postpone link graphnap made")
        try:
            given = _unb64(signature)
        except (binascii.Error, ValueError):
            given = b""
        if not hmac.compare_digest(given, self._sign(body)):
            raise BadLink(
                403,
                "forbidden",
                "this link's signature does not match: it was changed, or made with another "
                "key. Use the link exactly as the message gave it",
            )
        try:
            p: dict[str, Any] = json.loads(_unb64(body))
            link = Link(
                str(p["p"]), str(p["g"]), str(p["n"]), str(p["r"]),
                datetime.fromisoformat(str(p["f"])),
                datetime.fromtimestamp(int(p["e"]), tz=UTC),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            raise BadLink(400, "invalid", "this link's content cannot be read") from None
        if link.fire_at.tzinfo is not None:  # shown in the offset the firing is shown in
            link = replace(link, expires=link.expires.astimezone(link.fire_at.tzinfo))
        if now >= link.expires:
            raise BadLink(
                410,
                "expired",
                f"this link expired at {_stamp(link.expires)}: the stop it could postpone "
                "has come. Use the control page to keep a graph up now",
            )
        return link

    @staticmethod
    def link_id(token: str) -> str:
        """A short, stable name of one link for logs and the hold's `by` (not the signature)."""
        return hashlib.sha256(token.encode()).hexdigest()[:10]


def _stamp(at: datetime) -> str:
    text = at.strftime("%a %d %b %H:%M %z")
    return f"{text[:-2]}:{text[-2:]}" if at.utcoffset() is not None else text


# --- the pages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PostponeLimits:
    per_link_burst: int = 10  # page views and posts of one link
    per_link_rate_per_s: float = 1 / 30
    all_burst: int = 60  # every link together: a scanner cannot make the daemon busy
    all_rate_per_s: float = 2.0


class Postpone:
    """The routes: GET and POST /postpone/{token} on the control listener, no bearer token."""

    def __init__(
        self,
        signer: LinkSigner,
        *,
        monotonic: Callable[[], float],
        limits: PostponeLimits | None = None,
    ) -> None:
        limits = limits or PostponeLimits()
        self.signer = signer
        self._per_link = TokenBuckets(limits.per_link_rate_per_s, limits.per_link_burst, monotonic)
        self._all = TokenBuckets(limits.all_rate_per_s, limits.all_burst, monotonic)
        self._posting = asyncio.Lock()  # one hold made at a time: a double click is one hold

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/postpone/{token}", self.show, name="public_postpone")
        router.add_post("/postpone/{token}", self.confirm, name="public_postpone_confirm")

    def _checked(self, request: web.Request) -> tuple[str, Link, datetime]:
        token = request.match_info["token"]
        wait_s = max(self._all.take("-"), self._per_link.take(LinkSigner.link_id(token)))
        if wait_s:
            seconds = max(1, math.ceil(wait_s))
            raise _Page(429, "rate_limited", f"Too many requests for this link; try again in "
                        f"{seconds}s.", {"Retry-After": str(seconds)})  # fmt: skip
        now = request.app[CONTROL].clock()
        try:
            return token, self.signer.read(token, now), now
        except BadLink as bad:
            raise _Page(bad.status, bad.outcome, bad.message) from None

    async def show(self, request: web.Request) -> web.StreamResponse:
        """The confirmation page. It reads, and writes nothing: chat clients, unfurlers and
        link scanners fetch every link they see."""
        try:
            token, link, now = self._checked(request)
            held = await self._existing(request, token, now)
            if held is not None:
                return _html(200, _done_page(link, held.until, held.id, again=True))
            return _html(200, _confirm_page(link, now))
        except _Page as page:
            return page.answer(request)

    async def confirm(self, request: web.Request) -> web.StreamResponse:
        """Make the hold the page offered: running for HOLD_FOR, or until a chosen time.
        Idempotent: a second post of one link shows the hold the first made."""
        try:
            token, link, now = self._checked(request)
            form = await request.post()
            until = _chosen_until(form.get("for"), form.get("until"), link, now)
            async with self._posting:
                held = await self._existing(request, token, now)
                if held is not None:
                    return _html(200, _done_page(link, held.until, held.id, again=True))
                hold = await self._hold(request, token, link, until, now)
            return _html(201, _done_page(link, hold.until, hold.id, again=False))
        except _Page as page:
            return page.answer(request)

    async def _existing(self, request: web.Request, token: str, now: datetime) -> Any:
        by = _by(token)
        holds = await request.app[CONTROL].backend.holds(now)
        return next((h for h in holds if h.by == by), None)

    async def _hold(
        self, request: web.Request, token: str, link: Link, until: datetime, now: datetime
    ) -> Any:
        reason = f"postponed {link.rule}'s stop of {_stamp(link.fire_at)} from its warning"
        try:
            hold = await request.app[CONTROL].backend.create_hold(
                HoldRequest(link.project, link.graph_id, "running", until, reason[:200]),
                by=_by(token),
                now=now,
            )
        except Refused as refused:
            raise _Page(refused.status, "refused", refused.message) from None
        log.info(
            "hold %s made by postpone link %s: keep %s/%s running until %s (%s)",
            hold.id, LinkSigner.link_id(token), link.project, link.graph, hold.until.isoformat(),
            reason, extra={"project": link.project, "graph": link.graph, "rule": link.rule,
                           "action": "postpone", "hold_id": hold.id},
        )  # fmt: skip
        return hold


def _by(token: str) -> str:
    return f"postpone link {LinkSigner.link_id(token)}"


def _chosen_until(given_for: object, given_until: object, link: Link, now: datetime) -> datetime:
    if isinstance(given_for, str) and given_for:
        if given_for != "2h":
            raise _Page(400, "invalid", "The page offers `2h`; use its button.")
        until = now + HOLD_FOR
    elif isinstance(given_until, str) and given_until:
        try:
            until = datetime.fromisoformat(given_until[:40])
        except ValueError:
            raise _Page(
                400, "invalid", "Give the time as the page asks, e.g. 2026-11-27T23:00."
            ) from None
        if until.tzinfo is None:  # the page's input is in the firing's offset, and says so
            until = until.replace(tzinfo=link.fire_at.tzinfo)
    else:
        raise _Page(400, "invalid", "Choose `keep running 2h`, or a time to keep it until.")
    if until <= link.fire_at:
        raise _Page(
            422,
            "invalid",
            f"{_stamp(until)} is not after the stop at {_stamp(link.fire_at)}: the hold "
            "would keep nothing. Choose a later time",
        )
    return until


class _Page(Exception):
    """An answer other than the page asked for: an HTML page saying why."""

    def __init__(
        self, status: int, outcome: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.outcome, self.message, self.headers = status, outcome, message, headers

    def answer(self, request: web.Request) -> web.Response:
        request[OUTCOME] = self.outcome
        titles = {400: "Not a postpone link", 403: "This link is not valid", 410: "Link expired",
                  429: "Slow down", 422: "Not postponed"}  # fmt: skip
        title = titles.get(self.status, "Not postponed")
        body = f'<h1>{escape(title)}</h1><p class="why">{escape(self.message)}</p>'
        return _html(self.status, _shell(title, body), self.headers)


def _html(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/html", headers=headers)


def _shell(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f'<title>graphnap: {escape(title)}</title><link rel="stylesheet" href="/static/page.css">'
        f'</head><body><main class="postpone">{body}</main></body></html>'
    )


def _confirm_page(link: Link, now: datetime) -> str:
    tz = link.fire_at.strftime("%z")
    offset = f"UTC{tz[:-2]}:{tz[-2:]}"
    default = (now + HOLD_FOR).astimezone(link.fire_at.tzinfo).strftime("%Y-%m-%dT%H:%M")
    least = link.fire_at.strftime("%Y-%m-%dT%H:%M")
    what = f"{escape(link.graph)} <small>({escape(link.project)} · {escape(link.graph_id)})</small>"
    return _shell(
        f"postpone {link.graph}",
        f"<h1>Keep {what} running?</h1>"
        f"<p>Rule <b>{escape(link.rule)}</b> will stop it at "
        f"<b>{escape(_stamp(link.fire_at))}</b>. Nothing changes until you press a button.</p>"
        '<form method="post" class="postpone-for"><input type="hidden" name="for" value="2h">'
        '<button type="submit" id="keep-2h">Keep running 2h</button></form>'
        '<form method="post" class="postpone-until">'
        f'<label for="until">or until ({escape(offset)})</label> '
        f'<input id="until" name="until" type="datetime-local" required min="{least}" '
        f'value="{default}"> <button type="submit" id="keep-until">Keep running until</button>'
        "</form><p><small>The hold ends by itself; the graph is then back under its rules. "
        "The longest hold allowed is the config's max_hold.</small></p>",
    )


def _done_page(link: Link, until: datetime, hold_id: str, *, again: bool) -> str:
    first = "Already postponed" if again else "Postponed"
    return _shell(
        first,
        f'<h1 id="done">{first}</h1><p>{escape(link.graph)} ({escape(link.project)}) is kept '
        f"running until <b>{escape(_stamp(until))}</b>: {escape(link.rule)} skips it "
        f"(hold {escape(hold_id)}).</p><p><small>To end the hold sooner, release it on the "
        "control page.</small></p>",
    )
