"""The control API's limits: body size and requests per token, and the token buckets that
enforce the rates."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


class TokenBuckets:
    """Requests per key (a token's name): `burst` at once, refilled at `rate_per_s`."""

    def __init__(self, rate_per_s: float, burst: int, monotonic: Callable[[], float]) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """0 when the request may go ahead; else the seconds until it may."""
        now = self._monotonic()
        tokens, at = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self._rate


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 16 * 1024
    rate_per_s: float = 1.0
    burst: int = 30
    # Wrong or missing tokens, all callers together: slows guessing without locking out
    # the people who hold a good token (their requests never draw from this bucket).
    unauthenticated_rate_per_s: float = 1.0
    unauthenticated_burst: int = 20
