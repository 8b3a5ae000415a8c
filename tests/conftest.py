"""Shared fixtures: an emulated cloud on a manual clock, served over real HTTP on loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from daemon.cloud.auth import AkSkAuth, TokenAuth, TokenProvider
from daemon.cloud.ges import GesClient
from daemon.config.settings import RetrySettings
from daemon.emulator import Cloud, EmulatorServer, ManualClock, Timing
from daemon.emulator.cloud import (
    DEMO_AK,
    DEMO_DOMAIN,
    DEMO_PASSWORD,
    DEMO_PROJECT_ID,
    DEMO_SK,
    DEMO_USER,
)

PROJECT = DEMO_PROJECT_ID
FAST_RETRY = RetrySettings(
    attempts=4, backoff_initial_s=1.0, backoff_max_s=8.0, backoff_jitter_s=0.5
)


@pytest.fixture
def clock() -> ManualClock:
    # Near the real time, so Huawei's SDK (which signs with the wall clock) is within 15 min.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def cloud(clock: ManualClock) -> Cloud:
    return Cloud(
        [PROJECT],
        clock=clock,
        seed=7,
        timing=Timing(pending_s=2, stop_s=10, start_s=20),
        access_keys={DEMO_AK: DEMO_SK},
        users={(DEMO_DOMAIN, DEMO_USER): DEMO_PASSWORD},
    )


@pytest.fixture
async def emulator(cloud: Cloud) -> AsyncIterator[str]:
    async with EmulatorServer(cloud, "127.0.0.1", 0) as server:
        yield server.url


@pytest.fixture
async def http_aksk(emulator: str, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    auth = AkSkAuth(SecretStr(DEMO_AK), SecretStr(DEMO_SK), project_id=PROJECT, clock=clock)
    async with httpx.AsyncClient(
        base_url=emulator, auth=auth, headers={"Content-Type": "application/json"}
    ) as http:
        yield http


@pytest.fixture
async def http_token(emulator: str, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as iam_http:
        provider = TokenProvider(
            iam_http,
            iam_endpoint=emulator,
            user=DEMO_USER,
            password=SecretStr(DEMO_PASSWORD),
            domain=DEMO_DOMAIN,
            project_id=PROJECT,
            clock=clock,
        )
        async with httpx.AsyncClient(
            base_url=emulator,
            auth=TokenAuth(provider, PROJECT),
            headers={"Content-Type": "application/json"},
        ) as http:
            yield http


@pytest.fixture
def ges_factory(clock: ManualClock) -> Callable[[httpx.AsyncClient], GesClient]:
    """A client whose retry sleeps move the emulator's clock instead of waiting."""

    def make(http: httpx.AsyncClient) -> GesClient:
        return GesClient(http, PROJECT, retry=FAST_RETRY, sleep=clock.sleep, page_size=7)

    return make


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands run in-process (`main([...])`) set up logging for a terminal; each test
    starts from, and leaves, the logging it found."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
