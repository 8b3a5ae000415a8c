"""The start-up catch-up's reckoning: which firings were missed while graphnap was down
(the latest, to run late within its grace, and the ones lost beyond it), and the last fire
times the Store kept, read back.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from daemon.config.models import Schedule
from daemon.domain.cron import cron_trigger, next_fire, previous_fire

log = logging.getLogger(__name__)


def missed_firings(
    schedule: Schedule,
    last_fired: datetime | None,
    now: datetime,
    grace: timedelta,
    limit: int = 1000,
) -> tuple[datetime | None, list[datetime]]:
    """At start-up: (the firing to run late, the firings lost) since `last_fired`.

    The latest scheduled firing runs late if it is at most `grace` old. Without a record of
    the last firing (no state file) nothing can be called lost: graphnap may simply not
    have been deployed then.
    """
    trigger = cron_trigger(schedule.cron, schedule.timezone)
    latest = previous_fire(trigger, now)
    if latest is None or (last_fired is not None and latest <= last_fired):
        return None, []
    run = latest if now - latest <= grace else None
    lost: list[datetime] = []
    if last_fired is not None:
        fire = next_fire(trigger, last_fired)
        while fire is not None and fire < latest and len(lost) < limit:
            lost.append(fire)
            fire = next_fire(trigger, fire)
        if run is None:
            lost.append(latest)
    return run, lost


def parse_last_fires(value: object) -> dict[str, datetime]:
    """{rule: ISO time}, as the Scheduler writes it (and graphnap did before the Store); an
    entry that does not parse is dropped with a warning: it only feeds misfire counting."""
    if not isinstance(value, dict):
        log.warning("stored last fire times are not an object; ignored")
        return {}
    found: dict[str, datetime] = {}
    for rule, when in value.items():
        try:
            parsed = datetime.fromisoformat(str(when))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            log.warning("stored last fire time of %s is unreadable; ignored", str(rule)[:63])
            continue
        found[str(rule)] = parsed
    return found
