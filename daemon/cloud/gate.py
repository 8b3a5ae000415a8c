"""Per-project request pacing, shared by every request of a project (stops, polls,
inventories, Cloud Eye): a bound on requests in flight, and a request rate that adapts to
what the API answers, since GES publishes no rate limit.

A gate starts from what the project's last gate learned (`Learned`: the rate it last ran
at cleanly, the rate a 429 came at), else from the user's initial rate. While no 429 has
ever come the rate doubles each busy clean tenth of a second: an API without a limit is
found quickly. A 429 marks a limit: the answers the API admitted in the second before it
are its estimate (a per-second limit admits exactly its limit), and the rate comes down at
once to 95 % of that, at most once a second (answers to requests sent before a cut say
nothing new). Then it regrows 10 % a busy second up to 95 % of the estimate and creeps 1 %
a busy second beyond, so it is held just under the limit. It never goes below 0.2/s nor
above the user's ceiling. A Retry-After pauses the project's requests until then (at most
60 s). Requests are spaced at 1/rate of the moment: no burst ever goes above it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class Learned:
    """What a project's gate knows of its API, for the next gate (a new process, a client
    rebuilt on reload): the rate it last ran a busy second at without a 429, and the
    estimate of the limit the last 429 gave (None: the API never answered 429)."""

    clean_per_s: float
    limit_per_s: float | None = None


class RateMemory(Protocol):
    """Where gates keep what they learned, by project (runtime/rates.py keeps it in the Store)."""

    def get(self, key: str) -> Learned | None: ...

    def learn(self, key: str, learned: Learned) -> None: ...


@dataclass
class AdaptiveRate:
    """The rate controller, pure: time is an argument (seconds on a monotonic clock).
    Only busy windows (answers at half the rate or more) count as clean: an idle daemon's
    occasional answer says nothing about how fast it may go."""

    rate: float  # requests per second now
    ceiling: float  # never above this (the user's setting)
    floor: float = 0.2
    near: float = 0.95  # of the limit's estimate: where a cut lands and regrowth slows
    regrow: float = 0.10  # a busy second, up to `near` x the estimate
    creep: float = 0.01  # a busy second, beyond it
    probe_s: float = 0.1  # slow start's window: the rate doubles each busy clean one
    window_s: float = 1.0  # once a limit is known; also: one cut a window at most
    min_evidence: int = 5  # admitted answers below this are no estimate of a limit
    limit: float | None = None  # the limit's estimate; None until the first 429
    clean: float = 0.0  # the rate of the last busy clean window
    _window_start: float | None = None
    _answers: int = 0
    _last_cut: float = float("-inf")
    _admitted: deque[float] = field(default_factory=deque)  # clean answers, last window_s

    def __post_init__(self) -> None:
        self.rate = max(self.floor, min(self.rate, self.ceiling))

    @classmethod
    def resume(cls, learned: Learned | None, *, initial: float, ceiling: float) -> AdaptiveRate:
        """Start where the last gate left off: just under a known limit; else at the rate
        that last ran clean (and probe on from there); else at `initial`."""
        if learned is None:
            return cls(initial, ceiling)
        if learned.limit_per_s is not None:
            limit = min(learned.limit_per_s, ceiling)
            return cls(0.95 * limit, ceiling, limit=limit, clean=learned.clean_per_s)
        return cls(max(initial, learned.clean_per_s), ceiling, clean=learned.clean_per_s)

    @property
    def learned(self) -> Learned:
        return Learned(self.clean, self.limit)

    def on_answer(self, now: float, throttled: bool) -> bool:
        """Take one answer into account; True when what is learned changed."""
        admitted = self._admitted
        while admitted and admitted[0] <= now - self.window_s:
            admitted.popleft()
        if throttled:
            self._window_start, self._answers = now, 0
            if now - self._last_cut < self.window_s:  # sent before the cut: nothing new
                return False
            if len(admitted) >= self.min_evidence:
                estimate = min(self.rate, len(admitted) / self.window_s)
            else:  # too little passed to say where the limit is: a step down
                estimate = self.rate * 5 / 6 / self.near
            self.limit = max(self.floor, estimate)
            self.rate = max(self.floor, min(self.ceiling, self.near * self.limit))
            self._last_cut = now
            return True
        admitted.append(now)
        if self._window_start is None:
            self._window_start = now
        self._answers += 1
        elapsed = now - self._window_start
        if elapsed < (self.probe_s if self.limit is None else self.window_s):
            return False
        busy = self._answers >= 0.5 * self.rate * elapsed
        self._window_start, self._answers = now, 0
        if not busy:
            return False
        self.clean = self.rate
        if self.limit is None:
            growth = 1.0  # slow start
        elif self.rate < self.near * self.limit:
            growth = self.regrow
        else:
            growth = self.creep
            self.limit = max(self.limit, self.rate)  # the API took this rate: no lower limit
        self.rate = min(self.ceiling, self.rate * (1 + growth))
        return True


class RequestGate:
    """At most `max_in_flight` requests at once, spaced at the adaptive rate; what the
    rate learns goes to `on_learned` (kept for the next gate of the project).

    `shared` bounds the requests in flight of every gate given it (all projects together:
    GRAPHNAP_MAX_CONCURRENCY). A request takes its place there only when it is its turn to
    go, so the requests queued for a slow project's pace hold no place another project
    could use: each project holds what it has in flight, plus the one whose turn it is.
    (Taken before the pace, a place was held for the whole wait: every project then got
    the same number of turns, and projects allowed 50/s went at the pace of those
    allowed 20/s.)"""

    def __init__(
        self,
        max_in_flight: int,
        *,
        initial_rate_per_s: float,
        ceiling_per_s: float,
        monotonic: Monotonic,
        sleep: Sleep,
        learned: Learned | None = None,
        on_learned: Callable[[Learned], None] | None = None,
        shared: asyncio.Semaphore | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(max_in_flight)
        self._shared = shared
        self._turn = asyncio.Lock()
        self.rate = AdaptiveRate.resume(learned, initial=initial_rate_per_s, ceiling=ceiling_per_s)
        self._monotonic = monotonic
        self._sleep = sleep
        self._on_learned = on_learned
        self._next_at = float("-inf")  # when the next request may go
        self.throttled = 0  # 429s seen, for the benchmark and tests

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        try:
            # One waiter at a time is paced, the others queue behind it (the lock is FIFO):
            # each gap is taken at the rate of the moment, so a rate that has grown (or a
            # Retry-After that came) applies to the very next request, not after a queue
            # of requests all spaced at the rate they arrived at.
            async with self._turn:
                if self._shared is not None:
                    await self._shared.acquire()
                try:
                    while (now := self._monotonic()) < self._next_at:
                        await self._sleep(self._next_at - now)
                except BaseException:
                    if self._shared is not None:
                        self._shared.release()
                    raise
                self._next_at = now + 1 / self.rate.rate
        except BaseException:
            self._slots.release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        if self._shared is not None:
            self._shared.release()
        self._slots.release()

    def observe(self, status: int, retry_after_s: float | None) -> None:
        now = self._monotonic()
        throttled = status == 429
        if throttled:
            self.throttled += 1
        if self.rate.on_answer(now, throttled) and self._on_learned is not None:
            self._on_learned(self.rate.learned)
        if retry_after_s:  # the project pauses, at most MAX_PAUSE_S: its polls wait too
            self._next_at = max(self._next_at, now + min(retry_after_s, MAX_PAUSE_S))
