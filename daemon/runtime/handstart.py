"""A graph graphnap knew stopped, running again inside a keep-stopped window: a person's start,
held running for the schedule's `manual_start_hold` (an auto hold in the hold book), or the
platform's 7-day restart, stopped again. The rule is rules.holds'; this keeps what it needs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from daemon.config.models import Schedule
from daemon.domain.model import Graph
from daemon.rules.holds import WindowStart, hand_start_hold, judge_window_start
from daemon.runtime.holds import HoldBook, HoldNotSaved, HoldRefused
from daemon.runtime.inventory import Inventory

log = logging.getLogger(__name__)


async def judge_hand_start(
    book: HoldBook,
    inventory: Inventory,
    schedule: Schedule,
    project: str,
    graph: Graph,
    now: datetime,
) -> WindowStart | None:
    """How to take a running graph inside the window. None when there is nothing to judge:
    never seen stopped (running when the window opened, which is what the window is for), or
    manual_start_hold 0 (re-stopped as before)."""
    stopped_since = inventory.came_back(project, graph.id)
    if stopped_since is None or schedule.manual_start_hold <= timedelta(0):
        return None
    start = judge_window_start(
        stopped_since=stopped_since,
        started_at=graph.updated,
        now=now,
        manual_start_hold=schedule.manual_start_hold,
        zone=ZoneInfo(schedule.timezone),
    )
    hold = hand_start_hold(project, graph, start, schedule=schedule.name, now=now)
    if hold is not None:
        try:
            await book.add(hold, now=now)
        except (HoldRefused, HoldNotSaved) as exc:  # judged again at the next pass
            log.error(
                "a start by hand could not be held (%s); left running for now",
                exc,
                extra={"rule": schedule.name, "project": project, "graph": graph.name},
            )
            return WindowStart(True, hold.until, f"{start.reason} (hold not made: {exc})")
    inventory.judged(project, graph.id)
    return start
