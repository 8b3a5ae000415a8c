"""The postpone page: a link's confirmation page (a GET that changes nothing) and its POST
that makes the hold, served on the control listener without a bearer token. The links
themselves (key, model, signer) are `links`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from aiohttp import web

from daemon.ops.guard import CONTROL, OUTCOME
from daemon.ops.limits import TokenBuckets
from daemon.ops.links import BadLink, Link, LinkSigner, stamp
from daemon.ops.views import HoldRequest, Refused

log = logging.getLogger(__name__)

# The page's one-click choice: running until this long past the stop warned of. Past the stop,
# not from now: a warning's lead may be longer than 2h, and a hold ending before the stop
# would keep nothing.
PAST_THE_STOP = timedelta(hours=2)


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
            return _html(200, _confirm_page(link))
        except _Page as page:
            return page.answer(request)

    async def confirm(self, request: web.Request) -> web.StreamResponse:
        """Make the hold the page offered: running until PAST_THE_STOP after the stop, or
        until a chosen time.
        Idempotent: a second post of one link shows the hold the first made."""
        try:
            token, link, now = self._checked(request)
            form = await request.post()
            until = _chosen_until(form.get("for"), form.get("until"), link)
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
        reason = f"postponed {link.rule}'s stop of {stamp(link.fire_at)} from its warning"
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


def _chosen_until(given_for: object, given_until: object, link: Link) -> datetime:
    if isinstance(given_for, str) and given_for:
        if given_for != "2h":
            raise _Page(400, "invalid", "The page offers `2h`; use its button.")
        until = _one_click(link)
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
        raise _Page(400, "invalid", "Choose the button, or a time to keep it until.")
    if until <= link.fire_at:
        raise _Page(
            422,
            "invalid",
            f"{stamp(until)} is not after the stop at {stamp(link.fire_at)}: the hold "
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


def _confirm_page(link: Link) -> str:
    tz = link.fire_at.strftime("%z")
    offset = f"UTC{tz[:-2]}:{tz[-2:]}"
    one_click = _one_click(link)
    default = one_click.strftime("%Y-%m-%dT%H:%M")
    least = link.fire_at.strftime("%Y-%m-%dT%H:%M")
    what = f"{escape(link.graph)} <small>({escape(link.project)} · {escape(link.graph_id)})</small>"
    return _shell(
        f"postpone {link.graph}",
        f"<h1>Keep {what} running?</h1>"
        f"<p>Rule <b>{escape(link.rule)}</b> will stop it at "
        f"<b>{escape(stamp(link.fire_at))}</b>. Nothing changes until you press a button.</p>"
        '<form method="post" class="postpone-for"><input type="hidden" name="for" value="2h">'
        f'<button type="submit" id="keep-2h">Keep running until {escape(_clock(one_click, link))} '
        "(2h past the stop)</button></form>"
        '<form method="post" class="postpone-until">'
        f'<label for="until">or until ({escape(offset)})</label> '
        f'<input id="until" name="until" type="datetime-local" required min="{least}" '
        f'value="{default}"> <button type="submit" id="keep-until">Keep running until</button>'
        "</form><p><small>The hold ends by itself; the graph is then back under its rules. "
        "The longest hold allowed is the config's max_hold.</small></p>",
    )


def _one_click(link: Link) -> datetime:
    """Until when the button keeps the graph: real hours past the stop, in the stop's offset."""
    return (link.fire_at.astimezone(UTC) + PAST_THE_STOP).astimezone(link.fire_at.tzinfo)


def _clock(at: datetime, link: Link) -> str:
    """`22:00`, with the day when it is not the stop's (`Sat 01:00`)."""
    same_day = at.date() == link.fire_at.date()
    return at.strftime("%H:%M" if same_day else "%a %H:%M")


def _done_page(link: Link, until: datetime, hold_id: str, *, again: bool) -> str:
    first = "Already postponed" if again else "Postponed"
    return _shell(
        first,
        f'<h1 id="done">{first}</h1><p>{escape(link.graph)} ({escape(link.project)}) is kept '
        f"running until <b>{escape(stamp(until))}</b>: {escape(link.rule)} skips it "
        f"(hold {escape(hold_id)}).</p><p><small>To end the hold sooner, release it on the "
        "control page.</small></p>",
    )
