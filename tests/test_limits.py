"""The control API's token buckets on a hand-moved monotonic clock: a burst at once, then
the rate, each key on its own, and the wait told in seconds."""

from __future__ import annotations

from daemon.ops.limits import TokenBuckets


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_goes_at_once_and_then_the_wait_is_told() -> None:
    clock = Monotonic()
    buckets = TokenBuckets(rate_per_s=0.5, burst=3, monotonic=clock)
    assert [buckets.take("search") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("search") == 2.0  # one token at 0.5/s
    clock.now += 1.0  # half a token back: still a second to wait
    assert buckets.take("search") == 1.0
    clock.now += 1.0
    assert buckets.take("search") == 0.0


def test_each_key_has_its_own_bucket_and_refills_only_up_to_the_burst() -> None:
    clock = Monotonic()
    buckets = TokenBuckets(rate_per_s=1.0, burst=2, monotonic=clock)
    assert buckets.take("a") == buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0  # another token's requests draw from their own
    clock.now += 3600.0  # an hour idle earns the burst, not 3600 requests
    assert [buckets.take("a") for _ in range(3)][-1] > 0
