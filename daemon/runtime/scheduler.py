"""The firing policy: one APScheduler cron trigger per schedule, swapped on reload, and the
rules around each firing. It calls the firing with the schedule's **scheduled** fire time,
and knows nothing of GES.

- Firings coalesce, and one firing of a schedule runs at a time.
- A fire time runs once: never twice for one fire time, and the second pass through a
  wall-clock hour that DST fall-back repeats does not fire again (cron's behaviour).
- A firing that comes late (the loop was busy, the host slept) still runs within the
  schedule's misfire_grace; beyond it, it is a misfire.
- At start-up, the latest firing missed while graphnap was down runs if it is within its
  grace. With a Store (the state file), the firings lost while down are counted as misfires
  too, and a firing is recorded in its `last_fire` section only once it has finished, so one
  cut short is run again.
- A stop schedule with `notify.before` gets a warning job beside its firing, at fire time
  minus the lead, on the same APScheduler (`warnings.WarningJobs`: once per fire time, only
  while its stop is ahead).
Misfires are counted in one place, `_misfire`; what was missed while down is `catchup`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.interval import IntervalTrigger

from daemon.config.models import Config, Schedule
from daemon.domain.cron import cron_trigger, is_dst_repeat
from daemon.domain.hold import Store, StoreError
from daemon.domain.model import Clock
from daemon.runtime.catchup import missed_firings, parse_last_fires
from daemon.runtime.warnings import WARNING_JOB, Warn, WarningJobs
from daemon.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

# (config, schedule, its scheduled fire time, the end of its misfire grace)
Firing = Callable[[Config, Schedule, datetime, datetime], Awaitable[object]]
Periodic = Callable[[], Awaitable[None]]


class Scheduler:
    def __init__(
        self,
        firing: Firing,
        metrics: Metrics,
        *,
        clock: Clock,
        default_grace: timedelta,
        store: Store | None = None,
        warning: Warn | None = None,
    ) -> None:
        self._firing = firing
        self._metrics = metrics
        self._clock = clock
        self._default_grace = default_grace
        self._store = store
        self._config: Config | None = None
        self._scheduled: dict[str, datetime] = {}  # the fire time each schedule last started
        self._done: dict[str, datetime] = {}  # ... and last finished: what the Store keeps
        self._last_run: dict[str, datetime] = {}  # when that firing started
        self._running: set[str] = set()  # one firing of a schedule at a time
        self._tasks: set[asyncio.Task[None]] = set()  # firings
        self._pass_tasks: set[asyncio.Task[None]] = set()  # periodic passes
        self._passes: dict[str, Periodic] = {}
        self._intervals: dict[str, float] = {}
        self._triggers: dict[str, tuple[str, str, timedelta]] = {}  # what each job was built from
        # APScheduler decides only *when*: its jobs do nothing, and each submission (a
        # public event that carries the scheduled run times) starts the work as a task of
        # ours, so shutdown decides how long to wait and lateness and "one at a time" are
        # judged here, in _run. With coalescing, the latest due run time is the one handed on.
        self._aps = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True})
        self._aps.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        self._pass_running: set[str] = set()  # one run of a periodic pass at a time
        # The warnings before stops: jobs of their own on the same APScheduler.
        self.warnings = WarningJobs(
            self._aps, _submitted, warning, clock=clock, spawn=self._spawn_pass
        )

    # --- life cycle -------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the fire times recorded before the restart (before start()). A store that
        cannot be read, or a section that cannot be parsed, only costs misfire counting."""
        if self._store is None:
            return
        try:
            section = (await self._store.read_all()).get("last_fire")
        except StoreError as exc:
            log.warning(
                "last fire times unreadable, so misfires while down are not counted: %s", exc
            )
            return
        self._done = parse_last_fires(section.value if section else {})
        self._scheduled = dict(self._done)

    def start(self, config: Config) -> None:
        """Start the cron triggers, then catch up on what was missed while not running."""
        self.apply(config)
        self._aps.start()
        self._publish_next_fire_times()
        self._catch_up(config, self._clock())
        self.warnings.catch_up(self._clock())

    def apply(self, config: Config) -> None:
        """Make the cron jobs match the config: add, replace, remove. A firing that is
        running keeps the config it started with."""
        with self._one_wakeup():
            self._apply(config)
        self._publish_next_fire_times()

    @contextmanager
    def _one_wakeup(self) -> Iterator[None]:
        """A batch of job changes wakes APScheduler once, not once per job. Every add or
        modify on a running AsyncIOScheduler wakes it through `call_soon_threadsafe`, one
        byte into the loop's self-pipe each; a 1,000-schedule reload filled that pipe, and a
        SIGTERM coming before the loop drained it was lost (asyncio learns of signals
        through the same pipe): the daemon did not exit. Paused, APScheduler queues no
        wakeup; resuming wakes it once, and it then looks at every job."""
        if self._aps.state != STATE_RUNNING:
            yield
            return
        self._aps.pause()
        try:
            yield
        finally:
            self._aps.resume()

    def _apply(self, config: Config) -> None:
        self._config = config
        wanted = {s.name: (s.cron, s.timezone, self._grace(s)) for s in config.schedules}
        for job in self._aps.get_jobs():
            if not job.id.startswith((_PERIODIC, WARNING_JOB)) and job.id not in wanted:
                job.remove()
                self._triggers.pop(job.id, None)
                log.info("schedule removed", extra={"rule": job.id})
        for schedule in config.schedules:
            # An unchanged schedule keeps its job: re-adding it would recompute the next run
            # from now and silently lose a firing that is due while the reload runs.
            if self._triggers.get(schedule.name) == wanted[schedule.name]:
                continue
            self._triggers[schedule.name] = wanted[schedule.name]
            self._aps.add_job(
                _submitted,
                cron_trigger(schedule.cron, schedule.timezone),
                id=schedule.name,
                name=schedule.name,
                replace_existing=True,
                misfire_grace_time=None,  # lateness is judged in _run, with the schedule's grace
            )
        self.warnings.apply(config)  # in the same batch: one wakeup for both

    def every(self, name: str, interval_s: float, func: Periodic) -> None:
        """A periodic pass (inventory, windows) on the same scheduler; at stop it is
        cancelled, not waited for (the next start runs it again)."""
        self._passes[name] = func
        if self._intervals.get(name) == interval_s:
            return  # the same pass, not pushed back by a reload
        self._intervals[name] = interval_s
        self._aps.add_job(
            _submitted,
            IntervalTrigger(seconds=interval_s),
            id=_PERIODIC + name,
            name=name,
            replace_existing=True,
            misfire_grace_time=None,
        )

    def forget(self, name: str) -> None:
        """Stop running a periodic pass (an idle rule removed by a reload)."""
        self._intervals.pop(name, None)
        if self._passes.pop(name, None) is not None:
            job = self._aps.get_job(_PERIODIC + name)
            if job is not None:
                job.remove()

    def periodic(self) -> set[str]:
        """The periodic passes scheduled now."""
        return set(self._passes)

    async def stop(self, grace_s: float) -> None:
        """No new firings; wait for running ones up to `grace_s`, then cut them short."""
        if self._aps.running:
            self._aps.shutdown(wait=False)
        for task in self._pass_tasks:
            task.cancel()
        await asyncio.gather(*self._pass_tasks, return_exceptions=True)
        pending = [t for t in self._tasks if not t.done()]
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if late:
            log.warning("%d firings cut short by the shutdown grace", len(late))

    async def settle(self) -> None:
        """Until every firing started so far has ended (for tests and one-shot commands)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- views ------------------------------------------------------------------------------

    def next_fire_times(self) -> dict[str, datetime | None]:
        return {
            job.id: getattr(job, "next_run_time", None)  # unset until the scheduler runs
            for job in self._aps.get_jobs()
            if not job.id.startswith((_PERIODIC, WARNING_JOB))
        }

    def last_fire_times(self) -> Mapping[str, datetime]:
        return dict(self._last_run)

    # --- the policy -------------------------------------------------------------------------

    async def run(self, name: str, fire_time: datetime) -> None:
        """One due firing of schedule `name` for its scheduled `fire_time`, under the policy
        above. The daemon survives any failure inside it."""
        try:
            await self._run(name, fire_time)
        except Exception:
            log.exception("firing crashed", extra={"rule": name})
        finally:
            self._publish_next_fire_times()

    async def _run(self, name: str, fire_time: datetime) -> None:
        config = self._config
        schedule = next((s for s in config.schedules if s.name == name), None) if config else None
        if config is None or schedule is None:
            log.info("firing dropped: the schedule was removed by a reload", extra={"rule": name})
            return
        if name in self._running:  # the start-up catch-up runs outside APScheduler
            self._misfire(name, "the previous one is still running")
            return
        late = self._clock() - fire_time
        if late > self._grace(schedule):  # the loop was stuck, the host slept
            self._misfire(
                name,
                "too late",
                detail=f"firing of {fire_time.isoformat()} missed: it came "
                f"{late.total_seconds():.0f}s late, beyond misfire_grace",
            )
            return
        last = self._scheduled.get(name)
        if last is not None and fire_time <= last:
            log.info(
                "firing skipped: it already ran for %s",
                fire_time.isoformat(),
                extra={"rule": name},
            )
            return
        if is_dst_repeat(last, fire_time):
            log.info(
                "firing skipped: DST repeats this hour; it already ran once", extra={"rule": name}
            )
            return
        self._scheduled[name] = fire_time
        started = self._clock()
        self._last_run[name] = started
        self._metrics.last_fire.labels(name).set(started.timestamp())
        self._running.add(name)
        try:
            await self._firing(config, schedule, fire_time, fire_time + self._grace(schedule))
        finally:
            self._running.discard(name)
        # Recorded only once every action of the firing is requested: a firing cut short
        # (killed, or past the shutdown grace) is run again by the next start's catch-up.
        self._done[name] = fire_time
        await self._save()

    async def _save(self) -> None:
        if self._store is None:
            return
        value = {rule: when.isoformat() for rule, when in sorted(self._done.items())}
        try:
            await self._store.write("last_fire", value)
        except StoreError as exc:
            log.warning(
                "last fire times not saved; misfires while down will not be counted: %s", exc
            )

    def _catch_up(self, config: Config, now: datetime) -> None:
        """Run the latest firing missed while graphnap was not running if it is within
        its misfire_grace; count the ones lost (known only with a state file)."""
        for schedule in config.schedules:
            run, lost = missed_firings(
                schedule, self._scheduled.get(schedule.name), now, self._grace(schedule)
            )
            if lost:
                self._misfire(
                    schedule.name,
                    "missed while down",
                    count=len(lost),
                    detail=f"{len(lost)} firings were missed while graphnap was down, beyond "
                    f"misfire_grace ({lost[0].isoformat()} to {lost[-1].isoformat()})",
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
                self._spawn(self.run(schedule.name, run))

    def _misfire(self, name: str, why: str, *, count: int = 1, detail: str = "") -> None:
        self._metrics.misfires.labels(name).inc(count)
        log.warning(detail or f"firing missed ({why})", extra={"rule": name, "reason": why})

    # --- plumbing ---------------------------------------------------------------------------

    def _on_submitted(self, event: JobSubmissionEvent) -> None:
        """A job came due: start its work for its scheduled run time."""
        if event.job_id.startswith(WARNING_JOB):
            self.warnings.due(event.job_id.removeprefix(WARNING_JOB), event.scheduled_run_times[-1])
        elif event.job_id.startswith(_PERIODIC):
            name = event.job_id.removeprefix(_PERIODIC)
            if name in self._passes and name not in self._pass_running:
                self._spawn_pass(self._periodic(name))
        else:
            self._spawn(self.run(event.job_id, event.scheduled_run_times[-1]))

    async def _periodic(self, name: str) -> None:
        self._pass_running.add(name)
        try:
            await self._passes[name]()
        except Exception:  # the next interval runs it again
            log.exception("%s pass crashed", name)
        finally:
            self._pass_running.discard(name)

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        return _track(work, self._tasks)

    def _spawn_pass(self, work: Awaitable[None]) -> asyncio.Task[None]:
        return _track(work, self._pass_tasks)

    def _grace(self, schedule: Schedule) -> timedelta:
        return schedule.misfire_grace or self._default_grace

    def _publish_next_fire_times(self) -> None:
        self._metrics.set_next_fire_times(self.next_fire_times())


def _track(work: Awaitable[None], tasks: set[asyncio.Task[None]]) -> asyncio.Task[None]:
    task = asyncio.ensure_future(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


# The job id prefix of periodic passes; the rest, warnings (WARNING_JOB) aside, are schedules.
_PERIODIC = "pass:"


async def _submitted() -> None:
    """APScheduler's job: nothing; the submission event starts the work (_on_submitted)."""
