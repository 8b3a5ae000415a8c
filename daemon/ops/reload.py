"""The config in force, and its hot reload: the file's content is polled (which sees edits,
renames and the `..data` symlink swap Kubernetes does for a ConfigMap) and SIGHUP reloads
at once. A valid file is swapped in and announced to the listeners; an invalid one is
logged with its locations and the last good config keeps running. Whatever goes wrong in a
reload is logged and counted, and the watcher goes on watching. It never touches GES.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from daemon.config.loader import load_config
from daemon.config.models import Config
from daemon.config.problems import ConfigError, Problem
from daemon.config.yaml_reader import MAX_FILE_BYTES
from daemon.domain.model import Clock, Sleep
from daemon.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

Check = Callable[[Config], list[Problem]]
Listener = Callable[[Config], None]


class ConfigSource:
    def __init__(
        self,
        path: Path,
        metrics: Metrics,
        *,
        check: Check,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.path = path
        self._metrics = metrics
        self._check = check  # what the file alone cannot say (e.g. credentials are given)
        self._clock = clock
        self._sleep = sleep
        self._listeners: list[Listener] = []
        self._config: Config | None = None
        self.version = ""
        self.loaded_at: datetime | None = None
        self.last_error = ""
        self._refused_version = ""
        self._loaded_once = False

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
        except ConfigError as exc:
            return self._failed(exc.render())
        except Exception as exc:  # a bug in a check must not end the watcher: count it
            log.debug("config reload raised", exc_info=True)
            return self._failed(f"{self.path}: could not be checked: {type(exc).__name__}")
        if version == self.version:
            return True
        broken = self._swap(config, version)
        if broken:
            # The new config is in force for the other parts; this is not retried until the
            # file changes again, so say which parts did not take it.
            return self._failed(
                f"{self.path}: the new config is in force, but {', '.join(broken)} failed to "
                "apply it",
                kept_previous=False,
            )
        self.last_error = ""
        self._metrics.config_reloads.labels("success").inc()
        self._metrics.config_ok.set(1)
        log.info("config reloaded", extra={"config_version": version})
        return True

    async def check(self) -> bool:
        """Reload if the file's content changed; True when a new config was swapped in."""
        try:
            version = self._fingerprint()
            if version in (self.version, self._refused_version):
                return False
            ok = await self.reload()
        except Exception as exc:  # never raised by reload(); kept so the watcher cannot die
            log.debug("config check raised", exc_info=True)
            self._failed(f"{self.path}: could not be checked: {type(exc).__name__}")
            return False
        self._refused_version = "" if ok else version  # say it once, not every poll
        return ok

    async def watch(self, interval_s: float) -> None:
        """Poll for changes until cancelled."""
        while True:
            await self._sleep(interval_s)
            await self.check()

    def _failed(self, text: str, *, kept_previous: bool = True) -> bool:
        self.last_error = text
        self._metrics.config_reloads.labels("failure").inc()
        self._metrics.config_ok.set(0)
        log.error(
            "config reload failed; %s:\n%s",
            "the previous config keeps running" if kept_previous else "parts did not apply it",
            text,
            extra={"config_version": self.version},
        )
        return False

    def _read(self) -> tuple[Config, str]:
        config = load_config(self.path)
        problems = self._check(config)
        if problems:
            raise ConfigError(str(self.path), problems)
        return config, self._fingerprint()

    def _swap(self, config: Config, version: str) -> list[str]:
        """Put `config` in force and tell every listener; the names of those that failed."""
        self._config, self.version, self.loaded_at = config, version, self._clock()
        warn_plain_http(config)
        broken = []
        for listener in self._listeners:
            try:
                listener(config)
            except Exception as exc:
                if not self._loaded_once:
                    raise  # at start, a part that cannot take the config stops the daemon
                name = getattr(listener, "__qualname__", type(listener).__name__)
                log.debug("%s raised on the new config", name, exc_info=True)
                log.error(
                    "%s failed to apply the new config: %s: %.200s", name, type(exc).__name__, exc
                )
                broken.append(name)
        self._loaded_once = True
        return broken

    def _fingerprint(self) -> str:
        """The file's size and a hash of what load_config reads of it (a file past that is
        refused whatever the rest holds)."""
        try:
            with self.path.open("rb") as file:
                head = file.read(MAX_FILE_BYTES + 1)
            size = self.path.stat().st_size
        except OSError:
            return "unreadable"
        return hashlib.sha256(head + str(size).encode()).hexdigest()[:12]


def warn_plain_http(config: Config) -> None:
    """At every load: an override that sends requests unencrypted to another host."""
    for project in config.projects:
        for service, url in project.endpoints.plain_http():
            secrets = "the IAM password and tokens" if service == "iam" else "signed requests"
            log.warning(
                "project %s: the %s endpoint %s is plain http to a host that is not loopback: "
                "%s travel unencrypted; endpoint overrides are meant for the emulator and "
                "private endpoints over https",
                project.name,
                service,
                url,
                secrets,
                extra={"project": project.name},
            )
