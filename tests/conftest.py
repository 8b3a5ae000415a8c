"""Shared fixtures: an emulated cloud on a manual clock, served over real HTTP on loopback."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
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
from daemon.telemetry.metrics import Metrics

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


# --- reading metrics: a misspelt name fails, a never-counted series is 0 -----------------

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


@functools.cache
def _declared() -> dict[str, MetricWrapperBase]:
    """graphnap's metric families by name, on a registry of their own: what each accepts."""
    metrics = Metrics(CollectorRegistry())
    return {
        family.name: wrapper
        for wrapper in vars(metrics).values()
        if isinstance(wrapper, MetricWrapperBase)
        for family in wrapper.describe()
    }


def sample(registry: CollectorRegistry, metric: str, /, **labels: str) -> float:
    """The value of one series; 0 for a series never set of a family that exists with
    exactly these label names. A metric or label name the registry does not have fails."""
    family = next(
        (
            f
            for f in registry.collect()
            if metric in {f.name + suffix for suffix in _SUFFIXES.get(f.type, ("",))}
        ),
        None,
    )
    if family is None:
        raise AssertionError(f"no metric {metric!r} in the registry (misspelt?)")
    names = set(labels) - ({"le"} if metric.endswith("_bucket") else set())
    wrapper = _declared().get(family.name)
    if wrapper is not None and names:
        try:
            wrapper.labels(**dict.fromkeys(names, "x"))  # checks the names, on its own registry
        except ValueError:
            raise AssertionError(f"{metric} has no label set {sorted(names)}") from None
    elif wrapper is not None and not any(
        not s.labels for f in wrapper.collect() for s in f.samples
    ):
        raise AssertionError(f"{metric} is labelled: name its labels")
    elif wrapper is None and not any(set(s.labels) == set(labels) for s in family.samples):
        raise AssertionError(f"{metric} has no series with labels {sorted(labels)}")
    value = registry.get_sample_value(metric, labels)
    return 0.0 if value is None else value
