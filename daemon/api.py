"""What the cloud API clients share: the error vocabulary, error-body parsing and retries.

No httpx exception leaves a client: every failure becomes one of the errors below, which
say whether a retry can help. Retry policy is data (settings.retry); each retry is logged
with its attempt number and the last attempt re-raises.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

BODY_LIMIT = 300  # characters of a response body that may reach an exception or a log


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
        self.message = truncate(message)
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


class AuthError(PermanentError):
    """Credentials refused (401/403): check AK/SK, the IAM user, or the clock."""


class NotFoundError(PermanentError):
    """The graph or job does not exist (any more)."""


class AlreadyDoneError(PermanentError):
    """The graph is already in (or moving to) the state the action asked for."""


class InvalidResponseError(PermanentError):
    """The API answered 2xx with a body that does not have the documented shape."""


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


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
