"""The control API's backend over the daemon: the runtime's refusals become answers a person
reads (and that never say whether a graph exists), and a follower answers nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from daemon.domain.hold import Hold, HoldGraphs, Keep
from daemon.domain.model import Graph
from daemon.ops.backend import NOT_FOUND, DaemonBackend
from daemon.ops.views import HoldRequest, Refused
from daemon.rules.holds import HoldProblem
from daemon.runtime.holds import ConfigHoldRelease, HoldNotSaved, HoldRefused, UnknownHold
from daemon.runtime.wake import UnknownGraph, Wake

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
GRAPH = {
    "project": "lab", "id": "g-1", "name": "dev-a", "status": "running",
    "next_stop": {"schedule": "night", "at": "2026-11-27T20:00:00+08:00"}, "next_start": None,
    "held_by": None, "holds": [], "last_outcome": None,
}  # fmt: skip


class FakeDaemon:
    """Keeps what it is given; raises what it is told to."""

    def __init__(self) -> None:
        self.follower: str | None = None
        self.fails: Exception | None = None
        self.made: list[Hold] = []

    def not_acting(self) -> str | None:
        return self.follower

    def graphs(self, is_in_scope: Callable[[str, Graph], bool] | None = None) -> list[Any]:
        return [GRAPH]

    def list_holds(self) -> list[Hold]:
        return list(self.made)

    async def create_hold(
        self, graphs: HoldGraphs, *, keep: Keep, until: datetime, reason: str, by: str
    ) -> Hold:
        if self.fails:
            raise self.fails
        hold = Hold(f"h-{len(self.made)}", graphs, keep, until, reason, by, "api", NOW)
        self.made.append(hold)
        return hold

    async def release_hold(self, hold_id: str, *, by: str) -> Hold:
        assert self.fails is not None
        raise self.fails

    async def wake(
        self, project: str, graph: str, *, hold_for: timedelta, by: str, reason: str = "woken"
    ) -> Wake:
        assert self.fails is not None
        raise self.fails


def request(graph: str = "dev-a") -> HoldRequest:
    return HoldRequest("lab", graph, "running", NOW + timedelta(hours=2), "release test")


async def test_a_hold_names_an_id_as_an_id_and_a_name_or_glob_as_names() -> None:
    daemon = FakeDaemon()
    backend = DaemonBackend(daemon)
    by_id = await backend.create_hold(request("g-1"), by="token t", now=NOW)
    by_glob = await backend.create_hold(request("dev-*"), by="token t", now=NOW)
    assert [h.graphs for h in daemon.made] == [
        HoldGraphs("lab", ids=("g-1",)),
        HoldGraphs("lab", names=("dev-*",)),
    ]
    assert (by_id.graph, by_glob.graph, by_glob.by) == ("g-1", "dev-*", "token t")
    with pytest.raises(Refused) as nothing:
        await backend.create_hold(request("prod-*"), by="token t", now=NOW)
    assert nothing.value.status == 422
    assert len(daemon.made) == 2


@pytest.mark.parametrize(
    ("error", "status", "said"),
    [
        (UnknownGraph(), 403, NOT_FOUND),
        (
            HoldRefused([HoldProblem(("until",), "too far", "hold for less")]),
            422,
            "`until`: too far",
        ),
        (HoldNotSaved("the state file is damaged"), 503, "try again"),
    ],
)
async def test_the_runtime_refusals_become_answers_a_person_reads(
    error: Exception, status: int, said: str
) -> None:
    daemon = FakeDaemon()
    daemon.fails = error
    with pytest.raises(Refused) as refused:
        await DaemonBackend(daemon).create_hold(request(), by="token t", now=NOW)
    assert refused.value.status == status
    assert said in refused.value.message


@pytest.mark.parametrize(("error", "status"), [(UnknownHold(), 404), (ConfigHoldRelease(), 409)])
async def test_a_release_that_cannot_be_is_a_4xx(error: Exception, status: int) -> None:
    daemon = FakeDaemon()
    daemon.fails = error
    with pytest.raises(Refused) as refused:
        await DaemonBackend(daemon).release_hold("h-9", by="token t", now=NOW)
    assert refused.value.status == status


async def test_a_follower_answers_nothing_and_makes_nothing() -> None:
    daemon = FakeDaemon()
    daemon.follower = "this replica (pod-b) does not lead; pod-a does"
    backend = DaemonBackend(daemon)
    calls = [
        backend.graphs(NOW),
        backend.holds(NOW),
        backend.create_hold(request(), by="token t", now=NOW),
        backend.release_hold("h-1", by="token t", now=NOW),
        backend.wake("lab", "g-1", for_=timedelta(hours=1), by="token t", now=NOW),
    ]
    for call in calls:
        with pytest.raises(Refused) as refused:
            await call
        assert refused.value.status == 503
        assert "pod-a does" in refused.value.message
    assert daemon.made == []
