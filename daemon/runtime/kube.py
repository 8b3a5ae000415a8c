"""The Kubernetes API through lightkube: the connection (in-cluster, or a URL given by the
settings), a token re-read when the kubelet rotates it, and a few errors of our own
(conflict, not found, already exists) that no lightkube or httpx exception escapes past.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:  # lightkube (160 ms of imports) is loaded only by a daemon that uses it
    from lightkube import AsyncClient

from daemon.config.settings import SERVICE_ACCOUNT_DIR, LeaderSettings

MESSAGE_LIMIT = 200  # of the API server's message; it never holds the token, but keep it short


class KubeError(Exception):
    """The API server could not be reached, or refused; the message names the object."""


class KubeConflict(KubeError):
    """409 Conflict: the object changed since it was read (a stale resourceVersion)."""


class KubeNotFound(KubeError):
    """404: no such object."""


class KubeAlreadyExists(KubeError):
    """409 AlreadyExists on create: someone created it first."""


class KubeTooLarge(KubeError):
    """422 on a write: over the API server's object size limit."""


def micro_time(when: datetime) -> datetime:
    """A Lease's MicroTime is RFC 3339 with exactly six fractional digits; lightkube writes
    `isoformat()`, which drops them when the microseconds are 0, and the API server answers
    400. One microsecond later is the same instant for a lease."""
    when = when.astimezone(UTC)
    return when.replace(microsecond=1) if when.microsecond == 0 else when


class TokenFileAuth(httpx.Auth):
    """The service-account token as a bearer, re-read when the file changes: the kubelet
    swaps the projected token (about hourly) and the old one stops working."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[float, int] | None = None
        self._header = ""

    def _bearer(self) -> str:
        try:
            info = self._path.stat()  # follows the kubelet's ..data symlink
            if self._seen != (info.st_mtime, info.st_ino):
                token = self._path.read_text(encoding="utf-8").strip()
                self._header, self._seen = f"Bearer {token}", (info.st_mtime, info.st_ino)
        except OSError as exc:
            raise KubeError(
                f"service-account token {self._path} cannot be read ({exc.strerror or exc}); "
                "mount it (automountServiceAccountToken or a projected volume)"
            ) from None
        return self._header

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = self._bearer()
        yield request


@dataclass(frozen=True, slots=True)
class KubeTarget:
    base_url: str
    namespace: str
    token_file: Path
    ca_file: Path | None


def kube_target(settings: LeaderSettings) -> KubeTarget:
    """Where the API server is: the settings' URL, else the in-cluster service."""
    base_url = settings.api_url
    if base_url is None:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubeError(
                "leader election needs the Kubernetes API: not in a pod "
                "(no KUBERNETES_SERVICE_HOST); set GRAPHNAP_LEADER__API_URL"
            )
        base_url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    namespace = settings.namespace
    if namespace is None:
        try:
            namespace = (SERVICE_ACCOUNT_DIR / "namespace").read_text(encoding="utf-8").strip()
        except OSError:
            namespace = "default"
    return KubeTarget(base_url.rstrip("/"), namespace, settings.token_file, settings.ca_file)


def kube_client(target: KubeTarget, *, timeout_s: float) -> AsyncClient:
    """A lightkube client on its own httpx transport: TLS verified against the cluster CA
    (plain http only on a URL that says so), the token re-read as it rotates."""
    from lightkube import AsyncClient, KubeConfig
    from lightkube.config.models import Cluster, User

    verify: ssl.SSLContext | bool = True
    if target.base_url.startswith("https://") and target.ca_file is not None:
        verify = ssl.create_default_context(cafile=str(target.ca_file))
    transport = httpx.AsyncHTTPTransport(verify=verify)
    client = AsyncClient(
        # An empty User: the auth below gives the token (from_server leaves no User, and
        # lightkube 0.17 then fails on building the TLS settings).
        KubeConfig.from_one(  # type: ignore[no-untyped-call]
            cluster=Cluster(server=target.base_url), user=User(), namespace=target.namespace
        ),
        namespace=target.namespace,
        timeout=httpx.Timeout(timeout_s),
        trust_env=False,
        transport=transport,
    )
    # lightkube 0.17 reads a token once; this auth re-reads it (public httpx API).
    client._client._client.auth = TokenFileAuth(target.token_file)
    return client


def kube_error(exc: Exception, what: str) -> KubeError:
    """Our error for a lightkube/httpx one: status code and the server's reason, cut."""
    from lightkube import ApiError

    if isinstance(exc, ApiError):
        status = exc.status
        code, reason = status.code or exc.response.status_code, status.reason or ""
        message = " ".join(str(status.message or "").split())[:MESSAGE_LIMIT]
        text = f"{what}: HTTP {code} {reason}: {message}"
        if code == 409 and reason == "AlreadyExists":
            return KubeAlreadyExists(text)
        if code == 409:
            return KubeConflict(text)
        if code == 404:
            return KubeNotFound(text)
        if code == 422 and "too long" in message.lower():
            return KubeTooLarge(text)
        return KubeError(text)
    if isinstance(exc, httpx.HTTPStatusError):  # a 429 or a proxy's answer: no Status body
        return KubeError(f"{what}: HTTP {exc.response.status_code}")
    if isinstance(exc, httpx.HTTPError):
        return KubeError(f"{what}: {type(exc).__name__}: {str(exc)[:MESSAGE_LIMIT]}")
    if isinstance(exc, KubeError):
        return exc
    raise exc
