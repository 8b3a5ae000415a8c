"""How long .ci/deploy-check may wait for each event, derived from the settings in force.

    python deploy/ci/bounds.py CONFIG ENV_LIST EVENT [--emulator-start EPOCH_S]

prints one line, `SECONDS<TAB>DERIVATION`: the bound (whole seconds, counted from now) and
how it was reached, which the check prints when the event does not come. Every bound is
the worst case the daemon's own settings allow (retries and their backoff, the job
timeout, polling, the next fire time of the schedules, the idle rule's cadence), plus the
emulator's job times, the scrape interval and a slack for a busy machine. The wait
itself ends as soon as the event is seen, so a generous bound costs nothing on a green run.

Emulator and Prometheus figures come from the environment the check exports:
EMULATOR_PENDING_S, EMULATOR_STOP_S, EMULATOR_START_S, EMULATOR_THROTTLE_RPS, SCRAPE_S
and SLACK_S.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.config.loader import load_config
from daemon.config.models import Config, Schedule
from daemon.config.settings import Settings
from daemon.domain.cron import cron_trigger, next_fire

_SECRET_SETTINGS = ("GRAPHNAP_SECRETS_DIR", "GRAPHNAP_CREDENTIALS")


def settings_from(env_list: Path) -> Settings:
    """The container's settings: its literal environment (as `docker run --env-file`)."""
    env = {}
    for line in env_list.read_text().splitlines():
        name, sep, value = line.partition("=")
        # Timing only: the secrets (and the directory that holds them in the pod) are not.
        if sep and name.startswith("GRAPHNAP_") and not name.startswith(_SECRET_SETTINGS):
            env[name] = value
    saved = {k: v for k, v in os.environ.items() if k.startswith("GRAPHNAP_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(env)
    try:
        return Settings()
    finally:
        for name in env:
            del os.environ[name]
        os.environ.update(saved)


def figure(name: str) -> float:
    try:
        return float(os.environ[name])
    except KeyError:
        raise SystemExit(f"bounds.py: {name} is not set (.ci/deploy-check exports it)") from None


class Bounds:
    def __init__(self, config: Config, settings: Settings, now: datetime) -> None:
        self.config = config
        self.s = settings
        self.now = now
        self.pending_s = figure("EMULATOR_PENDING_S")
        self.stop_s = figure("EMULATOR_STOP_S")
        self.start_s = figure("EMULATOR_START_S")
        self.throttle_rps = figure("EMULATOR_THROTTLE_RPS")
        self.scrape_s = figure("SCRAPE_S")
        self.slack_s = figure("SLACK_S")

    # --- the parts --------------------------------------------------------------------------
    def request_s(self) -> float:
        """One API call, throttled and retried to its last attempt."""
        r = self.s.retry
        return r.attempts * (self.s.request_timeout_s + r.backoff_max_s + r.backoff_jitter_s)

    def job_timeout_s(self, schedule: Schedule) -> float:
        timeout = schedule.timeout or timedelta(seconds=self.s.job_timeout_s)
        return timeout.total_seconds()

    def until_next(self, schedules: Iterable[Schedule], after: datetime | None = None) -> float:
        after = after or self.now
        fires = [
            fire
            for s in schedules
            if (fire := next_fire(cron_trigger(s.cron, s.timezone), after)) is not None
        ]
        if not fires:
            raise SystemExit("bounds.py: none of these schedules fires again")
        return (min(fires) - self.now).total_seconds()

    def with_jobs(self, action: str | None = None) -> list[Schedule]:
        """Schedules whose firings request real jobs (not dry runs, not always deferred)."""
        return [
            s
            for s in self.config.schedules
            if not s.dry_run
            and s.defer_while_in_use is None
            and (action is None or s.action == action)
        ]

    def scraped_s(self) -> float:
        """From a change in graphnap to Prometheus holding it: one scrape, and one more."""
        return 2 * self.scrape_s

    # --- the events -------------------------------------------------------------------------
    def job_end(self, action: str | None, *, scraped: bool) -> tuple[float, str]:
        schedules = self.with_jobs(action)
        until = self.until_next(schedules)
        timeout = max(self.job_timeout_s(s) for s in schedules)
        request, poll = self.request_s(), self.s.poll_max_s
        seen = self.scraped_s() if scraped else 0.0
        total = until + request + timeout + poll + seen
        why = (
            f"next firing of {'/'.join(s.name for s in schedules)} in {until:.0f}s"
            f" + the action request with every retry {request:.0f}s"
            f" + job timeout {timeout:.0f}s (emulator jobs take {self.pending_s:g}s pending"
            f" + {max(self.stop_s, self.start_s):g}s) + a poll {poll:g}s"
            + (f" + two scrapes {seen:g}s" if scraped else "")
        )
        return total, why

    def any_firing(self) -> tuple[float, str]:
        until = self.until_next(self.config.schedules)
        total = until + self.scraped_s()
        return (
            total,
            f"next firing of any schedule in {until:.0f}s + two scrapes {self.scraped_s():g}s",
        )

    def reload(self) -> tuple[float, str]:
        total = self.s.reload_check_s + self.scraped_s()
        return total, (
            f"reload check every {self.s.reload_check_s:g}s + two scrapes {self.scraped_s():g}s"
        )

    def ready(self) -> tuple[float, str]:
        total = self.request_s() * 2
        return total, f"the first inventory (token and list, each retried) {total:.0f}s"

    def cloud_eye_data_at(self, emulator_start: float) -> datetime:
        """When the emulator has published its first full minute (lag 0 after start-up)."""
        start = datetime.fromtimestamp(emulator_start, UTC)
        first_minute = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        longest = max(
            ((r.period or timedelta(minutes=1)) for r in self.config.idle_rules),
            default=timedelta(minutes=1),
        )
        return first_minute + longest

    def idle_verdict(self, emulator_start: float) -> tuple[float, str]:
        data = self.cloud_eye_data_at(emulator_start)
        wait_data = max(0.0, (data - self.now).total_seconds())
        every = max(r.check_every.total_seconds() for r in self.config.idle_rules)
        request = self.request_s()
        total = wait_data + 2 * every + request + self.scraped_s()
        return total, (
            f"Cloud Eye's first full minute published in {wait_data:.0f}s"
            f" + two idle checks (every {every:g}s) for an increase + the query with every"
            f" retry {request:.0f}s + two scrapes {self.scraped_s():g}s"
        )

    def deferral(self, emulator_start: float) -> tuple[float, str]:
        deferring = [s for s in self.config.schedules if s.defer_while_in_use is not None]
        data = max(self.cloud_eye_data_at(emulator_start), self.now)
        until = self.until_next(deferring, after=data)
        request = self.request_s()
        total = until + 2 * request + self.scraped_s()
        return total, (
            f"next firing of {'/'.join(s.name for s in deferring)} once Cloud Eye has data,"
            f" in {until:.0f}s + inventory and query with every retry {2 * request:.0f}s"
            f" + two scrapes {self.scraped_s():g}s"
        )

    def notification(self, outcome: str) -> tuple[float, str]:
        """Two messages of one outcome counted apart, the later one after now (an increase
        Prometheus can see: a channel's series appears with its first message). Messages are
        the summaries of schedules that act (jobs or dry runs, not always-deferred ones):
        the second next firing, its inventory, its jobs (a summary waits for them, up to
        summary_max_wait), settle and the batches' tick, a delivery behind the one in
        flight (every attempt timing out, with backoff), then two scrapes."""
        n = self.config.notifications
        acting = [s for s in self.config.schedules if s.defer_while_in_use is None]
        first = self.now + timedelta(seconds=self.until_next(acting))
        until = self.until_next(acting, after=first)
        jobs = min(max(self.job_timeout_s(s) for s in acting), n.summary_max_wait)
        d = n.delivery
        timeout = max(c.timeout for c in n.channels.values())
        deliver = d.attempts * timeout + (d.attempts - 1) * d.backoff_max_s
        tick = 1.0  # daemon.notify.notifier.TICK_S
        total = until + self.request_s() + jobs + n.settle + tick + 2 * deliver + self.scraped_s()
        return total, (
            f"second next firing of {'/'.join(s.name for s in acting)} in {until:.0f}s"
            f" + its inventory with every retry {self.request_s():.0f}s + its jobs (job timeout"
            f" or summary_max_wait) {jobs:g}s + settle {n.settle:g}s + tick {tick:g}s"
            f" + two deliveries ({d.attempts} attempts of {timeout:g}s, backoff"
            f" {d.backoff_max_s:g}s) {2 * deliver:g}s + two scrapes {self.scraped_s():g}s"
            f" (for {outcome})"
        )

    def scrapes(self) -> tuple[float, str]:
        total = 3 * self.scrape_s
        return total, f"two more scrapes, every {self.scrape_s:g}s, and one for the phase"

    def drain(self) -> tuple[float, str]:
        grace = self.s.shutdown_grace_s
        return grace, f"shutdown grace {grace:g}s"


def bound(config: Path, env_list: Path, event: str, emulator_start: float | None) -> str:
    b = Bounds(load_config(config), settings_from(env_list), datetime.now(UTC))

    def needs_start(f: Callable[[float], tuple[float, str]]) -> Callable[[], tuple[float, str]]:
        if emulator_start is None:
            raise SystemExit(f"bounds.py: {event} needs --emulator-start")
        return lambda: f(emulator_start)

    events: dict[str, Callable[[], tuple[float, str]]] = {
        "ready": b.ready,
        "stop-counted": lambda: b.job_end("stop", scraped=False),
        "job-end-scraped": lambda: b.job_end(None, scraped=True),
        "firing-scraped": b.any_firing,
        "reload-scraped": b.reload,
        "scrapes": b.scrapes,
        "notification-sent": lambda: b.notification("sent"),
        "notification-failed": lambda: b.notification("failed"),
        "drain": b.drain,
    }
    if event in ("idle-verdict", "deferral"):
        events[event] = needs_start(b.idle_verdict if event == "idle-verdict" else b.deferral)
    if event not in events:
        raise SystemExit(f"bounds.py: unknown event {event!r}; one of {sorted(events)}")
    seconds, why = events[event]()
    total = math.ceil(seconds + b.slack_s)
    return f"{total}\t{why} + slack {b.slack_s:g}s for a busy machine"


def main(argv: list[str]) -> int:
    start: float | None = None
    if len(argv) == 5 and argv[3] == "--emulator-start":
        start, argv = float(argv[4]), argv[:3]
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    print(bound(Path(argv[0]), Path(argv[1]), argv[2], start))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
