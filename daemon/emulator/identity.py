"""The emulated identity services: IAM password tokens, CCE Pod Identity, IAM OIDC federation
(id-token, then temporary keys), and the ECS metadata service on a loopback port of its own. The gateway
takes a temporary key only with its security token, signed, and only until it expires.

Shapes follow ../shared/cloud-identity-and-v2.md section A, so that Huawei's own SDK
providers obtain keys here unchanged.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from daemon.emulator.cloud import Cloud
from daemon.emulator.faults import CloudFault
from daemon.emulator.wire import CLOUD, json_response

AGENCY_MISSING = "Please configure Cloud Service Agency first"
_SIGNED_RE = re.compile(r"SignedHeaders=([^,\s]+)")


@dataclass
class TemporaryKey:
    ak: str
    sk: str
    security_token: str
    expires_at: datetime
    source: str  # pod_identity, oidc, metadata


class Identity:
    """Who may get temporary keys, and the keys given out. Tests grant identities
    (`service_account_tokens`, `identity_providers`, `node_agency`), make the next calls
    of an endpoint fail (`failing["oidc"] = 2`) and count calls (`calls`)."""

    time_format = "%Y-%m-%dT%H:%M:%S.%fZ"  # as IAM writes it; the SDK requires the fraction

    def __init__(self, cloud: Cloud, *, key_ttl_s: float = 3600.0) -> None:
        self.cloud = cloud
        self.key_ttl_s = key_ttl_s  # pod identity and metadata keys; oidc asks its own
        self.service_account_tokens: set[str] = set()
        self.identity_providers: dict[str, set[str]] = {}  # idp id -> ID tokens it vouches for
        self.node_agency = True
        self.metadata_token_required = False
        self.keys: dict[str, TemporaryKey] = {}
        self.unscoped_tokens: dict[str, datetime] = {}
        self.metadata_tokens: dict[str, datetime] = {}
        self.failing: Counter[str] = Counter()  # endpoint -> next N calls answered 503
        self.calls: Counter[str] = Counter()

    def issue(self, source: str, ttl_s: float) -> TemporaryKey:
        ak = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(20))
        key = TemporaryKey(
            ak=ak,
            sk=secrets.token_urlsafe(30),
            security_token="gQpjbi1ub3J0aC00" + secrets.token_urlsafe(96),
            expires_at=self.cloud.clock() + timedelta(seconds=ttl_s),
            source=source,
        )
        self.keys[ak] = key
        return key

    def expire_keys(self) -> None:
        now = self.cloud.clock()
        for key in self.keys.values():
            key.expires_at = min(key.expires_at, now)

    def check_temporary(self, ak: str, headers: Mapping[str, str]) -> None:
        """After the signature is verified: a temporary AK needs its own security token,
        inside SignedHeaders, before it expires. `headers` are lower-cased."""
        key = self.keys.get(ak)
        if key is None:
            return  # a permanent key
        signed = _SIGNED_RE.search(headers.get("authorization", ""))
        token = headers.get("x-security-token")
        if token is None or signed is None or "x-security-token" not in signed[1].split(";"):
            raise _gateway_refusal("temporary access keys need X-Security-Token, signed")
        if not secrets.compare_digest(token, key.security_token):
            raise _gateway_refusal("the security token is invalid")
        if self.cloud.clock() >= key.expires_at:
            raise _gateway_refusal("the security token has expired")

    def take_call(self, endpoint: str) -> None:
        self.calls[endpoint] += 1
        if self.failing[endpoint] > 0:
            self.failing[endpoint] -= 1
            raise CloudFault(503, "SYS.0503", "Service unavailable (injected).", source="iam")

    def when(self, moment: datetime) -> str:
        return moment.strftime(self.time_format)

    def credential_json(self, key: TemporaryKey) -> dict[str, Any]:
        """A temporary key as IAM's securitytokens call and the ECS metadata service both
        answer it (one shape: the SDK reads both with the same code)."""
        return {
            "credential": {
                "access": key.ak,
                "secret": key.sk,
                "securitytoken": key.security_token,
                "expires_at": self.when(key.expires_at),
            }
        }


class AccessKeys(Mapping[str, str]):
    """The gateway's AK -> SK table: the permanent keys and the temporary ones given out."""

    def __init__(self, permanent: Mapping[str, str], identity: Identity) -> None:
        self._permanent, self._identity = permanent, identity

    def __getitem__(self, ak: str) -> str:
        key = self._identity.keys.get(ak)
        return key.sk if key is not None else self._permanent[ak]

    def __iter__(self) -> Iterator[str]:
        yield from self._permanent
        yield from self._identity.keys

    def __len__(self) -> int:
        return len(self._permanent) + len(self._identity.keys)


def _gateway_refusal(message: str) -> CloudFault:
    return CloudFault(
        401, "APIG.0301", f"Incorrect IAM authentication information: {message}", source="gateway"
    )


def _iam_refusal(status: int, code: str, message: str) -> CloudFault:
    return CloudFault(status, code, message, source="iam")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _iam_refusal(400, "IAM.0011", "Request parameter error: not JSON.") from None
    if not isinstance(body, dict):
        raise _iam_refusal(400, "IAM.0011", "Request parameter error.")
    return body


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=json.dumps)


# --- IAM password tokens ------------------------------------------------------------------


async def create_token(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    try:
        auth = (await request.json())["auth"]
        user = auth["identity"]["password"]["user"]
        project = auth["scope"]["project"]
        project_id = project.get("id") or project.get("name")
        token = cloud.issue_token(
            user["domain"]["name"], user["name"], user["password"], project_id
        )
    except (ValueError, KeyError, TypeError):
        raise CloudFault(400, "IAM.0011", "Request parameter error.", source="iam") from None
    body = {
        "token": {
            "expires_at": token.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "issued_at": cloud.clock().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "methods": ["password"],
            "project": {"id": token.project_id, "name": cloud.region},
            "user": {"name": token.user},
        }
    }
    return json_response(body, 201, headers={"X-Subject-Token": token.value})


# --- CCE Pod Identity ----------------------------------------------------------------------

IDENTITY: web.AppKey[Identity] = web.AppKey("identity", Identity)


async def pod_identity_credentials(request: web.Request) -> web.Response:
    """What HC_CONTAINER_CREDENTIALS_FULL_URI answers: the ServiceAccount token in
    Authorization, the assume-agency-for-pod-identity answer back."""
    identity = request.app[IDENTITY]
    identity.take_call("pod_identity")
    token = request.headers.get("Authorization", "").strip()
    if not token or token not in identity.service_account_tokens:
        raise CloudFault(
            401, "CCE.01400001", "The ServiceAccount token is invalid.", source="gateway"
        )
    key = identity.issue("pod_identity", identity.key_ttl_s)
    return _json(
        {
            "assumedAgency": {"urn": "iam::emulator:agency:graphnap", "id": "agency-emulator"},
            "audience": "service.cce.pods",
            "credentials": {
                "accessKeyId": key.ak,
                "secretAccessKey": key.sk,
                "securityToken": key.security_token,
                "expiration": identity.when(key.expires_at),
            },
            "podIdentityAssociationId": "association-emulator",
            "subject": {"namespace": "graphnap", "serviceAccount": "graphnap"},
        }
    )


# --- IAM federation ------------------------------------------------------------------------


async def create_token_with_id_token(request: web.Request) -> web.Response:
    identity = request.app[IDENTITY]
    identity.take_call("oidc")
    idp_id = request.headers.get("X-Idp-Id", "")
    if idp_id not in identity.identity_providers:
        raise _iam_refusal(404, "IAM.0067", "The identity provider does not exist.")
    body = await _body(request)
    try:
        id_token = body["auth"]["id_token"]["id"]
    except (KeyError, TypeError):
        raise _iam_refusal(400, "IAM.0011", "Request parameter error: auth.id_token.id.") from None
    if id_token not in identity.identity_providers[idp_id]:
        raise _iam_refusal(401, "IAM.0064", "The ID token is invalid or has expired.")
    now = identity.cloud.clock()
    token = "MIIunscoped" + secrets.token_urlsafe(48)
    expires_at = now + timedelta(hours=24)
    identity.unscoped_tokens[token] = expires_at
    answer = {
        "token": {
            "expires_at": identity.when(expires_at),
            "issued_at": identity.when(now),
            "methods": ["mapped"],
            "user": {"name": "FederationUser", "OS-FEDERATION": {"identity_provider": idp_id}},
        }
    }
    return _json(answer, 201, headers={"X-Subject-Token": token})


async def create_temporary_access_key(request: web.Request) -> web.Response:
    identity = request.app[IDENTITY]
    identity.take_call("securitytokens")
    body = await _body(request)
    try:
        auth = body["auth"]["identity"]
        token = auth["token"]["id"] if "token" in auth["methods"] else ""
        duration = int(auth["token"].get("duration_seconds", 900))
    except (KeyError, TypeError, ValueError):
        raise _iam_refusal(400, "IAM.0011", "Request parameter error: auth.identity.") from None
    if not 900 <= duration <= 86400:
        raise _iam_refusal(400, "IAM.0011", "duration_seconds must be 900 to 86400.")
    expires_at = identity.unscoped_tokens.get(token)
    if expires_at is None or identity.cloud.clock() >= expires_at:
        raise _iam_refusal(401, "IAM.0003", "The token is invalid or has expired.")
    key = identity.issue("oidc", duration)
    return _json(identity.credential_json(key), 201)


def add_identity_routes(app: web.Application, identity: Identity) -> None:
    """IAM's password tokens, the pod identity endpoint and IAM's federation calls, on the
    main emulator."""
    app[IDENTITY] = identity
    app.router.add_post("/v3/auth/tokens", create_token, name="create_token")
    app.router.add_post("/v1/credentials", pod_identity_credentials, name="pod_identity")
    app.router.add_post(
        "/v3.0/OS-AUTH/id-token/tokens", create_token_with_id_token, name="create_token_oidc"
    )
    app.router.add_post(
        "/v3.0/OS-CREDENTIAL/securitytokens",
        create_temporary_access_key,
        name="create_temporary_access_key",
    )


# --- ECS metadata --------------------------------------------------------------------------


async def metadata_token(request: web.Request) -> web.Response:
    identity = request.app[IDENTITY]
    try:
        ttl = int(request.headers.get("X-Metadata-Token-Ttl-Seconds", ""))
    except ValueError:
        return web.Response(status=400, text="X-Metadata-Token-Ttl-Seconds is required")
    if not 1 <= ttl <= 21600:
        return web.Response(status=400, text="X-Metadata-Token-Ttl-Seconds: 1 to 21600")
    token = secrets.token_urlsafe(32)
    identity.metadata_tokens[token] = identity.cloud.clock() + timedelta(seconds=ttl)
    return web.Response(text=token)


async def metadata_security_key(request: web.Request) -> web.Response:
    identity = request.app[IDENTITY]
    try:
        identity.take_call("metadata")
    except CloudFault:
        return web.Response(status=503, text="metadata service unavailable")
    token = request.headers.get("X-Metadata-Token")
    if token is not None:
        until = identity.metadata_tokens.get(token)
        if until is None or identity.cloud.clock() >= until:
            return web.Response(status=401, text="the metadata token is invalid or expired")
    elif identity.metadata_token_required:
        return web.Response(status=401, text="a metadata token is required")
    if not identity.node_agency:
        return web.Response(status=401, text=AGENCY_MISSING)
    key = identity.issue("metadata", identity.key_ttl_s)
    return _json(identity.credential_json(key))


class MetadataServer:
    """The ECS metadata service's two paths, on a loopback port of its own."""

    def __init__(self, identity: Identity, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app[IDENTITY] = identity
        app.router.add_put("/meta-data/latest/api/token", metadata_token)
        app.router.add_get("/openstack/latest/securitykey", metadata_security_key)
        self._runner = web.AppRunner(app, access_log=None)
        self._host, self._port = host, port
        self.url = ""

    async def __aenter__(self) -> MetadataServer:
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()
