"""The rules of holds are pure: fixed datetimes in (DST days among them), verdicts and the
sentences a person reads out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from daemon.domain.hold import Hold, HoldGraphs, Keep, glob_problem
from daemon.domain.model import Graph
from daemon.rules.holds import (
    HoldProblem,
    applicable_hold,
    config_hold_problems,
    hand_start_hold,
    held_reason,
    holds_graph,
    is_expired,
    judge_window_start,
    validate_hold,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
PLUS8 = timezone(timedelta(hours=8))
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
WEEK = timedelta(days=7)
SEARCH = Graph(id="g-1", name="search-prod", status=200)


def hold(
    hid: str = "h1",
    *,
    keep: Keep = "running",
    until: datetime = datetime(2026, 3, 10, 23, 0, tzinfo=PLUS8),
    ids: tuple[str, ...] = (),
    names: tuple[str, ...] = ("search-*",),
    project: str = "prod",
    reason: str = "release test",
    by: str = "token search-team",
) -> Hold:
    return Hold(
        id=hid,
        graphs=HoldGraphs(project=project, ids=ids, names=names),
        keep=keep,
        until=until,
        reason=reason,
        by=by,
        source="api",
        made_at=NOW,
    )


# --- which hold applies ---


@pytest.mark.parametrize(
    ("graphs", "project", "held"),
    [
        (HoldGraphs("prod", names=("search-*",)), "prod", True),
        (HoldGraphs("prod", names=("Search-*",)), "prod", False),  # case counts, as in rules
        (HoldGraphs("prod", ids=("g-1",)), "prod", True),
        (HoldGraphs("prod", ids=("g-2",), names=("search-prod",)), "prod", True),  # either list
        (HoldGraphs("prod", ids=("g-2",), names=("other",)), "prod", False),
        (HoldGraphs("prod", names=("search-*",)), "dev", False),  # another project's graph
    ],
)
def test_a_hold_names_graphs_of_its_project_by_id_or_glob(
    graphs: HoldGraphs, project: str, held: bool
) -> None:
    h = Hold("h", graphs, "running", NOW + timedelta(hours=1), "why", "me", "api")
    assert holds_graph(h, project, SEARCH) is held


def test_a_hold_ends_at_its_until() -> None:
    h = hold(until=NOW + timedelta(minutes=1))
    assert not is_expired(h, NOW)
    assert is_expired(h, NOW + timedelta(minutes=1))
    assert applicable_hold([h], "prod", SEARCH, NOW + timedelta(seconds=59)) == h
    assert applicable_hold([h], "prod", SEARCH, NOW + timedelta(minutes=1)) is None


def test_of_several_holds_the_one_that_ends_last_decides() -> None:
    early = hold("a", until=NOW + timedelta(hours=1))
    late = hold("b", until=NOW + timedelta(hours=5))
    assert applicable_hold([early, late], "prod", SEARCH, NOW) == late
    assert applicable_hold([late, early], "prod", SEARCH, NOW) == late
    # once the later one is gone the earlier one still holds
    assert applicable_hold([early], "prod", SEARCH, NOW) == early


def test_keep_running_wins_over_keep_stopped_whatever_ends_last() -> None:
    on_leave = hold("leave", keep="stopped", until=NOW + timedelta(days=3))
    wake = hold("wake", keep="running", until=NOW + timedelta(hours=2))
    assert applicable_hold([on_leave, wake], "prod", SEARCH, NOW) == wake
    # after the wake's hold ends, the graph is on leave again
    assert applicable_hold([on_leave, wake], "prod", SEARCH, NOW + timedelta(hours=3)) == on_leave


def test_equal_holds_are_broken_by_id_not_by_order() -> None:
    a, b = hold("a"), hold("b")
    assert applicable_hold([b, a], "prod", SEARCH, NOW) == a
    assert applicable_hold([a, b], "prod", SEARCH, NOW) == a


def test_an_unheld_graph_gets_no_hold() -> None:
    assert applicable_hold([hold(names=("index-*",))], "prod", SEARCH, NOW) is None
    assert applicable_hold([], "prod", SEARCH, NOW) is None


# --- the reason a person reads ---


@pytest.mark.parametrize(
    ("until", "keep", "shown"),
    [
        # the offset it was given, today in that offset
        (datetime(2026, 3, 10, 23, 0, tzinfo=PLUS8), "running", "until 23:00 +08:00"),
        # the same instant given in UTC is shown in UTC
        (datetime(2026, 3, 10, 15, 0, tzinfo=UTC), "running", "until 15:00 +00:00"),
        # another day than today is written out
        (datetime(2026, 3, 16, 8, 0, tzinfo=PLUS8), "stopped", "until 2026-03-16 08:00 +08:00"),
        # a negative offset with minutes, seconds when there are some
        (
            datetime(2026, 3, 10, 9, 30, 15, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
            "running",
            "until 09:30:15 -03:30",
        ),
        # a zone: the offset it has on that day (Berlin is on summer time from 29 March)
        (datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN), "stopped", "until 2026-03-30 09:00 +02:00"),
    ],
)
def test_the_skip_reason_shows_until_in_its_own_offset(
    until: datetime, keep: Keep, shown: str
) -> None:
    assert held_reason(hold(until=until, keep=keep), NOW) == (
        f"held {keep} {shown} by token search-team: release test"
    )


def test_the_skip_reason_in_the_exact_form_people_were_promised() -> None:
    assert (
        held_reason(hold(), NOW)
        == "held running until 23:00 +08:00 by token search-team: release test"
    )


def test_today_is_judged_in_the_offset_of_until_not_in_utc() -> None:
    # 01:00 +08:00 on the 11th is 17:00 UTC on the 10th: at 18:00 +08:00 on the 10th it is tomorrow
    until = datetime(2026, 3, 11, 1, 0, tzinfo=PLUS8)
    assert "until 2026-03-11 01:00 +08:00" in held_reason(
        hold(until=until), NOW - timedelta(hours=2)
    )
    # and at 00:30 +08:00 on the 11th (16:30 UTC on the 10th) it is today
    at = datetime(2026, 3, 10, 16, 30, tzinfo=UTC)
    assert "until 01:00 +08:00" in held_reason(hold(until=until), at)


# --- what makes a hold acceptable ---


def where(problems: list[HoldProblem]) -> list[tuple[str | int, ...]]:
    return [p.loc for p in problems]


def test_a_good_hold_has_no_problem() -> None:
    assert validate_hold(hold(), now=NOW, max_hold=WEEK) == []


@pytest.mark.parametrize(
    ("bad", "loc", "words"),
    [
        (hold(until=NOW), ("until",), "is not in the future"),
        (hold(until=NOW - timedelta(hours=1)), ("until",), "is not in the future"),
        (
            hold(until=NOW + WEEK + timedelta(minutes=1)),
            ("until",),
            "beyond the longest allowed hold (168h)",
        ),
        (hold(until=datetime(2026, 3, 11)), ("until",), "no time zone offset"),
        (hold(names=("search-[ab",)), ("graphs", "names", 0), "never closed"),
        (hold(names=("ok-*", "")), ("graphs", "names", 1), "empty glob"),
        (hold(names=("search prod",)), ("graphs", "names", 0), "no spaces"),
        (hold(names=()), ("graphs",), "names no graph"),
        (hold(reason="  "), ("reason",), "says why"),
        (hold(reason="x" * 201), ("reason",), "at most 200"),
    ],
)
def test_a_bad_hold_is_refused_with_where_and_why(
    bad: Hold, loc: tuple[object, ...], words: str
) -> None:
    problems = validate_hold(bad, now=NOW, max_hold=WEEK)
    assert where(problems) == [loc]
    assert words in problems[0].message
    assert problems[0].severity == "error"


def test_the_longest_hold_is_configurable_and_exactly_it_is_allowed() -> None:
    assert validate_hold(hold(until=NOW + WEEK), now=NOW, max_hold=WEEK) == []
    two_h = timedelta(hours=2)
    assert validate_hold(hold(until=NOW + two_h), now=NOW, max_hold=two_h) == []
    refused = validate_hold(hold(until=NOW + 2 * two_h), now=NOW, max_hold=two_h)
    assert "is 4h away, beyond the longest allowed hold (2h)" in refused[0].message


def test_globs_that_fnmatch_would_accept_silently_are_caught() -> None:
    assert glob_problem("search-[ab]*") is None
    assert glob_problem("search-[!x]") is None
    assert glob_problem("a[]") is not None  # '[]' opens a class fnmatch never closes
    assert glob_problem("x" * 65) is not None


def test_validate_warns_on_an_expired_config_hold_and_refuses_the_rest_located() -> None:
    holds = [
        hold("ok"),
        hold("old", until=NOW - timedelta(days=1)),
        hold("far", until=NOW + timedelta(days=30)),
        hold("glob", names=("a[",)),
    ]
    problems = config_hold_problems(holds, now=NOW, max_hold=WEEK)
    assert [(p.loc, p.severity) for p in problems] == [
        (("holds", 1, "until"), "warning"),
        (("holds", 2, "until"), "error"),
        (("holds", 3, "graphs", "names", 0), "error"),
    ]
    assert problems[0].message == "expired: until 2026-03-09 12:00 +00:00 has passed"
    assert problems[0].hint == "it holds nothing any more; remove it"


# --- a graph found running inside a keep-stopped window ---

MANUAL_2H = timedelta(hours=2)


@pytest.mark.parametrize(
    ("stopped_since", "started_at", "now", "zone", "until", "reason"),
    [
        # stopped 2 days ago by graphnap, started by a person at 22:10 Shanghai
        (
            datetime(2026, 3, 8, 12, 0, tzinfo=UTC),
            datetime(2026, 3, 10, 14, 10, tzinfo=UTC),
            datetime(2026, 3, 10, 14, 15, tzinfo=UTC),
            SHANGHAI,
            datetime(2026, 3, 11, 0, 10, tzinfo=SHANGHAI),
            "started by hand at 22:10; held until 00:10",
        ),
        # GES does not say when it started: from when graphnap saw it running
        (
            datetime(2026, 3, 8, 12, 0, tzinfo=UTC),
            None,
            datetime(2026, 3, 10, 14, 10, tzinfo=UTC),
            SHANGHAI,
            datetime(2026, 3, 11, 0, 10, tzinfo=SHANGHAI),
            "started by hand at 22:10; held until 00:10",
        ),
        # not known since when it was stopped: taken as a start by hand
        (
            None,
            datetime(2026, 3, 10, 14, 10, tzinfo=UTC),
            datetime(2026, 3, 10, 14, 15, tzinfo=UTC),
            SHANGHAI,
            datetime(2026, 3, 11, 0, 10, tzinfo=SHANGHAI),
            "started by hand at 22:10; held until 00:10",
        ),
        # Berlin springs forward at 02:00 on 29 March 2026: 01:30 + 2h elapsed is 04:30 CEST
        (
            datetime(2026, 3, 27, 20, 0, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN),
            datetime(2026, 3, 29, 1, 35, tzinfo=BERLIN),
            BERLIN,
            datetime(2026, 3, 29, 4, 30, tzinfo=BERLIN),
            "started by hand at 01:30; held until 04:30",
        ),
        # Berlin falls back at 03:00 on 25 October 2026: 01:30 + 2h elapsed is 02:30 CET
        (
            datetime(2026, 10, 23, 20, 0, tzinfo=UTC),
            datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN),
            datetime(2026, 10, 25, 1, 35, tzinfo=BERLIN),
            BERLIN,
            datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN),  # the second 02:30, CET
            "started by hand at 01:30; held until 02:30",
        ),
        # stopped 6 days 22 hours: still a person
        (
            datetime(2026, 3, 3, 16, 10, tzinfo=UTC),
            datetime(2026, 3, 10, 14, 10, tzinfo=UTC),
            datetime(2026, 3, 10, 14, 15, tzinfo=UTC),
            SHANGHAI,
            datetime(2026, 3, 11, 0, 10, tzinfo=SHANGHAI),
            "started by hand at 22:10; held until 00:10",
        ),
    ],
)
def test_a_start_by_hand_is_held_for_manual_start_hold(
    stopped_since: datetime | None,
    started_at: datetime | None,
    now: datetime,
    zone: ZoneInfo,
    until: datetime,
    reason: str,
) -> None:
    start = judge_window_start(
        stopped_since=stopped_since,
        started_at=started_at,
        now=now,
        manual_start_hold=MANUAL_2H,
        zone=zone,
    )
    assert start.by_hand
    assert start.until is not None
    # compared in UTC: datetimes of one zone compare by wall time, fold ignored
    assert start.until.astimezone(UTC) == until.astimezone(UTC)
    assert start.until.utcoffset() == until.utcoffset()
    assert start.reason == reason


@pytest.mark.parametrize(
    "stopped_for",
    [timedelta(days=7), timedelta(days=7, hours=3), timedelta(days=6, hours=23, minutes=30)],
)
def test_a_graph_back_after_about_seven_days_is_the_platform_and_is_stopped_again(
    stopped_for: timedelta,
) -> None:
    started = datetime(2026, 3, 10, 14, 10, tzinfo=UTC)
    start = judge_window_start(
        stopped_since=started - stopped_for,
        started_at=started,
        now=started + timedelta(minutes=5),
        manual_start_hold=MANUAL_2H,
        zone=SHANGHAI,
    )
    assert not start.by_hand
    assert start.until is None
    assert "the platform's 7-day restart; stopped again" in start.reason


def test_manual_start_hold_zero_keeps_stopping_again() -> None:
    start = judge_window_start(
        stopped_since=NOW - timedelta(days=1),
        started_at=NOW,
        now=NOW,
        manual_start_hold=timedelta(0),
        zone=SHANGHAI,
    )
    assert start.until is None
    assert start.reason == "started by hand at 20:00; manual_start_hold is 0: stopped again"


def test_a_start_by_hand_noticed_after_its_hold_would_have_ended_is_stopped_again() -> None:
    # graphnap was down: the person had their two hours already
    start = judge_window_start(
        stopped_since=NOW - timedelta(days=1),
        started_at=NOW,
        now=NOW + timedelta(hours=3),
        manual_start_hold=MANUAL_2H,
        zone=SHANGHAI,
    )
    assert start.by_hand
    assert start.until is None
    assert start.reason == "started by hand at 20:00; its hold ended at 22:00: stopped again"


def test_a_start_by_hand_becomes_a_hold_that_planning_shows() -> None:
    now = datetime(2026, 3, 10, 14, 15, tzinfo=UTC)
    start = judge_window_start(
        stopped_since=now - timedelta(days=1),
        started_at=datetime(2026, 3, 10, 14, 10, tzinfo=UTC),
        now=now,
        manual_start_hold=MANUAL_2H,
        zone=SHANGHAI,
    )
    made = hand_start_hold("prod", SEARCH, start, schedule="night-stop", now=now)
    assert made is not None
    assert made == hand_start_hold("prod", SEARCH, start, schedule="night-stop", now=now)
    assert applicable_hold([made], "prod", SEARCH, now) == made
    assert applicable_hold([made], "prod", Graph("g-2", "search-dev", 200), now) is None
    assert held_reason(made, now) == (
        "held running until 2026-03-11 00:10 +08:00 by schedule night-stop: "
        "started by hand at 22:10; held until 00:10"
    )
    assert validate_hold(made, now=now, max_hold=WEEK) == []
    platform = judge_window_start(
        stopped_since=now - WEEK, started_at=now, now=now, manual_start_hold=MANUAL_2H, zone=UTC
    )
    assert hand_start_hold("prod", SEARCH, platform, schedule="night-stop", now=now) is None
