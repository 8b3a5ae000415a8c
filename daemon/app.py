"""The composition root: builds the clients, pipeline, scheduler and ops server from the
config and settings; handles signals, hot reload and shutdown. It decides nothing about
which graph to stop.

Only this module (and the CLI) reads the real clock; everything below takes it injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from daemon import __version__
from daemon.api import RequestGate, RetryPolicy, Sleep
from daemon.auth import AkSkAuth, TokenAuth, TokenProvider
from daemon.config import Config, Project
from daemon.cron import cron_trigger, is_dst_repeat, previous_fire
from daemon.executor import Executor
from daemon.firing import Pipeline, Report
from daemon.ges import GesClient
from daemon.loader import ConfigError, Problem, load_config
from daemon.metrics import Metrics
from daemon.model import Clock
from daemon.scheduler import Scheduler, missed_firings
from daemon.server import OpsServer
from daemon.settings import Settings
from daemon.state import load_last_fires, save_last_fires
from daemon.tracker import Tracker

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class App:
    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | None = None,
        registry: CollectorRegistry | None = None,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.config_path = Path(config_path or settings.config)
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.clock = clock
        self.sleep = sleep
        self.tracker = Tracker(
            self.metrics,
            clock=clock,
            sleep=sleep,
            poll_initial_s=settings.poll_initial_s,
            poll_max_s=settings.poll_max_s,
        )
        self.executor = Executor(
            self.tracker, self.metrics, clock=clock, max_concurrency=settings.max_concurrency
        )
        self.pipeline = Pipeline(self.executor, self.tracker, self.metrics, clock=clock)
        self.scheduler = Scheduler(
            self._on_schedule,
            self.metrics,
            default_grace=timedelta(seconds=settings.misfire_grace_s),
        )
        self.server: OpsServer | None = None
        self.config: Config | None = None
        self.config_version = ""
        self.loaded_at: datetime | None = None
        self.last_reload_error = ""
        self.clients: dict[str, GesClient] = {}
        self._client_defs: dict[str, Project] = {}  # what each client was built from
        self._http: list[httpx.AsyncClient] = []
        self._firings: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._last_fire: dict[str, datetime] = {}
        self._last_scheduled: dict[str, datetime] = {}
        self._stop = asyncio.Event()
        self._closed = False
        self._refused_version = ""
        self._resumed: set[str] = set()  # projects whose Task Center has been read
        self._running_rules: set[str] = set()  # one firing of a schedule at a time
        self._beat = 0.0

    # --- config -------------------------------------------------------------------------

    def _read(self) -> tuple[Config, str]:
        """Load and check the config, including that every credential set exists."""
        config = load_config(self.config_path)
        missing = [
            Problem(
                ("projects", i, "credentials"),
                f"credential set {p.credentials!r} is not given",
                f"set GRAPHNAP_CREDENTIALS__{p.credentials.upper()}__AK and __SK (or __USER, __PASSWORD, "
                f"__DOMAIN), or files {p.credentials}.ak / {p.credentials}.sk in GRAPHNAP_SECRETS_DIR",
            )
            for i, p in enumerate(config.projects)
            if self.settings.credential_set(p.credentials) is None
        ]
        if missing:
            raise ConfigError(str(self.config_path), missing)
        return config, hashlib.sha256(self.config_path.read_bytes()).hexdigest()[:12]

    def _activate(self, config: Config, version: str) -> None:
        self.config, self.config_version, self.loaded_at = config, version, self.clock()
        for project in config.projects:
            if self._client_defs.get(project.name) != project:
                self.clients[project.name] = self._client(project)
                self._client_defs[project.name] = project
        for name in set(self.clients) - {p.name for p in config.projects}:
            del self.clients[name]  # its HTTP client closes at shutdown; trackers may still use it
            del self._client_defs[name]
        for rule in config.idle_rules:
            log.warning(
                "idle rule loaded but not evaluated: idle detection through Cloud Eye is not built yet",
                extra={"rule": rule.name},
            )

    def _client(self, project: Project) -> GesClient:
        creds = self.settings.credential_set(project.credentials)
        assert creds is not None  # checked by _read
        timeout = httpx.Timeout(self.settings.request_timeout_s)
        auth: httpx.Auth
        if creds.kind == "aksk":
            assert creds.ak is not None
            assert creds.sk is not None
            auth = AkSkAuth(
                creds.ak,
                creds.sk,
                project_id=project.project_id,
                security_token=creds.security_token,
                clock=self.clock,
            )
        else:
            assert creds.user is not None
            assert creds.password is not None
            assert creds.domain is not None
            iam_http = httpx.AsyncClient(timeout=timeout)
            self._http.append(iam_http)
            provider = TokenProvider(
                iam_http,
                iam_endpoint=project.iam_endpoint,
                user=creds.user,
                password=creds.password,
                domain=creds.domain,
                project_id=project.project_id,
                clock=self.clock,
                refresh_margin=timedelta(seconds=self.settings.token_refresh_margin_s),
            )
            auth = TokenAuth(provider, project.project_id)
        http = httpx.AsyncClient(
            base_url=project.ges_endpoint,
            auth=auth,
            timeout=timeout,
            headers={"Content-Type": "application/json", "User-Agent": f"graphnap/{__version__}"},
        )
        self._http.append(http)
        limiter = RequestGate(self.settings.max_concurrency, self.settings.project_rate_per_s)
        retry = self.settings.retry
        return GesClient(
            http,
            project.project_id,
            retry=RetryPolicy(
                retry.attempts, retry.backoff_initial_s, retry.backoff_max_s, retry.backoff_jitter_s
            ),
            sleep=self.sleep,
            observe=self.metrics.observe_request,
            page_size=self.settings.page_size,
            limiter=limiter,
        )

    async def reload(self) -> bool:
        """Validate the file again; swap schedules if valid, keep the old config if not."""
        try:
            config, version = self._read()
        except (ConfigError, OSError) as exc:
            text = exc.render() if isinstance(exc, ConfigError) else str(exc)
            self.last_reload_error = text
            self.metrics.config_reloads.labels("failure").inc()
            self.metrics.config_ok.set(0)
            log.error(
                "config reload failed; the previous config keeps running:\n%s",
                text,
                extra={"config_version": self.config_version},
            )
            return False
        if version == self.config_version:
            return True
        self._activate(config, version)
        self.scheduler.apply(config)
        self.last_reload_error = ""
        self.metrics.config_reloads.labels("success").inc()
        self.metrics.config_ok.set(1)
        log.info("config reloaded", extra={"config_version": version})
        return True

    async def check_config(self) -> bool:
        """Reload if the file's content changed. Reading the content (not the mtime) sees
        edits, renames and the `..data` symlink swap Kubernetes does for a ConfigMap."""
        try:
            version = hashlib.sha256(self.config_path.read_bytes()).hexdigest()[:12]
        except OSError:
            version = "unreadable"
        if version == self.config_version or version == self._refused_version:
            return False
        ok = await self.reload()
        self._refused_version = "" if ok else version  # say it once, not every poll
        return ok

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_check_s)
            await self.check_config()

    # --- running ------------------------------------------------------------------------

    async def start(self, *, serve: bool = True, schedule: bool = True, watch: bool = True) -> None:
        """Load (ConfigError if invalid), serve, resume jobs, catch up, start the schedules."""
        config, version = self._read()
        self._activate(config, version)
        self.metrics.config_ok.set(1)
        if self.settings.state_file is not None:
            self._last_scheduled = load_last_fires(self.settings.state_file)
        self._background.append(asyncio.create_task(self._heartbeat(), name="heartbeat"))
        if serve:
            self.server = OpsServer(
                self, self.registry, self.settings.listen_host, self.settings.listen_port
            )
            url = await self.server.start()
            log.info("ops server listening on %s (/metrics /healthz /readyz /status)", url)
        await self.refresh_inventory()
        if schedule:
            self.scheduler.apply(config)
            self.scheduler.every(
                "inventory", self.settings.inventory_interval_s, self.refresh_inventory
            )
            self.scheduler.every("windows", self.settings.reconcile_interval_s, self.keep_windows)
            self.scheduler.start()
            self.scheduler.publish_next_fire_times()
            self._catch_up(config)
        if watch:
            self._background.append(asyncio.create_task(self._watch_config(), name="config-watch"))
        log.info(
            "graphnap %s running: %d projects, %d schedules",
            __version__,
            len(config.projects),
            len(config.schedules),
            extra={"config_version": version},
        )

    async def refresh_inventory(self) -> None:
        """List every project's graphs (gauges, savings, readiness). A project answering
        for the first time also has its in-flight jobs found again in the Task Center, so
        a GES outage at start-up does not lose them."""
        config = self.active_config
        inventory, _ = await self.pipeline.inventory(
            config, self.clients, [p.name for p in config.projects]
        )
        for project, graphs in inventory.items():
            if project in self._resumed:
                continue
            try:
                count = await self.tracker.resume(
                    project,
                    self.clients[project],
                    graphs,
                    timedelta(seconds=self.settings.job_timeout_s),
                )
            except Exception as exc:  # one project's Task Center must not stop the others
                log.error(
                    "could not resume jobs from the Task Center; will try again: %s",
                    exc,
                    extra={"project": project},
                )
                continue
            self._resumed.add(project)
            if count:
                log.info("resumed %d in-flight jobs", count, extra={"project": project})

    def _catch_up(self, config: Config) -> None:
        """Run the latest firing missed while graphnap was not running if it is within
        its misfire_grace; count the ones lost (known only with a state file)."""
        now = self.clock()
        for schedule in config.schedules:
            grace = schedule.misfire_grace or timedelta(seconds=self.settings.misfire_grace_s)
            run, lost = missed_firings(
                schedule, self._last_scheduled.get(schedule.name), now, grace
            )
            if lost:
                self.metrics.misfires.labels(schedule.name).inc(len(lost))
                log.warning(
                    "%d firings were missed while graphnap was down, beyond misfire_grace (%s to %s)",
                    len(lost),
                    lost[0].isoformat(),
                    lost[-1].isoformat(),
                    extra={"rule": schedule.name, "reason": "missed while down"},
                )
            if run is not None:
                log.warning(
                    "firing of %s came while graphnap was not running; within misfire_grace, so it runs now, %.0fs late",
                    run.isoformat(),
                    (now - run).total_seconds(),
                    extra={
                        "rule": schedule.name,
                        "reason": "missed while down, within misfire_grace",
                    },
                )
                self._spawn(self._fire_scheduled(schedule.name))

    def _spawn(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        self._firings.add(task)
        task.add_done_callback(self._firings.discard)
        return task

    @property
    def active_config(self) -> Config:
        """The config in force; only after start()."""
        if self.config is None:
            raise RuntimeError("no config loaded: call start() first")
        return self.config

    async def fire(self, name: str, *, dry_run: bool = False) -> Report:
        """Fire one schedule now (the scheduler's path, and `graphnap once`)."""
        config = self.active_config
        schedule = config.schedule(name)
        fired_at = self.clock()
        self._last_fire[name] = fired_at
        self.metrics.last_fire.labels(name).set(fired_at.timestamp())
        return await self.pipeline.fire(
            config,
            self.clients,
            schedule,
            fired_at,
            dry_run=dry_run or self.settings.dry_run,
            default_timeout=timedelta(seconds=self.settings.job_timeout_s),
        )

    async def _on_schedule(self, name: str) -> None:
        """APScheduler's job: the firing runs as a task of ours, so shutdown can wait for it."""
        await self._spawn(self._fire_scheduled(name))

    async def _fire_scheduled(self, name: str) -> None:
        try:
            if name not in {s.name for s in self.active_config.schedules}:
                log.info(
                    "firing dropped: the schedule was removed by a reload", extra={"rule": name}
                )
                return
            if name in self._running_rules:  # the start-up catch-up runs outside APScheduler
                self.metrics.misfires.labels(name).inc()
                log.warning(
                    "firing skipped: the previous one is still running", extra={"rule": name}
                )
                return
            schedule = self.active_config.schedule(name)
            scheduled = previous_fire(cron_trigger(schedule.cron, schedule.timezone), self.clock())
            last = self._last_scheduled.get(name)
            if scheduled is not None and last is not None and scheduled <= last:
                log.info(
                    "firing skipped: it already ran for %s",
                    scheduled.isoformat(),
                    extra={"rule": name},
                )
                return
            if scheduled is not None and is_dst_repeat(last, scheduled):
                log.info(
                    "firing skipped: DST repeats this hour; it already ran once",
                    extra={"rule": name},
                )
                return
            if scheduled is not None:
                self._last_scheduled[name] = scheduled
                if self.settings.state_file is not None:
                    save_last_fires(self.settings.state_file, self._last_scheduled)
            self._running_rules.add(name)
            try:
                await self.fire(name)
            finally:
                self._running_rules.discard(name)
        except Exception:  # the daemon survives any failure inside a firing
            log.exception("firing crashed", extra={"rule": name})
        finally:
            self.scheduler.publish_next_fire_times()

    async def keep_windows(self) -> None:
        """Re-stop graphs that came back running inside a keep_stopped_until window."""
        config = self.active_config
        for schedule in config.schedules:
            if schedule.action == "stop" and schedule.keep_stopped_until:
                try:
                    await self.pipeline.fire(
                        config,
                        self.clients,
                        schedule,
                        self.clock(),
                        reconcile=True,
                        dry_run=self.settings.dry_run,
                        default_timeout=timedelta(seconds=self.settings.job_timeout_s),
                    )
                except Exception:
                    log.exception("window pass crashed", extra={"rule": schedule.name})

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._beat = loop.time()
            await asyncio.sleep(5)

    def request_stop(self) -> None:
        self._stop.set()

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        await self._stop.wait()
        log.info("stop requested: no new firings; draining")
        await self.shutdown()

    async def settle(self) -> None:
        """Until every firing has ended and every job it started has reached its end."""
        while self._firings:
            await asyncio.gather(*self._firings, return_exceptions=True)
        await self.tracker.wait()

    async def shutdown(self) -> None:
        """No new firings; wait for requests in flight up to shutdown_grace_s; stop
        following jobs (the next start resumes them from the Task Center); close."""
        if self._closed:
            return
        self._closed = True
        self.scheduler.shutdown()
        for task in self._background:
            task.cancel()
        pending = [t for t in self._firings if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.settings.shutdown_grace_s)
            for task in late:
                task.cancel()
            if late:
                log.warning("%d firings cut short by the shutdown grace", len(late))
        in_flight = len(self.tracker.jobs())
        await self.tracker.stop()
        if in_flight:
            log.info("%d jobs still running in GES; the next start picks them up", in_flight)
        if self.server is not None:
            await self.server.stop()
        for http in self._http:
            await http.aclose()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.config is not None:
            log.info("graphnap stopped")

    # --- StatusSource for the ops server ------------------------------------------------

    def is_alive(self) -> bool:
        return asyncio.get_running_loop().time() - self._beat < 30

    def readiness(self) -> list[str]:
        if self.config is None:
            return ["config not loaded"]
        waiting = []
        for project in self.config.projects:
            state = self.pipeline.projects.get(project.name)
            if state is None or state.at is None:
                error = f" ({state.error})" if state is not None and state.error else ""
                waiting.append(f"project {project.name}: no inventory yet{error}")
        return waiting

    def status(self) -> dict[str, Any]:
        config = self.active_config
        next_fire = self.scheduler.next_fire_times()
        return {
            "version": __version__,
            "config": {
                "path": str(self.config_path),
                "version": self.config_version,
                "loaded_at": self.loaded_at,
                "last_reload_error": self.last_reload_error,
            },
            "ready": not self.readiness(),
            "waiting_for": self.readiness(),
            "dry_run": self.settings.dry_run,
            "schedules": [
                {
                    "name": s.name,
                    "action": s.action,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "next_fire": next_fire.get(s.name),
                    "last_fire": self._last_fire.get(s.name),
                    "keep_stopped_until": s.keep_stopped_until,
                    "skip_on": s.skip_on,
                    "dry_run": s.dry_run,
                }
                for s in config.schedules
            ],
            "idle_rules": [
                {"name": r.name, "state": "loaded, not evaluated (Cloud Eye support pending)"}
                for r in config.idle_rules
            ],
            "projects": [
                {
                    "name": p.name,
                    "region": p.region,
                    "project_id": p.project_id,
                    "graphs": len(state.graphs)
                    if (state := self.pipeline.projects.get(p.name))
                    else None,
                    "last_inventory": state.at if state else None,
                    "error": state.error if state else "",
                }
                for p in config.projects
            ],
            "jobs_in_flight": [
                {
                    "project": j.project,
                    "graph_id": j.graph_id,
                    "graph": j.graph_name,
                    "job_id": j.job_id,
                    "action": j.action,
                    "rule": j.rule,
                    "requested_at": j.requested_at,
                }
                for j in self.tracker.jobs()
            ],
            "recent_outcomes": [
                {
                    "project": o.job.project,
                    "graph": o.job.graph_name,
                    "action": o.job.action,
                    "rule": o.job.rule,
                    "job_id": o.job.job_id,
                    "outcome": o.outcome,
                    "reason": o.reason,
                    "duration_s": round(o.duration_s, 1),
                }
                for o in self.tracker.finished[-20:]
            ],
            "last_decisions": list(self.pipeline.decisions)[-50:],
        }


async def serve(settings: Settings) -> int:
    """`graphnap run`: until SIGTERM/SIGINT; 0 after a clean drain, 2 for a bad config."""
    app = App(settings)
    try:
        await app.start()
    except ConfigError as exc:
        log.error("cannot start:\n%s", exc.render())
        with contextlib.suppress(Exception):
            await app.shutdown()
        return 2
    await app.run_until_stopped()
    return 0
