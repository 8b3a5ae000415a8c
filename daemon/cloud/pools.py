"""A project's HTTP connections as several small pools instead of one large one, so that a
request costs little CPU however many may be in flight.

Why: httpcore's pool walks every connection it holds on each request and on each answer,
and asks the socket of every idle one whether the server closed it (a `getpeername` and a
`poll`, and a quadratic count of idle connections on top). With 64 connections that walk
was half the daemon's CPU per request. `Shards` hands each request to the first small pool
with a connection free, so a pool never holds more requests than connections (nothing
waits inside httpcore, where waiting is rescanned on every change) and a quiet project
keeps using its first pool only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import httpx

SHARD_CONNECTIONS = 4  # small enough that httpcore's walk is cheap, big enough to be few


def shard_sizes(connections: int, per_shard: int = SHARD_CONNECTIONS) -> list[int]:
    """How `connections` are split: as few shards as hold them at `per_shard` each at most,
    all of one size (64 -> 16 of 4; 10 -> 3 of 4: a shard's size is only a bound)."""
    count = max(1, math.ceil(connections / per_shard))
    size = math.ceil(connections / count)
    return [size] * count


class Shards(httpx.AsyncBaseTransport):
    """Requests spread over `count` small pools, the first with room taking the next
    request; `size` is how many requests a shard is given at once, its pool's connections.
    Only when every shard is full (more requests in flight than connections in all: no
    gate in front) does one wait in the least busy shard. A shard's transport is made by
    `make(index)` when it is first needed: a quiet project never builds the others.

    Each answer's body is read here, inside the shard's count, so that its connection is
    back in its pool before the shard takes another request (every caller reads whole
    answers anyway: they are small JSON documents)."""

    def __init__(
        self, make: Callable[[int], httpx.AsyncBaseTransport], count: int, size: int
    ) -> None:
        if count < 1 or size < 1:
            raise ValueError("at least one shard of at least one connection")
        self._make = make
        self._shards: list[httpx.AsyncBaseTransport | None] = [None] * count
        self._size = size
        self._busy = [0] * count
        self.most_busy = (
            0  # the most requests any shard had at once: never above size in a gated client
        )

    @classmethod
    def build(
        cls, connections: int, shard: Callable[[httpx.Limits], httpx.AsyncBaseTransport]
    ) -> Shards:
        """Shards holding `connections` in all, each built by `shard` with its limits."""
        sizes = shard_sizes(connections)
        limits = httpx.Limits(max_connections=sizes[0], max_keepalive_connections=sizes[0])
        return cls(lambda _: shard(limits), len(sizes), sizes[0])

    @property
    def size(self) -> int:
        """Requests a shard is given at once: its pool's connections."""
        return self._size

    @property
    def busy(self) -> tuple[int, ...]:
        """Requests in flight in each shard now."""
        return tuple(self._busy)

    @property
    def built(self) -> int:
        """How many shards have been needed so far."""
        return sum(s is not None for s in self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        i = self._pick()
        shard = self._shards[i]
        if shard is None:
            shard = self._shards[i] = self._make(i)
        busy = self._busy
        busy[i] += 1
        self.most_busy = max(self.most_busy, busy[i])
        try:
            response = await shard.handle_async_request(request)
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
            return response
        finally:
            busy[i] -= 1

    def _pick(self) -> int:
        busy, size = self._busy, self._size
        for i, n in enumerate(busy):
            if n < size:
                return i
        return min(range(len(busy)), key=busy.__getitem__)

    async def aclose(self) -> None:
        for shard in self._shards:
            if shard is not None:
                await shard.aclose()
