"""The warning pass and its timing, with fakes: warning times are fire times minus the lead
(DST included); a warning lists only what the dry run would stop; a late warning is sent while
its stop is ahead, never after; a 500-graph firing is one message per route."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from daemon.config.models import Config, Schedule
from daemon.config.notifications import Notifications
from daemon.emulator import ManualClock
from daemon.notify import channels as ch
from daemon.notify.message import WarnedGraph
from daemon.notify.notifier import Notifier
from daemon.notify.sent import MemorySentKeys
from daemon.rules.planning import Decision
from daemon.runtime.executor import Result
from daemon.runtime.firing import Report
from daemon.runtime.scheduler import Scheduler
from daemon.runtime.warnings import Warnings, warning_times
from daemon.telemetry.metrics import Metrics
from tests.receivers import receiver
from tests.test_scheduler import config_of, schedule

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
FIRE = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)


def warned(**fields: object) -> Schedule:
    return schedule(**{"notify": {"before": "15m"}, **fields})


def test_warning_times_are_the_fire_times_minus_the_lead() -> None:
    after = datetime(2026, 11, 27, 12, 0, tzinfo=SHANGHAI)
    times = warning_times(warned(), after, 2)  # 20:00 Mon-Fri
    assert [t.astimezone(SHANGHAI) for t in times] == [
        datetime(2026, 11, 27, 19, 45, tzinfo=SHANGHAI),
        datetime(2026, 11, 30, 19, 45, tzinfo=SHANGHAI),  # Monday
    ]
    assert warning_times(schedule(), after, 2) == []  # no lead, no warning
    assert warning_times(warned(action="start"), after, 2) == []  # a start warns of nothing


def test_a_lead_across_a_dst_change_is_real_time_not_wall_clock() -> None:
    # 03:30 Berlin on the morning DST begins (02:00 -> 03:00): 2h before is 00:30 CET.
    rule = warned(cron="30 3 * * *", timezone="Europe/Berlin", notify={"before": "2h"})
    (first,) = warning_times(rule, datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN), 1)
    assert first == datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN).astimezone(UTC) - timedelta(hours=2)
    assert first.astimezone(BERLIN).hour == 0


def decision(name: str, act: bool, reason: str = "selected") -> Decision:
    return Decision("lab", f"id-{name}", name, "rule", "stop", act, reason)


class Told:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, datetime, list[WarnedGraph]]] = []

    def warn(
        self, rule: str, action: str, fire_at: datetime, graphs: Sequence[WarnedGraph]
    ) -> None:
        self.calls.append((rule, action, fire_at, list(graphs)))


def report_of(*results: Result, skipped: str = "") -> Report:
    return Report("rule", FIRE, skipped, tuple(results))


async def test_the_warning_lists_only_what_the_dry_run_would_stop_with_links() -> None:
    told = Told()
    seen: list[datetime] = []

    async def preview(config: Config, rule: Schedule, fire_at: datetime) -> Report:
        seen.append(fire_at)
        return report_of(
            Result(decision("dev-a", True), "dry_run", "dry run: would stop"),
            Result(decision("dev-busy", False, "busy: importing"), "skipped", "busy: importing"),
        )

    def link(project: str, graph_id: str, name: str, rule: str, fire_at: datetime) -> str:
        return f"https://g/postpone/{graph_id}/{rule}/{fire_at:%H%M}"

    warnings = Warnings(preview, told, link_for=link)
    assert await warnings.warn(config_of(warned()), warned(), FIRE) == 1
    assert seen == [FIRE]  # the firing's own fire time decides the holiday and the plan
    ((rule, action, fire_at, graphs),) = told.calls
    assert (rule, action, fire_at) == ("rule", "stop", FIRE)
    assert graphs == [
        WarnedGraph("lab", "id-dev-a", "dev-a", "https://g/postpone/id-dev-a/rule/2000")
    ]


async def test_a_firing_that_will_not_act_warns_no_one() -> None:
    told = Told()

    async def holiday(config: Config, rule: Schedule, fire_at: datetime) -> Report:
        return report_of(skipped="holiday: National Day")

    async def crash(config: Config, rule: Schedule, fire_at: datetime) -> Report:
        raise RuntimeError("boom")

    assert (
        await Warnings(holiday, told, link_for=None).warn(config_of(warned()), warned(), FIRE) == 0
    )
    assert await Warnings(crash, told, link_for=None).warn(config_of(warned()), warned(), FIRE) == 0
    assert told.calls == []


async def test_a_500_graph_firing_is_one_message_per_route() -> None:
    results = [Result(decision(f"dev-{i:03}", True), "dry_run", "dry run") for i in range(500)]

    async def preview(config: Config, rule: Schedule, fire_at: datetime) -> Report:
        return report_of(*results)

    async def no_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    async with receiver() as one, receiver() as two, httpx.AsyncClient() as http:
        notifier = Notifier(
            Notifications.model_validate(
                {
                    "channels": {"one": {"type": "slack"}, "two": {"type": "slack"}},
                    "routes": [
                        {"channels": ["one"]},
                        {"channels": ["one", "two"], "match": {"projects": ["lab"]}},
                    ],
                }
            ),
            {
                n: ch.SlackChannel(n, http, url=SecretStr(r.url), clock=lambda: FIRE)
                for n, r in (("one", one), ("two", two))
            },
            metrics=Metrics(CollectorRegistry()),
            sent=MemorySentKeys(),
            clock=lambda: FIRE,
            monotonic=lambda: 0.0,
            sleep=no_sleep,
        )
        notifier.start()
        await Warnings(preview, notifier, link_for=None).warn(config_of(warned()), warned(), FIRE)
        await asyncio.wait_for(notifier.drained(), 5)
        await notifier.close()
    assert (len(one.seen), len(two.seen)) == (2, 1)  # two routes lead to `one`, one to `two`
    assert "and 480 more" in str(two.seen[0].json())


class Warned:
    def __init__(self) -> None:
        self.fire_times: list[datetime] = []
        self.called = asyncio.Event()

    async def __call__(self, config: Config, rule: Schedule, fire_at: datetime) -> None:
        self.fire_times.append(fire_at)
        self.called.set()


async def no_firing(config: Config, rule: Schedule, fire: datetime, until: datetime) -> None:
    return None


def scheduler_at(at: datetime, warned_: Warned) -> tuple[Scheduler, ManualClock]:
    clock = ManualClock(at.astimezone(UTC))
    return Scheduler(no_firing, Metrics(CollectorRegistry()), clock=clock,
                     default_grace=timedelta(hours=1), warning=warned_), clock  # fmt: skip


async def test_at_start_a_warning_inside_its_lead_is_sent_and_one_after_its_stop_is_not() -> None:
    calls = Warned()
    scheduler, _ = scheduler_at(datetime(2026, 11, 27, 19, 55, tzinfo=SHANGHAI), calls)
    scheduler.start(config_of(warned()))  # 5 minutes before the stop: late, but in time
    await asyncio.wait_for(calls.called.wait(), 5)
    assert calls.fire_times == [FIRE]
    await scheduler.stop(0)

    calls = Warned()
    scheduler, _ = scheduler_at(datetime(2026, 11, 27, 20, 1, tzinfo=SHANGHAI), calls)
    scheduler.start(config_of(warned()))  # the stop has come: no warning for it
    await scheduler.warnings.warn("rule", FIRE)
    assert calls.fire_times == []
    await scheduler.stop(0)


async def test_a_reload_giving_a_lead_warns_of_the_stop_just_ahead_once() -> None:
    calls = Warned()
    scheduler, _clock = scheduler_at(datetime(2026, 11, 27, 19, 50, tzinfo=SHANGHAI), calls)
    scheduler.start(config_of(schedule()))
    assert calls.fire_times == []
    scheduler.apply(config_of(warned()))
    await asyncio.wait_for(calls.called.wait(), 5)
    await scheduler.warnings.warn("rule", FIRE)  # the APScheduler job, had it come too: not twice
    assert calls.fire_times == [FIRE]
    scheduler.apply(config_of(schedule()))  # the lead removed: no more warnings
    await scheduler.warnings.warn("rule", FIRE + timedelta(days=3))
    assert calls.fire_times == [FIRE]
    await scheduler.stop(0)


async def test_the_warning_job_coming_due_warns_of_the_stop_one_lead_later() -> None:
    calls = Warned()
    scheduler, clock = scheduler_at(datetime(2026, 11, 27, 19, 45, tzinfo=SHANGHAI), calls)
    scheduler.start(config_of(warned(cron="0 20 * * *")))
    await asyncio.wait_for(calls.called.wait(), 5)  # the start-up catch-up: 19:45 is its time
    assert calls.fire_times == [FIRE]
    # What APScheduler hands the listener when the warning job comes due the next evening
    # (it runs on the wall clock, so the test hands it on itself).
    calls.called.clear()
    clock.advance(24 * 3600)
    due = datetime(2026, 11, 28, 19, 45, tzinfo=SHANGHAI).astimezone(UTC)
    scheduler._on_submitted(JobSubmissionEvent(EVENT_JOB_SUBMITTED, "warn:rule", "default", [due]))
    await asyncio.wait_for(calls.called.wait(), 5)
    assert calls.fire_times == [FIRE, FIRE + timedelta(days=1)]
    await scheduler.stop(0)
