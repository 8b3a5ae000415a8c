"""What the cloud API clients share: the error vocabulary, error-body parsing and retries.

No httpx exception leaves a client: every failure becomes one of the errors below, which
say whether a retry can help. Retry policy is data (settings.retry); each retry is logged
with its attempt number and the last attempt re-raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from daemon.cloud.gate import Gate, OpenGate
from daemon.domain.fence import Fence
from daemon.domain.model import Sleep as Sleep  # re-exported: the clients take it from here

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

BODY_LIMIT = 300  # characters of a response body that may reach an exception or a log
ERROR_BODY_LIMIT = 256 * 1024  # bytes of an error answer kept (and redacted) at all


class ApiError(Exception):
    """A failed call to a cloud API. `code` is a short label fit for a metric (GES.7001, http_503)."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        service: str,
        operation: str,
        status: int | None = None,
        code: str = "",
        request_id: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        self.service = service
        self.operation = operation
        self.status = status
        self.code = code or (f"http_{status}" if status else "error")
        self.request_id = request_id
        self.retry_after_s = retry_after_s
        # Redacted before it is cut to BODY_LIMIT (a secret cut in half would no longer be
        # recognised), but only a prefix: what lies further is never shown anyway.
        self.message = truncate(redact(" ".join(message.split())[: 4 * BODY_LIMIT]))
        where = f"{service} {operation}"
        detail = f"{self.code}" + (f" (HTTP {status})" if status else "")
        rid = f" [request {request_id}]" if request_id else ""
        super().__init__(f"{where}: {detail}: {self.message}{rid}")


class RetryableError(ApiError):
    """Throttling, 5xx, transient GES faults: the same call may succeed later."""

    retryable = True


class TransportError(RetryableError):
    """Timeout or connection failure: no answer came back."""


class PermanentError(ApiError):
    """A refusal that a retry cannot change (bad request, missing permission, unknown graph)."""


class FencedError(PermanentError):
    """Not sent: this replica is not (or no longer sure it is) the leader."""


class AuthError(PermanentError):
    """Credentials refused (401/403): check AK/SK, the IAM user, or the clock."""


class NotFoundError(PermanentError):
    """The graph or job does not exist (any more)."""


class AlreadyDoneError(PermanentError):
    """The graph is already in (or moving to) the state the action asked for."""


class InvalidResponseError(PermanentError):
    """The API answered 2xx with a body that does not have the documented shape."""


class InvalidIdError(PermanentError):
    """An id that cannot go into a URL path (it came from config or from an API answer)."""


_PROJECT_ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
_RESOURCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


def check_project_id(project_id: str, service: str = "api") -> str:
    if not _PROJECT_ID_RE.fullmatch(project_id):
        raise InvalidIdError(
            f"invalid project id {project_id!r}: expected up to 64 letters and digits",
            service=service,
            operation="check_id",
            code="invalid_id",
        )
    return project_id


def check_resource_id(kind: str, value: str, service: str = "api") -> str:
    """Ids go into URL paths: only letters, digits and '-' (no '/', '..', '%')."""
    if not _RESOURCE_ID_RE.fullmatch(value):
        raise InvalidIdError(
            f"invalid {kind} id {value!r}: expected letters, digits and '-'",
            service=service,
            operation="check_id",
            code="invalid_id",
        )
    return value


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

    Requests go through `inner`, a plain client, so httpx's defaults stay: proxies and CA
    files from the environment, pool limits, TLS verification."""

    def __init__(
        self,
        secrets: Iterable[str],
        inner: httpx.AsyncClient | None = None,
        fence: Fence | None = None,
    ) -> None:
        # Longest first, so a secret that contains another goes whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._inner = inner or httpx.AsyncClient()
        self._fence = fence

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._fence is not None and not self._fence.is_open():
            # Checked here, after the rate gate and any retry's wait: the last moment
            # before the request would leave.
            raise FencedError(
                "not the leader: request not sent",
                service=request.url.host,
                operation=request.method,
                code="fenced",
            )
        response = await self._inner.send(request, stream=True)
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


class RequestObserver(Protocol):
    """Told about every HTTP exchange (for metrics); must not raise."""

    def __call__(self, service: str, operation: str, code: str, duration_s: float) -> None: ...


def ignore_request(service: str, operation: str, code: str, duration_s: float) -> None:
    return None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    backoff_jitter_s: float = 1.0

    def delay(self, retry_state: RetryCallState) -> float:
        """Exponential backoff with jitter; a server's Retry-After is a floor."""
        base = wait_exponential_jitter(
            initial=self.backoff_initial_s, max=self.backoff_max_s, jitter=self.backoff_jitter_s
        )(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ApiError) and exc.retry_after_s:
            return max(base, min(exc.retry_after_s, self.backoff_max_s))
        return float(base)


async def with_retries(
    call: Callable[[], Awaitable[T]], policy: RetryPolicy, sleep: Sleep, what: str
) -> T:
    """Run `call` until it succeeds, fails permanently, or the attempts are used up."""

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: attempt %d/%d failed (%s); will retry in %.1fs",
            what,
            state.attempt_number,
            policy.attempts,
            exc,
            wait,
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=policy.delay,
        retry=retry_if_exception(lambda exc: isinstance(exc, ApiError) and exc.retryable),
        sleep=sleep,
        before_sleep=log_retry,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")


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


ErrorMapper = Callable[[httpx.Response, str], ApiError]


class JsonApi:
    """One JSON API of one project over an injected httpx.AsyncClient (which carries
    base_url, auth and timeouts): the rate gate, retries, request metrics, the mapping of
    every failure into this module's errors, and the parsing of answers into models.
    Service clients (GES, Cloud Eye) own their paths and wire models and use this."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        service: str,
        what: str,
        *,
        map_error: ErrorMapper,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
        observe: RequestObserver = ignore_request,
        limiter: Gate | AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self._http = http
        self._service = service
        self._what = what
        self._map_error = map_error
        self._retry = retry
        self._sleep = sleep
        self._observe = observe
        # A plain context manager paces without learning from answers (tests use one).
        self._limiter: AbstractAsyncContextManager[Any] = limiter or OpenGate()
        self._gate: Gate | None = limiter if isinstance(limiter, Gate) else None

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        model: type[M],
        *,
        params: Mapping[str, str] | None = None,
        json: object = None,
    ) -> M:
        """One call, retried while the error is retryable; the answer parsed into `model`."""

        async def once() -> M:
            return await self._send(operation, method, path, model, params, json)

        return await with_retries(
            once, self._retry, self._sleep, f"{self._service} {operation} ({self._what})"
        )

    async def _send(
        self,
        operation: str,
        method: str,
        path: str,
        model: type[M],
        params: Mapping[str, str] | None,
        json: object,
    ) -> M:
        async with self._limiter:  # the project's request rate, shared by every caller
            response = await self._request(operation, method, path, params, json)
        if self._gate is not None:
            self._gate.observe(response.status_code, retry_after(response))
        if response.status_code >= 400:
            raise self._map_error(response, operation)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidResponseError(
                f"unexpected {model.__name__} body: {exc.error_count()} problems, first: {first['loc']} {first['msg']}",
                service=self._service,
                operation=operation,
                status=response.status_code,
                code="invalid_response",
            ) from None

    async def _request(
        self, operation: str, method: str, path: str, params: Mapping[str, str] | None, json: object
    ) -> httpx.Response:
        """One HTTP exchange, observed for metrics; failures without an answer are mapped."""
        started = time.perf_counter()
        try:
            response = await self._http.request(method, path, params=params, json=json)
        except ApiError as exc:  # raised by the auth flow (IAM token fetch)
            self._observe(self._service, operation, exc.code, time.perf_counter() - started)
            raise
        except httpx.HTTPError as exc:
            error = transport_error(exc, self._service, operation)
            self._observe(self._service, operation, error.code, time.perf_counter() - started)
            raise error from exc
        self._observe(
            self._service, operation, str(response.status_code), time.perf_counter() - started
        )
        return response


def error_kwargs(
    response: httpx.Response, service: str, operation: str
) -> tuple[str, dict[str, Any]]:
    """(message, the ApiError keyword arguments) from an error answer of any Huawei API."""
    code, message = parse_error_body(response.text)
    return message or response.reason_phrase, {
        "service": service,
        "operation": operation,
        "status": response.status_code,
        "code": code,
        "request_id": response.headers.get("X-Request-Id", ""),
    }
