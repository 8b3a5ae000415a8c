"""The emulator's time: the clock its states follow (a manual one in tests), the monotonic
clock of its request log, and how long actions take on them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
Monotonic = Callable[[], float]


class ManualClock:
    """A clock that moves only when told; `sleep` advances it (for clients under test)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Timing:
    """How long actions take on the emulator's clock."""

    pending_s: float = 1.0
    stop_s: float = 8.0
    start_s: float = 15.0
    # Cloud Eye publishes a minute this long after it ends (the real service: 5-10 minutes).
    metrics_lag_s: float = 360.0
