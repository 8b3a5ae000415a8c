"""Per-project request pacing, shared by every request of a project (stops, polls,
inventories, Cloud Eye): a bound on requests in flight, and a request rate that adapts to
what the API answers, since GES publishes no rate limit.

The rate starts at the user's initial rate and doubles each busy clean second (answers
at half the rate or more, none throttled) until the first throttling answer (429). That
429 halves it if slow start had doubled it (a rate that doubled may have overshot
twofold) and takes a sixth off otherwise; every later 429 takes a sixth off, at most once
a second (answers to requests sent before a cut say nothing new). The rate each cut came
at is the limit's estimate: the rate regrows 10 % a busy second up to 95 % of it, then
1 % a busy second. It never goes below 0.2/s nor above the user's ceiling. A Retry-After pauses
the project's requests until then (at most 60 s). Requests are spaced at 1/rate: no
burst ever goes above the current rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from daemon.domain.model import Sleep

Monotonic = Callable[[], float]
"""Seconds on a clock that never steps (time.monotonic): pacing is real time, whatever
clock the rest of the daemon is given."""


MAX_PAUSE_S = 60.0


@runtime_checkable
class Gate(Protocol):
    """What a client holds around each request: `async with gate:`, then `observe`."""

    async def __aenter__(self) -> None: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def observe(self, status: int, retry_after_s: float | None) -> None:
        """The answer's HTTP status (0 when none came back) and any Retry-After."""
        ...


class OpenGate:
    """No pacing (unit tests, one-off tools)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None

    def observe(self, status: int, retry_after_s: float | None) -> None:
        return None


@dataclass
class AdaptiveRate:
    """The rate controller, pure: time is an argument (seconds on a monotonic clock).

    Slow start doubles the rate each busy clean second until the first 429. The rate a 429
    came at is remembered as the limit's estimate: the first cut after slow start has
    doubled halves the rate (doubling may have overshot twofold), other cuts take a sixth
    off; then the rate regrows a tenth a second up to 95 % of the estimate, and creeps a
    hundredth a second beyond, so a cycle spends most of its time near the limit and only
    a moment beyond it. Only busy
    seconds (answers at half the rate or more) count as clean: an idle daemon's occasional
    answer says nothing about how fast it may go."""

    rate: float  # requests per second now
    ceiling: float  # never above this (the user's setting)
    floor: float = 0.2
    first_cut: float = 0.5
    cut: float = 5 / 6
    regrow: float = 0.10  # a second, up to `near` x the estimate
    creep: float = 0.01  # a second, beyond it
    near: float = 0.95
    window_s: float = 1.0
    _limit: float | None = None  # the rate the last 429 came at
    _window_start: float | None = None
    _answers: int = 0
    _last_cut: float = float("-inf")
    _doubled: bool = False

    def __post_init__(self) -> None:
        self.rate = min(self.rate, self.ceiling)

    def on_answer(self, now: float, throttled: bool) -> None:
        if throttled:
            if now - self._last_cut >= self.window_s:  # later 429s were sent before the cut
                # Halve only a rate that slow start just doubled; a rate set at the limit
                # (the user's start or ceiling) is merely a little over it.
                share = self.first_cut if self._limit is None and self._doubled else self.cut
                self._limit = self.rate
                self.rate = max(self.floor, self.rate * share)
                self._last_cut = now
            self._window_start, self._answers = now, 0
            return
        if self._window_start is None:
            self._window_start = now
        self._answers += 1
        elapsed = now - self._window_start
        if elapsed < self.window_s:
            return
        busy = self._answers >= 0.5 * self.rate * elapsed
        if busy:
            if self._limit is None:
                growth = 1.0  # slow start
                self._doubled = True
            elif self.rate < self.near * self._limit:
                growth = self.regrow
            else:
                growth = self.creep
            self.rate = min(self.ceiling, self.rate * (1 + growth))
        self._window_start, self._answers = now, 0


class RequestGate:
    """At most `max_in_flight` requests at once, spaced at the adaptive rate."""

    def __init__(
        self,
        max_in_flight: int,
        *,
        initial_rate_per_s: float,
        ceiling_per_s: float,
        monotonic: Monotonic,
        sleep: Sleep,
    ) -> None:
        self._slots = asyncio.Semaphore(max_in_flight)
        self.rate = AdaptiveRate(initial_rate_per_s, ceiling_per_s)
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_at = float("-inf")  # when the next request may go
        self.throttled = 0  # 429s seen, for the benchmark and tests

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        try:
            now = self._monotonic()
            at = max(now, self._next_at)
            self._next_at = at + 1 / self.rate.rate
            if at > now:
                await self._sleep(at - now)
        except BaseException:
            self._slots.release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._slots.release()

    def observe(self, status: int, retry_after_s: float | None) -> None:
        now = self._monotonic()
        throttled = status == 429
        if throttled:
            self.throttled += 1
        self.rate.on_answer(now, throttled)
        if retry_after_s:  # the project pauses, at most MAX_PAUSE_S: its polls wait too
            self._next_at = max(self._next_at, now + min(retry_after_s, MAX_PAUSE_S))
