"""Pure decisions: which graphs a rule touches, what to do with each, and why.

No I/O and no clock: `now` is an argument. Every graph a rule selects gets a Decision
with a reason a person can read ("busy (importing)", "snoozed until ..."); silent skips
are bugs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from zoneinfo import ZoneInfo

from daemon.config.models import ActiveHours, Calendar, IdleRule, OptOutTags, Schedule, Selector
from daemon.domain.cron import cron_trigger, next_fire, previous_fire
from daemon.domain.hold import Hold
from daemon.domain.model import (
    MOVING_STATUS,
    TARGET_STATUS,
    Action,
    Graph,
    GraphStatus,
    describe_status,
)
from daemon.rules.holds import applicable_hold, held_reason
from daemon.rules.idle import Verdict

IN_FLIGHT = "a job for this graph is already in flight"
DATABASE_EDITION = "database edition (Persistence): GES cannot stop it, so graphnap leaves it alone"


@dataclass(frozen=True)
class Decision:
    project: str
    graph_id: str
    graph_name: str
    rule: str
    action: Action
    act: bool  # True: send the action; False: skip, for `reason`
    reason: str


def selects(selector: Selector, project: str, graph: Graph) -> bool:
    """Every criterion the selector gives must match; within a list, any entry may."""
    if selector.projects and project not in selector.projects:
        return False
    if selector.ids and graph.id not in selector.ids:
        return False
    if selector.names and not any(fnmatchcase(graph.name, pattern) for pattern in selector.names):
        return False
    tags = graph.tags
    return all(key in tags and value in ("*", tags[key]) for key, value in selector.tags.items())


def target_projects(rule: Schedule | IdleRule, all_projects: Sequence[str]) -> list[str]:
    return list(rule.targets.projects) or list(all_projects)


def plan(
    schedule: Schedule,
    inventory: Mapping[str, Sequence[Graph]],
    now: datetime,
    opt_out: OptOutTags,
    in_flight: Collection[tuple[str, str]] = frozenset(),
    window_until: datetime | None = None,
    holds: Sequence[Hold] = (),
) -> list[Decision]:
    """One decision per selected graph. `window_until` marks a reconcile pass inside a
    keep-stopped window, which only changes the reasons. `holds` are those in force at
    `now`: a graph held the other way is skipped with the hold's reason."""
    decisions = []
    for project, graphs in inventory.items():
        for graph in graphs:
            if selects(schedule.targets, project, graph):
                act, reason = _decide(
                    schedule, project, graph, now, opt_out, in_flight, window_until, holds
                )
                decisions.append(
                    Decision(
                        project, graph.id, graph.name, schedule.name, schedule.action, act, reason
                    )
                )
    return decisions


def _decide(
    schedule: Schedule,
    project: str,
    graph: Graph,
    now: datetime,
    opt_out: OptOutTags,
    in_flight: Collection[tuple[str, str]],
    window_until: datetime | None,
    holds: Sequence[Hold],
) -> tuple[bool, str]:
    held = _held_back(schedule.exclude, project, graph, now, opt_out, in_flight) or hold_reason(
        holds, project, graph, schedule.action, now
    )
    if held:
        return False, held
    return _by_status(schedule.action, graph.status, window_until)


def hold_reason(
    holds: Sequence[Hold], project: str, graph: Graph, action: Action, now: datetime
) -> str | None:
    """Why a hold keeps this graph from `action` at `now`, or None: `keep: running` bars
    every stop (a schedule's, a window's re-stop, an idle rule's, a deferral's), `keep:
    stopped` every start."""
    hold = applicable_hold(holds, project, graph, now)
    if hold is None or hold.keep != ("running" if action == "stop" else "stopped"):
        return None
    return held_reason(hold, now)


def _held_back(
    exclude: Selector | None,
    project: str,
    graph: Graph,
    now: datetime,
    opt_out: OptOutTags,
    in_flight: Collection[tuple[str, str]],
) -> str | None:
    """Why a selected graph is left alone whatever its status, or None."""
    if graph.is_database_edition:  # never stopped, so never started either
        return DATABASE_EDITION
    if exclude is not None and selects(exclude, project, graph):
        return "excluded by the rule's exclude"
    tags = graph.tags
    if opt_out.skip in tags:
        return f"opted out by tag {opt_out.skip}"
    if opt_out.snooze_until in tags:
        until = parse_snooze(tags[opt_out.snooze_until])
        if until is None:
            return (
                f"tag {opt_out.snooze_until}={tags[opt_out.snooze_until]!r} is not an ISO time; left alone "
                "(write e.g. 2026-12-01T09:00:00+08:00)"
            )
        if now < until:
            return f"snoozed until {until.isoformat()} by tag {opt_out.snooze_until}"
    if (project, graph.id) in in_flight:
        return IN_FLIGHT
    return None


def _by_status(action: Action, code: int, window_until: datetime | None) -> tuple[bool, str]:
    wanted, moving_there = TARGET_STATUS[action], MOVING_STATUS[action]
    opposite = TARGET_STATUS["start" if action == "stop" else "stop"]
    if code == opposite:
        if window_until is not None:
            return (
                True,
                f"came back running inside the keep-stopped window (until {window_until.isoformat()})",
            )
        return True, "running" if action == "stop" else "stopped"
    if code == wanted:
        return False, f"already {'stopped' if action == 'stop' else 'running'}"
    if code == moving_there:
        return False, f"already {'stopping' if action == 'stop' else 'starting'}"
    if code == GraphStatus.DELETED:
        return False, "deleted"
    cls = GraphStatus.classify(code)
    if cls == "frozen":
        return False, "frozen (arrears or expiry)"
    if cls in ("transitional", "faulty", "busy"):
        return False, f"{cls} ({describe_status(code)})"
    return False, f"unknown status {code}: left alone"


def parse_snooze(value: str) -> datetime | None:
    """An ISO time; a time without an offset is taken as UTC."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def holiday_reason(
    schedule: Schedule, calendars: Mapping[str, Calendar], fire_time: datetime
) -> str | None:
    """Why a firing is skipped for a holiday (judged on the schedule's local date), or None."""
    local = fire_time.astimezone(ZoneInfo(schedule.timezone)).date()
    for name in schedule.skip_on:
        calendar = calendars[name]
        if calendar.is_holiday(local):
            what = calendar.holiday_name(local)
            return f"holiday {local.isoformat()} in calendar {name}" + (
                f" ({what})" if what else ""
            )
    return None


def window_end(
    schedule: Schedule, now: datetime, calendars: Mapping[str, Calendar] | None = None
) -> datetime | None:
    """If `now` lies inside the schedule's keep-stopped window, when the window ends. A
    firing skipped for a holiday opens no window: the day off means the graphs stay up."""
    if schedule.keep_stopped_until is None:
        return None
    start = previous_fire(cron_trigger(schedule.cron, schedule.timezone), now)
    if start is None:
        return None
    if calendars is not None and holiday_reason(schedule, calendars, start):
        return None
    end = next_fire(cron_trigger(schedule.keep_stopped_until, schedule.timezone), start)
    return end if end is not None and end > now else None


def is_managed(schedules: Sequence[Schedule], project: str, graph: Graph) -> bool:
    """A graph some stop schedule selects (and does not exclude): its stopped hours count
    as savings."""
    return any(
        s.action == "stop"
        and selects(s.targets, project, graph)
        and not (s.exclude is not None and selects(s.exclude, project, graph))
        for s in schedules
    )


class ManagedIndex:
    """`is_managed` for many graphs against many schedules: each stop schedule is filed
    under one thing a graph must have for its targets to match (an id, else a tag value,
    else a tag key), so a graph is checked in full only against the schedules filed under
    what it has (and those that select by project or name alone). The answer is
    `is_managed`'s; only the work differs (10,000 graphs x 200 schedules: 2 million
    selector checks brute force, ~50,000 here with the bench's team tags)."""

    def __init__(self, schedules: Sequence[Schedule]) -> None:
        self._by_id: dict[str, list[Schedule]] = {}
        self._by_tag: dict[tuple[str, str], list[Schedule]] = {}
        self._by_key: dict[str, list[Schedule]] = {}
        self._everywhere: list[Schedule] = []  # by project or name alone: checked for all
        for s in schedules:
            if s.action != "stop":
                continue
            targets = s.targets
            valued = [(k, v) for k, v in targets.tags.items() if v != "*"]
            if targets.ids:
                for graph_id in set(targets.ids):
                    self._by_id.setdefault(graph_id, []).append(s)
            elif valued:
                self._by_tag.setdefault(valued[0], []).append(s)
            elif targets.tags:
                self._by_key.setdefault(next(iter(targets.tags)), []).append(s)
            else:
                self._everywhere.append(s)

    def is_managed(self, project: str, graph: Graph) -> bool:
        return any(
            selects(s.targets, project, graph)
            and not (s.exclude is not None and selects(s.exclude, project, graph))
            for s in self._candidates(graph)
        )

    def _candidates(self, graph: Graph) -> list[Schedule]:
        found = list(self._everywhere)
        found.extend(self._by_id.get(graph.id, ()))
        if self._by_tag or self._by_key:
            for key, value in graph.tags.items():
                found.extend(self._by_tag.get((key, value), ()))
                found.extend(self._by_key.get(key, ()))
        return found


# --- idle rules and deferral -------------------------------------------------------------

GraphKey = tuple[str, str]  # (project, graph id)


def idle_candidates(rule: IdleRule, project: str, graphs: Sequence[Graph]) -> list[Graph]:
    """The graphs an idle pass asks Cloud Eye about: selected, not excluded, running, and
    of an edition GES can stop."""
    return [
        g
        for g in graphs
        if g.status == GraphStatus.RUNNING
        and not g.is_database_edition
        and selects(rule.targets, project, g)
        and not (rule.exclude is not None and selects(rule.exclude, project, g))
    ]


def plan_idle(
    rule: IdleRule,
    inventory: Mapping[str, Sequence[Graph]],
    verdicts: Mapping[GraphKey, Verdict],
    now: datetime,
    opt_out: OptOutTags,
    in_flight: Collection[GraphKey] = frozenset(),
    holds: Sequence[Hold] = (),
) -> list[Decision]:
    """One stop decision per selected graph: act only on a running graph judged idle, with
    the verdict's reason; a running graph without a verdict is not judged, never idle; a
    graph held running is not stopped, with the hold's reason."""
    decisions = []
    for project, graphs in inventory.items():
        for graph in graphs:
            if not selects(rule.targets, project, graph):
                continue
            held = _held_back(rule.exclude, project, graph, now, opt_out, in_flight) or hold_reason(
                holds, project, graph, "stop", now
            )
            if held:
                act, reason = False, held
            elif graph.status != GraphStatus.RUNNING:
                act, reason = _by_status("stop", graph.status, None)
            elif (verdict := verdicts.get((project, graph.id))) is None:
                act, reason = False, "not judged: no Cloud Eye data was read"
            else:
                act, reason = verdict.is_idle, verdict.reason
            decisions.append(
                Decision(project, graph.id, graph.name, rule.name, "stop", act, reason)
            )
    return decisions


def defer_in_use(
    decisions: Sequence[Decision], use: Mapping[GraphKey, Verdict], until: datetime
) -> tuple[list[Decision], list[Decision]]:
    """(the decisions with graphs in use held back, the decisions deferred): a stop
    schedule never stops a graph someone is using; it is checked again until `until`."""
    kept, deferred = [], []
    for d in decisions:
        verdict = use.get((d.project, d.graph_id))
        if d.act and verdict is not None and verdict.is_in_use:
            reason = f"deferred: {verdict.reason}; stopped once quiet, until {until.isoformat()}"
            d = Decision(d.project, d.graph_id, d.graph_name, d.rule, d.action, False, reason)
            deferred.append(d)
        kept.append(d)
    return kept, deferred


def is_active(hours: ActiveHours, now: datetime) -> bool:
    """Inside the hours: the latest `from` time came after the latest `until` time."""
    since = previous_fire(cron_trigger(hours.start, hours.timezone), now)
    ended = previous_fire(cron_trigger(hours.until, hours.timezone), now)
    return since is not None and (ended is None or since > ended)
