"""The periodic passes beside the schedules' firings, on the same scheduler: inventory,
keep-stopped windows, deferred stops, and one pass per idle rule every `check_every`, kept
in step with reloads. Each pass runs with the config in force when it starts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from daemon.config.models import Config
from daemon.runtime.inventory import Inventory
from daemon.runtime.passes import Passes
from daemon.runtime.scheduler import Scheduler

DEFERRAL_CHECK_S = 60.0  # how often deferred stops are looked at (each has its check_every)


class PeriodicPasses:
    def __init__(
        self,
        scheduler: Scheduler,
        passes: Passes,
        inventory: Inventory,
        config: Callable[[], Config],
        *,
        inventory_interval_s: float,
        reconcile_interval_s: float,
    ) -> None:
        self._scheduler = scheduler
        self._passes = passes
        self._inventory = inventory
        self._config = config
        self._inventory_interval_s = inventory_interval_s
        self._reconcile_interval_s = reconcile_interval_s

    def start(self, config: Config) -> None:
        self._scheduler.every("inventory", self._inventory_interval_s, self._inventory_pass)
        self._scheduler.every("windows", self._reconcile_interval_s, self._window_pass)
        self._scheduler.every("deferrals", DEFERRAL_CHECK_S, self._deferral_pass)
        self.apply(config)

    async def _inventory_pass(self) -> None:
        await self._inventory.refresh(self._config())

    async def _window_pass(self) -> None:
        await self._passes.keep_windows(self._config())

    async def _deferral_pass(self) -> None:
        await self._passes.deferred(self._config())

    async def _idle_pass(self, name: str) -> None:
        rule = next((r for r in self._config().idle_rules if r.name == name), None)
        if rule is not None:  # else removed by a reload since
            await self._passes.idle(self._config(), rule)

    def apply(self, config: Config) -> None:
        """One periodic pass per idle rule, every `check_every`; in step with reloads."""
        wanted = {f"idle:{rule.name}": rule for rule in config.idle_rules}
        for name in self._scheduler.periodic() - set(wanted):
            if name.startswith("idle:"):
                self._scheduler.forget(name)
        for name, rule in wanted.items():
            self._scheduler.every(
                name, rule.check_every.total_seconds(), partial(self._idle_pass, rule.name)
            )
