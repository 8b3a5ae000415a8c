"""Retries: the policy a user sets in GRAPHNAP_RETRY__* is the one every client follows
(one type, RetrySettings, from the settings to the backoff), and each retry is logged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from daemon.cloud.clients import Clients
from daemon.cloud.errors import RetryableError
from daemon.config.loader import parse_config
from daemon.config.settings import Settings
from daemon.telemetry.metrics import Metrics
from tests.loopback import serve

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class FakeTime:
    """A monotonic clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
async def unavailable() -> AsyncIterator[tuple[str, list[str]]]:
    """A gateway that answers every request 503 and remembers the paths asked for."""
    asked: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.json_response({"error_code": "APIG.1009", "error_msg": "busy"}, status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    async with serve(app) as url:
        yield url, asked


async def test_the_retry_settings_are_what_a_projects_clients_follow(
    unavailable: tuple[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    endpoint, asked = unavailable
    settings = Settings(
        credentials={"lab": {"ak": "HPUAXYZ1234567890ABC", "sk": "sk-never-sent"}},  # type: ignore[dict-item]
        retry={
            "attempts": 3,
            "backoff_initial_s": 0.5,
            "backoff_max_s": 0.75,
            "backoff_jitter_s": 0,
        },  # type: ignore[arg-type]
    )
    config = parse_config(
        "projects:\n  - {name: lab, region: cn-north-4, project_id: abc123, credentials: lab,"
        f" endpoints: {{ges: '{endpoint}', ces: '{endpoint}'}}}}\n"
    )
    fake = FakeTime()
    clients = Clients(
        settings,
        Metrics(CollectorRegistry()),
        clock=lambda: NOW,
        monotonic=fake.monotonic,
        sleep=fake.sleep,
    )
    clients.update(config)
    caplog.set_level(logging.WARNING, logger="daemon.cloud.retries")
    try:
        with pytest.raises(RetryableError, match=r"APIG\.1009"):
            await clients.graph_apis()["lab"].list_graphs()
    finally:
        await clients.close()
    assert len(asked) == 3  # attempts
    assert fake.slept == [0.5, 0.75]  # 0.5, then 1.0 capped at backoff_max_s
    assert [r.getMessage().split(": ", 1)[1][:13] for r in caplog.records] == [
        "attempt 1/3 f",
        "attempt 2/3 f",
    ]
