"""The real daemon (App) against the emulator over loopback HTTP, on a manual clock: the
fixtures and helpers every pass's test file shares.

Firings are triggered the way the scheduler triggers them (App.fire / the catch-up at
start-up); the tracker's polling sleeps move the emulator's clock instead of waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.app import App
from daemon.config.settings import Settings
from daemon.domain.model import Sleep
from daemon.emulator import Cloud, ManualClock
from daemon.emulator.cloud import DEMO_AK, DEMO_DOMAIN, DEMO_PASSWORD, DEMO_SK, DEMO_USER
from daemon.emulator.graphs import EmuGraph
from tests.conftest import PROJECT
from tests.conftest import sample as registry_sample

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 18:00 in Shanghai on a Friday: two hours before the nightly stop, far from any catch-up.


START = datetime(2026, 11, 27, 18, 0, tzinfo=SHANGHAI).astimezone(UTC)


CONFIG = """
projects:
  - name: lab
    region: cn-north-4
    project_id: {project}
    credentials: lab
    endpoints: {{ges: "{url}", iam: "{url}", ces: "{url}"}}
schedules:
  - name: night-stop
    action: stop
    cron: "0 20 * * *"
    timezone: Asia/Shanghai
    targets: {{projects: [lab], names: ["dev-*", "test-*"]}}
    exclude: {{names: ["*-keep"]}}
    keep_stopped_until: "0 8 * * *"
  - name: morning-start
    action: start
    cron: "0 8 * * *"
    timezone: Asia/Shanghai
    targets: {{projects: [lab], tags: {{env: dev}}}}
pricing: {{currency: USD, hourly: {{"1": 1.25, "4": 12.0}}}}
"""


MakeApp = Callable[..., App]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def config_file(tmp_path: Path, emulator: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(project=PROJECT, url=emulator))
    return path


@pytest.fixture
async def make_app(config_file: Path, clock: ManualClock) -> AsyncIterator[MakeApp]:
    apps: list[App] = []

    def make(*, auth: str = "aksk", sleep: Sleep | None = None, **overrides: object) -> App:
        credentials = (
            {"lab": {"ak": DEMO_AK, "sk": DEMO_SK}}
            if auth == "aksk"
            else {"lab": {"user": DEMO_USER, "password": DEMO_PASSWORD, "domain": DEMO_DOMAIN}}
        )
        overrides.setdefault("config", config_file)
        settings = Settings(
            listen_host="127.0.0.1",
            listen_port=0,
            credentials=credentials,
            project_rate_per_s=1000,
            project_rate_initial_per_s=1000,
            poll_initial_s=5,
            poll_max_s=15,
            retry={
                "attempts": 4,
                "backoff_initial_s": 1,
                "backoff_max_s": 4,
                "backoff_jitter_s": 0,
            },
            **overrides,
        )  # type: ignore[arg-type]
        app = App(settings, clock=clock, sleep=sleep or clock.sleep)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.shutdown()


@pytest.fixture
def lab(cloud: Cloud) -> dict[str, EmuGraph]:
    """A project with one graph for every case a firing meets."""
    g = {
        "dev-a": cloud.add_graph(PROJECT, "dev-a", tags={"env": "dev"}),
        "dev-b": cloud.add_graph(
            PROJECT, "dev-b", size_index="4", replication=2, tags={"env": "dev"}
        ),
        "test-c": cloud.add_graph(PROJECT, "test-c"),
        "dev-busy": cloud.add_graph(PROJECT, "dev-busy", status=202, tags={"env": "dev"}),
        "dev-stopped": cloud.add_graph(PROJECT, "dev-stopped", status=900, tags={"env": "dev"}),
        "dev-db-keep": cloud.add_graph(PROJECT, "dev-db-keep", tags={"env": "dev"}),
        "dev-opt": cloud.add_graph(
            PROJECT, "dev-opt", tags={"env": "dev", "graphnap-skip": "ask bob"}
        ),
        "dev-snoozed": cloud.add_graph(
            PROJECT, "dev-snoozed", tags={"graphnap-snooze-until": "2026-12-01T09:00:00+08:00"}
        ),
        "prod-x": cloud.add_graph(PROJECT, "prod-x", tags={"env": "prod"}),
    }
    return g


def sample(app: App, metric: str, /, **labels: str) -> float:
    return registry_sample(app.registry, metric, **labels)


def actions(app: App, outcome: str, *, rule: str = "night-stop", action: str = "stop") -> float:
    """graphnap_actions_total for the lab project."""
    return sample(
        app, "graphnap_actions_total", project="lab", rule=rule, action=action, outcome=outcome
    )


def failures(app: App, reason: str) -> float:
    """graphnap_action_failures_total of stops in the lab project."""
    return sample(
        app, "graphnap_action_failures_total", project="lab", action="stop", reason=reason
    )


async def never(seconds: float) -> None:
    """A tracker sleep that never ends: jobs stay in flight for as long as the test needs."""
    await asyncio.Future()


def statuses(cloud: Cloud) -> dict[str, int]:
    return {g.name: g.status for g in cloud.all_graphs()}


async def start(app: App, **kwargs: bool) -> App:
    await app.start(**{"serve": False, "schedule": False, "watch": False, **kwargs})
    return app


async def app_that_loses_lab_at_its_first_wait(
    make_app: MakeApp, config_file: Path, clock: ManualClock
) -> tuple[App, list[bool]]:
    """An app whose first sleep (a retry after a 429) reloads a config without `lab`
    (renamed `other`); the list records whether that reload took."""
    original = config_file.read_text()
    reloaded: list[bool] = []

    async def sleep(seconds: float) -> None:
        if not reloaded:
            config_file.write_text(
                original.replace("name: lab", "name: other").replace("[lab]", "[other]")
            )
            reloaded.append(await app.source.reload())
        await clock.sleep(seconds)

    app = await start(make_app(sleep=sleep, project_concurrency=1))
    return app, reloaded
