"""The firing policy on a manual clock with a fake firing: once per fire time, one at a time,
the DST repeat, catch-up at start, misfires, the state file and the shutdown grace."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from daemon.config.models import Config, Schedule
from daemon.emulator import ManualClock
from daemon.runtime.scheduler import Scheduler
from daemon.runtime.store import FileStore
from daemon.telemetry.metrics import Metrics
from tests.conftest import sample

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def schedule(**fields: object) -> Schedule:
    base: dict[str, object] = {
        "name": "rule",
        "action": "stop",
        "cron": "0 20 * * mon-fri",
        "timezone": "Asia/Shanghai",
        "targets": {"projects": ["p"]},
    }
    return Schedule.model_validate({**base, **fields})


CONFIG_BASE = {
    "projects": [{"name": "p", "region": "cn-north-4", "project_id": "abc", "credentials": "p"}],
}


def config_of(*schedules: Schedule) -> Config:
    return Config.model_validate({**CONFIG_BASE, "schedules": [s.model_dump() for s in schedules]})


class Firings:
    """A fake firing: records (schedule, fire time) and can be held open."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, datetime]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.cancelled = 0

    async def __call__(
        self, config: Config, schedule: Schedule, fire_time: datetime, retry_until: datetime
    ) -> None:
        self.calls.append((schedule.name, fire_time))
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
def firings() -> Firings:
    return Firings()


def make(
    firings: Firings, metrics: Metrics, clock: ManualClock, state_file: Path | None = None
) -> Scheduler:
    store = FileStore(state_file) if state_file is not None else None
    return Scheduler(firings, metrics, clock=clock, default_grace=timedelta(hours=1), store=store)


async def recorded(state: Path, rule: str = "rule") -> str:
    """The last fire time the state file keeps for `rule` (in either format)."""
    value = (await FileStore(state).read_all())["last_fire"].value
    assert isinstance(value, dict)
    return str(value[rule])


def misfires(metrics: Metrics, rule: str = "rule") -> float:
    return sample(metrics.registry, "graphnap_schedule_misfires_total", rule=rule)


async def test_a_fire_time_runs_once_and_one_firing_of_a_schedule_at_a_time(
    firings: Firings, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    friday = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    scheduler = make(firings, metrics, ManualClock(friday))
    scheduler.apply(config_of(schedule()))
    firings.release.clear()
    with caplog.at_level(logging.INFO):
        first = asyncio.ensure_future(scheduler.run("rule", friday))
        await asyncio.sleep(0)  # the first firing is under way
        await scheduler.run("rule", friday)  # overlapping: refused and counted
        firings.release.set()
        await first
        await scheduler.run("rule", friday)  # the same fire time again: already ran
        await scheduler.run("rule", friday + timedelta(days=3))  # Monday's: runs
    assert firings.calls == [("rule", friday), ("rule", friday + timedelta(days=3))]
    assert misfires(metrics) == 1
    assert "the previous one is still running" in caplog.text
    assert "it already ran for 2026-11-27T20:00:00+08:00" in caplog.text


async def test_the_hour_dst_fall_back_repeats_fires_once(
    firings: Firings, metrics: Metrics
) -> None:
    rule = schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC).astimezone(BERLIN)  # 02:30 CEST
    repeat = datetime(2026, 10, 25, 1, 30, tzinfo=UTC).astimezone(BERLIN)  # 02:30 CET
    scheduler = make(firings, metrics, ManualClock(first))
    scheduler.apply(config_of(rule))
    await scheduler.run("rule", first)
    await scheduler.run("rule", repeat)
    assert firings.calls == [("rule", first)]
    assert misfires(metrics) == 0  # a repeat is not a missed firing


async def test_a_firing_missed_while_down_runs_at_start_for_its_scheduled_time(
    firings: Firings, metrics: Metrics
) -> None:
    clock = ManualClock(datetime(2026, 11, 27, 20, 40, tzinfo=SHANGHAI))
    scheduler = make(firings, metrics, clock)
    scheduler.start(config_of(schedule()))
    await scheduler.settle()
    await scheduler.stop(0)
    # the firing it runs is the 20:00 one, 40 minutes late, not one "at 20:40"
    assert firings.calls == [("rule", datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI))]
    last = metrics.registry.get_sample_value(
        "graphnap_schedule_last_fire_timestamp_seconds", {"rule": "rule"}
    )
    assert last == clock().timestamp()


async def test_an_old_state_file_is_read_and_the_fire_time_is_saved_in_the_store_format(
    firings: Firings, metrics: Metrics, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    # What graphnap wrote before the Store: the last fire times alone.
    state.write_text('{"last_fire": {"rule": "2026-11-24T20:00:00+08:00"}}')  # Tuesday
    clock = ManualClock(datetime(2026, 11, 27, 20, 10, tzinfo=SHANGHAI))  # Friday, 10 min late
    scheduler = make(firings, metrics, clock, state_file=state)
    await scheduler.load()
    scheduler.start(config_of(schedule()))
    await scheduler.settle()
    await scheduler.stop(0)
    assert misfires(metrics) == 2  # Wednesday and Thursday
    assert [t.day for _, t in firings.calls] == [27]
    assert await recorded(state) == "2026-11-27T20:00:00+08:00"
    assert json.loads(state.read_text())["format"] == "graphnap-store/1"


async def test_the_shutdown_grace_cuts_a_firing_short(
    firings: Firings, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    firings.release.clear()  # a firing that would never end
    clock = ManualClock(datetime(2026, 11, 27, 20, 5, tzinfo=SHANGHAI))
    scheduler = make(firings, metrics, clock)
    scheduler.start(config_of(schedule()))  # the catch-up starts the 20:00 firing
    await asyncio.sleep(0)
    assert len(firings.calls) == 1
    with caplog.at_level(logging.WARNING):
        await scheduler.stop(0)
    assert firings.cancelled == 1
    assert "1 firings cut short by the shutdown grace" in caplog.text


async def test_a_schedule_removed_by_a_reload_does_not_fire(
    firings: Firings, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    friday = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    scheduler = make(firings, metrics, ManualClock(friday))
    scheduler.apply(config_of(schedule()))
    scheduler.apply(config_of(schedule(name="other")))
    with caplog.at_level(logging.INFO):
        await scheduler.run("rule", friday)
    assert firings.calls == []
    assert set(scheduler.next_fire_times()) == {"other"}
    assert "removed by a reload" in caplog.text


async def test_a_crashing_firing_is_logged_and_the_next_fire_time_still_runs(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[datetime] = []

    async def crash(config: Config, rule: Schedule, fire_time: datetime, until: datetime) -> None:
        calls.append(fire_time)
        raise RuntimeError("bug")

    friday = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    scheduler = Scheduler(
        crash, metrics, clock=ManualClock(friday), default_grace=timedelta(hours=1)
    )
    scheduler.apply(config_of(schedule()))
    with caplog.at_level(logging.ERROR):
        await scheduler.run("rule", friday)
        await scheduler.run("rule", friday + timedelta(days=3))
    assert len(calls) == 2
    assert "firing crashed" in caplog.text


async def test_a_firing_cut_short_is_not_recorded_and_the_next_start_finishes_it(
    firings: Firings, metrics: Metrics, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"last_fire": {"rule": "2026-11-26T20:00:00+08:00"}}')  # Thursday's ran
    clock = ManualClock(datetime(2026, 11, 27, 20, 5, tzinfo=SHANGHAI))
    friday = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    firings.release.clear()
    first = make(firings, metrics, clock, state_file=state)
    await first.load()
    first.start(config_of(schedule()))
    await asyncio.sleep(0)
    await first.stop(0)  # killed halfway through the fan-out
    assert await recorded(state) == "2026-11-26T20:00:00+08:00"

    firings.release.set()
    clock.advance(5 * 60)
    second = make(firings, metrics, clock, state_file=state)
    await second.load()
    second.start(config_of(schedule()))
    await second.settle()
    await second.stop(0)
    assert firings.calls == [("rule", friday), ("rule", friday)]  # run again, to its end
    assert await recorded(state) == "2026-11-27T20:00:00+08:00"
    assert misfires(metrics) == 0


async def test_a_firing_that_comes_later_than_its_grace_is_a_misfire_not_a_stop(
    firings: Firings, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    friday = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    clock = ManualClock(friday + timedelta(hours=13))  # the host slept until 09:00
    scheduler = make(firings, metrics, clock)
    scheduler.apply(config_of(schedule()))
    with caplog.at_level(logging.WARNING):
        await scheduler.run("rule", friday)
    assert firings.calls == []  # no stop in the middle of the working day
    assert misfires(metrics) == 1
    assert "came 46800s late, beyond misfire_grace" in caplog.text


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop turn (no sleeping) until APScheduler has handed the work over."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("APScheduler never handed the due job over")


async def test_apscheduler_hands_a_due_job_over_with_its_latest_scheduled_time(
    firings: Firings, metrics: Metrics
) -> None:
    """The seam to APScheduler (its public submission event): a due cron job reaches the
    firing with its scheduled time, coalesced to the latest; a due periodic pass runs, one
    run at a time. Fails if an APScheduler release changes what that event carries."""
    now = datetime.now(UTC).replace(microsecond=0)  # APScheduler runs on the wall clock
    scheduler = make(firings, metrics, ManualClock(now))
    passes: list[str] = []
    hold = asyncio.Event()

    async def inventory() -> None:
        passes.append("inventory")
        await hold.wait()

    scheduler.every("inventory", 3600, inventory)
    scheduler.start(config_of(schedule(cron="* * * * *", timezone="UTC")))
    try:
        due = now - timedelta(minutes=3)  # three minutes due: one firing, for the latest
        scheduler._aps.modify_job("rule", next_run_time=due)
        await _until(lambda: bool(firings.calls))
        await scheduler.settle()
        assert firings.calls == [("rule", now.replace(second=0))]
        job = scheduler._aps.get_job("pass:inventory")
        for _ in range(2):  # the second comes while the first still runs: not started
            job.modify(next_run_time=now)
            await _until(lambda: job.next_run_time > now)  # submitted, rescheduled
        for _ in range(10):  # time for a second run to start, were it let
            await asyncio.sleep(0)
        assert passes == ["inventory"]
    finally:
        hold.set()
        await scheduler.stop(grace_s=1)
    assert misfires(metrics) == 0


async def test_a_signal_right_after_a_thousand_schedule_reload_is_not_lost(
    firings: Firings, metrics: Metrics
) -> None:
    """asyncio learns of a signal through the loop's self-pipe, the pipe every
    `call_soon_threadsafe` writes to. A reload that woke APScheduler once per job filled it,
    and a SIGTERM then was lost: the daemon did not exit (seen in bench/goals.py's lean
    part). The signal here comes in the same step as the reload, before the loop runs."""
    import signal

    now = datetime.now(UTC)
    scheduler = make(firings, metrics, ManualClock(now))
    scheduler.start(config_of(schedule(cron="0 3 1 1 *", timezone="UTC")))
    loop = asyncio.get_running_loop()
    delivered = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, delivered.set)
    try:
        many = [
            schedule(name=f"s{k:04d}", cron=f"{k % 60} {k % 24} 1 1 *", timezone="UTC")
            for k in range(1000)
        ]
        scheduler.apply(config_of(*many))
        signal.raise_signal(signal.SIGUSR1)
        await asyncio.wait_for(delivered.wait(), timeout=10)  # a guard, not a budget
        assert len(scheduler.next_fire_times()) == 1000
        assert all(t is not None for t in scheduler.next_fire_times().values())
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
        await scheduler.stop(grace_s=1)
