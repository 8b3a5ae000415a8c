"""What a failed exchange says: Huawei's error bodies parsed, Retry-After read, and an
answer or a transport failure (no answer at all) turned into an error of daemon.cloud.errors.
"""

from __future__ import annotations

import json
import math
import ssl
from collections.abc import Callable
from typing import Any

import httpx

from daemon.cloud.errors import (
    ApiError,
    AuthError,
    NotFoundError,
    PermanentError,
    RetryableError,
    TransportError,
)


def parse_error_body(text: str) -> tuple[str, str]:
    """(code, message) from any of Huawei's error shapes; ('', text) when there is none.

    GES v1 says errorCode/errorMessage, GES v2 and the API gateway error_code/error_msg,
    IAM {"error": {"code", "message"}}.
    """
    try:
        body = json.loads(text)
    except ValueError:
        return "", text
    if not isinstance(body, dict):
        return "", text
    for code_key, msg_keys in (
        ("error_code", ("error_msg", "error_message")),
        ("errorCode", ("errorMessage", "errorMsg")),
        ("code", ("message",)),
    ):
        if body.get(code_key):
            message = next((str(body[k]) for k in msg_keys if body.get(k)), "")
            return str(body[code_key]), message
    nested = body.get("error")
    if isinstance(nested, dict):
        return str(nested.get("code", "")), str(nested.get("message", ""))
    return "", text


def transport_error(exc: httpx.HTTPError, service: str, operation: str) -> ApiError:
    """An httpx failure without an answer -> our vocabulary; the URL stays out of the message."""
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
    cert = _certificate_error(exc)
    if cert is not None:
        # Not retried: a certificate that fails now fails in a second too, and a retry
        # storm would only hide that something sits between us and the cloud.
        host = _host_of(exc)
        return PermanentError(
            f"certificate verify failed for {host}: {cert.verify_message or cert.reason}",
            service=service,
            operation=operation,
            code="tls_certificate",
        )
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return TransportError(
            f"{kind} error: {type(exc).__name__}", service=service, operation=operation, code=kind
        )
    return PermanentError(
        f"request failed: {type(exc).__name__}",
        service=service,
        operation=operation,
        code="request",
    )


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind an httpx error, if that is what it is."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _host_of(exc: httpx.HTTPError) -> str:
    """Host and port only: a path or query may carry ids or signatures."""
    try:
        url = exc.request.url
    except RuntimeError:  # an error raised without its request
        return "the endpoint"
    return f"{url.host}:{url.port}" if url.port else url.host


MAX_RETRY_AFTER_S = 300.0  # a gateway asking for more is not waited for longer than this


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta form); None when absent or not a number.
    Capped: 'inf' or an hour would freeze every request of the project."""
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


BodyParser = Callable[[str], tuple[str, str]]
"""(code, message) from an error answer's body; ('', text) when it has no known shape."""


def error_for_answer(
    response: httpx.Response,
    service: str,
    operation: str,
    *,
    parse: BodyParser = parse_error_body,
    retryable_codes: frozenset[str] = frozenset(),
    not_found_codes: frozenset[str] = frozenset(),
) -> ApiError:
    """A 4xx/5xx answer of any Huawei API in our vocabulary. Throttling (429, APIG.0308 /
    APIGW.0308) and any 5xx are retryable, and so are the service's own transient codes;
    401/403 are AuthError, 404 and the service's "no such thing" codes NotFoundError."""
    code, message = parse(response.text)
    status = response.status_code
    kwargs: dict[str, Any] = {
        "service": service,
        "operation": operation,
        "status": status,
        "code": code,
        "request_id": response.headers.get("X-Request-Id", ""),
    }
    message = message or response.reason_phrase
    if status == 429 or status >= 500 or code.endswith(".0308") or code in retryable_codes:
        return RetryableError(message, retry_after_s=retry_after(response), **kwargs)
    if status in (401, 403):
        return AuthError(message, **kwargs)
    if status == 404 or code in not_found_codes:
        return NotFoundError(message, **kwargs)
    return PermanentError(message, **kwargs)
