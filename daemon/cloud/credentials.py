"""The holder of a credential set's keys, and what a source of keys is (the sources
themselves: daemon.cloud.key_sources). A source is chosen per set, never by a chain. The
holder refreshes temporary keys well ahead of expiry (with jitter, one refresh at a time),
keeps the current keys through a failed refresh while they are valid, and re-reads static
secret files when the kubelet swaps them. No key, token or file content leaves it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import SecretStr

from daemon.cloud.errors import ApiError, AuthError
from daemon.domain.model import Clock
from daemon.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Keys:
    """One AK/SK, with its security token and expiry when temporary. Compared by identity:
    a holder hands out the same object until it has new keys."""

    ak: SecretStr
    sk: SecretStr
    security_token: SecretStr | None = None
    expires_at: datetime | None = None


class CredentialError(AuthError):
    """No usable keys for a credential set: names the set, the source and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message, service="credentials", operation="obtain_keys")


def parse_timestamp(text: str) -> datetime:
    """RFC 3339 read leniently: with or without fractions (of any length), 'Z' or an offset,
    'T' or a space; a time without a zone is UTC."""
    value = text.strip().upper()
    value = re.sub(r"(\.\d{6})\d+", r"\1", value)  # nanoseconds: microseconds are enough
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Source(Protocol):
    """Fetches a set's keys; None from a static source means 'unchanged'."""

    kind: str
    hint: str  # what to check when it fails

    async def fetch(self) -> Keys | None: ...


class InvalidSecretError(ValueError):
    """New secret files that cannot be used: the keys in use stay."""


@dataclass(frozen=True)
class RefreshPolicy:
    """Refresh `margin_s` before expiry (at most half the keys' lifetime), earlier by up
    to `jitter` of that; after a failure, try again in `retry_s`; static files are
    looked at every `check_s`."""

    margin_s: float = 2400.0
    jitter: float = 0.1
    retry_s: float = 30.0
    check_s: float = 10.0


class KeyHolder:
    """A credential set's current keys. `keys()` refreshes when due; `renew(used)` after a
    refusal fetches anew unless another request already did."""

    def __init__(
        self,
        set_name: str,
        source: Source,
        *,
        clock: Clock,
        metrics: Metrics,
        policy: RefreshPolicy = RefreshPolicy(),
        rng: random.Random | None = None,
    ) -> None:
        self.set_name, self.source = set_name, source
        self._clock, self._metrics, self._policy = clock, metrics, policy
        self._rng = rng or random.Random()
        self._keys: Keys | None = None
        self._due = datetime.min.replace(tzinfo=UTC)
        self._last_error = ""
        self._lock = asyncio.Lock()  # one refresh in flight per set

    def __repr__(self) -> str:
        return f"KeyHolder(set={self.set_name!r}, source={self.source.kind!r})"

    @property
    def expires_at(self) -> datetime | None:
        return self._keys.expires_at if self._keys else None

    async def keys(self) -> Keys:
        keys, now = self._keys, self._clock()
        if (
            keys is not None
            and now < self._due
            and (keys.expires_at is None or now < keys.expires_at)
        ):
            return keys
        async with self._lock:
            if self._keys is None or self._clock() >= self._due:
                await self._refresh()
            return self._usable()

    async def renew(self, used: Keys) -> Keys | None:
        """New keys after `used` was refused; None when the source has nothing newer."""
        async with self._lock:
            if self._keys is not None and self._keys is not used:
                return self._usable()
            await self._refresh()
            return None if self._keys is used else self._usable()

    async def _refresh(self) -> None:
        now = self._clock()
        labels = (self.set_name, self.source.kind)
        try:
            fresh = await self.source.fetch()
        except InvalidSecretError as exc:
            self._due = now + timedelta(seconds=self._policy.check_s)
            self._metrics.credential_refreshes.labels(*labels, "invalid").inc()
            log.warning(
                "credential set %s: the new secret files are refused (%s); the keys in use "
                "stay until valid files are mounted",
                self.set_name,
                exc,
            )
            return
        except ApiError as exc:
            self._failed(now, str(exc))
            return
        if fresh is None:  # static files unchanged
            self._due = now + timedelta(seconds=self._policy.check_s)
            return
        rotated = self._keys is not None and fresh.expires_at is None
        self._keys, self._last_error = fresh, ""
        self._due = self._next_refresh(now, fresh)
        self._metrics.credential_refreshes.labels(*labels, "success").inc()
        if fresh.expires_at is not None:
            self._metrics.credential_expiry.labels(self.set_name).set(fresh.expires_at.timestamp())
            log.info(
                "credential set %s: temporary keys from %s, valid until %s; next refresh %s",
                self.set_name,
                self.source.kind,
                fresh.expires_at.isoformat(),
                self._due.isoformat(),
            )
        elif rotated:
            self._metrics.credential_rotations.labels(self.set_name).inc()
            log.info("credential set %s: new keys from the secret files, in use now", self.set_name)

    def _failed(self, now: datetime, error: str) -> None:
        self._last_error = error
        self._metrics.credential_refreshes.labels(self.set_name, self.source.kind, "failed").inc()
        retry_at = now + timedelta(seconds=self._policy.retry_s)
        expires_at = self._keys.expires_at if self._keys else None
        if self._keys is not None and (expires_at is None or now < expires_at):
            self._due = retry_at if expires_at is None else min(retry_at, expires_at)
            until = expires_at.isoformat() if expires_at else "they are refused"
            log.warning(
                "credential set %s (source %s): refresh failed: %s; the current keys stay in "
                "use until %s, next attempt %s",
                self.set_name,
                self.source.kind,
                error,
                until,
                self._due.isoformat(),
            )
        else:
            self._due = retry_at
            log.error(
                "credential set %s (source %s): no valid keys: %s; %s",
                self.set_name,
                self.source.kind,
                error,
                self.source.hint,
            )

    def _next_refresh(self, now: datetime, keys: Keys) -> datetime:
        if keys.expires_at is None:
            return now + timedelta(seconds=self._policy.check_s)
        lifetime = max((keys.expires_at - now).total_seconds(), 0.0)
        ahead = min(self._policy.margin_s, lifetime / 2)
        ahead += self._rng.uniform(0, self._policy.jitter * ahead)
        return keys.expires_at - timedelta(seconds=ahead)

    def _usable(self) -> Keys:
        keys, now = self._keys, self._clock()
        if keys is not None and (keys.expires_at is None or now < keys.expires_at):
            return keys
        when = (
            f"expired at {keys.expires_at.isoformat()}"
            if keys is not None and keys.expires_at
            else "were never obtained"
        )
        raise CredentialError(
            f"credential set {self.set_name!r} (source {self.source.kind}): the keys {when} "
            f"and could not be refreshed: {self._last_error or 'no answer yet'}; "
            f"{self.source.hint}"
        )
