"""The API gateway's view of AK/SK signatures, written apart from daemon.cloud.auth on purpose.

Two independent implementations agreeing (and Huawei's SDK passing through this one) is
the evidence that the signer is right; sharing code would prove nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, quote, unquote

from daemon.emulator.faults import CloudFault

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
