"""The fence every request to the cloud passes: closed while this replica is not sure it
leads, so a replica that lost (or may have lost) its lease sends nothing more."""

from __future__ import annotations

from typing import Protocol


class Fence(Protocol):
    def is_open(self) -> bool:
        """True only while this replica may act: checked right before each request leaves,
        on a monotonic clock, so a process that was paused finds it closed when it wakes."""
        ...


class OpenFence:
    """No leader election: one replica, always acting."""

    def is_open(self) -> bool:
        return True
