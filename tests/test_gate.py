"""The per-project gate: an adaptive rate that finds an unknown limit and backs off on 429,
and pacing without bursts. On fake time: nothing here is timed."""

from __future__ import annotations

import asyncio

import pytest

from daemon.cloud.gate import AdaptiveRate, Learned, RequestGate


def busy(rate: AdaptiveRate, start: float, seconds: float = 1.0) -> float:
    """Clean answers at the current rate for `seconds` (at least two a window); the end."""
    n = max(int(rate.rate * seconds), 2)
    for i in range(n + 1):
        rate.on_answer(start + i * seconds / n, throttled=False)
    return start + seconds


def test_until_a_first_429_the_rate_doubles_each_busy_clean_tenth_of_a_second() -> None:
    rate = AdaptiveRate(rate=10, ceiling=10_000)
    t = 0.0
    for _ in range(3):
        t = busy(rate, t, 0.1)
    assert round(rate.rate) == 80  # 10 -> 20 -> 40 -> 80 in 0.3 s, not 3 s
    assert rate.limit is None


def test_an_idle_daemon_does_not_raise_its_rate() -> None:
    rate = AdaptiveRate(rate=10, ceiling=1000)
    for minute in range(10):  # one answer a minute: an inventory pass now and then
        rate.on_answer(minute * 60.0, throttled=False)
        rate.on_answer(minute * 60.0 + 1.5, throttled=False)
    assert rate.rate == 10


def test_a_429_brings_the_rate_to_just_under_what_the_api_admitted_in_the_last_second() -> None:
    rate = AdaptiveRate(rate=160, ceiling=10_000)  # slow start has overshot a 20/s limit
    for i in range(20):  # the 20 the API admitted in the last second
        rate.on_answer(0.01 + 0.049 * i, throttled=False)
    rate.on_answer(1.0, throttled=True)
    assert rate.limit == 20
    assert rate.rate == 0.95 * 20  # at once, not a sixth a second from 160
    rate.on_answer(1.3, throttled=True)  # sent before the cut: says nothing new
    assert rate.rate == 0.95 * 20


def test_a_429_with_too_little_admitted_to_judge_trims_the_rate_by_a_sixth() -> None:
    rate = AdaptiveRate(rate=20, ceiling=20)  # tuned: start and ceiling at the API's limit
    rate.on_answer(0.0, throttled=True)
    assert rate.rate == 20 * 5 / 6


def test_after_a_429_the_rate_regrows_fast_to_near_the_limit_then_creeps() -> None:
    rate = AdaptiveRate(rate=100, ceiling=1000, limit=100)
    rate.rate = 50  # cut far below the estimate
    t = 0.0
    while rate.rate < 0.95 * 100:  # +10 % a busy second
        before = rate.rate
        t = busy(rate, t) + 0.01
        assert rate.rate == min(1000, before * 1.1)
    near = rate.rate
    busy(rate, t)
    assert rate.rate == near * 1.01  # beyond it: +1 % a second


def test_a_limit_the_api_turns_out_to_take_is_raised() -> None:
    rate = AdaptiveRate(rate=20, ceiling=1000, limit=20)
    t = 0.0
    for _ in range(5):
        t = busy(rate, t) + 0.01
    assert rate.limit is not None
    assert rate.limit > 20


def test_the_rate_stays_between_its_floor_and_the_users_ceiling() -> None:
    rate = AdaptiveRate(rate=50, ceiling=20)
    assert rate.rate == 20
    t = 0.0
    for _ in range(10):
        t = busy(rate, t, 0.1)
    assert rate.rate == 20
    for i in range(40):
        rate.on_answer(float(i) * 2, throttled=True)
    assert rate.rate == rate.floor


def test_a_new_gate_starts_where_the_last_one_left_off() -> None:
    never = AdaptiveRate.resume(None, initial=10, ceiling=1000)
    assert (never.rate, never.limit) == (10, None)
    clean = AdaptiveRate.resume(Learned(400.0), initial=10, ceiling=1000)
    assert (clean.rate, clean.limit) == (400, None)  # and slow start probes on from there
    limited = AdaptiveRate.resume(Learned(19.0, 20.0), initial=10, ceiling=1000)
    assert (limited.rate, limited.limit) == (0.95 * 20, 20)  # just under it, at once
    capped = AdaptiveRate.resume(Learned(400.0, 300.0), initial=10, ceiling=50)
    assert capped.rate == 0.95 * 50  # the user's ceiling still holds


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
    assert gate.rate.rate == 10 * 5 / 6  # nothing admitted to judge by: trimmed
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


async def test_what_a_gate_learns_is_handed_on_and_a_new_gate_starts_from_it() -> None:
    fake = FakeTime()
    told: list[Learned] = []
    gate = RequestGate(
        8,
        initial_rate_per_s=10,
        ceiling_per_s=1000,
        monotonic=fake.monotonic,
        sleep=fake.sleep,
        on_learned=told.append,
    )
    for _ in range(30):  # an API admitting 20 a second, then refusing
        async with gate:
            pass
        fake.now += 0.05
        gate.observe(200, None)
    gate.observe(429, None)
    assert told[-1].limit_per_s == 20
    again = RequestGate(
        8,
        initial_rate_per_s=10,
        ceiling_per_s=1000,
        monotonic=fake.monotonic,
        sleep=fake.sleep,
        learned=told[-1],
    )
    assert again.rate.rate == 0.95 * 20


async def test_requests_already_waiting_go_at_the_rate_of_the_moment() -> None:
    """A listing asks for 98 pages at once: a rate that grows meanwhile paces the rest."""
    fake = FakeTime()
    gate = RequestGate(
        100, initial_rate_per_s=10, ceiling_per_s=1000, monotonic=fake.monotonic, sleep=fake.sleep
    )

    async def request() -> None:
        async with gate:
            fake.sent.append(fake.now)
            if len(fake.sent) == 2:
                gate.rate.rate = 100  # the answers so far let it grow tenfold

    await asyncio.gather(*(request() for _ in range(5)))
    # the gap after the second was set before the rate grew; the next ones at 100/s
    assert fake.sent == pytest.approx([0.0, 0.1, 0.2, 0.21, 0.22])


async def test_requests_waiting_for_a_slow_projects_pace_hold_no_shared_place() -> None:
    """Four places for all projects: the slow project, paced at 1/s with eight waiting,
    holds its request in flight and the one whose turn it is; the other two places are
    the fast project's, whatever the slow one has queued."""
    shared = asyncio.Semaphore(4)
    never = asyncio.Event()
    slow = RequestGate(
        64,
        initial_rate_per_s=1,
        ceiling_per_s=1,
        monotonic=lambda: 0.0,
        sleep=lambda s: never.wait(),
        shared=shared,
    )  # type: ignore[arg-type]
    fast_time = FakeTime()
    fast = RequestGate(
        64,
        initial_rate_per_s=1000,
        ceiling_per_s=1000,
        monotonic=fast_time.monotonic,
        sleep=fast_time.sleep,
        shared=shared,
    )
    release = asyncio.Event()
    inside = {"slow": 0, "fast": 0}

    async def request(gate: RequestGate, name: str) -> None:
        async with gate:
            inside[name] += 1
            await release.wait()

    tasks = [asyncio.ensure_future(request(slow, "slow")) for _ in range(9)]
    for _ in range(20):
        await asyncio.sleep(0)
    tasks += [asyncio.ensure_future(request(fast, "fast")) for _ in range(5)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert inside == {"slow": 1, "fast": 2}
    assert shared.locked()  # all four taken: 1 + its turn, and the fast project's 2
    release.set()
    for _ in range(50):
        await asyncio.sleep(0)
    assert inside["fast"] == 5  # the fast project went on as places came back
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for _ in range(4):  # every place given back, the cancelled waits' too
        assert not shared.locked()
        await shared.acquire()
    assert shared.locked()
