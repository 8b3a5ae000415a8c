"""What people ask of the running daemon (daemon/ops/people.py), over scripted fakes of the
GraphApi protocol on a manual clock: holds made, listed and released, a wake that starts a
stopped graph and holds it, the graphs a token sees, and whether this replica acts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from daemon.config.loader import parse_config
from daemon.domain.hold import HoldGraphs
from daemon.domain.model import Graph, GraphApi
from daemon.emulator import ManualClock
from daemon.ops.people import People
from daemon.runtime.executor import Executor
from daemon.runtime.holds import HoldBook, UnknownHold
from daemon.runtime.inventory import Inventory
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.tracker import Tracker
from daemon.runtime.wake import UnknownGraph
from daemon.telemetry.metrics import Metrics
from tests.fakes import FakeGes

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CONFIG = parse_config(
    """
projects:
  - {name: lab, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdef, credentials: lab}
schedules:
  - {name: stop-dev, action: stop, cron: "0 20 * * *", timezone: UTC, targets: {projects: [lab], names: ["dev-*"]}}
"""
)


async def never(seconds: float) -> None:
    raise AssertionError("nothing here waits")


class Follower:
    """The fence of a replica that does not lead: what People reads of a LeaderElector."""

    identity = "graphnap-1"
    leader = "graphnap-0"

    def is_open(self) -> bool:
        return False


def make(lab: FakeGes, clock: ManualClock, *, leader: object = None) -> People:
    metrics = Metrics(CollectorRegistry())
    outcomes = Outcomes(metrics)
    tracker = Tracker(outcomes, metrics, clock=clock, sleep=never)
    apis: dict[str, GraphApi] = {"lab": lab}
    timeout = timedelta(minutes=10)
    return People(
        lambda: CONFIG,
        Inventory(lambda: apis, tracker, metrics, job_timeout=timeout, clock=clock),
        Executor(tracker, outcomes),
        HoldBook(None, metrics=metrics),
        outcomes,
        lambda: apis,
        leader=leader,  # type: ignore[arg-type]
        clock=clock,
        dry_run=False,
        job_timeout=timeout,
    )


async def test_a_hold_is_listed_until_released_and_then_gone() -> None:
    clock = ManualClock(START)
    people = make(FakeGes([Graph("g1", "dev-a", 200)]), clock)
    hold = await people.create_hold(
        HoldGraphs("lab", names=("dev-*",)),
        keep="running",
        until=START + timedelta(hours=3),
        reason="release test",
        by="token search-team",
    )
    assert [(h.id, h.keep, h.by) for h in people.list_holds()] == [
        (hold.id, "running", "token search-team")
    ]
    released = await people.release_hold(hold.id, by="token search-team")
    assert released.id == hold.id
    assert people.list_holds() == []
    with pytest.raises(UnknownHold):
        await people.release_hold(hold.id, by="token search-team")


async def test_a_hold_ends_by_itself_at_its_until() -> None:
    clock = ManualClock(START)
    people = make(FakeGes([]), clock)
    await people.create_hold(
        HoldGraphs("lab", ids=("g1",)),
        keep="stopped",
        until=START + timedelta(hours=1),
        reason="on leave",
        by="alice",
    )
    assert len(people.list_holds()) == 1
    clock.advance(3600)
    assert people.list_holds() == []


async def test_a_hold_on_a_project_graphnap_does_not_manage_is_refused() -> None:
    people = make(FakeGes([]), ManualClock(START))
    with pytest.raises(UnknownGraph):
        await people.create_hold(
            HoldGraphs("elsewhere", ids=("g1",)),
            keep="running",
            until=START + timedelta(hours=1),
            reason="x",
            by="alice",
        )
    assert people.list_holds() == []


async def test_a_wake_starts_a_stopped_graph_and_holds_it_running() -> None:
    clock = ManualClock(START)
    lab = FakeGes([Graph("g1", "dev-a", 900), Graph("g2", "dev-b", 200)])
    people = make(lab, clock)
    wake = await people.wake("lab", "dev-a", hold_for=timedelta(hours=2), by="token ci")
    assert "start g1" in lab.calls
    assert (wake.graph_id, wake.outcome) == ("g1", "requested")
    (hold,) = people.list_holds()
    assert (hold.keep, hold.until, hold.by) == ("running", START + timedelta(hours=2), "token ci")
    assert hold.graphs.ids == ("g1",)

    running = await people.wake("lab", "g2", hold_for=timedelta(hours=1), by="token ci")
    assert (running.outcome, running.was_running) == (None, True)  # already up: only held
    assert "start g2" not in lab.calls
    assert await running.wait()


async def test_a_wake_of_an_unknown_graph_starts_nothing_and_holds_nothing() -> None:
    lab = FakeGes([Graph("g1", "dev-a", 900)])
    people = make(lab, ManualClock(START))
    with pytest.raises(UnknownGraph):
        await people.wake("lab", "nope", hold_for=timedelta(hours=1), by="token ci")
    with pytest.raises(UnknownGraph):
        await people.wake("elsewhere", "g1", hold_for=timedelta(hours=1), by="token ci")
    assert not any(c.startswith("start") for c in lab.calls)
    assert people.list_holds() == []


async def test_graphs_are_the_last_listing_filtered_by_the_tokens_scope() -> None:
    clock = ManualClock(START)
    lab = FakeGes([Graph("g1", "dev-a", 200), Graph("g2", "prod-b", 200)])
    people = make(lab, clock)
    assert people.graphs() == []  # nothing listed yet, and no GES call to find out
    assert lab.calls == []
    await people.wake("lab", "g1", hold_for=timedelta(hours=1), by="token ci")  # lists lab
    assert {(v["name"], v["status"]) for v in people.graphs()} == {
        ("dev-a", "running"),
        ("prod-b", "running"),
    }
    dev_only = people.graphs(lambda project, g: g.name.startswith("dev-"))
    (view,) = dev_only
    assert view["name"] == "dev-a"
    assert view["next_stop"]["schedule"] == "stop-dev"
    assert view["held_by"] == people.list_holds()[0].id  # the wake's hold


def test_a_single_replica_acts_and_a_follower_says_who_leads() -> None:
    clock = ManualClock(START)
    assert make(FakeGes([]), clock).not_acting() is None
    refusal = make(FakeGes([]), clock, leader=Follower()).not_acting()
    assert refusal == "this replica (graphnap-1) does not lead; graphnap-0 does"
