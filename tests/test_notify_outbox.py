"""The outbox against receivers that are down, slow, answering 500 or 429: retried within
bounds, counted, never blocking the side that enqueues; the queue bound; dedup across a restart."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import cast

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr

from daemon.config.notifications import Delivery
from daemon.domain.hold import Section, SectionName
from daemon.notify import channels as ch
from daemon.notify import message as msg
from daemon.notify.outbox import Outbox
from daemon.notify.sent import MemorySentKeys, StoreSentKeys
from daemon.telemetry.metrics import Metrics
from tests.receivers import Scripted, receiver

NOW = datetime(2026, 3, 10, 11, 45, tzinfo=UTC)
SECTION = cast(SectionName, "notify_sent")  # the section the lead adds to SECTION_NAMES


class Sleeps:
    """The outbox's sleep: records each wait and returns at once (no real sleeping)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


class DictStore:
    """A Store over a dict that outlives the Outbox using it (as a file or ConfigMap does)."""

    def __init__(self) -> None:
        self.sections: dict[SectionName, Section] = {}

    @property
    def where(self) -> str:
        return "test store"

    async def read_all(self) -> dict[SectionName, Section]:
        return dict(self.sections)

    async def write(self, name: SectionName, value: object, *, revision: int | None = None) -> int:
        old = self.sections.get(name, Section(None, 0))
        self.sections[name] = Section(value, old.revision + 1)
        return old.revision + 1


def count(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"no series {name}{labels}"
    return value


def message(n: int = 0, key: str = "") -> msg.Message:
    return msg.Message("summary", f"graphnap: message {n}", (), NOW, rule="r", key=key)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
async def http() -> httpx.AsyncClient:
    async with httpx.AsyncClient() as client:
        yield client


def outbox(channel: ch.Channel, metrics: Metrics, sleeps: Sleeps, **delivery: float) -> Outbox:
    return Outbox(
        channel,
        delivery=Delivery(**delivery),  # type: ignore[arg-type]
        metrics=metrics,
        sent=MemorySentKeys(),
        clock=lambda: NOW,
        sleep=sleeps,
    )


async def run_until_idle(box: Outbox) -> None:
    task = asyncio.create_task(box.run())
    await asyncio.sleep(0)
    await asyncio.wait_for(box.wait_idle(), 5)
    task.cancel()


async def test_a_500_is_retried_with_backoff_and_then_sent(
    http: httpx.AsyncClient, metrics: Metrics
) -> None:
    sleeps = Sleeps()
    async with receiver() as rec:
        rec.script += [Scripted(500, "oops"), Scripted(502, "bad gateway")]
        box = outbox(
            ch.SlackChannel("team", http, url=SecretStr(rec.url), clock=lambda: NOW),
            metrics,
            sleeps,
        )
        box.put(message())
        await run_until_idle(box)
    assert len(rec.seen) == 3
    assert sleeps.waits == [2.0, 4.0]
    assert (
        count(
            metrics, "graphnap_notifications_total", channel="team", kind="summary", outcome="sent"
        )
        == 1
    )


async def test_429_retry_after_is_a_floor_and_capped(
    http: httpx.AsyncClient, metrics: Metrics
) -> None:
    sleeps = Sleeps()
    async with receiver() as rec:
        rec.script += [
            Scripted(429, "rate_limited", {"Retry-After": "45"}),
            Scripted(429, "rate_limited", {"Retry-After": "86400"}),
        ]
        box = outbox(
            ch.SlackChannel("team", http, url=SecretStr(rec.url), clock=lambda: NOW),
            metrics,
            sleeps,
        )
        box.put(message())
        await run_until_idle(box)
    assert sleeps.waits == [45.0, 600.0]  # the receiver's wait, up to retry_after_max_s
    assert (
        count(
            metrics, "graphnap_notifications_total", channel="team", kind="summary", outcome="sent"
        )
        == 1
    )


async def test_a_dead_receiver_is_tried_a_bounded_number_of_times_and_counted(
    http: httpx.AsyncClient, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps = Sleeps()
    url = "http://127.0.0.1:9/services/T000/B000/XXXXsecretXXXX"  # nothing listens on port 9
    box = outbox(
        ch.SlackChannel("team", http, url=SecretStr(url), clock=lambda: NOW),
        metrics,
        sleeps,
        attempts=3,
    )
    caplog.set_level(logging.DEBUG)
    box.put(message())
    await run_until_idle(box)
    assert len(sleeps.waits) == 2
    assert (
        count(
            metrics,
            "graphnap_notifications_total",
            channel="team",
            kind="summary",
            outcome="failed",
        )
        == 1
    )
    assert "attempt 1/3 failed" in caplog.text
    assert "not delivered" in caplog.text
    assert "XXXXsecretXXXX" not in caplog.text
    assert "XXXXsecretXXXX" not in generate_latest(metrics.registry).decode()


async def test_a_refusal_is_not_retried(http: httpx.AsyncClient, metrics: Metrics) -> None:
    sleeps = Sleeps()
    async with receiver() as rec:
        rec.default = Scripted(403, "invalid_token")
        box = outbox(
            ch.SlackChannel("team", http, url=SecretStr(rec.url), clock=lambda: NOW),
            metrics,
            sleeps,
        )
        box.put(message())
        await run_until_idle(box)
    assert len(rec.seen) == 1
    assert sleeps.waits == []
    assert (
        count(
            metrics,
            "graphnap_notifications_total",
            channel="team",
            kind="summary",
            outcome="failed",
        )
        == 1
    )


async def test_a_slow_receiver_never_blocks_the_side_that_enqueues(
    http: httpx.AsyncClient, metrics: Metrics
) -> None:
    release = asyncio.Event()
    sleeps = Sleeps()
    async with receiver() as rec:
        rec.script.append(Scripted(200, "ok", hold=release))
        box = outbox(
            ch.SlackChannel("team", http, url=SecretStr(rec.url), clock=lambda: NOW),
            metrics,
            sleeps,
        )
        task = asyncio.create_task(box.run())
        box.put(message(0))
        await rec.wait_for(1)  # the first delivery hangs in the receiver
        for n in range(1, 50):  # a firing's worth of messages: each put returns at once
            box.put(message(n))
        assert len(box) == 49
        assert count(metrics, "graphnap_notification_queue", channel="team") == 49
        release.set()
        await asyncio.wait_for(box.wait_idle(), 5)
        task.cancel()
    assert [s.json()["text"] for s in rec.seen][:3] == [f"graphnap: message {n}" for n in range(3)]
    assert count(metrics, "graphnap_notification_queue", channel="team") == 0


async def test_a_full_queue_drops_the_oldest_and_counts_it(
    http: httpx.AsyncClient, metrics: Metrics
) -> None:
    sleeps = Sleeps()
    async with receiver() as rec:
        box = outbox(
            ch.SlackChannel("team", http, url=SecretStr(rec.url), clock=lambda: NOW),
            metrics,
            sleeps,
            queue=2,
        )
        for n in range(5):  # no worker yet: nothing leaves the queue
            box.put(message(n))
        assert len(box) == 2
        await run_until_idle(box)
    assert [s.json()["text"] for s in rec.seen] == ["graphnap: message 3", "graphnap: message 4"]
    assert (
        count(metrics, "graphnap_notifications_dropped_total", channel="team", kind="summary") == 3
    )


async def test_a_keyed_message_is_sent_once_even_across_a_restart(
    http: httpx.AsyncClient, metrics: Metrics
) -> None:
    store = DictStore()
    sleeps = Sleeps()
    async with receiver() as rec:
        channel = ch.SlackChannel("team", http, url=SecretStr(rec.url), clock=lambda: NOW)
        for _ in range(2):  # two processes, one after the other, over the same store
            sent = StoreSentKeys(store, SECTION)
            await sent.load()
            box = Outbox(
                channel,
                delivery=Delivery(),
                metrics=metrics,
                sent=sent,
                clock=lambda: NOW,
                sleep=sleeps,
            )
            box.put(message(1, key="warning/night/2026-03-10T20:00+08:00/r1"))
            box.put(message(1, key="warning/night/2026-03-10T20:00+08:00/r1"))  # queued: not twice
            await run_until_idle(box)
    assert len(rec.seen) == 1
    assert (
        count(
            metrics,
            "graphnap_notifications_total",
            channel="team",
            kind="summary",
            outcome="deduplicated",
        )
        == 3
    )
    assert list(cast(dict[str, str], store.sections[SECTION].value)) == [
        "team/warning/night/2026-03-10T20:00+08:00/r1"
    ]


async def test_put_never_raises(metrics: Metrics) -> None:
    class Broken:
        def has(self, key: str) -> bool:
            raise RuntimeError("store bug")

        async def add(self, key: str, at: datetime) -> None:
            raise RuntimeError("store bug")

    async with httpx.AsyncClient() as http:
        channel = ch.SlackChannel(
            "team", http, url=SecretStr("http://127.0.0.1:9/"), clock=lambda: NOW
        )
        box = Outbox(
            channel,
            delivery=Delivery(),
            metrics=metrics,
            sent=Broken(),
            clock=lambda: NOW,
            sleep=Sleeps(),
        )
        box.put(message(1, key="k"))  # logged, not raised: the caller's action goes on
