"""The JSON transport every cloud client uses: one API of one project over an injected
httpx.AsyncClient, through the rate gate and the retries, observed for metrics, every
failure mapped into daemon.cloud.errors and every answer parsed into a model; and the
check that an id may go into a URL path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from daemon.cloud.auth import canonical_query
from daemon.cloud.errors import ApiError, InvalidIdError, InvalidResponseError
from daemon.cloud.failures import retry_after, transport_error
from daemon.cloud.gate import Gate, OpenGate
from daemon.cloud.retries import with_retries
from daemon.config.settings import RetrySettings
from daemon.domain.ids import PROJECT_ID_RULE, RESOURCE_ID_RULE, is_project_id, is_resource_id
from daemon.domain.model import Sleep


class WireModel(BaseModel):
    """What an answer is parsed into: frozen; fields the docs do not name are ignored (APIs
    add them), and a field is given by its wire alias or by its name."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


M = TypeVar("M", bound=BaseModel)


def check_project_id(project_id: str, service: str = "api") -> str:
    if not is_project_id(project_id):
        raise _invalid_id("project", project_id, PROJECT_ID_RULE, service)
    return project_id


def check_resource_id(kind: str, value: str, service: str = "api") -> str:
    """Ids go into URL paths: see daemon.domain.ids."""
    if not is_resource_id(value):
        raise _invalid_id(kind, value, RESOURCE_ID_RULE, service)
    return value


def _invalid_id(kind: str, value: str, rule: str, service: str) -> InvalidIdError:
    return InvalidIdError(
        f"invalid {kind} id {value!r}: expected {rule}",
        service=service,
        operation="check_id",
        code="invalid_id",
    )


class RequestObserver(Protocol):
    """Told about every HTTP exchange (for metrics); must not raise."""

    def __call__(self, service: str, operation: str, code: str, duration_s: float) -> None: ...


def ignore_request(service: str, operation: str, code: str, duration_s: float) -> None:
    return None


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
        retry: RetrySettings = RetrySettings(),
        sleep: Sleep,
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
        if params:  # in the signer's canonical form, so the signer need not rebuild the URL
            path = f"{path}?{canonical_query(params.items())}"
        started = time.perf_counter()
        try:
            response = await self._http.request(method, path, json=json)
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
