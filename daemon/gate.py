"""Per-project request pacing, shared by every request of a project (stops, polls,
inventories, Cloud Eye): a bound on requests in flight, and a request rate that adapts to
what the API answers, since GES publishes no rate limit.

The rate starts moderate and, while answers are clean, doubles every second until the
first throttling answer (429), then grows by a twentieth a second; each 429 cuts it by a
quarter (once per second: the answers to requests already sent say nothing new), and a
Retry-After pauses the project's requests until then. Requests are spaced at 1/rate: no
burst ever goes above the current rate. The user may set a ceiling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from daemon.model import Sleep

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
    """The rate controller, pure: time is an argument (seconds on a monotonic clock)."""

    rate: float  # requests per second now
    ceiling: float  # never above this (the user's setting)
    floor: float = 0.2
    decrease: float = 0.75  # the rate after a throttling answer, as a share of the rate
    increase: float = 0.05  # growth per clean second once a limit has been met
    window_s: float = 1.0
    _limit_met: bool = False
    _window_start: float | None = None
    _clean_in_window: bool = False
    _last_cut: float = float("-inf")

    def __post_init__(self) -> None:
        self.rate = min(self.rate, self.ceiling)

    def on_answer(self, now: float, throttled: bool) -> None:
        if throttled:
            self._limit_met = True
            if now - self._last_cut >= self.window_s:
                self.rate = max(self.floor, self.rate * self.decrease)
                self._last_cut = now
            self._window_start, self._clean_in_window = now, False
            return
        if self._window_start is None:
            self._window_start = now
        self._clean_in_window = True
        if now - self._window_start >= self.window_s:
            growth = self.increase if self._limit_met else 1.0  # slow start: doubles
            self.rate = min(self.ceiling, self.rate * (1 + growth))
            self._window_start, self._clean_in_window = now, False


class RequestGate:
    """At most `max_in_flight` requests at once, spaced at the adaptive rate."""

    def __init__(
        self,
        max_in_flight: int,
        *,
        initial_rate_per_s: float,
        ceiling_per_s: float,
        monotonic: Monotonic,
        sleep: Sleep = asyncio.sleep,
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
