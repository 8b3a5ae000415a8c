"""The periodic passes on the scheduler: inventory, windows and deferrals always, one pass
per idle rule, and reloads that add and remove idle rules keep them in step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from prometheus_client import CollectorRegistry

from daemon.config.models import Config
from daemon.emulator import ManualClock
from daemon.runtime.inventory import Inventory
from daemon.runtime.passes import Passes
from daemon.runtime.periodic import PeriodicPasses
from daemon.runtime.scheduler import Scheduler
from daemon.telemetry.metrics import Metrics
from tests.test_scheduler import CONFIG_BASE

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def config_with_idle_rules(*names: str) -> Config:
    rules = [
        {"name": name, "targets": {"projects": ["p"]}, "idle_for": "1h", "check_every": "5m"}
        for name in names
    ]
    return Config.model_validate({**CONFIG_BASE, "idle_rules": rules})


async def nothing(*args: object, **kwargs: object) -> None:
    return None


def periodic_on(scheduler: Scheduler, config: list[Config]) -> PeriodicPasses:
    # The passes never run here (the scheduler is not started): only what is scheduled counts.
    return PeriodicPasses(
        scheduler,
        cast(Passes, object()),
        cast(Inventory, object()),
        lambda: config[-1],
        inventory_interval_s=600,
        reconcile_interval_s=300,
    )


async def test_idle_rules_get_a_pass_each_in_step_with_reloads() -> None:
    scheduler = Scheduler(
        nothing,
        Metrics(CollectorRegistry()),
        clock=ManualClock(NOW),
        default_grace=timedelta(hours=1),
    )
    configs = [config_with_idle_rules("idle-dev", "idle-test")]
    periodic = periodic_on(scheduler, configs)
    periodic.start(configs[-1])
    assert scheduler.periodic() == {
        "inventory",
        "windows",
        "deferrals",
        "idle:idle-dev",
        "idle:idle-test",
    }
    configs.append(config_with_idle_rules("idle-test", "idle-staging"))
    periodic.apply(configs[-1])  # a reload: idle-dev removed, idle-staging added
    assert scheduler.periodic() == {
        "inventory",
        "windows",
        "deferrals",
        "idle:idle-test",
        "idle:idle-staging",
    }
    periodic.apply(config_with_idle_rules())
    assert scheduler.periodic() == {"inventory", "windows", "deferrals"}
