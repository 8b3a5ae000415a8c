"""The daily digest: due once a day at `at` in its zone about that zone's yesterday, sent late
the same day by a daemon that was down at `at` but never as a backlog; what it says in each
channel (the webhook's figures as numbers, chat channels as short text); routes by project;
the config's `notifications.digest` and its located errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from daemon.config.loader import ConfigError, parse_config
from daemon.config.notifications import DigestSchedule, Notifications
from daemon.notify import channels as ch
from daemon.notify.digest import DailyDigest
from daemon.notify.ledger import Ledger
from daemon.notify.message import ProjectDay, digest
from daemon.notify.notifier import Notifier
from daemon.notify.sent import MemorySentKeys
from daemon.telemetry.metrics import Metrics
from tests.receivers import receiver

BERLIN = ZoneInfo("Europe/Berlin")
SCHEDULE = DigestSchedule(at=time(9, 0), timezone="Europe/Berlin")
DAY = date(2026, 11, 27)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def daily(since: date = date(2026, 11, 1)) -> tuple[DailyDigest, Ledger]:
    ledger = Ledger(None, zone=lambda: BERLIN, monotonic=lambda: 0.0)
    ledger.since = since
    return DailyDigest(ledger, projects=lambda: ["lab", "search"], currency=lambda: "EUR"), ledger


# --- when -------------------------------------------------------------------------------------


def test_due_once_a_day_at_its_time_for_the_zones_yesterday() -> None:
    sender, _ = daily()
    assert sender.due(SCHEDULE, at(28, 8, 59)) is None
    assert sender.due(SCHEDULE, at(28, 9, 0)) == DAY
    sender.done(DAY)
    assert sender.due(SCHEDULE, at(28, 9, 1)) is None
    assert sender.due(SCHEDULE, at(28, 23, 59)) is None
    assert sender.due(SCHEDULE, at(29, 9, 0)) == date(2026, 11, 28)
    # 08:30 UTC on the 28th is 09:30 in Berlin: due there, though UTC has not reached 09:00.
    fresh, _ = daily()
    assert fresh.due(SCHEDULE, datetime(2026, 11, 28, 8, 30, tzinfo=UTC)) == DAY


def test_a_daemon_down_at_its_time_sends_it_when_back_that_day_and_no_backlog() -> None:
    sender, _ = daily()
    assert sender.due(SCHEDULE, at(28, 14, 0)) == DAY  # back at 14:00: sent then
    down_for_days, _ = daily()
    # Down from the 25th to the 29th at 10:00: one digest, about the 28th, not four.
    assert down_for_days.due(SCHEDULE, at(29, 10, 0)) == date(2026, 11, 28)
    down_for_days.done(date(2026, 11, 28))
    assert down_for_days.due(SCHEDULE, at(29, 10, 1)) is None


def test_no_digest_for_a_day_before_counting_began() -> None:
    sender, _ = daily(since=date(2026, 11, 28))  # first started on the 28th
    assert sender.due(SCHEDULE, at(28, 15, 0)) is None
    assert sender.due(SCHEDULE, at(29, 9, 0)) == date(2026, 11, 28)


# --- what it says -----------------------------------------------------------------------------

ROWS = [
    ProjectDay("lab", {"EUR": 41.254}, stopped=3, failed=1, total={"EUR": 512.5}),
    ProjectDay("search", {"EUR": 0.0}, stopped=0, failed=0, total={"EUR": 12.0}),
]


def test_the_digest_says_savings_stops_failures_and_totals_per_project_and_fleet() -> None:
    message = digest(
        DAY, "Europe/Berlin", ROWS, since=date(2026, 11, 1), at=at(28, 9), max_items=20, key="k"
    )
    assert message.kind == "digest"
    assert message.title == "graphnap: digest for 2026-11-27 (Europe/Berlin): saved 41.25 EUR"
    assert message.lines() == [
        "Per project:",
        "- lab: saved 41.25 EUR; 3 graphs stopped, 1 stop failed; 512.50 EUR since 2026-11-01",
        "- search: saved 0.00 EUR; 0 graphs stopped; 12.00 EUR since 2026-11-01",
        "Fleet:",
        "- saved 41.25 EUR; 3 graphs stopped, 1 stop failed; 524.50 EUR since 2026-11-01",
    ]


async def test_each_channel_renders_it_the_webhook_with_numbers() -> None:
    message = digest(
        DAY, "Europe/Berlin", ROWS, since=date(2026, 11, 1), at=at(28, 9), max_items=20, key="k"
    )
    async with httpx.AsyncClient() as http:
        hook = ch.WebhookChannel("hook", http, url=None, clock=lambda: at(28, 9))
        data = hook.event(message)["data"]
        slack = ch.SlackChannel("chat", http, url=None, clock=lambda: at(28, 9))
        wecom = ch.WecomChannel("wecom", http, url=None, clock=lambda: at(28, 9))
        slack_text = str(slack.payload(message))
        wecom_text = wecom.payload(message)["markdown"]["content"]
    assert hook.event(message)["type"] == "io.graphnap.digest"
    assert data["day"] == "2026-11-27"
    assert data["projects"][0] == {
        "project": "lab",
        "saved": {"EUR": 41.25},
        "stopped": 3,
        "stop_failures": 1,
        "total_saved": {"EUR": 512.5},
    }
    assert data["fleet"] == {
        "saved": {"EUR": 41.25},
        "stopped": 3,
        "stop_failures": 1,
        "total_saved": {"EUR": 524.5},
    }
    assert "• lab: saved 41.25 EUR; 3 graphs stopped, 1 stop failed" in slack_text
    assert "- lab: saved 41.25 EUR; 3 graphs stopped, 1 stop failed" in wecom_text
    assert len(wecom_text) < 600  # short and readable


async def test_routes_get_the_digest_of_their_projects_once_a_day() -> None:
    config = Notifications.model_validate(
        {
            "channels": {
                "all": {"type": "slack"},
                "lab": {"type": "slack"},
                "x": {"type": "slack"},
            },
            "routes": [
                {"channels": ["all"], "match": {"kinds": ["digest"]}},
                {"channels": ["lab"], "match": {"projects": ["lab"], "kinds": "digest"}},
                {"channels": ["x"], "match": {"kinds": ["summary"]}},
            ],
            "digest": {"at": "09:00", "timezone": "Europe/Berlin"},
        }
    )
    sender, ledger = daily()
    ledger.savings("lab", "EUR", 5.0, at(27, 10), at(27, 12))
    now = at(28, 9, 0)

    async def no_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    async with receiver() as rec, httpx.AsyncClient() as http:
        channels = {
            name: ch.SlackChannel(
                name, http, url=SecretStr(f"{rec.url}?to={name}"), clock=lambda: now
            )
            for name in ("all", "lab", "x")
        }
        notifier = Notifier(
            config, channels, metrics=Metrics(CollectorRegistry()), sent=MemorySentKeys(),
            clock=lambda: now, monotonic=lambda: 0.0, sleep=no_sleep, daily=sender,
        )  # fmt: skip
        notifier.start()
        try:
            notifier.tick()
            notifier.tick()  # the next second: already told
            await rec.wait_for(2)
            await asyncio.wait_for(notifier.drained(), 5)
        finally:
            await notifier.close(1)
    texts = {s.query["to"]: s.json()["blocks"][1]["text"]["text"] for s in rec.seen}
    assert set(texts) == {"all", "lab"}
    assert "search" in texts["all"]
    assert "lab: saved 5.00 EUR" in texts["all"]
    assert "search" not in texts["lab"]


# --- config -----------------------------------------------------------------------------------

BASE = """
projects:
  - {name: lab, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdef, credentials: lab}
notifications:
  channels: {chat: {type: slack}}
  routes: [{channels: [chat], match: {kinds: [digest]}}]
"""


def test_the_digest_schedule_parses_and_is_off_when_absent() -> None:
    config = parse_config(BASE + '  digest: {at: "09:00", timezone: Europe/Berlin}\n')
    assert config.notifications.digest == DigestSchedule(at=time(9, 0), timezone="Europe/Berlin")
    assert Notifications().digest is None


@pytest.mark.parametrize(
    ("digest_line", "where", "says"),
    [
        (
            'digest: {at: "9am"}',
            "line 7: notifications.digest.at:",
            "not a time of day: '9am'; give hours and minutes on a 24-hour clock, e.g. \"09:00\"",
        ),
        ('digest: {at: "24:00"}', "line 7: notifications.digest.at:", "not a time of day"),
        (
            "digest: {at: 9:30}",  # YAML 1.1: the number 570
            "line 7: notifications.digest.at:",
            'a time of day is text: write it in quotes, e.g. at: "09:30"',
        ),
        (
            'digest: {at: "09:00", timezone: Europe/Berln}',
            "line 7: notifications.digest.timezone:",
            "unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)",
        ),
        (
            'digest: {at: "09:00", when: daily}',
            "line 7: notifications.digest.when:",
            "unknown",
        ),
        (
            "",
            "line 6: notifications.routes[0].match.kinds:",
            "this route takes the digest, but no digest is sent",
        ),
    ],
)
def test_a_bad_digest_config_is_located(digest_line: str, where: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(BASE + (f"  {digest_line}\n" if digest_line else ""))
    text = refused.value.render()
    assert where in text
    assert says in text


def test_a_digest_route_matching_rules_or_tags_is_located() -> None:
    notifications = Notifications.model_validate(
        {
            "channels": {"chat": {"type": "slack"}},
            "routes": [{"channels": ["chat"], "match": {"kinds": ["digest"], "rules": ["night"]}}],
            "digest": {"at": "09:00"},
        }
    )
    [problem] = notifications.problems(projects=["lab"], rules=["night"])
    assert problem.loc == ("notifications", "routes", 0, "match", "kinds")
    assert "never gets it" in problem.message
