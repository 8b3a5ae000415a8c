"""The daily digest's timing: due once a day at `notifications.digest.at` in its zone, about
that zone's previous calendar day. A daemon down at that time sends it when it is back the
same day, never a backlog of days; the outbox's sent keys keep a restart from sending it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from daemon.config.notifications import DigestSchedule, Notifications
from daemon.notify.ledger import Ledger
from daemon.notify.message import Message
from daemon.notify.message import digest as digest_message

log = logging.getLogger(__name__)


def digest_zone(notifications: Notifications) -> ZoneInfo:
    """The zone whose calendar days the digest counts (UTC while no digest is configured)."""
    schedule = notifications.digest
    return ZoneInfo(schedule.timezone if schedule is not None else "UTC")


class DailyDigest:
    def __init__(
        self,
        ledger: Ledger,
        *,
        projects: Callable[[], Sequence[str]],
        currency: Callable[[], str],
    ) -> None:
        self._ledger = ledger
        self._projects = projects  # the config's, in its order
        self._currency = currency
        self._done: date | None = None  # the last day told (or found not counted)

    def due(self, schedule: DigestSchedule, now: datetime) -> date | None:
        """The day to tell about now, or None: before `at`, or already told today."""
        local = now.astimezone(ZoneInfo(schedule.timezone))
        if local.time() < schedule.at:
            return None
        day = local.date() - timedelta(days=1)
        if self._done is not None and self._done >= day:
            return None
        since = self._ledger.since
        if since is None or day < since:
            self._done = day
            log.info(
                "no digest for %s: graphnap began counting on %s",
                day.isoformat(),
                since.isoformat() if since else "a later day",
            )
            return None
        return day

    def done(self, day: date) -> None:
        self._done = day

    def keep(self) -> None:
        """The figures written when due (the notifier's tick)."""
        self._ledger.keep()

    def message(
        self,
        day: date,
        schedule: DigestSchedule,
        projects: Collection[str],
        *,
        at: datetime,
        max_items: int,
        key: str,
    ) -> Message | None:
        """`day`'s digest for `projects` (empty: every project), None if none is left."""
        chosen = [p for p in self._projects() if not projects or p in projects]
        if not chosen:
            return None
        since = self._ledger.since or day
        rows = self._ledger.report(day, chosen, self._currency())
        return digest_message(
            day, schedule.timezone, rows, since=since, at=at, max_items=max_items, key=key
        )
