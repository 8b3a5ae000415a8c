"""Planning is pure: fixed datetimes in, decisions with reasons out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.config import Calendar, OptOutTags, Schedule, Selector, cron_trigger
from daemon.model import Graph
from daemon.planning import (
    fire_times,
    holiday_reason,
    missed_firings,
    plan,
    previous_fire,
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


@pytest.mark.parametrize(
    ("cron", "tz", "start", "expected_utc"),
    [
        # 20:00 in Shanghai (UTC+8, no DST) is 12:00 UTC
        (
            "0 20 * * mon-fri",
            "Asia/Shanghai",
            datetime(2026, 11, 27, 0, 0, tzinfo=UTC),
            ["2026-11-27T12:00", "2026-11-30T12:00"],
        ),
        # numeric weekdays are crontab's: 1-5 is Monday to Friday, never Saturday
        (
            "0 20 * * 1-5",
            "Asia/Shanghai",
            datetime(2026, 11, 27, 0, 0, tzinfo=UTC),
            ["2026-11-27T12:00", "2026-11-30T12:00"],
        ),
        # Berlin spring forward (2026-03-29): 20:00 CEST is 18:00 UTC; the day before 19:00 UTC
        (
            "0 20 * * *",
            "Europe/Berlin",
            datetime(2026, 3, 28, 0, 0, tzinfo=UTC),
            ["2026-03-28T19:00", "2026-03-29T18:00"],
        ),
        # 02:30 does not exist on the spring-forward day in Berlin: that day it fires at 03:30 CEST (01:30 UTC)
        (
            "30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 3, 28, 12, 0, tzinfo=UTC),
            ["2026-03-29T01:30", "2026-03-30T00:30"],
        ),
        # fall back (2026-10-25): 02:30 happens twice; it fires once, like cron
        (
            "30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 10, 24, 12, 0, tzinfo=UTC),
            ["2026-10-25T00:30", "2026-10-26T01:30"],
        ),
        # US DST end (2026-11-01): 08:00 New York is 12:00 UTC before, 13:00 UTC after
        (
            "0 8 * * *",
            "America/New_York",
            datetime(2026, 10, 31, 0, 0, tzinfo=UTC),
            ["2026-10-31T12:00", "2026-11-01T13:00"],
        ),
    ],
)
def test_fire_times_in_time_zones_and_across_dst(
    cron: str, tz: str, start: datetime, expected_utc: list[str]
) -> None:
    rule = schedule(cron=cron, timezone=tz)
    fires = list(fire_times(rule, start, start + timedelta(days=4)))[:2]
    assert [f.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") for f in fires] == expected_utc


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


def test_previous_fire_and_missed_firings() -> None:
    trigger = cron_trigger("0 20 * * mon-fri", "Asia/Shanghai")
    monday_noon = datetime(2026, 11, 30, 12, 0, tzinfo=SHANGHAI)
    assert previous_fire(trigger, monday_noon) == datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    assert previous_fire(
        cron_trigger("*/2 * * * *", "UTC"), datetime(2026, 1, 1, 0, 3, 59, tzinfo=UTC)
    ) == datetime(2026, 1, 1, 0, 2, tzinfo=UTC)
    rule = schedule()
    late = datetime(2026, 11, 27, 20, 40, tzinfo=SHANGHAI)
    friday = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    assert missed_firings(rule, None, late, timedelta(hours=1)) == (friday, [])
    assert missed_firings(rule, None, late, timedelta(minutes=30)) == (
        None,
        [],
    )  # unknown: not counted
    assert missed_firings(rule, friday, late, timedelta(hours=1)) == (None, [])  # it did run


def test_firings_lost_while_down_are_listed_when_the_last_one_is_known() -> None:
    rule = schedule()  # 20:00 Mon-Fri
    last = datetime(2026, 11, 24, 20, 0, tzinfo=SHANGHAI)  # Tuesday
    friday_late = datetime(2026, 11, 27, 20, 10, tzinfo=SHANGHAI)
    run, lost = missed_firings(rule, last, friday_late, timedelta(hours=1))
    assert run == datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    assert [d.day for d in lost] == [25, 26]  # Wednesday and Thursday
    run, lost = missed_firings(rule, last, friday_late + timedelta(hours=2), timedelta(hours=1))
    assert run is None
    assert [d.day for d in lost] == [25, 26, 27]
