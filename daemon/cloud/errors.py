"""The cloud clients' error vocabulary: every failure of a call to a Huawei API is one of
these, and its class says whether a retry can help (no httpx exception leaves a client).

    ApiError                   a failed call; `code` is a metric label (GES.7001, http_503)
    ├── RetryableError         throttling, 5xx, transient GES faults: may succeed later
    │   └── TransportError     timeout or connection failure: no answer came back
    └── PermanentError         a refusal that a retry cannot change
        ├── AuthError          credentials refused (401/403)
        ├── NotFoundError      the graph or job does not exist (any more)
        ├── AlreadyDoneError   the graph is already in (or moving to) the state asked for
        ├── InvalidResponseError  a 2xx answer without the documented shape
        └── InvalidIdError     an id that cannot go into a URL path
"""

from __future__ import annotations

from typing import ClassVar

from daemon.cloud.redaction import BODY_LIMIT, redact, truncate


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
