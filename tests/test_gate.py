"""The per-project gate: an adaptive rate that finds an unknown limit and backs off on 429,
and pacing without bursts. On fake time: nothing here is timed."""

from __future__ import annotations

import asyncio

from daemon.cloud.gate import AdaptiveRate, RequestGate


def busy_second(rate: AdaptiveRate, start: float) -> None:
    """A second of clean answers at the current rate."""
    n = max(int(rate.rate), 2)
    for i in range(n + 1):
        rate.on_answer(start + i / n, throttled=False)


def test_the_rate_doubles_each_busy_clean_second_until_the_first_429() -> None:
    rate = AdaptiveRate(rate=10, ceiling=1000)
    for second in range(3):
        busy_second(rate, float(second))
    assert round(rate.rate) == 80  # 10 -> 20 -> 40 -> 80


def test_an_idle_daemon_does_not_raise_its_rate() -> None:
    rate = AdaptiveRate(rate=10, ceiling=1000)
    for minute in range(10):  # one answer a minute: an inventory pass now and then
        rate.on_answer(minute * 60.0, throttled=False)
        rate.on_answer(minute * 60.0 + 1.5, throttled=False)
    assert rate.rate == 10


def test_the_first_429_halves_the_rate_later_ones_take_a_sixth_once_a_second() -> None:
    rate = AdaptiveRate(rate=60, ceiling=1000)
    busy_second(rate, -1.0)  # slow start doubles to 120
    rate.on_answer(0.0, throttled=True)  # and overshot: halve
    rate.on_answer(0.3, throttled=True)  # sent before the cut: says nothing new
    assert rate.rate == 60
    rate.on_answer(1.2, throttled=True)
    assert rate.rate == 50


def test_a_rate_started_at_the_limit_is_only_trimmed_by_its_first_429() -> None:
    rate = AdaptiveRate(rate=20, ceiling=20)  # tuned: start and ceiling at the API's limit
    rate.on_answer(0.0, throttled=True)
    assert rate.rate == 20 * 5 / 6


def test_after_a_429_the_rate_regrows_fast_to_near_the_limit_then_creeps() -> None:
    rate = AdaptiveRate(rate=60, ceiling=1000)
    busy_second(rate, -1.0)  # 120
    rate.on_answer(0.0, throttled=True)  # limit estimate 120, rate 60
    second = 1.0
    while rate.rate < 0.95 * 120:  # +10 % a busy second
        before = rate.rate
        busy_second(rate, second)
        second += 1.01
        assert rate.rate == min(1000, before * 1.1)
    near = rate.rate
    busy_second(rate, second)
    assert rate.rate == near * 1.01  # beyond it: +1 % a second


def test_the_rate_stays_between_its_floor_and_the_users_ceiling() -> None:
    rate = AdaptiveRate(rate=50, ceiling=20)
    assert rate.rate == 20
    for second in range(10):
        busy_second(rate, float(second))
    assert rate.rate == 20
    for t in range(40):
        rate.on_answer(float(t) * 2, throttled=True)
    assert rate.rate == rate.floor


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sent: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_requests_are_spaced_at_the_rate_with_no_burst() -> None:
    fake = FakeTime()
    gate = RequestGate(
        8, initial_rate_per_s=4, ceiling_per_s=4, monotonic=fake.monotonic, sleep=fake.sleep
    )

    async def request() -> None:
        async with gate:
            fake.sent.append(fake.now)

    for _ in range(6):
        await request()
    assert fake.sent == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]


async def test_retry_after_pauses_the_projects_requests_and_429s_slow_it_down() -> None:
    fake = FakeTime()
    gate = RequestGate(
        8, initial_rate_per_s=10, ceiling_per_s=100, monotonic=fake.monotonic, sleep=fake.sleep
    )
    async with gate:
        pass
    gate.observe(429, retry_after_s=3.0)
    async with gate:
        fake.sent.append(fake.now)
    assert fake.sent == [3.0]
    assert gate.rate.rate == 10 * 5 / 6  # no slow start yet: trimmed, not halved
    assert gate.throttled == 1


async def test_requests_in_flight_are_bounded() -> None:
    fake = FakeTime()
    gate = RequestGate(
        2, initial_rate_per_s=1000, ceiling_per_s=1000, monotonic=fake.monotonic, sleep=fake.sleep
    )
    inside = 0
    most = 0
    release = asyncio.Event()

    async def request() -> None:
        nonlocal inside, most
        async with gate:
            inside += 1
            most = max(most, inside)
            await release.wait()
            inside -= 1

    tasks = [asyncio.ensure_future(request()) for _ in range(5)]
    await asyncio.sleep(0)
    assert inside == 2
    release.set()
    await asyncio.gather(*tasks)
    assert most == 2


async def test_a_long_pause_is_capped_so_the_project_is_not_frozen() -> None:
    from daemon.cloud.gate import MAX_PAUSE_S

    fake = FakeTime()
    gate = RequestGate(
        8, initial_rate_per_s=10, ceiling_per_s=100, monotonic=fake.monotonic, sleep=fake.sleep
    )
    gate.observe(429, retry_after_s=10_000)
    async with gate:
        fake.sent.append(fake.now)
    assert fake.sent == [MAX_PAUSE_S]
