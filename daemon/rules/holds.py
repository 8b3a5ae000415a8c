"""What holds mean, as pure rules: which hold keeps a graph at `now`, the reason a person
reads, what makes a hold acceptable (the same for config and API holds), and whether a graph
found running inside a keep-stopped window was started by hand or by the platform.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from fnmatch import fnmatchcase
from typing import Literal

from daemon.domain.hold import MAX_REASON_LENGTH, Hold, HoldGraphs, glob_problem
from daemon.domain.model import Graph
from daemon.rules.idle import fmt_duration

# GES starts a graph by itself once it has been stopped for 7 days. graphnap may learn of a
# stop a poll round late, so "about 7 days" starts an hour early.
PLATFORM_RESTART_AFTER = timedelta(days=7)
PLATFORM_RESTART_SLACK = timedelta(hours=1)

Loc = tuple[str | int, ...]


# --- which hold applies ---------------------------------------------------------------------


def is_expired(hold: Hold, now: datetime) -> bool:
    """A hold ends at its `until`: from then on it holds nothing."""
    return now >= hold.until


def holds_graph(hold: Hold, project: str, graph: Graph) -> bool:
    """The hold names the graph: same project, and its id listed or its name matched."""
    if hold.graphs.project != project:
        return False
    return graph.id in hold.graphs.ids or any(
        fnmatchcase(graph.name, pattern) for pattern in hold.graphs.names
    )


def applicable_hold(
    holds: Iterable[Hold], project: str, graph: Graph, now: datetime
) -> Hold | None:
    """The hold that keeps this graph at `now`, or None.

    Several may name it. `running` wins over `stopped`: a graph kept up by mistake costs
    money until its hold ends, one kept down by mistake stops someone's work now (and a wake
    must get through an "on leave" hold). Among holds that keep it the same way, the one that
    ends last decides, since the graph stays held until then; ties go to the smaller id, so
    the answer never depends on the order holds are listed in.
    """
    live = [h for h in holds if not is_expired(h, now) and holds_graph(h, project, graph)]
    if not live:
        return None
    return min(live, key=lambda h: (h.keep != "running", -h.until.timestamp(), h.id))


def held_reason(hold: Hold, now: datetime) -> str:
    """`held running until 23:00 +08:00 by token search-team: release test`.

    `until` is shown in the offset it was given: the person who made the hold wrote it in
    theirs, and a graph under several schedules has no one zone to show it in. A day other
    than today (in that offset) is written out.
    """
    return f"held {hold.keep} until {_when(hold.until, now)} by {hold.by}: {hold.reason}"


def _when(until: datetime, now: datetime) -> str:
    offset = until.utcoffset() or timedelta(0)
    sign, rest = ("-", -offset) if offset < timedelta(0) else ("+", offset)
    hours, minutes = divmod(int(rest.total_seconds()) // 60, 60)
    clock = until.strftime("%H:%M:%S" if until.second else "%H:%M")
    day = "" if until.date() == now.astimezone(until.tzinfo).date() else f"{until:%Y-%m-%d} "
    return f"{day}{clock} {sign}{hours:02d}:{minutes:02d}"


# --- what makes a hold acceptable -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HoldProblem:
    loc: Loc  # within the hold: ("until",), ("graphs", "names", 1); a config's adds ("holds", i)
    message: str
    hint: str = ""
    severity: Literal["error", "warning"] = "error"


def validate_hold(hold: Hold, *, now: datetime, max_hold: timedelta) -> list[HoldProblem]:
    """Every reason to refuse this hold, located; empty when it may be made. The same rules
    for a config hold and an API one."""
    problems: list[HoldProblem] = []
    if hold.graphs.is_empty():
        problems.append(
            HoldProblem(
                ("graphs",),
                "the hold names no graph",
                "give ids, names (globs such as 'search-*'), or both",
            )
        )
    for i, pattern in enumerate(hold.graphs.names):
        problem = glob_problem(pattern)
        if problem:
            problems.append(HoldProblem(("graphs", "names", i), problem))
    if not hold.reason.strip():
        problems.append(HoldProblem(("reason",), "a hold says why", "e.g. 'release test'"))
    elif len(hold.reason) > MAX_REASON_LENGTH:
        problems.append(
            HoldProblem(("reason",), f"a reason is at most {MAX_REASON_LENGTH} characters")
        )
    if hold.until.tzinfo is None or hold.until.utcoffset() is None:
        problems.append(
            HoldProblem(
                ("until",),
                "until has no time zone offset",
                "e.g. 2026-03-10T23:00:00+08:00 or ...Z for UTC",
            )
        )
        return problems
    if is_expired(hold, now):
        problems.append(
            HoldProblem(
                ("until",),
                f"until {_when(hold.until, now)} is not in the future",
                "a hold ends after it is made",
            )
        )
    elif hold.until - now > max_hold:
        problems.append(
            HoldProblem(
                ("until",),
                f"until {_when(hold.until, now)} is {fmt_duration(hold.until - now)} away, "
                f"beyond the longest allowed hold ({fmt_duration(max_hold)})",
                "hold for less, and make a new hold when this one ends",
            )
        )
    return problems


def config_hold_problems(
    holds: Sequence[Hold], *, now: datetime, max_hold: timedelta
) -> list[HoldProblem]:
    """What `graphnap validate` says of the config's `holds:` (given in their order): an
    expired hold is a warning (it holds nothing any more; remove it), every other problem
    validate_hold finds is an error."""
    problems: list[HoldProblem] = []
    for i, hold in enumerate(holds):
        for problem in validate_hold(hold, now=now, max_hold=max_hold):
            expired = problem.loc == ("until",) and is_expired(hold, now)
            problems.append(
                HoldProblem(
                    ("holds", i, *problem.loc),
                    f"expired: until {_when(hold.until, now)} has passed"
                    if expired
                    else problem.message,
                    "it holds nothing any more; remove it" if expired else problem.hint,
                    "warning" if expired else "error",
                )
            )
    return problems


# --- a graph running inside a keep-stopped window -------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowStart:
    """What a graph found running inside a keep-stopped window means."""

    by_hand: bool  # a person started it (or graphnap cannot tell that the platform did)
    until: datetime | None  # hold it running until then; None: stop it again now
    reason: str


def judge_window_start(
    *,
    stopped_since: datetime | None,
    started_at: datetime | None,
    now: datetime,
    manual_start_hold: timedelta,
    zone: tzinfo,
) -> WindowStart:
    """A graph graphnap knew stopped since `stopped_since` is running inside a keep-stopped
    window (it was started at `started_at`, or at `now` when GES does not say).

    Back after about 7 days stopped, it is the platform's own restart: stop it again. Back
    sooner, a person started it: hold it running for `manual_start_hold` from its start.
    Not known since when it was stopped, it is taken as a start by hand: that errs by at most
    `manual_start_hold` of running time, where the other way fights a person. Times are shown
    in the schedule's `zone`; the hold's end is elapsed time, right across a DST change.
    """
    started = min(started_at or now, now)
    if stopped_since is not None:
        stopped_for = started - stopped_since
        if stopped_for >= PLATFORM_RESTART_AFTER - PLATFORM_RESTART_SLACK:
            return WindowStart(
                False,
                None,
                f"back after {fmt_duration(stopped_for)} stopped: the platform's 7-day "
                "restart; stopped again",
            )
    at = started.astimezone(zone)
    if manual_start_hold <= timedelta(0):
        return WindowStart(
            True, None, f"started by hand at {at:%H:%M}; manual_start_hold is 0: stopped again"
        )
    until = (started.astimezone(UTC) + manual_start_hold).astimezone(zone)
    shown_until = (
        f"{until:%H:%M}" if manual_start_hold < timedelta(days=1) else f"{until:%Y-%m-%d %H:%M}"
    )
    if until <= now:
        return WindowStart(
            True,
            None,
            f"started by hand at {at:%H:%M}; its hold ended at {shown_until}: stopped again",
        )
    return WindowStart(True, until, f"started by hand at {at:%H:%M}; held until {shown_until}")


def hand_start_hold(
    project: str, graph: Graph, start: WindowStart, *, schedule: str, now: datetime
) -> Hold | None:
    """The hold a start by hand gets (source auto, named after the graph and its start, so
    that judging the same start again makes the same hold), or None when it gets none."""
    if start.until is None:
        return None
    return Hold(
        id=f"auto-{project}-{graph.id}-{int(start.until.timestamp())}",
        graphs=_only(project, graph),
        keep="running",
        until=start.until,
        reason=start.reason,
        by=f"schedule {schedule}",
        source="auto",
        made_at=now,
    )


def _only(project: str, graph: Graph) -> HoldGraphs:
    return HoldGraphs(project=project, ids=(graph.id,))
