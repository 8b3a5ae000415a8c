"""Planning is pure: fixed datetimes in, decisions with reasons out."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.config.models import ActiveHours, Calendar, IdleRule, OptOutTags, Schedule, Selector
from daemon.domain.model import Graph
from daemon.rules.idle import Verdict, VerdictKind
from daemon.rules.planning import (
    ManagedIndex,
    defer_in_use,
    holiday_reason,
    idle_candidates,
    is_active,
    is_managed,
    plan,
    plan_idle,
    selects,
    window_end,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday


def graph(name: str, status: int = 200, gid: str | None = None, **tags: str) -> Graph:
    return Graph(
        id=gid or f"id-{name}",
        name=name,
        status=status,
        tags=tags,
    )


def schedule(action: str = "stop", **fields: object) -> Schedule:
    base: dict[str, object] = {
        "name": "rule",
        "action": action,
        "cron": "0 20 * * mon-fri",
        "timezone": "Asia/Shanghai",
        "targets": {"projects": ["p"]},
    }
    return Schedule.model_validate({**base, **fields})


def decide(
    g: Graph, rule: Schedule | None = None, now: datetime = NOW, **kwargs: object
) -> tuple[bool, str]:
    (decision,) = plan(rule or schedule(), {"p": [g]}, now, OptOutTags(), **kwargs)  # type: ignore[arg-type]
    return decision.act, decision.reason


@pytest.mark.parametrize(
    ("selector", "name", "tags", "expected"),
    [
        ({"projects": ["p"]}, "x", {}, True),
        ({"projects": ["q"]}, "x", {}, False),
        ({"names": ["dev-*"]}, "dev-1", {}, True),
        ({"names": ["dev-*"]}, "prod-1", {}, False),
        ({"names": ["dev-*", "test-*"]}, "test-1", {}, True),
        ({"names": ["Dev-*"]}, "dev-1", {}, False),  # globs are case-sensitive
        ({"tags": {"env": "dev"}}, "x", {"env": "dev"}, True),
        ({"tags": {"env": "dev"}}, "x", {"env": "prod"}, False),
        ({"tags": {"env": "*"}}, "x", {"env": "anything"}, True),
        ({"tags": {"env": "*"}}, "x", {}, False),
        (
            {"names": ["dev-*"], "tags": {"env": "dev"}},
            "dev-1",
            {"env": "prod"},
            False,
        ),  # all must match
        ({"ids": ["id-x"]}, "x", {}, True),
    ],
)
def test_selectors(
    selector: dict[str, object], name: str, tags: dict[str, str], expected: bool
) -> None:
    assert selects(Selector.model_validate(selector), "p", graph(name, **tags)) is expected


@pytest.mark.parametrize(
    ("action", "status", "act", "reason"),
    [
        ("stop", 200, True, "running"),
        ("stop", 900, False, "already stopped"),
        ("stop", 901, False, "already stopping"),
        ("stop", 920, False, "transitional (starting)"),
        ("stop", 100, False, "transitional (preparing)"),
        ("stop", 202, False, "busy (importing)"),
        ("stop", 204, False, "busy (exporting)"),
        ("stop", 207, False, "busy (expanding)"),
        ("stop", 903, False, "busy (backing up)"),
        ("stop", 300, False, "faulty (faulty)"),
        ("stop", 303, False, "faulty (creation failed)"),
        ("stop", 800, False, "frozen (arrears or expiry)"),
        ("stop", 400, False, "deleted"),
        ("stop", 999, False, "unknown status 999: left alone"),
        ("start", 900, True, "stopped"),
        ("start", 200, False, "already running"),
        ("start", 920, False, "already starting"),
        ("start", 901, False, "transitional (stopping)"),
        ("start", 202, False, "busy (importing)"),
    ],
)
def test_every_status_has_a_decision_and_reason(
    action: str, status: int, act: bool, reason: str
) -> None:
    assert decide(graph("g", status), schedule(action)) == (act, reason)


def test_opt_out_tags_and_exclude() -> None:
    assert decide(graph("g", **{"graphnap-skip": ""})) == (False, "opted out by tag graphnap-skip")
    later = (NOW + timedelta(hours=3)).isoformat()
    act, reason = decide(graph("g", **{"graphnap-snooze-until": later}))
    assert not act
    assert reason.startswith("snoozed until 2026-11-27T15:00:00+00:00")
    assert decide(graph("g", **{"graphnap-snooze-until": "2026-11-01T00:00:00+08:00"})) == (
        True,
        "running",
    )
    act, reason = decide(graph("g", **{"graphnap-snooze-until": "next tuesday"}))
    assert not act
    assert "is not an ISO time; left alone" in reason
    rule = schedule(exclude={"names": ["*-keep"]})
    assert decide(graph("db-keep"), rule) == (False, "excluded by the rule's exclude")


def test_opt_out_tag_keys_are_configurable() -> None:
    (d,) = plan(schedule(), {"p": [graph("g", hold="yes")]}, NOW, OptOutTags(skip="hold"))
    assert (d.act, d.reason) == (False, "opted out by tag hold")


def test_in_flight_graphs_are_not_acted_on_twice() -> None:
    g = graph("g")
    assert decide(g, in_flight={("p", g.id)}) == (
        False,
        "a job for this graph is already in flight",
    )


def test_only_selected_graphs_get_decisions() -> None:
    rule = schedule(targets={"projects": ["p"], "tags": {"env": "dev"}})
    decisions = plan(
        rule,
        {"p": [graph("a", env="dev"), graph("b", env="prod")], "q": [graph("c", env="dev")]},
        NOW,
        OptOutTags(),
    )
    assert [(d.project, d.graph_name) for d in decisions] == [("p", "a")]


def test_holidays_skip_by_the_schedules_local_date() -> None:
    calendars = {
        "cn": Calendar(country="CN"),
        "own": Calendar(dates=[datetime(2026, 12, 24).date()]),
    }
    rule = schedule("start", cron="0 7 * * mon-fri", skip_on=["cn", "own"])
    # 2026-10-01 07:00 Shanghai is 2026-09-30 in UTC: the local date decides (National Day)
    national_day = datetime(2026, 10, 1, 7, 0, tzinfo=SHANGHAI)
    assert national_day.astimezone(UTC).date().isoformat() == "2026-09-30"
    reason = holiday_reason(rule, calendars, national_day)
    assert reason is not None
    assert reason.startswith("holiday 2026-10-01 in calendar cn")
    assert "listed date" in (
        holiday_reason(rule, calendars, datetime(2026, 12, 24, 8, tzinfo=SHANGHAI)) or ""
    )
    assert holiday_reason(rule, calendars, datetime(2026, 11, 27, 8, tzinfo=SHANGHAI)) is None


@pytest.mark.parametrize(
    ("local_now", "inside_until"),
    [
        (
            datetime(2026, 11, 27, 22, 0, tzinfo=SHANGHAI),
            "2026-11-30T08:00:00+08:00",
        ),  # Friday night
        (datetime(2026, 11, 28, 15, 0, tzinfo=SHANGHAI), "2026-11-30T08:00:00+08:00"),  # Saturday
        (
            datetime(2026, 11, 30, 7, 59, tzinfo=SHANGHAI),
            "2026-11-30T08:00:00+08:00",
        ),  # Monday, just before
        (datetime(2026, 11, 30, 8, 0, tzinfo=SHANGHAI), None),  # window over
        (datetime(2026, 11, 26, 12, 0, tzinfo=SHANGHAI), None),  # Thursday noon
        (
            datetime(2026, 11, 26, 21, 0, tzinfo=SHANGHAI),
            "2026-11-27T08:00:00+08:00",
        ),  # Thursday night
    ],
)
def test_keep_stopped_windows(local_now: datetime, inside_until: str | None) -> None:
    rule = schedule(keep_stopped_until="0 8 * * mon-fri")
    end = window_end(rule, local_now)
    assert (end.isoformat() if end else None) == inside_until


def test_a_weekly_window_is_not_confused_by_a_daily_end() -> None:
    # stop Friday 22:00, keep stopped until 08:00 on weekdays: Wednesday noon is outside
    rule = schedule(cron="0 22 * * fri", keep_stopped_until="0 8 * * mon-fri")
    assert window_end(rule, datetime(2026, 11, 25, 12, 0, tzinfo=SHANGHAI)) is None
    assert window_end(rule, datetime(2026, 11, 29, 12, 0, tzinfo=SHANGHAI)) is not None


def test_window_reason_says_the_graph_came_back() -> None:
    until = datetime(2026, 11, 30, 8, 0, tzinfo=SHANGHAI)
    act, reason = decide(graph("g", 200), window_until=until)
    assert act
    assert (
        reason
        == "came back running inside the keep-stopped window (until 2026-11-30T08:00:00+08:00)"
    )
    assert decide(graph("g", 900), window_until=until) == (False, "already stopped")


def idle_rule(**fields: object) -> IdleRule:
    base: dict[str, object] = {"name": "idle-dev", "targets": {"projects": ["p"]}, "idle_for": "2h"}
    return IdleRule.model_validate({**base, **fields})


IDLE = Verdict(VerdictKind.IDLE, "idle: 0 requests in 2h", 0)
IN_USE = Verdict(VerdictKind.IN_USE, "in use: 312 requests in the last 2h", 312)


@pytest.mark.parametrize(
    ("g", "verdict", "expected"),
    [
        (graph("a"), IDLE, (True, "idle: 0 requests in 2h")),
        (graph("a"), IN_USE, (False, "in use: 312 requests in the last 2h")),
        (graph("a"), None, (False, "not judged: no Cloud Eye data was read")),
        (graph("a", 900), None, (False, "already stopped")),
        (graph("a", 202), None, (False, "busy (importing)")),
        (graph("a", **{"graphnap-skip": "x"}), IDLE, (False, "opted out by tag graphnap-skip")),
    ],
)
def test_an_idle_rule_stops_only_a_running_graph_judged_idle(
    g: Graph, verdict: Verdict | None, expected: tuple[bool, str]
) -> None:
    verdicts = {} if verdict is None else {("p", g.id): verdict}
    (d,) = plan_idle(idle_rule(), {"p": [g]}, verdicts, NOW, OptOutTags())
    assert (d.act, d.reason) == expected
    assert (d.rule, d.action) == ("idle-dev", "stop")


def test_idle_candidates_are_the_selected_running_graphs_not_excluded() -> None:
    rule = idle_rule(exclude={"names": ["*-keep"]})
    graphs = [graph("a"), graph("b-keep"), graph("c", 900), graph("d", 202)]
    assert [g.name for g in idle_candidates(rule, "p", graphs)] == ["a"]


def test_graphs_in_use_are_deferred_with_the_reason_and_the_rest_go_on() -> None:
    until = datetime(2026, 11, 27, 23, 0, tzinfo=SHANGHAI)
    decisions = plan(
        schedule(), {"p": [graph("a"), graph("b"), graph("c", 900)]}, NOW, OptOutTags()
    )
    use = {("p", "id-a"): IN_USE, ("p", "id-b"): Verdict(VerdictKind.IDLE, "quiet: 0 requests", 0)}
    kept, deferred = defer_in_use(decisions, use, until)
    assert [(d.graph_name, d.act) for d in kept] == [("a", False), ("b", True), ("c", False)]
    assert [d.graph_name for d in deferred] == ["a"]
    assert deferred[0].reason == (
        "deferred: in use: 312 requests in the last 2h; stopped once quiet, until 2026-11-27T23:00:00+08:00"
    )


@pytest.mark.parametrize(
    ("local", "active"),
    [
        (datetime(2026, 11, 27, 18, 59, tzinfo=SHANGHAI), False),
        (datetime(2026, 11, 27, 19, 0, tzinfo=SHANGHAI), True),
        (datetime(2026, 11, 28, 3, 0, tzinfo=SHANGHAI), True),  # past midnight
        (datetime(2026, 11, 28, 7, 0, tzinfo=SHANGHAI), False),
        (datetime(2026, 11, 28, 12, 0, tzinfo=SHANGHAI), False),
    ],
)
def test_active_hours_span_midnight(local: datetime, active: bool) -> None:
    hours = ActiveHours.model_validate(
        {"from": "0 19 * * *", "until": "0 7 * * *", "timezone": "Asia/Shanghai"}
    )
    assert is_active(hours, local) is active


def test_a_firing_skipped_for_a_holiday_opens_no_keep_stopped_window() -> None:
    rule = schedule(keep_stopped_until="0 8 * * mon-fri", skip_on=["off"])
    calendars = {"off": Calendar(dates=[datetime(2026, 11, 27).date()])}
    friday_night = datetime(2026, 11, 27, 22, 0, tzinfo=SHANGHAI)
    assert window_end(rule, friday_night, calendars) is None
    thursday_night = datetime(2026, 11, 26, 22, 0, tzinfo=SHANGHAI)
    assert window_end(rule, thursday_night, calendars) is not None


def _random_selector(rng: random.Random) -> dict[str, object]:
    """Some of: projects, ids, name globs, tags (a value or '*'); possibly none."""
    out: dict[str, object] = {}
    if rng.random() < 0.3:
        out["projects"] = rng.sample(["p", "q", "r"], rng.randint(1, 2))
    if rng.random() < 0.2:
        out["ids"] = [f"id{rng.randrange(40):03d}" for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.3:
        out["names"] = rng.sample(["g-1*", "*-keep", "g-?2*", "g-0007"], rng.randint(1, 2))
    if rng.random() < 0.7:
        keys = rng.sample(["env", "team", "tier"], rng.randint(1, 2))
        out["tags"] = {k: rng.choice(["*", "a", "b", "c"]) for k in keys}
    return out or {"projects": ["p"]}


def test_the_managed_index_answers_as_the_check_against_every_schedule() -> None:
    """The index is only a shortcut: on random fleets and random stop and start schedules
    (ids, globs, tag values, '*', excludes, projects) it calls the same graphs managed."""
    answers: set[bool] = set()
    for seed in range(40):
        answers |= _same_managed_set(random.Random(seed))
    assert answers == {True, False}  # the fleets put both answers to the test


def _same_managed_set(rng: random.Random) -> set[bool]:
    schedules = [
        schedule(
            action=rng.choice(["stop", "start"]),
            name=f"s{k}",
            targets=_random_selector(rng),
            exclude=_random_selector(rng) if rng.random() < 0.3 else None,
        )
        for k in range(rng.randint(0, 30))
    ]
    fleet = [
        (
            rng.choice(["p", "q", "r"]),
            graph(
                f"g-{rng.randrange(40):04d}" + rng.choice(["", "-keep"]),
                gid=f"id{i:03d}",
                **{
                    k: rng.choice("abc")
                    for k in rng.sample(["env", "team", "tier"], rng.randint(0, 3))
                },
            ),
        )
        for i in range(200)
    ]
    index = ManagedIndex(schedules)
    brute = [is_managed(schedules, project, g) for project, g in fleet]
    assert [index.is_managed(project, g) for project, g in fleet] == brute
    return set(brute)


def test_the_managed_index_files_a_schedule_by_ids_tags_or_nothing() -> None:
    """A schedule selecting by id, by a tag value or by a tag key alone is found through
    that; one selecting by project or name only is checked for every graph."""
    rules = [
        schedule(name="by-id", targets={"ids": ["id-a"]}),
        schedule(name="by-tag", targets={"tags": {"env": "dev", "team": "*"}}),
        schedule(name="by-key", targets={"tags": {"tier": "*"}}),
        schedule(name="by-name", targets={"names": ["n-*"], "projects": ["p"]}),
        schedule(name="start", action="start", targets={"projects": ["p"]}),
    ]
    index = ManagedIndex(rules)
    assert index.is_managed("p", graph("x", gid="id-a"))
    assert index.is_managed("p", graph("x", env="dev", team="t"))
    assert not index.is_managed("p", graph("x", env="dev"))  # team is wanted too
    assert index.is_managed("q", graph("x", tier="1"))
    assert index.is_managed("p", graph("n-1"))
    assert not index.is_managed("q", graph("n-1"))
    assert not index.is_managed("p", graph("x"))  # only the start schedule selects it
