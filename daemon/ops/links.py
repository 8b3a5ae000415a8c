"""Postpone links: the signed URL a warning gives per graph and what it says. A link is bound
by HMAC-SHA256 to one graph, one firing and an expiry; its key comes from a secret file or
lives in the Store. No web framework here: a warning makes links without loading the page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.domain.hold import SectionName, Store, StoreError

log = logging.getLogger(__name__)

KEY_MIN_BYTES = 32
KEY_SECTION: SectionName = "link_key"
MAX_TOKEN_CHARS = 1024
_VERSION = "v1"


class LinkKeyError(ValueError):
    """The key file cannot be used; the message names the file and the fix, never the key."""


async def link_key(key_file: Path | None, store: Store | None) -> bytes:
    """The signing key: the file's content (GRAPHNAP_CONTROL_LINK_KEY_FILE) if given, else the
    one kept in the Store (generated there at the first start, so links survive a restart),
    else one for this process only."""
    if key_file is not None:
        return key_from_file(key_file)
    if store is None:
        log.warning(
            "no state file and no GRAPHNAP_CONTROL_LINK_KEY_FILE: postpone links stop working "
            "when graphnap restarts"
        )
        return secrets.token_bytes(KEY_MIN_BYTES)
    return await _stored_key(store)


def key_from_file(key_file: Path) -> bytes:
    try:
        raw = key_file.read_bytes().strip()
    except OSError as exc:
        raise LinkKeyError(
            f"GRAPHNAP_CONTROL_LINK_KEY_FILE={key_file} cannot be read "
            f"({exc.strerror or exc}); mount the Secret there, or unset it"
        ) from None
    if len(raw) < KEY_MIN_BYTES:
        raise LinkKeyError(
            f"GRAPHNAP_CONTROL_LINK_KEY_FILE={key_file} holds {len(raw)} bytes; a link key "
            f"has at least {KEY_MIN_BYTES}: write one with `openssl rand -base64 48 > FILE`"
        )
    return raw


async def _stored_key(store: Store) -> bytes:
    try:
        section = (await store.read_all()).get(KEY_SECTION)
        value = section.value if section is not None else None
        if isinstance(value, dict) and isinstance(value.get("key"), str):
            key = bytes.fromhex(value["key"])
            if len(key) >= KEY_MIN_BYTES:
                return key
        key = secrets.token_bytes(KEY_MIN_BYTES)
        # A revision check: two replicas starting together end up with one key, not two.
        await store.write(
            KEY_SECTION, {"key": key.hex()}, revision=section.revision if section else 0
        )
        return key
    except (StoreError, ValueError) as exc:
        log.warning(
            "postpone link key not kept in %s (%s): links stop working when graphnap restarts",
            store.where,
            type(exc).__name__,
        )
        return secrets.token_bytes(KEY_MIN_BYTES)


@dataclass(frozen=True, slots=True)
class Link:
    """What a postpone link says, every field signed."""

    project: str
    graph_id: str
    graph: str  # the name, shown on the page
    rule: str
    fire_at: datetime
    expires: datetime


class BadLink(Exception):
    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status, self.outcome, self.message = status, outcome, message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, key: bytes, base_url: str) -> None:
        self._key = key
        self.base_url = base_url.rstrip("/")

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, f"{_VERSION}.{body}".encode(), hashlib.sha256).digest()

    def token(self, link: Link) -> str:
        payload = {
            "p": link.project,
            "g": link.graph_id,
            "n": link.graph,
            "r": link.rule,
            "f": link.fire_at.isoformat(),
            "e": int(link.expires.timestamp()),
        }
        body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{_VERSION}.{body}.{_b64(self._sign(body))}"

    def url(self, link: Link) -> str:
        return f"{self.base_url}/postpone/{self.token(link)}"

    def read(self, token: str, now: datetime) -> Link:
        """The link a token carries (BadLink: malformed, tampered with, or expired)."""
        version, _, rest = token.partition(".")
        body, _, signature = rest.partition(".")
        if len(token) > MAX_TOKEN_CHARS or version != _VERSION or not body or not signature:
            raise BadLink(400, "invalid", "this is not a postpone link graphnap made")
        try:
            given = _unb64(signature)
        except (binascii.Error, ValueError):
            given = b""
        if not hmac.compare_digest(given, self._sign(body)):
            raise BadLink(
                403,
                "forbidden",
                "this link's signature does not match: it was changed, or made with another "
                "key. Use the link exactly as the message gave it",
            )
        try:
            p: dict[str, Any] = json.loads(_unb64(body))
            link = Link(
                str(p["p"]), str(p["g"]), str(p["n"]), str(p["r"]),
                datetime.fromisoformat(str(p["f"])),
                datetime.fromtimestamp(int(p["e"]), tz=UTC),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            raise BadLink(400, "invalid", "this link's content cannot be read") from None
        if link.fire_at.tzinfo is not None:  # shown in the offset the firing is shown in
            link = replace(link, expires=link.expires.astimezone(link.fire_at.tzinfo))
        if now >= link.expires:
            raise BadLink(
                410,
                "expired",
                f"this link expired at {stamp(link.expires)}: the stop it could postpone "
                "has come. Use the control page to keep a graph up now",
            )
        return link

    @staticmethod
    def link_id(token: str) -> str:
        """A short, stable name of one link for logs and the hold's `by` (not the signature)."""
        return hashlib.sha256(token.encode()).hexdigest()[:10]


def stamp(at: datetime) -> str:
    """A time as people read it on the page and in the hold's reason: `Fri 27 Nov 20:00 +08:00`."""
    text = at.strftime("%a %d %b %H:%M %z")
    return f"{text[:-2]}:{text[-2:]}" if at.utcoffset() is not None else text
