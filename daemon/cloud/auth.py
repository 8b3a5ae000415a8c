"""Authentication for Huawei Cloud APIs, as httpx.Auth: AK/SK signing (fixed keys, or a
credential set's refreshing keys) and IAM tokens.

The signer follows huaweicloudsdkcore's `SDK-HMAC-SHA256` byte for byte (the test reads
../shared/signing-vectors.json); the token provider caches a project-scoped IAM token and
renews it before it expires, and once more when an API answers 401.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections.abc import AsyncGenerator, Generator, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, unquote

import httpx
from pydantic import SecretStr

from daemon.cloud.credentials import KeyHolder, Keys
from daemon.cloud.errors import AuthError, InvalidResponseError, RetryableError
from daemon.cloud.failures import parse_error_body, transport_error
from daemon.domain.model import Clock

log = logging.getLogger(__name__)

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _encode(text: str) -> str:
    return quote(text, safe="~")


# A path of unreserved characters only (ids are letters, digits and dashes) is its own
# canonical form: nothing to decode or re-encode, on every request.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._~/-]*")


def canonical_uri(path: str) -> str:
    """Each segment re-encoded with only unreserved characters left; always a trailing '/'."""
    if _PLAIN_PATH.fullmatch(path):
        return path if path.endswith("/") else path + "/"
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], signed: list[str], body: bytes
) -> str:
    """`headers` maps lower-case names to values; `signed` is the sorted list to include."""
    header_block = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    return "\n".join(
        [method.upper(), canonical_uri(path), query, header_block, ";".join(signed), payload_hash]
    )


def signature(sk: str, sdk_date: str, canonical: str) -> str:
    string_to_sign = f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(sk.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def sign_request(
    request: httpx.Request,
    ak: SecretStr,
    sk: SecretStr,
    *,
    project_id: str | None,
    security_token: SecretStr | None,
    clock: Clock,
) -> None:
    """Sign `request` in place as Huawei's SDK does. The URL's query is rewritten in
    canonical form, as the SDK sends it, so the gateway sees exactly what was signed; a
    security token is set before signing, so it is inside SignedHeaders."""
    sent = request.url.query.decode("ascii")
    query = canonical_query(parse_qsl(sent, keep_blank_values=True))
    if query != sent:  # daemon.cloud.transport sends it canonical already: no new URL
        request.url = request.url.copy_with(query=query.encode("ascii") or None)
    request.headers["X-Sdk-Date"] = clock().strftime(DATE_FORMAT)  # anew for a retry
    if project_id and "X-Project-Id" not in request.headers:
        request.headers["X-Project-Id"] = project_id
    if security_token is not None:
        request.headers["X-Security-Token"] = security_token.get_secret_value()
    else:
        request.headers.pop("X-Security-Token", None)
    headers = {k.lower(): v for k, v in request.headers.items()}
    signed = sorted(name for name in _SIGNED if name in headers)
    canonical = canonical_request(
        request.method, request.url.path, query, headers, signed, request.content
    )
    sig = signature(sk.get_secret_value(), headers["x-sdk-date"], canonical)
    request.headers["Authorization"] = (
        f"{ALGORITHM} Access={ak.get_secret_value()}, SignedHeaders={';'.join(signed)}, Signature={sig}"
    )


_SIGNED = ("content-type", "host", "x-project-id", "x-sdk-date", "x-security-token")


class AkSkAuth(httpx.Auth):
    """Signs each request with one fixed AK/SK (and security token, if given)."""

    requires_request_body = True

    def __init__(
        self,
        ak: SecretStr,
        sk: SecretStr,
        *,
        project_id: str | None = None,
        security_token: SecretStr | None = None,
        clock: Clock,
    ) -> None:
        self._ak = ak
        self._sk = sk
        self._project_id = project_id
        self._security_token = security_token
        self._clock = clock

    def __repr__(self) -> str:
        return f"AkSkAuth(project_id={self._project_id!r})"

    def sign(self, request: httpx.Request) -> None:
        sign_request(
            request,
            self._ak,
            self._sk,
            project_id=self._project_id,
            security_token=self._security_token,
            clock=self._clock,
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request


class KeyAuth(httpx.Auth):
    """Signs with a credential set's current keys (daemon.cloud.credentials.KeyHolder). A
    401 (an expired signature or security token, keys rotated away) renews the keys once
    and resends once; when the source has nothing newer the 401 stands."""

    requires_request_body = True

    def __init__(self, holder: KeyHolder, *, project_id: str | None, clock: Clock) -> None:
        self._holder = holder
        self._project_id = project_id
        self._clock = clock

    def __repr__(self) -> str:
        return f"KeyAuth({self._holder!r}, project_id={self._project_id!r})"

    def _sign(self, request: httpx.Request, keys: Keys) -> None:
        sign_request(
            request,
            keys.ak,
            keys.sk,
            project_id=self._project_id,
            security_token=keys.security_token,
            clock=self._clock,
        )

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        keys = await self._holder.keys()
        self._sign(request, keys)
        response = yield request
        if response.status_code != 401:
            return
        renewed = await self._holder.renew(keys)
        if renewed is None:
            return
        log.info(
            "credential set %s: keys refused (401); signed again with renewed keys",
            self._holder.set_name,
        )
        self._sign(request, renewed)
        yield request


class TokenProvider:
    """A project-scoped IAM token from a user's password, cached until shortly before expiry."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        iam_endpoint: str,
        user: str,
        password: SecretStr,
        domain: str,
        project_id: str,
        refresh_margin: timedelta = timedelta(hours=1),
        clock: Clock,
    ) -> None:
        self._http = http
        self._url = f"{iam_endpoint.rstrip('/')}/v3/auth/tokens"
        self._user = user
        self._password = password
        self._domain = domain
        self._project_id = project_id
        self._margin = refresh_margin
        self._clock = clock
        self._token: SecretStr | None = None
        self._expires_at = datetime.min.replace(tzinfo=UTC)
        self._renew_at = self._expires_at
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TokenProvider(user={self._user!r}, domain={self._domain!r}, project_id={self._project_id!r})"

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                fetched_at = self._clock()
                self._token, self._expires_at = await self._fetch()
                # Renew `margin` before expiry, but never before half the token's real
                # lifetime: a token shorter-lived than the margin would otherwise be
                # fetched anew for every request.
                lifetime = self._expires_at - fetched_at
                self._renew_at = self._expires_at - min(self._margin, lifetime / 2)
            return self._token.get_secret_value()

    def invalidate(self, token: str) -> None:
        """Forget `token` (an API refused it) unless a newer one has replaced it already."""
        if self._token is not None and self._token.get_secret_value() == token:
            self._token = None

    async def _fetch(self) -> tuple[SecretStr, datetime]:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._user,
                            "password": self._password.get_secret_value(),
                            "domain": {"name": self._domain},
                        }
                    },
                },
                "scope": {"project": {"id": self._project_id}},
            }
        }
        try:
            response = await self._http.post(
                self._url,
                params={"nocatalog": "true"},
                json=body,
                headers={"Content-Type": "application/json;charset=utf8"},
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, "iam", "create_token") from exc
        if response.status_code != 201:
            code, message = parse_error_body(response.text)
            kind = (
                RetryableError
                if response.status_code >= 500 or response.status_code == 429
                else AuthError
            )
            raise kind(
                message or "token request refused",
                service="iam",
                operation="create_token",
                status=response.status_code,
                code=code,
                request_id=response.headers.get("X-Request-Id", ""),
            )
        token = response.headers.get("X-Subject-Token")
        try:
            expires_at = datetime.fromisoformat(response.json()["token"]["expires_at"])
        except (ValueError, KeyError, TypeError):
            expires_at = None
        if not token or expires_at is None:
            raise InvalidResponseError(
                "IAM answered 201 without X-Subject-Token or token.expires_at",
                service="iam",
                operation="create_token",
                status=201,
            )
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        log.info("IAM token obtained for user %s, expires %s", self._user, expires_at.isoformat())
        return SecretStr(token), expires_at


class TokenAuth(httpx.Auth):
    """Sends X-Auth-Token; on a 401 renews the token once and resends."""

    def __init__(self, provider: TokenProvider, project_id: str | None = None) -> None:
        self._provider = provider
        self._project_id = project_id

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._project_id and "X-Project-Id" not in request.headers:
            request.headers["X-Project-Id"] = self._project_id
        token = await self._provider.token()
        request.headers["X-Auth-Token"] = token
        response = yield request
        if response.status_code == 401:
            log.info("token refused (401); renewing it once")
            self._provider.invalidate(token)
            request.headers["X-Auth-Token"] = await self._provider.token()
            yield request
