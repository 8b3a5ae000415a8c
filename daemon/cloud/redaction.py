"""What must never leave the process: credentials in error answers and messages. Values
under credential names, runs that look like tokens and the known secrets are replaced,
and error text is cut short before it reaches an exception, a log line or /status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote

import httpx

BODY_LIMIT = 300  # characters of a response body that may reach an exception or a log
ERROR_BODY_LIMIT = 256 * 1024  # bytes of an error answer kept (and redacted) at all

REDACTED = "[redacted]"
# A value under a name that says it is a credential: JSON ("password": "x"), headers
# (X-Auth-Token: x), query strings and key=value text (sk=x, Access=x).
_SECRET_FIELD_RE = re.compile(
    r"""(?P<name>(?<![A-Za-z0-9_-])["']?(?:password|passwd|secret|secret[_-]?(?:access[_-]?)?key|"""
    r"""sk|ak|access[_-]?key(?:[_-]?id)?|security[_-]?token|x-auth-token|"""
    r"""x-subject-token|x-security-token|authorization|(?:access[_-]?|auth[_-]?|id[_-]?)?token)"""
    r"""["']?\s*[:=]\s*)(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"',;&{}\[\]]+)""",
    re.IGNORECASE,
)
# What a token or key looks like whatever its name: 40+ base64 characters mixing upper
# case, lower case and digits (an SK, an IAM token), or 40+ hex digits. Ids stay: a UUID
# has dashes and is 36 long, a project id is 32 hex digits.
_TOKEN_RUN_RE = re.compile(r"[A-Za-z0-9+/_=-]{40,}|[0-9a-fA-F]{40,}")


def _looks_like_token(run: str) -> bool:
    if re.fullmatch(r"[0-9a-fA-F]+", run):
        return True
    return (
        any(c.isupper() for c in run)
        and any(c.islower() for c in run)
        and any(c.isdigit() for c in run)
    )


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secrets (as they are, JSON-escaped or URL-encoded), without
    values under credential names, and without runs that look like tokens or keys."""
    for secret in secrets:
        if len(secret) < 4:  # too short to tell from ordinary text; never sent in a message
            continue
        for form in {secret, json.dumps(secret)[1:-1], quote(secret, safe="")}:
            text = text.replace(form, REDACTED)

    def field(match: re.Match[str]) -> str:
        value = match["value"]
        quote_char = value[0] if value[0] in "\"'" else ""
        return f"{match['name']}{quote_char}{REDACTED}{quote_char}"

    text = _SECRET_FIELD_RE.sub(field, text)
    return _TOKEN_RUN_RE.sub(
        lambda m: REDACTED if _looks_like_token(m.group()) else m.group(), text
    )


class RedactingTransport(httpx.AsyncBaseTransport):
    """An error answer's body without the known secrets, before any client reads it.

    Gateways that echo the request (the IAM password, X-Auth-Token, the AK) would otherwise
    put it in an ApiError, and from there in the log and /status. The secrets are given by
    whoever builds the HTTP clients (daemon.cloud.clients, from the settings' credential sets),
    so no module holds them; ApiError itself redacts what looks like a credential.

    Requests go through `inner`: a plain client, so httpx's defaults stay (proxies and CA
    files from the environment, pool limits, TLS verification), or, where the environment
    names no proxy, the transport such a client would use (one client layer less a request)."""

    def __init__(
        self,
        secrets: Iterable[str],
        inner: httpx.AsyncClient | httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # Longest first, so a secret that contains another goes whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._inner = inner or httpx.AsyncClient()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if isinstance(self._inner, httpx.AsyncClient):
            response = await self._inner.send(request, stream=True)
        else:
            response = await self._inner.handle_async_request(request)
        if response.status_code < 400:
            return response
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        if len(body) > ERROR_BODY_LIMIT:  # an error is a few hundred characters, not pages
            body = body[:ERROR_BODY_LIMIT]
        text = body.decode("utf-8", errors="replace")
        redacted = redact(text, self._secrets)
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=redacted.encode() if redacted != text else body,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def truncate(text: str, limit: int = BODY_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
