"""The sources of a credential set's keys: static (env or secret files, re-read when the
kubelet swaps them), CCE Pod Identity, OIDC federation at IAM, and the node's metadata
service. Each answers Keys or raises an ApiError naming the call; none keeps a secret
beyond the keys it returns."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from daemon.cloud.credentials import CredentialError, InvalidSecretError, Keys, parse_timestamp
from daemon.cloud.errors import ApiError, AuthError, InvalidResponseError, RetryableError
from daemon.cloud.failures import parse_error_body, transport_error
from daemon.config.settings import CredentialSet
from daemon.domain.model import Clock

_METADATA_TOKEN_TTL_S = 6 * 3600  # what Huawei's SDK asks for
_NO_TOKEN_MODE_RETRY = timedelta(hours=24)  # the SDK's re-try of the token mode
_AGENCY_MISSING = "Please configure Cloud Service Agency first"


def read_token_file(path: Path, what: str) -> str:
    """A projected token, read anew at every refresh (the kubelet rotates it)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CredentialError(
            f"the {what} token file {path} cannot be read ({reason}); check the projected "
            "volume's mount path and that the pod's user may read it"
        ) from None
    if not token:
        raise CredentialError(f"the {what} token file {path} is empty; check the projected volume")
    return token


def keys_from(payload: object, service: str, operation: str) -> Keys:
    """Keys from any of the answers' shapes: {credential: {access, secret, securitytoken,
    expires_at}} (IAM, metadata) or {credentials: {accessKeyId, ..., expiration}} (CCE)."""
    body: Any = payload
    if isinstance(body, dict):
        body = body.get("credential") or body.get("credentials") or body

    def field(*names: str) -> str:
        for name in names:
            value = body.get(name) if isinstance(body, dict) else None
            if isinstance(value, str) and value:
                return value
        raise InvalidResponseError(
            f"the answer has no {names[0]} (looked for {', '.join(names)})",
            service=service,
            operation=operation,
        )

    ak = field("access", "accessKeyId", "access_key_id")
    sk = field("secret", "secretAccessKey", "secret_access_key")
    token = field("securitytoken", "securityToken", "security_token")
    expiry = field("expires_at", "expiration")
    try:
        expires_at = parse_timestamp(expiry)
    except ValueError:
        raise InvalidResponseError(
            f"the keys' expiry {expiry[:40]!r} is not an RFC 3339 time",
            service=service,
            operation=operation,
        ) from None
    return Keys(SecretStr(ak), SecretStr(sk), SecretStr(token), expires_at)


async def _post(
    http: httpx.AsyncClient,
    url: str,
    *,
    service: str,
    operation: str,
    expect: tuple[int, ...] = (200, 201),
    **kwargs: Any,
) -> httpx.Response:
    try:
        response = await http.post(url, **kwargs)
    except httpx.HTTPError as exc:
        raise transport_error(exc, service, operation) from exc
    if response.status_code not in expect:
        raise _refused(response, service, operation)
    return response


def _refused(response: httpx.Response, service: str, operation: str) -> ApiError:
    code, message = parse_error_body(response.text)
    status = response.status_code
    kind = RetryableError if status >= 500 or status == 429 else AuthError
    return kind(
        message or "refused",
        service=service,
        operation=operation,
        status=status,
        code=code,
        request_id=response.headers.get("X-Request-Id", ""),
    )


class StaticSource:
    """A long-lived AK/SK from the environment or secret files. `reread` (files only)
    answers a fingerprint of the files and a way to read them: the set is read again when
    the fingerprint changes, i.e. when the kubelet swaps `..data` or a file is rewritten."""

    kind = "static"
    hint = "check the secret files or GRAPHNAP_CREDENTIALS__<SET>__AK / __SK"

    def __init__(
        self,
        given: CredentialSet,
        reread: tuple[Callable[[], Hashable], Callable[[], CredentialSet]] | None = None,
    ) -> None:
        if given.ak is None or given.sk is None:
            raise ValueError("a static source needs an AK/SK credential set")
        self._first: Keys | None = Keys(given.ak, given.sk, given.security_token)
        self._reread = reread
        self._seen = reread[0]() if reread else None

    async def fetch(self) -> Keys | None:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._reread is None:
            return None
        fingerprint, read = self._reread
        seen = fingerprint()
        if seen == self._seen:
            return None
        self._seen = seen  # a refused change is reported once, not at every check
        try:
            creds = read()
        except ValueError as exc:
            raise InvalidSecretError(str(exc)) from None
        if creds.ak is None or creds.sk is None:
            raise InvalidSecretError("the files no longer hold an AK and an SK")
        return Keys(creds.ak, creds.sk, creds.security_token)


class PodIdentitySource:
    """CCE Pod Identity: POST to HC_CONTAINER_CREDENTIALS_FULL_URI with the ServiceAccount
    token from HC_CONTAINER_AUTHORIZATION_TOKEN_FILE as Authorization."""

    kind = "pod_identity"
    hint = (
        "check that the pod's ServiceAccount has a Pod Identity association with an agency, "
        "and HC_CONTAINER_CREDENTIALS_FULL_URI / HC_CONTAINER_AUTHORIZATION_TOKEN_FILE"
    )

    def __init__(self, http: httpx.AsyncClient, uri: str, token_file: Path) -> None:
        self._http, self._uri, self._token_file = http, uri, token_file

    async def fetch(self) -> Keys:
        token = read_token_file(self._token_file, "pod identity")
        response = await _post(
            self._http,
            self._uri,
            service="cce",
            operation="assume_agency_for_pod_identity",
            headers={"Authorization": token},
            json={},
        )
        return keys_from(_json(response, "cce", "assume_agency_for_pod_identity"), "cce", "")


class OidcSource:
    """OIDC federation: the projected ServiceAccount token -> an unscoped IAM token
    (id-token/tokens, X-Idp-Id) -> temporary AK/SK (securitytokens)."""

    kind = "oidc"
    hint = (
        "check the IAM identity provider (its id, the cluster's JWKS, the mapping rule), the "
        "projected token's audience, and that the IAM endpoint is reachable"
    )

    def __init__(
        self,
        http: httpx.AsyncClient,
        iam_endpoint: str,
        idp_id: str,
        token_file: Path,
        duration_s: int,
    ) -> None:
        self._http, self._iam = http, iam_endpoint.rstrip("/")
        self._idp_id, self._token_file, self._duration_s = idp_id, token_file, duration_s

    async def fetch(self) -> Keys:
        id_token = read_token_file(self._token_file, "OIDC")
        response = await _post(
            self._http,
            f"{self._iam}/v3.0/OS-AUTH/id-token/tokens",
            service="iam",
            operation="create_token_with_id_token",
            expect=(201,),
            headers={"X-Idp-Id": self._idp_id, "Content-Type": "application/json;charset=UTF-8"},
            json={"auth": {"id_token": {"id": id_token}}},
        )
        unscoped = response.headers.get("X-Subject-Token")
        if not unscoped:
            raise InvalidResponseError(
                "IAM answered 201 without X-Subject-Token",
                service="iam",
                operation="create_token_with_id_token",
            )
        body = {
            "auth": {
                "identity": {
                    "methods": ["token"],
                    "token": {"id": unscoped, "duration_seconds": self._duration_s},
                }
            }
        }
        response = await _post(
            self._http,
            f"{self._iam}/v3.0/OS-CREDENTIAL/securitytokens",
            service="iam",
            operation="create_temporary_access_key",
            expect=(201,),
            json=body,
        )
        return keys_from(_json(response, "iam", "create_temporary_access_key"), "iam", "")


class MetadataSource:
    """The node's agency through the ECS metadata service: the token mode first (PUT
    /meta-data/latest/api/token), then GET /openstack/latest/securitykey."""

    kind = "metadata"
    hint = (
        "check that the node (ECS) has an agency and that pods may reach the metadata "
        "service (on CCE Turbo, 'Pod Access to Metadata' is off by default)"
    )

    def __init__(self, http: httpx.AsyncClient, base_url: str, *, clock: Clock) -> None:
        self._http, self._base, self._clock = http, base_url.rstrip("/"), clock
        self._token: SecretStr | None = None
        self._token_until = datetime.min.replace(tzinfo=UTC)
        self._plain_until = datetime.min.replace(tzinfo=UTC)  # no token mode until then

    async def fetch(self) -> Keys:
        now = self._clock()
        if now >= self._token_until and now >= self._plain_until:
            await self._new_token(now, required=False)
        response = await self._get_key()
        if response.status_code == 401 and _AGENCY_MISSING not in response.text:
            await self._new_token(self._clock(), required=True)
            response = await self._get_key()
        if response.status_code != 200:
            raise _refused(response, "metadata", "get_security_key")
        return keys_from(_json(response, "metadata", "get_security_key"), "metadata", "")

    async def _new_token(self, now: datetime, *, required: bool) -> None:
        self._token = None
        try:
            response = await self._http.put(
                f"{self._base}/meta-data/latest/api/token",
                headers={"X-Metadata-Token-Ttl-Seconds": str(_METADATA_TOKEN_TTL_S)},
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, "metadata", "get_token") from exc
        if response.status_code == 200 and response.text.strip():
            self._token = SecretStr(response.text.strip())
            self._token_until = now + timedelta(seconds=_METADATA_TOKEN_TTL_S - 60)
        elif response.status_code in (404, 405, 503) and not required:
            self._plain_until = now + _NO_TOKEN_MODE_RETRY  # an older metadata service
        else:
            raise _refused(response, "metadata", "get_token")

    async def _get_key(self) -> httpx.Response:
        headers = {"X-Metadata-Token": self._token.get_secret_value()} if self._token else {}
        try:
            return await self._http.get(
                f"{self._base}/openstack/latest/securitykey", headers=headers
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, "metadata", "get_security_key") from exc


def _json(response: httpx.Response, service: str, operation: str) -> object:
    try:
        return response.json()
    except ValueError:
        raise InvalidResponseError(
            "the answer is not JSON", service=service, operation=operation
        ) from None
