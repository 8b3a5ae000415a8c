"""The hold book over a real state file: holds made, listed, released and ended at fixed
times, read back by a new book after a restart, refused by the rules with nothing changed,
and a damaged store leaving the config's holds only."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from daemon.domain.hold import Hold, HoldGraphs
from daemon.domain.model import Graph
from daemon.rules.holds import held_reason
from daemon.runtime.holds import (
    ConfigHoldRelease,
    HoldBook,
    HoldNotSaved,
    HoldRefused,
    UnknownHold,
)
from daemon.runtime.store import FileStore
from daemon.telemetry.metrics import Metrics

PLUS8 = timezone(timedelta(hours=8))
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 20:00 +08:00
TONIGHT = datetime(2026, 3, 10, 23, 0, tzinfo=PLUS8)
SEARCH = Graph(id="g-1", name="search-prod", status=200)
OTHER = Graph(id="g-2", name="index-prod", status=200)
WEEK = timedelta(days=7)


def book(path: Path, metrics: Metrics | None = None) -> HoldBook:
    counter = itertools.count(1)
    return HoldBook(FileStore(path), metrics=metrics, new_id=lambda: f"h-{next(counter)}")


def config_hold(until: datetime, *, hid: str = "config-1") -> Hold:
    graphs = HoldGraphs("prod", names=("index-*",))
    return Hold(hid, graphs, "stopped", until, "on leave", "alice", "config")


async def opened(path: Path, metrics: Metrics | None = None) -> HoldBook:
    """A book on the state file, loaded at NOW as at activation."""
    b = book(path, metrics)
    await b.load(NOW)
    return b


async def held_after_restart(path: Path, now: datetime) -> list[Hold]:
    """What a new process's book holds at `now`, read back from the state file."""
    restarted = book(path)
    await restarted.load(now)
    return restarted.holds(now)


def gauge(metrics: Metrics, project: str, keep: str) -> float | None:
    return metrics.registry.get_sample_value("graphnap_holds", {"project": project, "keep": keep})


async def make(
    b: HoldBook, *, until: datetime = TONIGHT, names: tuple[str, ...] = ("search-*",)
) -> Hold:
    return await b.create(
        HoldGraphs("prod", names=names),
        keep="running",
        until=until,
        reason="release test",
        by="token search-team",
        now=NOW,
    )


async def test_a_hold_made_is_listed_applies_and_says_who_made_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics(CollectorRegistry())
    b = await opened(tmp_path / "state.json", metrics)
    with caplog.at_level(logging.INFO, logger="daemon.runtime.holds"):
        hold = await make(b)
    assert hold.id == "h-1"
    assert hold.source == "api"
    assert hold.made_at == NOW
    assert b.holds(NOW) == [hold]
    assert b.applying("prod", SEARCH, NOW) == hold
    assert b.applying("prod", OTHER, NOW) is None
    assert held_reason(hold, NOW) == (
        "held running until 23:00 +08:00 by token search-team: release test"
    )
    assert [r.getMessage() for r in caplog.records] == [
        "hold h-1 made by token search-team: keep running prod/search-* "
        "until 2026-03-10T23:00:00+08:00: release test"
    ]
    assert gauge(metrics, "prod", "running") == 1.0


async def test_api_holds_are_read_back_after_a_restart(tmp_path: Path) -> None:
    first = await opened(tmp_path / "state.json")
    made = await make(first)
    later = NOW + timedelta(hours=1)
    again = book(tmp_path / "state.json")
    await again.load(later)
    [back] = again.holds(later)
    assert back == made
    assert back.until.utcoffset() == timedelta(hours=8)  # still shown as it was given
    assert again.applying("prod", SEARCH, later) == made


async def test_an_api_hold_never_outlives_its_until(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics(CollectorRegistry())
    b = await opened(tmp_path / "state.json", metrics)
    hold = await make(b)
    end = hold.until
    assert b.applying("prod", SEARCH, end - timedelta(seconds=1)) == hold
    assert b.applying("prod", SEARCH, end) is None  # even before a purge
    assert b.holds(end) == []
    with caplog.at_level(logging.INFO, logger="daemon.runtime.holds"):
        assert await b.purge(end) == [hold]
    assert "hold h-1 ended at 2026-03-10T23:00:00+08:00: prod/search-* is back under its rules" in [
        r.getMessage() for r in caplog.records
    ]
    assert gauge(metrics, "prod", "running") == 0.0
    # gone from the store too: a restart does not bring it back
    assert await held_after_restart(tmp_path / "state.json", NOW) == []


async def test_holds_that_ended_while_down_are_dropped_at_load(tmp_path: Path) -> None:
    b = await opened(tmp_path / "state.json")
    await make(b, until=NOW + timedelta(hours=1))
    kept = await make(b, until=NOW + timedelta(hours=5))
    assert await held_after_restart(tmp_path / "state.json", NOW + timedelta(hours=2)) == [kept]


@pytest.mark.parametrize(
    ("until", "names", "where"),
    [
        (
            NOW - timedelta(minutes=1),
            ("search-*",),
            "until: until 11:59 +00:00 is not in the future",
        ),
        (NOW + WEEK + timedelta(hours=1), ("search-*",), "beyond the longest allowed hold (168h)"),
        (TONIGHT, ("search-[",), "graphs.names[0]: '[' opens a character class"),
        (TONIGHT, (), "graphs: the hold names no graph"),
    ],
)
async def test_a_refused_hold_changes_nothing(
    tmp_path: Path, until: datetime, names: tuple[str, ...], where: str
) -> None:
    path = tmp_path / "state.json"
    b = await opened(path)
    first = await make(b)
    before = path.read_bytes()
    with pytest.raises(HoldRefused) as caught:
        await make(b, until=until, names=names)
    assert where in str(caught.value)
    assert caught.value.problems
    assert b.holds(NOW) == [first]
    assert path.read_bytes() == before


async def test_the_longest_hold_is_the_configs(tmp_path: Path) -> None:
    b = await opened(tmp_path / "state.json")
    b.set_config([], max_hold=timedelta(hours=2), now=NOW)
    with pytest.raises(HoldRefused, match=r"beyond the longest allowed hold \(2h\)"):
        await make(b, until=NOW + timedelta(hours=3))
    assert (await make(b, until=NOW + timedelta(hours=2))).until == NOW + timedelta(hours=2)


async def test_release_ends_a_hold_and_says_who(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics(CollectorRegistry())
    b = await opened(tmp_path / "state.json", metrics)
    hold = await make(b)
    with caplog.at_level(logging.INFO, logger="daemon.runtime.holds"):
        assert await b.release("h-1", by="token ops", now=NOW) == hold
    assert [r.getMessage() for r in caplog.records] == [
        "hold h-1 released by token ops: it kept running prod/search-* until "
        "2026-03-10T23:00:00+08:00, made by token search-team"
    ]
    assert b.applying("prod", SEARCH, NOW) is None
    assert gauge(metrics, "prod", "running") == 0.0
    with pytest.raises(UnknownHold, match="no hold h-1"):
        await b.release("h-1", by="token ops", now=NOW)
    assert await held_after_restart(tmp_path / "state.json", NOW) == []


async def test_config_holds_apply_and_are_released_only_in_the_config(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    b = await opened(tmp_path / "state.json", metrics)
    leave = config_hold(NOW + timedelta(days=3))
    b.set_config([leave], max_hold=WEEK, now=NOW)
    assert b.applying("prod", OTHER, NOW) == leave
    assert gauge(metrics, "prod", "stopped") == 1.0
    with pytest.raises(ConfigHoldRelease, match="remove it there"):
        await b.release(leave.id, by="token ops", now=NOW)
    # a wake's hold gets through an "on leave" hold, and the leave resumes after it
    wake = await make(b, names=("index-*",), until=NOW + timedelta(hours=2))
    assert b.applying("prod", OTHER, NOW) == wake
    assert b.applying("prod", OTHER, NOW + timedelta(hours=3)) == leave
    # a new config without it: the graph is back under its rules
    b.set_config([], max_hold=WEEK, now=NOW + timedelta(hours=3))
    assert b.applying("prod", OTHER, NOW + timedelta(hours=3)) is None
    assert gauge(metrics, "prod", "stopped") == 0.0


async def test_a_config_hold_that_breaks_a_rule_is_refused_alone_and_an_expired_one_is_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = await opened(tmp_path / "state.json")
    good = config_hold(NOW + timedelta(days=1), hid="config-good")
    far = config_hold(NOW + timedelta(days=30), hid="config-far")
    old = config_hold(NOW - timedelta(days=1), hid="config-old")
    with caplog.at_level(logging.INFO, logger="daemon.runtime.holds"):
        b.set_config([old, far, good], max_hold=WEEK, now=NOW)
    assert b.holds(NOW) == [good]
    assert [p.loc for p in b.config_problems] == [("holds", 1, "until")]
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert line.getMessage().startswith(
        "config hold refused: holds[1].until: until 2026-04-09 12:00 +00:00 is 720h away"
    )


async def test_a_damaged_store_leaves_the_config_holds_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format": "graphnap-store/1", "sections": {"holds": ')
    b = book(path)
    with caplog.at_level(logging.INFO, logger="daemon.runtime.holds"):
        await b.load(NOW)
    leave = config_hold(NOW + timedelta(days=1))
    b.set_config([leave], max_hold=WEEK, now=NOW)
    assert b.holds(NOW) == [leave]
    assert b.store_problem is not None
    assert f"state file {path} is damaged" in b.store_problem
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert line.endswith("running with the config's holds only")
    assert "move it aside and restart" in line
    with pytest.raises(HoldNotSaved, match="holds not saved, so not changed"):
        await make(b)
    assert b.holds(NOW) == [leave]
    assert path.read_text() == '{"format": "graphnap-store/1", "sections": {"holds": '


async def test_a_second_writer_is_noticed_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    ours, theirs = book(path), book(path)
    await ours.load(NOW)
    await theirs.load(NOW)
    made = await make(theirs)
    with pytest.raises(HoldNotSaved, match="revision 1, not 0"):
        await make(ours)
    assert await held_after_restart(path, NOW) == [made]


async def test_a_stored_hold_that_cannot_be_read_is_dropped_and_the_rest_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    first = await opened(path)
    made = await make(first)
    await FileStore(path).write("holds", [{"id": "broken"}, *(await _stored(path))], revision=1)
    assert await held_after_restart(path, NOW) == [made]


async def _stored(path: Path) -> list[object]:
    value = (await FileStore(path).read_all())["holds"].value
    assert isinstance(value, list)
    return value


async def test_without_a_store_holds_live_in_memory(tmp_path: Path) -> None:
    b = HoldBook(None, new_id=lambda: "h-x")
    await b.load(NOW)
    hold = await make(b)
    assert b.applying("prod", SEARCH, NOW) == hold
    assert await b.release("h-x", by="token ops", now=NOW) == hold
    assert list(tmp_path.iterdir()) == []


async def test_a_hand_start_hold_is_added_once_and_replaced_by_its_id(tmp_path: Path) -> None:
    b = await opened(tmp_path / "state.json")
    auto = Hold(
        "auto-prod-g-1",
        HoldGraphs("prod", ids=("g-1",)),
        "running",
        NOW + timedelta(hours=2),
        "started by hand at 20:00; held until 22:00",
        "schedule night-stop",
        "auto",
        made_at=NOW,
    )
    await b.add(auto, now=NOW)
    await b.add(auto, now=NOW)
    assert b.holds(NOW) == [auto]


async def test_a_project_that_left_the_config_has_no_holds_series(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    b = await opened(tmp_path / "state.json", metrics)
    b.set_config([], max_hold=WEEK, now=NOW, projects=["prod"])
    await make(b)
    assert gauge(metrics, "prod", "running") == 1
    metrics.declare(["prod"], [], [], [])
    metrics.declare(["staging"], [], [], [])  # the reload: its series of prod are removed
    b.set_config([], max_hold=WEEK, now=NOW, projects=["staging"])
    assert gauge(metrics, "prod", "running") is None


async def test_listeners_hear_of_holds_made_released_and_ended_once_saved(tmp_path: Path) -> None:
    b = await opened(tmp_path / "state.json")
    heard: list[tuple[str, str]] = []
    b.subscribe(lambda event, hold: heard.append((event, hold.id)))

    def broken(event: str, hold: Hold) -> None:
        raise RuntimeError("a listener's bug")

    b.subscribe(broken)  # costs a log line, never the change
    graphs = HoldGraphs("prod", ids=(SEARCH.id,))
    first = await b.create(graphs, keep="running", until=TONIGHT, reason="r", by="t", now=NOW)
    second = await b.create(graphs, keep="running", until=TONIGHT, reason="r", by="t", now=NOW)
    await b.release(second.id, by="t", now=NOW)
    await b.purge(TONIGHT + timedelta(seconds=1))
    assert heard == [
        ("made", first.id), ("made", second.id), ("released", second.id), ("expired", first.id)
    ]  # fmt: skip
    assert await held_after_restart(tmp_path / "state.json", NOW) == []
