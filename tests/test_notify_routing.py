"""The notifier: routes pick the channels for a graph's project, rule, tags and kind; a
500-graph firing is one message per route; summaries wait for the firing to settle; the
config's notifications: section and its located errors; channel secrets from files."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError

from daemon.config.loader import ConfigError, parse_config
from daemon.config.notifications import Notifications, RuleNotify
from daemon.config.settings import Settings
from daemon.notify import channels as ch
from daemon.notify.message import WarnedGraph
from daemon.notify.notifier import Notifier
from daemon.notify.sent import MemorySentKeys
from daemon.telemetry.metrics import Metrics
from tests.receivers import Receiver, receiver

NOW = datetime(2026, 3, 10, 11, 45, tzinfo=UTC)
FIRE = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FakeOutcome:
    at: datetime
    project: str
    graph_id: str
    graph: str
    rule: str
    action: str
    outcome: str
    reason: str = ""
    failure: str = ""


class Monotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


ROUTES = {
    "channels": {
        "all": {"type": "slack"},
        "search": {"type": "slack"},
        "failures": {"type": "slack"},
    },
    "routes": [
        {"channels": ["all"], "match": {"projects": ["analytics"]}},
        {
            "channels": ["search"],
            "match": {"tags": {"team": "search"}, "kinds": ["warning", "summary"]},
        },
        {"channels": ["failures"], "match": {"kinds": "failure", "rules": ["night"]}},
    ],
}
TAGS = {("analytics", "g1"): {"team": "search"}, ("analytics", "g2"): {"team": "ads"}}


async def notifier_with(
    receivers: dict[str, Receiver],
    http: httpx.AsyncClient,
    config: dict[str, object],
    monotonic: Monotonic,
) -> Notifier:
    channels = {
        name: ch.SlackChannel(name, http, url=SecretStr(rec.url), clock=lambda: NOW)
        for name, rec in receivers.items()
    }

    async def no_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    notifier = Notifier(
        Notifications.model_validate(config),
        channels,
        metrics=Metrics(CollectorRegistry()),
        sent=MemorySentKeys(),
        clock=lambda: NOW,
        monotonic=monotonic,
        sleep=no_sleep,
        idle_rules=["idle-dev"],
        tags=lambda project, graph_id: TAGS.get((project, graph_id)),
    )
    return notifier


@pytest.fixture
async def http() -> httpx.AsyncClient:
    async with httpx.AsyncClient() as client:
        yield client


async def test_routes_pick_channels_by_project_tags_rule_and_kind(http: httpx.AsyncClient) -> None:
    mono = Monotonic()
    async with receiver() as all_, receiver() as search, receiver() as failures:
        recs = {"all": all_, "search": search, "failures": failures}
        notifier = await notifier_with(recs, http, ROUTES, mono)
        notifier.start()
        notifier.warn(
            "night",
            "stop",
            FIRE,
            [
                WarnedGraph("analytics", "g1", "search-1", "https://ctl/p/g1", {"team": "search"}),
                WarnedGraph("analytics", "g2", "ads-1", "https://ctl/p/g2", {"team": "ads"}),
            ],
        )
        notifier.on_outcome(
            FakeOutcome(
                NOW, "analytics", "g2", "ads-1", "night", "stop", "failed", "boom", "GES.9999"
            )
        )
        notifier.on_outcome(
            FakeOutcome(NOW, "analytics", "g1", "search-1", "night", "stop", "succeeded")
        )
        mono.now += 60  # settled: the summary and the failure are due
        notifier.tick()
        await asyncio.wait_for(notifier.drained(), 5)
        await notifier.close()
    texts = {name: [s.json()["text"] for s in rec.seen] for name, rec in recs.items()}
    assert texts["all"] == [
        "graphnap: night will stop 2 graphs at 20:00 +0000",
        "graphnap: night: stop failed for 1 graph",
        "graphnap: night: stopped 1, failed 1 (GES.9999 x1)",
    ]
    # The team's channel hears of its own graph only, and no failures (not its kinds).
    assert texts["search"] == [
        "graphnap: night will stop 1 graph at 20:00 +0000",
        "graphnap: night: stopped 1",
    ]
    assert "search-1" in str(search.seen[0].json())
    assert "ads-1" not in str(search.seen[0].json())
    assert texts["failures"] == ["graphnap: night: stop failed for 1 graph"]


async def test_a_500_graph_firing_is_one_message_per_route(http: httpx.AsyncClient) -> None:
    mono = Monotonic()
    config = {"channels": {"all": {"type": "slack"}}, "routes": [{"channels": ["all"]}]}
    async with receiver() as rec:
        notifier = await notifier_with({"all": rec}, http, config, mono)
        notifier.start()
        for i in range(500):
            o = FakeOutcome(NOW, "analytics", f"g{i}", f"dev-{i:03d}", "night", "stop", "requested")
            notifier.on_outcome(o)
        mono.now += 60
        notifier.tick()  # jobs still running: the summary waits for them
        for i in range(500):
            o = FakeOutcome(NOW, "analytics", f"g{i}", f"dev-{i:03d}", "night", "stop", "succeeded")
            notifier.on_outcome(o)
        mono.now += 29
        notifier.tick()  # not settled yet
        mono.now += 1
        notifier.tick()
        await asyncio.wait_for(notifier.drained(), 5)
        await notifier.close()
    [seen] = rec.seen
    body = seen.json()
    assert body["text"] == "graphnap: night: stopped 500"
    assert "and 480 more" in body["blocks"][1]["text"]["text"]


async def test_a_pass_that_only_skipped_says_nothing(http: httpx.AsyncClient) -> None:
    mono = Monotonic()
    config = {"channels": {"all": {"type": "slack"}}, "routes": [{"channels": ["all"]}]}
    async with receiver() as rec:
        notifier = await notifier_with({"all": rec}, http, config, mono)
        notifier.start()
        notifier.on_outcome(
            FakeOutcome(NOW, "analytics", "g1", "a", "night", "stop", "skipped", "already stopped")
        )
        mono.now += 60
        notifier.tick()
        await notifier.close()
    assert rec.seen == []


async def test_idle_rule_stops_are_their_own_kind(http: httpx.AsyncClient) -> None:
    mono = Monotonic()
    config = {
        "channels": {"all": {"type": "slack"}},
        "routes": [{"channels": ["all"], "match": {"kinds": ["idle_stop"]}}],
    }
    async with receiver() as rec:
        notifier = await notifier_with({"all": rec}, http, config, mono)
        notifier.start()
        notifier.on_outcome(FakeOutcome(NOW, "analytics", "g1", "a", "night", "stop", "succeeded"))
        notifier.on_outcome(
            FakeOutcome(NOW, "analytics", "g2", "b", "idle-dev", "stop", "succeeded")
        )
        notifier.on_outcome(
            FakeOutcome(
                NOW,
                "analytics",
                "g3",
                "c",
                "night",
                "stop",
                "skipped",
                "not stopped: still in use after 3h (12 requests)",
            )
        )
        mono.now += 60
        notifier.tick()
        await asyncio.wait_for(notifier.drained(), 5)
        await notifier.close()
    assert [s.json()["text"] for s in rec.seen] == ["graphnap: idle-dev: stopped 1"]


# --- config -----------------------------------------------------------------------------------

BASE = """
projects:
  - {name: analytics, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdef, credentials: analytics}
schedules:
  - {name: night, action: stop, cron: "0 20 * * *", timezone: Asia/Shanghai, targets: {projects: [analytics]}}
"""


def test_the_notifications_section_parses_with_each_channel_type() -> None:
    config = parse_config(
        BASE
        + """
notifications:
  channels:
    hook: {type: webhook}
    huawei: {type: smn, project: analytics, topic_urn: "urn:smn:cn-north-4:0123456789abcdef0123456789abcdef:graphnap"}
    slack: {type: slack}
    wecom: {type: wecom}
    ding: {type: dingtalk}
    lark: {type: feishu, signed: false}
  routes:
    - channels: [hook, huawei, slack, wecom, ding, lark]
"""
    )
    assert set(config.notifications.channels) == {
        "hook",
        "huawei",
        "slack",
        "wecom",
        "ding",
        "lark",
    }
    assert config.notifications.problems(projects=["analytics"], rules=["night"]) == []


def test_an_unknown_channel_type_is_a_located_error() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(BASE + "notifications:\n  channels:\n    x: {type: teams}\n")
    assert "notifications.channels.x" in refused.value.render()


def test_unknown_channels_and_routes_to_nothing_are_located() -> None:
    notifications = Notifications.model_validate(
        {
            "channels": {"slack": {"type": "slack"}, "spare": {"type": "slack"}},
            "routes": [
                {"channels": ["slack", "slak"]},
                {"channels": ["slack"], "match": {"projects": ["analytcs"], "rules": ["nigth"]}},
            ],
        }
    )
    problems = {
        p.loc: p.message for p in notifications.problems(projects=["analytics"], rules=["night"])
    }
    assert problems == {
        ("notifications", "routes", 0, "channels", 1): "unknown channel 'slak'",
        (
            "notifications",
            "routes",
            1,
            "match",
            "projects",
            0,
        ): "unknown project 'analytcs': this route matches nothing",
        (
            "notifications",
            "routes",
            1,
            "match",
            "rules",
            0,
        ): "unknown rule 'nigth': this route matches nothing",
        (
            "notifications",
            "channels",
            "spare",
        ): "no route leads to this channel: it would never get a message",
    }


def test_a_route_with_no_channel_is_refused() -> None:
    with pytest.raises(ValidationError):
        Notifications.model_validate({"routes": [{"channels": []}]})


@pytest.mark.parametrize("lead", ["30s", "2d", "15", "soon"])
def test_a_bad_lead_time_is_refused(lead: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RuleNotify.model_validate({"before": lead})
    assert refused.value.errors()[0]["loc"] == ("before",)


def test_a_lead_time_is_a_duration() -> None:
    assert RuleNotify.model_validate({"before": "15m"}).before == timedelta(minutes=15)


def test_channel_secrets_come_from_files_and_stay_out_of_reprs(tmp_path: Path) -> None:
    (tmp_path / "notify.team-chat.url").write_text(
        "https://hooks.slack.com/services/T0/B0/XYZsecret\n"
    )
    (tmp_path / "notify.ding.secret").write_text("SECdingsecret")
    for file in tmp_path.iterdir():
        file.chmod(0o600)
    settings = Settings(secrets_dir=tmp_path)
    assert settings.notify_secret("team-chat").url == SecretStr(
        "https://hooks.slack.com/services/T0/B0/XYZsecret"
    )
    assert settings.notify_secret("ding").secret == SecretStr("SECdingsecret")
    assert "XYZsecret" not in repr(settings)
    assert "SECdingsecret" not in repr(settings)
    assert "SECdingsecret" in settings.secret_values()  # what cloud error texts are cleaned of
