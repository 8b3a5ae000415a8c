"""What every control request passes around its handler: the bearer token, the requests per
token (and per unknown caller), the security headers, and every failure turned into a JSON
answer and counted. The app's state (`Control`) and the request keys handlers read live here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from daemon.ops.limits import Limits, TokenBuckets
from daemon.ops.tokens import Token, TokenBook
from daemon.ops.views import ControlBackend, Refused
from daemon.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


class Problem(Exception):
    """A 4xx answer: status, the outcome label it is counted under, and a message."""

    def __init__(
        self, status: int, outcome: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.outcome, self.message = status, outcome, message
        self.headers = headers or {}


def answer(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=json.dumps)


CONTROL: web.AppKey[Control] = web.AppKey("control")


@dataclasses.dataclass
class Control:
    backend: ControlBackend
    tokens: TokenBook
    metrics: Metrics
    clock: Callable[[], datetime]
    limits: Limits
    buckets: TokenBuckets
    anonymous: TokenBuckets


TOKEN: web.RequestKey[Token] = web.RequestKey("token", Token)
# How a handler that answers its own error pages (the postpone pages) has it counted.
OUTCOME: web.RequestKey[str] = web.RequestKey("outcome", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Server": "graphnap",
}


# The postpone pages have no script and one form posting to themselves.
POSTPONE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/postpone/"):
        response.headers["Content-Security-Policy"] = POSTPONE_CSP


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _authenticate(request: web.Request, control: Control) -> Token:
    presented = _bearer(request)
    token = control.tokens.authenticate(presented) if presented else None
    if token is not None:
        return token
    wait_s = control.anonymous.take("-")
    if wait_s:
        raise _too_many(wait_s, "too many requests without a valid token")
    message = (
        "this token is not accepted: check GRAPHNAP_CONTROL_TOKEN or --token-file"
        if presented
        else "give a token: an `Authorization: Bearer <token>` header"
    )
    raise Problem(401, "unauthorized", message, {"WWW-Authenticate": 'Bearer realm="graphnap"'})


def _too_many(wait_s: float, message: str) -> Problem:
    seconds = max(1, math.ceil(wait_s))
    return Problem(
        429, "rate_limited", f"{message}; retry in {seconds}s", {"Retry-After": str(seconds)}
    )


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticates, rate-limits, turns every failure into a JSON answer and counts it."""
    control = request.app[CONTROL]
    route = request.match_info.route.name
    op = route or "unknown"
    try:
        if route is not None and not route.startswith("public_"):
            token = _authenticate(request, control)
            request[TOKEN] = token
            wait_s = control.buckets.take(token.name)
            if wait_s:
                raise _too_many(wait_s, f"token {token.name} made too many requests")
        response = await handler(request)
        outcome = request.get(OUTCOME, "ok")
    except Problem as problem:
        response = answer(problem.status, {"error": problem.message}, problem.headers)
        outcome = problem.outcome
    except Refused as refused:
        response = answer(refused.status, {"error": refused.message})
        outcome = "refused"
    except web.HTTPException as exc:  # aiohttp's own: no such path, wrong method, too big
        status = exc.status
        message = {
            404: "no such endpoint; see /api/v1 for the list",
            405: f"{request.method} is not allowed here",
            413: f"the body is larger than {control.limits.max_body_bytes} bytes",
        }.get(status, exc.reason)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        response = answer(status, {"error": message}, headers)
        outcome = {404: "not_found", 405: "invalid", 413: "too_large"}.get(status, "invalid")
    except Exception:
        log.exception("control API request failed", extra={"action": op})
        response = answer(500, {"error": "internal error; the daemon's log says more"})
        outcome = "error"
    control.metrics.control_requests.labels(op if route else "unknown", outcome).inc()
    return response
