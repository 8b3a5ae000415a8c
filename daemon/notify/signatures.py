"""The signatures receivers check, each exactly as its vendor documents it (pure functions:
the tests hold them to the vendors' published examples).

- Standard Webhooks (https://www.standardwebhooks.com, spec/standard-webhooks.md): for the
  generic webhook. `webhook-signature: v1,<base64(HMAC-SHA256(key, id + "." + ts + "." + body))>`
  with `key` the base64 after `whsec_`, `ts` integer Unix seconds in `webhook-timestamp`.
- DingTalk custom robot 加签 (open.dingtalk.com, customize-robot-security-settings): `sign` =
  urlencode(base64(HMAC-SHA256(key=secret, msg=timestamp_ms + "\\n" + secret))).
- Feishu / Lark custom bot (open.feishu.cn/document/client-docs/bot-v3/add-custom-bot):
  `sign` = base64(HMAC-SHA256(key=timestamp_s + "\\n" + secret, msg=b"")).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

WHSEC_PREFIX = "whsec_"


class BadSecret(ValueError):
    """A signing secret of the wrong shape; the message never contains the secret."""


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret `whsec_<base64>`."""
    if not secret.startswith(WHSEC_PREFIX):
        raise BadSecret(
            "a webhook secret is 'whsec_' and base64 (Standard Webhooks); make one with "
            "`echo whsec_$(openssl rand -base64 32)`"
        )
    try:
        key = base64.b64decode(secret.removeprefix(WHSEC_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret("the part after 'whsec_' is not base64") from None
    if not 24 <= len(key) <= 64:
        raise BadSecret(f"the key is {len(key)} bytes; Standard Webhooks asks for 24 to 64")
    return key


def webhook_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value (one `v1,` signature)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The `sign` query parameter's value before URL encoding (quote_plus, as documented)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """The body's `sign`: the HMAC's key is the string to sign, its message is empty."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")
