"""The API gateway: what every request meets before its service (latency, a token or an
AK/SK signature, throttles and injected faults), the request log, and error answers in the
shape of the service that gave them.

Its view of AK/SK signatures is written apart from daemon.cloud.auth on purpose: two
independent implementations agreeing (and Huawei's SDK passing through this one) is the
evidence that the signer is right; sharing code would prove nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from aiohttp import web

from daemon.emulator.cloud import Cloud
from daemon.emulator.faults import CloudFault
from daemon.emulator.identity import IDENTITY, AccessKeys
from daemon.emulator.request_log import RequestRecord
from daemon.emulator.wire import CLOUD, json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_SKEW = timedelta(minutes=15)
_AUTH_RE = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=(?P<ak>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]+)$"
)


def _refuse(message: str, code: str = "APIG.0301") -> CloudFault:
    return CloudFault(
        401, code, f"Incorrect IAM authentication information: {message}", source="gateway"
    )


def verify_signature(
    *,
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    access_keys: Mapping[str, str],
    now: datetime,
) -> str:
    """Check an AK/SK-signed request; return the AK, or raise a 401 CloudFault."""
    match = _AUTH_RE.match(headers.get("authorization", "").strip())
    if not match:
        raise _refuse("malformed Authorization header")
    ak, signed, given = match["ak"], match["signed"].split(";"), match["sig"]
    sk = access_keys.get(ak)
    if sk is None:
        raise _refuse("unknown access key")
    if "x-sdk-date" not in signed or "host" not in signed:
        raise _refuse("x-sdk-date and host must be signed")
    missing = [name for name in signed if name not in headers]
    if missing:
        raise _refuse(f"signed header {missing[0]} is missing")
    try:
        sent_at = datetime.strptime(headers["x-sdk-date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=now.tzinfo
        )
    except ValueError:
        raise _refuse("X-Sdk-Date is not in the format YYYYMMDDTHHMMSSZ") from None
    if abs(now - sent_at) > MAX_SKEW:
        raise _refuse(
            "the request time differs from the server time by more than 15 minutes", "APIGW.0303"
        )

    segments = [quote(part, safe="~") for part in unquote(path).split("/")]
    uri = "/".join(segments)
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted(parse_qsl(query_string, keep_blank_values=True))
    query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)
    header_lines = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    payload = hashlib.sha256(body).hexdigest()
    canonical = "\n".join([method.upper(), uri, query, header_lines, ";".join(signed), payload])
    to_sign = "\n".join(
        ["SDK-HMAC-SHA256", headers["x-sdk-date"], hashlib.sha256(canonical.encode()).hexdigest()]
    )
    expected = hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise _refuse("signature mismatch")
    return ak


def error_response(fault: CloudFault, request_id: str, *, v2: bool = False) -> web.Response:
    if fault.source == "ges" and v2:  # GES v2 says error_code/error_msg
        body: dict[str, Any] = {"error_code": fault.code, "error_msg": fault.message}
    elif fault.source == "ges":
        body = {"errorCode": fault.code, "errorMessage": fault.message}
    elif fault.source == "ces":
        # Cloud Eye v1's own error shape (api-ces ErrorCode page): the code is nested.
        body = {
            "code": fault.status,
            "element": HTTPStatus(fault.status).phrase,
            "message": fault.message,
            "details": {"details": fault.message, "code": fault.code},
        }
    elif fault.source == "iam":
        body = {
            "error": {"code": fault.status, "message": fault.message, "title": "Unauthorized"},
            "error_code": fault.code,
            "error_msg": fault.message,
        }
    else:
        body = {"error_code": fault.code, "error_msg": fault.message, "request_id": request_id}
    return json_response(body, fault.status)


def _operation(request: web.Request) -> str:
    route = request.match_info.route
    return str(route.name) if route and route.name else "unknown"


@web.middleware
async def gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record, delay, authenticate, throttle and fault-inject, as the real gateway would."""
    cloud = request.app[CLOUD]
    arrived_s = cloud.monotonic()
    request_id = secrets.token_hex(16)
    operation = _operation(request)
    project_id = request.match_info.get("project_id", "")
    response: web.StreamResponse
    try:
        if cloud.faults.latency_s and not request.path.startswith("/_emulator"):
            await asyncio.sleep(cloud.faults.latency_s)
        if request.path.startswith(("/v1.0/", "/V1.0/", "/v2/")):
            await _authenticate(request, cloud)
            fault = cloud.injector.fault_for(operation, project_id)
            if fault and fault.source == "ges" and request.path.startswith("/V1.0/"):
                # a random or scripted engine fault, answered the way Cloud Eye would
                code = "ces.0007" if fault.status >= 500 else fault.code
                fault = CloudFault(fault.status, code, fault.message, source="ces")
            if fault:
                raise fault
        response = await handler(request)
    except CloudFault as fault:
        response = error_response(fault, request_id, v2=request.path.startswith("/v2/"))
    response.headers["X-Request-Id"] = request_id
    if not request.path.startswith("/_emulator"):
        cloud.log.add(
            RequestRecord(
                request.method,
                request.path,
                operation,
                response.status,
                project_id,
                request.match_info.get("graph_id", ""),
                arrived_s,
                cloud.monotonic(),
            )
        )
        log.debug("%s %s -> %s", request.method, request.path_qs, response.status)
    return response


def _wrong_project(request: web.Request, what: str) -> CloudFault:
    if request.path.startswith("/V1.0/"):
        return CloudFault(
            400, "ces.0003", f"The tenant ID is incorrect: it is not {what}.", source="ces"
        )
    return CloudFault(400, "GES.0016", f"The project id in the URL does not match {what}.")


async def _authenticate(request: web.Request, cloud: Cloud) -> None:
    project_id = request.match_info.get("project_id", "")
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "x-auth-token" in headers:
        token = cloud.iam.check_token(headers["x-auth-token"])
        if token.project_id != project_id:
            raise _wrong_project(request, "the token's project")
        return
    if "authorization" in headers:
        ak = verify_signature(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=headers,
            body=await request.read(),
            access_keys=AccessKeys(cloud.access_keys, request.app[IDENTITY]),
            now=cloud.clock(),
        )
        request.app[IDENTITY].check_temporary(ak, headers)  # token, signed, not expired
        if headers.get("x-project-id", project_id) != project_id:
            raise _wrong_project(request, "X-Project-Id")
        return
    raise CloudFault(
        401,
        "APIG.0301",
        "Incorrect IAM authentication information: no token or signature",
        source="gateway",
    )
