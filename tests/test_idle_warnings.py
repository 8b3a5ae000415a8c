"""Idle stops warned of first, with fakes: the gate between an idle pass's decisions and the
graphs already warned of (new idle graphs warned of and held back, due ones stopped, the rest
called off), and what the Store keeps of them across a restart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from daemon.config.models import IdleRule
from daemon.rules.planning import Decision
from daemon.runtime.idle_warnings import SECTION, IdleWarnings, Warned, gate
from tests.test_notify_outbox import DictStore

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
LEAD = timedelta(minutes=15)
RULE = IdleRule.model_validate(
    {
        "name": "idle-dev",
        "targets": {"projects": ["lab"]},
        "idle_for": "1h",
        "check_every": "5m",
        "notify": {"before": "15m"},
    }
)


def decision(graph: str, act: bool = True, reason: str = "idle: 0 requests in 1h") -> Decision:
    return Decision("lab", f"id-{graph}", graph, "idle-dev", "stop", act, reason)


def warned(graph: str, at: datetime = NOW) -> Warned:
    return Warned("idle-dev", "lab", f"id-{graph}", graph, at, at + LEAD)


def by_name(decisions: Sequence[Decision]) -> dict[str, tuple[bool, str]]:
    return {d.graph_name: (d.act, d.reason) for d in decisions}


def test_an_idle_graph_is_warned_of_and_held_back_until_the_lead_has_passed() -> None:
    gated = gate([decision("dev-a"), decision("dev-b", False, "in use: 3 requests")], {}, LEAD, NOW)
    assert gated.warned == [warned("dev-a")]
    assert by_name(gated.decisions) == {
        "dev-a": (
            False,
            "idle: 0 requests in 1h; warned at 10:00 +00:00: stops at 10:15 +00:00 unless postponed",
        ),
        "dev-b": (False, "in use: 3 requests"),
    }


def test_a_warned_graph_waits_for_its_time_then_is_stopped_if_still_idle() -> None:
    waiting = {"id-dev-a": warned("dev-a")}
    early = gate([decision("dev-a")], waiting, LEAD, NOW + timedelta(minutes=10))
    assert early.warned == []
    assert not early.decisions[0].act
    assert early.kept == waiting
    due = gate([decision("dev-a")], waiting, LEAD, NOW + LEAD)
    assert by_name(due.decisions) == {
        "dev-a": (True, "idle: 0 requests in 1h; warned at 10:00 +00:00, not postponed")
    }
    assert (due.warned, due.kept, due.called_off) == ([], {}, {})


def test_a_warned_graph_used_again_held_or_gone_is_called_off() -> None:
    waiting = {f"id-{g}": warned(g) for g in ("dev-a", "dev-b", "dev-c")}
    held = "held running until 12:00 +00:00 by postpone link 0123456789: postponed"
    gated = gate(
        [
            decision("dev-a", False, "in use: 5 requests in the last 1h"),
            decision("dev-b", False, held),
        ],
        waiting,
        LEAD,
        NOW + LEAD,
    )
    assert gated.called_off == {
        "id-dev-a": "in use: 5 requests in the last 1h",
        "id-dev-b": held,
        "id-dev-c": "no longer selected or listed",
    }
    assert not any(d.act for d in gated.decisions)
    assert gated.kept == {}


async def test_what_is_warned_of_outlives_the_process_and_a_stop_forgets_it() -> None:
    store = DictStore()
    told: list[tuple[datetime, list[str]]] = []
    first = IdleWarnings(store)
    first.attach(lambda rule, at, graphs: told.append((at, [g.graph for g in graphs])))
    first.hold_back(RULE, "lab", [decision("dev-a"), decision("dev-b")], NOW)
    await first.settle(RULE)
    assert told == [(NOW + LEAD, ["dev-a", "dev-b"])]
    assert len(store.sections[SECTION].value) == 2  # type: ignore[arg-type]

    again = IdleWarnings(store)  # a restart: nobody is warned twice, and nothing is forgotten
    again.attach(lambda rule, at, graphs: told.append((at, [g.graph for g in graphs])))
    await again.load()
    assert [w.graph for w in again.waiting("idle-dev")] == ["dev-a", "dev-b"]
    kept = again.hold_back(RULE, "lab", [decision("dev-a"), decision("dev-b")], NOW + LEAD)
    await again.settle(RULE)
    assert len(told) == 1
    assert [d.act for d in kept] == [True, True]
    assert again.waiting("idle-dev") == []
    assert store.sections[SECTION].value == []


async def test_a_rule_that_no_longer_warns_forgets_its_graphs_and_bad_entries_are_dropped() -> None:
    store = DictStore()
    await store.write(SECTION, [{"rule": "idle-dev", "graph": "no times"}, "junk"])
    book = IdleWarnings(store)
    await book.load()
    assert book.waiting("idle-dev") == []
    book.hold_back(RULE, "lab", [decision("dev-a")], NOW)
    book.prune(["another-rule"])
    await book.settle(RULE)  # told nobody (no notifier): said in a log line, never raised
    assert book.waiting("idle-dev") == []
