"""The composition root: builds the parts from the settings, starts and stops them, and
handles signals. It decides nothing about which graph to stop.

Two groups start and stop separately. Every replica runs the ops server, the heartbeat and
the config watcher; only the active instance runs the scheduler, the passes and the job
tracking (leader election will switch that group on and off). Only this module reads the
clock (the wall clock for the daemon's decisions, a monotonic one for pacing requests);
every part below takes it injected. (APScheduler keeps its own wall clock to trigger jobs;
the fire time it hands over is the scheduled one, and lateness is judged on ours.)
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from daemon import __version__
from daemon.cloud.clients import Clients, missing_credentials
from daemon.cloud.gate import Monotonic
from daemon.config.holds import config_holds
from daemon.config.models import Config, Schedule
from daemon.config.problems import ConfigError
from daemon.config.settings import Settings
from daemon.domain.model import Clock, Sleep
from daemon.notify.notifier import Notifier
from daemon.ops.backend import DaemonBackend
from daemon.ops.heap import quiet_gc
from daemon.ops.leader import LeaderElector, LeaderStatus, build_elector
from daemon.ops.notices import Notices
from daemon.ops.people import People
from daemon.ops.reload import ConfigSource
from daemon.ops.status import Heartbeat, StatusView
from daemon.runtime.deferrals import Deferrals
from daemon.runtime.executor import Executor
from daemon.runtime.firing import PassSettings, Report
from daemon.runtime.holds import HoldBook
from daemon.runtime.idle_warnings import IdleWarnings
from daemon.runtime.inventory import Inventory
from daemon.runtime.kubestore import open_store
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.passes import Passes
from daemon.runtime.periodic import PeriodicPasses
from daemon.runtime.rates import LearnedRates
from daemon.runtime.scheduler import Scheduler
from daemon.runtime.tracker import Tracker
from daemon.telemetry.metrics import Metrics

if TYPE_CHECKING:  # these load aiohttp: start_replica imports them when it serves
    from daemon.ops.control import ControlServer
    from daemon.ops.postpone import Postpone
    from daemon.ops.server import OpsServer, StatusSource

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
        monotonic: Monotonic = time.monotonic,
        notify_sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry, per_graph=settings.per_graph_metrics)
        self.outcomes = Outcomes(self.metrics)
        self.source = ConfigSource(
            Path(config_path or settings.config),
            self.metrics,
            check=lambda config: missing_credentials(config, settings),
            clock=clock,
        )
        # Under leader election the elector is the fence: no cloud request leaves a
        # replica that is not sure it leads.
        self.leader: LeaderElector | None = None
        if settings.leader.enabled:
            self.leader = build_elector(
                settings.leader, self.metrics, clock=clock, monotonic=monotonic, sleep=sleep
            )
        # One Store for everything that outlives the process (holds, last fire times, since
        # when graphs are stopped, deferrals, learned rates): one file or ConfigMap, one writer.
        self.store, kube = open_store(settings, self.leader)
        self._kube_clients: list[Any] = [kube] if kube is not None else []  # closed at shutdown
        # Learned request rates: every project's gate starts from what its last one learned.
        self.rates = LearnedRates(self.store)
        self.clients = Clients(
            settings,
            self.metrics,
            clock=clock,
            monotonic=monotonic,
            sleep=sleep,
            fence=self.leader,
            rates=self.rates,
        )
        self.tracker = Tracker(
            self.outcomes,
            self.metrics,
            clock=clock,
            sleep=sleep,
            poll_initial_s=settings.poll_initial_s,
            poll_max_s=settings.poll_max_s,
            page_size=settings.page_size,
        )
        self.executor = Executor(
            self.tracker,
            self.outcomes,
            max_concurrency=settings.max_concurrency,
            project_concurrency=settings.project_concurrency,
        )
        job_timeout = timedelta(seconds=settings.job_timeout_s)
        self.inventory = Inventory(
            self.clients.graph_apis,
            self.tracker,
            self.metrics,
            job_timeout=job_timeout,
            clock=clock,
            store=self.store,
        )
        self.outcomes.subscribe(self.inventory.note_outcome)
        self.deferrals = Deferrals(self.metrics, self.store)
        self.holds = HoldBook(self.store, metrics=self.metrics)
        self.idle_warnings = IdleWarnings(self.store)  # idle stops warned of, not yet due
        self.passes = Passes(
            self.clients.graph_apis,
            self.clients.metric_apis,
            self.inventory,
            self.deferrals,
            self.executor,
            self.tracker,
            self.outcomes,
            self.metrics,
            PassSettings(settings.dry_run, job_timeout),
            holds=self.holds,
            clock=clock,
            sleep=sleep,
            idle_warnings=self.idle_warnings,
        )
        self.scheduler = Scheduler(
            self.passes.fire,
            self.metrics,
            clock=clock,
            default_grace=timedelta(seconds=settings.misfire_grace_s),
            store=self.store,
            warning=self._warn_before_stop,
        )
        # What people ask for (the control API, `graphnap demo`): holds and wakes.
        self.people = People(
            lambda: self.source.config,
            self.inventory,
            self.executor,
            self.holds,
            self.outcomes,
            self.clients.graph_apis,
            leader=self.leader,
            clock=clock,
            dry_run=settings.dry_run,
            job_timeout=job_timeout,
        )
        self.periodic = PeriodicPasses(
            self.scheduler,
            self.passes,
            self.inventory,
            lambda: self.source.config,
            inventory_interval_s=settings.inventory_interval_s,
            reconcile_interval_s=settings.reconcile_interval_s,
        )
        self.heartbeat = Heartbeat()
        self.status = StatusView(
            self.source,
            self.heartbeat,
            self.inventory.projects,
            self.passes.idle_verdicts,
            self.deferrals.pending,
            self.tracker,
            self.outcomes,
            self.holds,
            next_fires=self.scheduler.next_fire_times,
            last_fires=self.scheduler.last_fire_times,
            dry_run=settings.dry_run,
            clock=clock,
            store=self.store.where if self.store is not None else None,
        )
        self.probes: StatusSource = self.status
        if self.leader is not None:
            self.probes = LeaderStatus(self.status, self.leader, lambda: self.source.is_loaded)
        self.server: OpsServer | None = None
        self.control: ControlServer | None = None
        self._monotonic = monotonic
        self.source.on_change(self.clients.update)
        self.source.on_change(self._config_changed)
        self._scheduling = False
        self._background: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._closed = False
        # The outboxes pace deliveries (retries, their tick) on `notify_sleep`, not on
        # `sleep`: a test's manual clock must not run ahead because a receiver is retried.
        self.notices = Notices(
            settings, lambda: self.source.config, clients=self.clients, inventory=self.inventory,
            deferrals=self.deferrals, tracker=self.tracker, holds=self.holds,
            outcomes=self.outcomes, metrics=self.metrics, store=self.store, clock=clock,
            sleep=sleep, notify_sleep=notify_sleep, monotonic=monotonic, job_timeout=job_timeout,
            idle_warnings=self.idle_warnings,
        )  # fmt: skip

    @property
    def notifier(self) -> Notifier | None:
        return self.notices.notifier

    @property
    def postpone(self) -> Postpone | None:
        return self.notices.postpone

    async def _warn_before_stop(self, config: Config, schedule: Schedule, at: datetime) -> int:
        return await self.notices.warn_before_stop(config, schedule, at)

    @property
    def config(self) -> Config:
        """The config in force; only after start()."""
        return self.source.config

    # --- every replica ----------------------------------------------------------------------

    async def start_replica(self, *, serve: bool = True, watch: bool = True) -> None:
        """Load the config (ConfigError if it cannot be used), beat, serve, watch the file."""
        await self.rates.load()  # before load() builds the clients that start from them
        self.source.load()
        await self.notices.start_links()
        self._spawn(self.heartbeat.run(), "heartbeat")
        self._spawn(self.rates.keep(), "rates")
        if serve:  # the web servers, imported only here: one-shot commands serve nothing
            from daemon.ops.control import control_server
            from daemon.ops.server import OpsServer

            self.server = OpsServer(
                self.probes,
                self.registry,
                self.settings.listen_host,
                self.settings.listen_port,
                render=self.metrics.render,
            )
            url = await self.server.start()
            log.info("ops server listening on %s (/metrics /healthz /readyz /status)", url)
            # People's holds and wakes, on a listener of its own (off without token files).
            self.control = control_server(
                self.settings,
                DaemonBackend(self.people),
                self.metrics,
                clock=self.clock,
                monotonic=self._monotonic,
                postpone=self.postpone,
            )
            if self.control is not None:
                url = await self.control.start()
                log.info("control API and page listening on %s", url)
        if watch:
            self._spawn(self.source.watch(self.settings.reload_check_s), "config-watch")

    async def stop_replica(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.control is not None:
            await self.control.stop()
        if self.server is not None:
            await self.server.stop()
        await self.rates.save()
        await self.clients.close()

    # --- the active instance ----------------------------------------------------------------

    async def start_active(self, *, schedule: bool = True, one_shot: bool = False) -> None:
        """Read what the Store kept (holds, last fire times), take inventory (resuming jobs
        in flight), then schedule and catch up. A one-shot command takes no inventory (the
        firing it runs lists the graphs anyway) and keeps no daily digest."""
        await self.holds.load(self.clock())  # a damaged store: the config's holds, said so
        await self.deferrals.load()
        await self.idle_warnings.load()
        await self.inventory.load()
        if not one_shot:
            await self.inventory.refresh(self.config)
        await self.notices.start(digest=not one_shot)
        config = self.config  # a reload may have come while GES was being listed
        if schedule:
            self.periodic.start(config)
            await self.scheduler.load()
            self.scheduler.start(config)
            self._scheduling = True
        log.info(
            "graphnap %s running: %d projects, %d schedules",
            __version__,
            len(config.projects),
            len(config.schedules),
            extra={"config_version": self.source.version},
        )

    async def stop_active(self) -> None:
        """No new firings; running ones get the shutdown grace; stop following jobs (they
        go on in GES and the next start resumes them from the Task Center)."""
        self._scheduling = False
        await self.scheduler.stop(self.settings.shutdown_grace_s)
        in_flight = len(self.tracker.jobs())
        await self.tracker.stop()
        await self.notices.stop()
        self.inventory.forget_resumed()  # a new active term reads the Task Center again
        self.metrics.forget_accrual()  # and counts no savings for the time it did not lead
        if in_flight:
            log.info("%d jobs still running in GES; the next start picks them up", in_flight)

    def _config_changed(self, config: Config) -> None:
        self.metrics.declare(
            [p.name for p in config.projects],
            [s.name for s in config.schedules],
            [r.name for r in config.idle_rules],
            [s.name for s in config.schedules if s.defer_while_in_use is not None],
        )
        self._apply_config_holds(config)
        self.notices.reload(config)
        if self._scheduling:
            self.scheduler.apply(config)
            self.periodic.apply(config)

    def _apply_config_holds(self, config: Config) -> None:
        self.holds.set_config(
            config_holds(config.holds),
            max_hold=config.max_hold,
            now=self.clock(),
            projects=[p.name for p in config.projects],
        )

    # --- both -------------------------------------------------------------------------------

    async def start(
        self,
        *,
        serve: bool = True,
        schedule: bool = True,
        watch: bool = True,
        one_shot: bool = False,
    ) -> None:
        await self.start_replica(serve=serve, watch=watch)
        if self.leader is None:
            await self.start_active(schedule=schedule, one_shot=one_shot)
            # The only replica acts: it leads (GraphnapNoLeader and the dashboard count on it).
            self.metrics.leader.set(1)
        else:  # the elector starts and stops the active group as leadership comes and goes
            self._spawn(self.leader.run(self.start_active, self.stop_active), "leader")

    async def fire(self, name: str, *, dry_run: bool = False) -> Report:
        """Fire one schedule now, outside its cron times (`graphnap once`, `plan --live`)."""
        config = self.config
        return await self.passes.fire(config, config.schedule(name), self.clock(), dry_run=dry_run)

    async def settle(self) -> None:
        """Until every firing has ended and every job it started has reached its end."""
        await self.scheduler.settle()
        await self.tracker.wait()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        """Start, run until SIGTERM or SIGINT, drain: 0, or 2 for a config that cannot be
        used. Signals are handled from the first moment, so a stop that comes while the
        start-up is still waiting for GES is a clean exit as well."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.source.reload(), "reload"))
        starting = asyncio.ensure_future(self.start())
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.info("stop requested during start-up; stopping")
            starting.cancel()
        (started,) = await asyncio.gather(starting, return_exceptions=True)
        if started is None:
            quiet_gc()
        try:
            if isinstance(started, ConfigError):
                log.error("cannot start:\n%s", started.render())
                return 2
            if isinstance(started, Exception):
                raise started
            if not isinstance(started, asyncio.CancelledError):  # it started: run till told
                await stop
                log.info("stop requested: no new firings; draining")
            return 0
        finally:
            stop.cancel()
            await self.shutdown()

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.leader is not None:
            await self._cancel("leader")
        await self.stop_active()
        if self.leader is not None:  # only once nothing acts any more: then hand over
            await self.leader.release()
            await self.leader.lock.close()
        await self.stop_replica()
        for client in self._kube_clients:
            await client.close()
        if self.source.is_loaded:
            log.info("graphnap stopped")

    async def _cancel(self, name: str) -> None:
        tasks = [t for t in self._background if t.get_name() == name]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def serve(settings: Settings) -> int:
    """`graphnap run`: until SIGTERM/SIGINT; 0 after a clean drain, 2 for a bad config."""
    return await App(settings).run()
