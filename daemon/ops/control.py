"""The control API: holds and wakes over HTTP on a listener of its own, and its page.

It owns the endpoints: what each one takes (bodies parsed and bounded), what a token may see
of the graphs and holds, and the JSON it answers. Tokens, rates and errors are the guard's
(`guard`), the views are `views`, and what a hold *does* is the backend's business.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from daemon.config.models import parse_duration
from daemon.config.settings import Settings
from daemon.ops import page
from daemon.ops.guard import CONTROL, TOKEN, Control, Problem, answer, guard, security_headers
from daemon.ops.limits import Limits, TokenBuckets
from daemon.ops.server import Listener
from daemon.ops.tokens import Scope, Token, TokenBook, check_glob, has_wildcard
from daemon.ops.views import ControlBackend, GraphView, HoldRequest, HoldView, Refused
from daemon.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from daemon.ops.postpone import Postpone

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 200
MAX_WAIT_S = 60.0


# --- errors ------------------------------------------------------------------------------


def _not_visible(token: Token, what: str) -> Problem:
    # The same words whether the graph does not exist or lies outside the scope: a token
    # must not learn which graphs exist beyond what it may touch.
    return Problem(
        403,
        "forbidden",
        f"no {what} that token {token.name} may touch (its scope: {token.scope.describe()})",
    )


# --- JSON --------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_json(view: Any) -> Any:
    return _plain(dataclasses.asdict(view))


# --- requests ----------------------------------------------------------------------------


async def _body(request: web.Request) -> dict[str, Any]:
    limit = request.app[CONTROL].limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "too_large", f"the body is larger than {limit} bytes")
    if request.content_type != "application/json":
        raise Problem(415, "invalid", "send the body as JSON (Content-Type: application/json)")
    raw = await request.read()  # aiohttp stops at client_max_size: 413 through the guard
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Problem(400, "invalid", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Problem(400, "invalid", "the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise Problem(400, "invalid", f"`{name}` must be a non-empty string")
    return value.strip()


def _until(body: dict[str, Any], now: datetime) -> datetime:
    given_until, given_for = body.get("until"), body.get("for")
    if (given_until is None) == (given_for is None):
        raise Problem(400, "invalid", "give either `until` (ISO 8601 with offset) or `for` ('3h')")
    if given_for is not None:
        try:
            return now + parse_duration(given_for)
        except ValueError as exc:
            raise Problem(400, "invalid", f"`for`: {exc}") from None
    try:
        until = datetime.fromisoformat(str(given_until))
    except ValueError:
        raise Problem(
            400, "invalid", "`until` is not an ISO 8601 time, e.g. 2026-11-28T23:00:00+08:00"
        ) from None
    if until.tzinfo is None:
        raise Problem(400, "invalid", "`until` needs a UTC offset, e.g. 2026-11-28T23:00:00+08:00")
    if until <= now:
        raise Problem(422, "invalid", f"`until` {until.isoformat()} is in the past")
    return until


def _graph_ref(body: dict[str, Any], token: Token) -> tuple[str, str]:
    project, graph = _field(body, "project"), _field(body, "graph")
    try:
        check_glob(graph)
    except ValueError as exc:
        raise Problem(400, "invalid", f"`graph`: {exc}") from None
    if not token.scope.allows_project(project):
        raise _not_visible(token, f"graph {project}/{graph}")
    return project, graph


def _visible(graphs: Sequence[GraphView], scope: Scope) -> list[GraphView]:
    return [g for g in graphs if scope.allows(g.project, g.name)]


def _find(graphs: Sequence[GraphView], project: str, ref: str) -> GraphView | None:
    for graph in graphs:
        if graph.project == project and ref in (graph.id, graph.name):
            return graph
    return None


def _hold_visible(hold: HoldView, scope: Scope, graphs: Sequence[GraphView]) -> bool:
    """A hold on a graph the token may touch, or one whose glob lies inside its scope."""
    if not scope.allows_project(hold.project):
        return False
    return (
        scope.allows(hold.project, hold.graph)
        or _find(graphs, hold.project, hold.graph) is not None
    )


async def api_index(request: web.Request) -> web.Response:
    return answer(200, {"endpoints": ENDPOINTS})


async def list_graphs(request: web.Request) -> web.Response:
    control, token = request.app[CONTROL], request[TOKEN]
    graphs = _visible(await control.backend.graphs(control.clock()), token.scope)
    return answer(200, {"graphs": [to_json(g) for g in graphs]})


async def _visible_holds(control: Control, token: Token) -> list[HoldView]:
    now = control.clock()
    graphs = _visible(await control.backend.graphs(now), token.scope)
    return [h for h in await control.backend.holds(now) if _hold_visible(h, token.scope, graphs)]


async def list_holds(request: web.Request) -> web.Response:
    holds = await _visible_holds(request.app[CONTROL], request[TOKEN])
    return answer(200, {"holds": [to_json(h) for h in holds]})


async def create_hold(request: web.Request) -> web.Response:
    control, token = request.app[CONTROL], request[TOKEN]
    body = await _body(request)
    now = control.clock()
    project, graph = _graph_ref(body, token)
    if has_wildcard(graph):
        if not token.scope.allows(project, graph):
            raise _not_visible(token, f"graphs {project}/{graph}")
    elif _find(_visible(await control.backend.graphs(now), token.scope), project, graph) is None:
        raise _not_visible(token, f"graph {project}/{graph}")
    keep = body.get("keep", "running")
    if keep not in ("running", "stopped"):
        raise Problem(400, "invalid", "`keep` is `running` or `stopped`")
    reason = _field(body, "reason")
    if len(reason) > MAX_REASON_CHARS or not reason.isprintable():
        raise Problem(
            400, "invalid", f"`reason`: one line of at most {MAX_REASON_CHARS} characters"
        )
    hold = await control.backend.create_hold(
        HoldRequest(project, graph, keep, _until(body, now), reason),
        by=f"token {token.name}",
        now=now,
    )
    log.info(
        "hold %s created by token %s: keep %s/%s %s until %s (%s)",
        hold.id, token.name, hold.project, hold.graph, hold.keep, hold.until.isoformat(), hold.reason,
        extra={"project": hold.project, "graph": hold.graph, "action": "hold", "reason": hold.reason,
               "token": token.name, "hold_id": hold.id},
    )  # fmt: skip
    return answer(201, {"hold": to_json(hold)})


async def release_hold(request: web.Request) -> web.Response:
    control, token = request.app[CONTROL], request[TOKEN]
    hold_id = request.match_info["hold_id"]
    if not any(h.id == hold_id for h in await _visible_holds(control, token)):
        raise _not_visible(token, f"hold {hold_id[:64]}")
    hold = await control.backend.release_hold(
        hold_id, by=f"token {token.name}", now=control.clock()
    )
    log.info(
        "hold %s released by token %s: %s/%s is back under its rules",
        hold.id, token.name, hold.project, hold.graph,
        extra={"project": hold.project, "graph": hold.graph, "action": "release",
               "token": token.name, "hold_id": hold.id},
    )  # fmt: skip
    return answer(200, {"hold": to_json(hold)})


async def wake(request: web.Request) -> web.Response:
    control, token = request.app[CONTROL], request[TOKEN]
    body = await _body(request)
    now = control.clock()
    project, ref = _graph_ref(body, token)
    if has_wildcard(ref):
        raise Problem(400, "invalid", "wake one graph at a time: give its name or id, not a glob")
    graph = _find(_visible(await control.backend.graphs(now), token.scope), project, ref)
    if graph is None:
        raise _not_visible(token, f"graph {project}/{ref}")
    try:
        for_ = parse_duration(body.get("for", "2h"))
    except ValueError as exc:
        raise Problem(400, "invalid", f"`for`: {exc}") from None
    view = await control.backend.wake(
        project, graph.id, for_=for_, by=f"token {token.name}", now=now
    )
    log.info(
        "graph %s/%s woken by token %s: %s, held running until %s (hold %s)",
        project, graph.name, token.name, view.state, view.hold.until.isoformat(), view.hold.id,
        extra={"project": project, "graph_id": graph.id, "graph": graph.name, "action": "wake",
               "token": token.name, "hold_id": view.hold.id},
    )  # fmt: skip
    return answer(202, {"wake": to_json(view)})


async def wake_status(request: web.Request) -> web.Response:
    control, token = request.app[CONTROL], request[TOKEN]
    wake_id = request.match_info["wake_id"]
    try:
        wait_s = float(request.query.get("wait_s", "0"))
    except ValueError:
        raise Problem(400, "invalid", "`wait_s` is a number of seconds") from None
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise Problem(400, "invalid", f"`wait_s` is between 0 and {MAX_WAIT_S:.0f}")
    try:
        view = await control.backend.wait_wake(wake_id, timeout_s=wait_s)
    except Refused as refused:
        if refused.status == 404:
            raise _not_visible(token, f"wake {wake_id[:64]}") from None
        raise
    if not token.scope.allows(view.project, view.name):
        raise _not_visible(token, f"wake {wake_id[:64]}")
    return answer(200, {"wake": to_json(view)})


async def graphs_fragment(request: web.Request) -> web.Response:
    """The graph table as HTML, for the page's script to put in place."""
    control, token = request.app[CONTROL], request[TOKEN]
    now = control.clock()
    graphs = _visible(await control.backend.graphs(now), token.scope)
    holds = await _visible_holds(control, token)
    return web.Response(
        text=page.render_graphs(graphs, holds, token_name=token.name, now=now),
        content_type="text/html",
    )


async def index_page(request: web.Request) -> web.Response:
    return web.Response(text=page.index_html(), content_type="text/html")


async def no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)  # browsers ask for one; a 404 would read as an error


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    found = page.asset(name)
    if found is None:
        raise web.HTTPNotFound()
    text, content_type = found
    return web.Response(text=text, content_type=content_type)


ENDPOINTS = {
    "GET /api/v1/graphs": "graphs this token may touch: status, next actions, holds",
    "GET /api/v1/holds": "holds on those graphs",
    "POST /api/v1/holds": '{"project", "graph" (id, name or glob), "for": "3h" | "until": '
    'ISO 8601, "reason", "keep": "running" | "stopped"}',
    "DELETE /api/v1/holds/{id}": "release a hold made through the API",
    "POST /api/v1/wakes": '{"project", "graph", "for": "2h"}: start it now and hold it running',
    "GET /api/v1/wakes/{id}?wait_s=30": "a wake's state, waiting up to wait_s for the start",
}


def control_app(
    backend: ControlBackend,
    tokens: TokenBook,
    metrics: Metrics,
    *,
    clock: Callable[[], datetime],
    monotonic: Callable[[], float],
    limits: Limits | None = None,
    postpone: Postpone | None = None,
) -> web.Application:
    limits = limits or Limits()
    app = web.Application(middlewares=[guard], client_max_size=limits.max_body_bytes)
    app.on_response_prepare.append(security_headers)
    app[CONTROL] = Control(
        backend,
        tokens,
        metrics,
        clock,
        limits,
        TokenBuckets(limits.rate_per_s, limits.burst, monotonic),
        TokenBuckets(limits.unauthenticated_rate_per_s, limits.unauthenticated_burst, monotonic),
    )
    r = app.router
    r.add_get("/", index_page, name="public_page")
    r.add_get("/static/{name}", asset, name="public_static")
    r.add_get("/favicon.ico", no_icon, name="public_icon")
    r.add_get("/api/v1", api_index, name="public_index")
    r.add_get("/api/v1/graphs", list_graphs, name="graphs")
    r.add_get("/api/v1/holds", list_holds, name="holds")
    r.add_post("/api/v1/holds", create_hold, name="hold")
    r.add_delete("/api/v1/holds/{hold_id}", release_hold, name="release")
    r.add_post("/api/v1/wakes", wake, name="wake")
    r.add_get("/api/v1/wakes/{wake_id}", wake_status, name="wake_status")
    r.add_get("/fragment/graphs", graphs_fragment, name="page_graphs")
    if postpone is not None:  # the warnings' links: no bearer token, a signed URL instead
        postpone.add_routes(r)
    return app


class ControlServer(Listener):
    """The control listener. Never the ops port: that one stays GET-only and open."""


def control_server(
    settings: Settings,
    backend: ControlBackend,
    metrics: Metrics,
    *,
    clock: Callable[[], datetime],
    monotonic: Callable[[], float],
    postpone: Postpone | None = None,
) -> ControlServer | None:
    """The control listener the settings ask for, or None: off without token files.
    A token file that cannot be used raises TokenError (naming the file, never the secret)."""
    if settings.control_tokens_dir is None:
        return None
    tokens = TokenBook.from_dir(settings.control_tokens_dir)
    if not len(tokens):
        log.warning(
            "control API off: no <name>.json token files in %s", settings.control_tokens_dir
        )
        return None
    limits = Limits(
        max_body_bytes=settings.control_max_body_bytes,
        rate_per_s=settings.control_rate_per_s,
        burst=settings.control_burst,
    )
    app = control_app(
        backend, tokens, metrics, clock=clock, monotonic=monotonic, limits=limits, postpone=postpone
    )
    log.info("control API for tokens %s", ", ".join(tokens.names))
    return ControlServer(app, settings.control_host, settings.control_port)


__all__ = ["ControlServer", "control_app", "control_server"]
