"""The config in force, and its hot reload: the file's content is polled (which sees edits,
renames and the `..data` symlink swap Kubernetes does for a ConfigMap) and SIGHUP reloads
at once. A valid file is swapped in and announced to the listeners; an invalid one is
logged with its locations and the last good config keeps running. It never touches GES.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from daemon.config import Config
from daemon.loader import ConfigError, Problem, load_config
from daemon.metrics import Metrics
from daemon.model import Clock

log = logging.getLogger(__name__)

Check = Callable[[Config], list[Problem]]
Listener = Callable[[Config], None]


class ConfigSource:
    def __init__(self, path: Path, metrics: Metrics, *, check: Check, clock: Clock) -> None:
        self.path = path
        self._metrics = metrics
        self._check = check  # what the file alone cannot say (e.g. credentials are given)
        self._clock = clock
        self._listeners: list[Listener] = []
        self._config: Config | None = None
        self.version = ""
        self.loaded_at: datetime | None = None
        self.last_error = ""
        self._refused_version = ""

    @property
    def config(self) -> Config:
        """The config in force; only after load()."""
        if self._config is None:
            raise RuntimeError("no config loaded: call load() first")
        return self._config

    @property
    def is_loaded(self) -> bool:
        return self._config is not None

    def on_change(self, listener: Listener) -> None:
        """Called with every new config after it is swapped in."""
        self._listeners.append(listener)

    def load(self) -> Config:
        """The first load; ConfigError if the file cannot be used."""
        config, version = self._read()
        self._swap(config, version)
        self._metrics.config_ok.set(1)
        return config

    async def reload(self) -> bool:
        """Validate the file again; swap it in if valid, keep the old config if not."""
        try:
            config, version = self._read()
        except (ConfigError, OSError) as exc:
            text = exc.render() if isinstance(exc, ConfigError) else str(exc)
            self.last_error = text
            self._metrics.config_reloads.labels("failure").inc()
            self._metrics.config_ok.set(0)
            log.error(
                "config reload failed; the previous config keeps running:\n%s",
                text,
                extra={"config_version": self.version},
            )
            return False
        if version == self.version:
            return True
        self._swap(config, version)
        self.last_error = ""
        self._metrics.config_reloads.labels("success").inc()
        self._metrics.config_ok.set(1)
        log.info("config reloaded", extra={"config_version": version})
        return True

    async def check(self) -> bool:
        """Reload if the file's content changed; True when a new config was swapped in."""
        version = self._fingerprint()
        if version in (self.version, self._refused_version):
            return False
        ok = await self.reload()
        self._refused_version = "" if ok else version  # say it once, not every poll
        return ok

    async def watch(self, interval_s: float) -> None:
        """Poll for changes until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await self.check()

    def _read(self) -> tuple[Config, str]:
        config = load_config(self.path)
        problems = self._check(config)
        if problems:
            raise ConfigError(str(self.path), problems)
        return config, self._fingerprint()

    def _swap(self, config: Config, version: str) -> None:
        self._config, self.version, self.loaded_at = config, version, self._clock()
        for listener in self._listeners:
            listener(config)

    def _fingerprint(self) -> str:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]
        except OSError:
            return "unreadable"
