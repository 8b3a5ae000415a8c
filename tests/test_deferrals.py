"""The deferral state machine on its own: what each transition does to the store and to the
gauges a user watches (graphnap_graphs_deferred, graphnap_deferrals_total)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from daemon.config.loader import parse_config
from daemon.config.models import Schedule
from daemon.domain.model import Graph
from daemon.rules.idle import Verdict, VerdictKind
from daemon.rules.planning import Decision
from daemon.runtime.deferrals import Deferrals
from daemon.runtime.executor import Result
from daemon.runtime.store import FileStore
from daemon.telemetry.metrics import Metrics

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CONFIG = """
projects:
  - {name: lab, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdef, credentials: lab}
schedules:
  - name: night-stop
    action: stop
    cron: "0 20 * * *"
    timezone: UTC
    targets: {projects: [lab]}
    defer_while_in_use: {within: 15m, max: 1h, check_every: 5m}
"""
IN_USE = Verdict(VerdictKind.IN_USE, "in use: 30 requests in the last 15m")
QUIET = Verdict(VerdictKind.IDLE, "quiet: 0 requests in the last 15m")


def stop(graph: str) -> Decision:
    return Decision("lab", graph, f"name-{graph}", "night-stop", "stop", False, "deferred")


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    assert found is not None, f"no series {name}{labels}"
    return found


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def schedule() -> Schedule:
    return parse_config(CONFIG).schedules[0]


@pytest.fixture
def deferrals(registry: CollectorRegistry, schedule: Schedule) -> Deferrals:
    store = Deferrals(Metrics(registry))
    assert schedule.defer_while_in_use is not None
    store.defer(
        schedule,
        schedule.defer_while_in_use,
        [stop("g1"), stop("g2")],
        NOW,
        NOW + timedelta(hours=1),
    )
    return store


def test_a_deferral_is_counted_and_due_after_check_every(
    deferrals: Deferrals, registry: CollectorRegistry
) -> None:
    assert value(registry, "graphnap_graphs_deferred", rule="night-stop") == 2
    assert value(registry, "graphnap_deferrals_total", rule="night-stop", outcome="deferred") == 2
    assert deferrals.due(NOW + timedelta(minutes=4)) == {}
    due = deferrals.due(NOW + timedelta(minutes=5))
    assert [i.graph_id for i in due[("night-stop", "lab")]] == ["g1", "g2"]


def test_deferring_again_keeps_the_first_deferral_and_its_time(
    deferrals: Deferrals, schedule: Schedule, registry: CollectorRegistry
) -> None:
    assert schedule.defer_while_in_use is not None
    later = NOW + timedelta(minutes=30)
    deferrals.defer(
        schedule, schedule.defer_while_in_use, [stop("g1")], later, later + timedelta(hours=1)
    )
    assert deferrals.pending[("night-stop", "lab", "g1")].since == NOW
    assert value(registry, "graphnap_deferrals_total", rule="night-stop", outcome="deferred") == 2


def test_a_graph_gone_or_stopped_or_no_longer_selected_is_dropped(
    deferrals: Deferrals, registry: CollectorRegistry
) -> None:
    items = deferrals.due(NOW + timedelta(minutes=5))[("night-stop", "lab")]
    graphs = {"g1": Graph("g1", "name-g1", 900)}  # g1 stopped by hand, g2 gone
    assert deferrals.still_waiting(items, graphs, {"g1", "g2"}) == []
    assert deferrals.pending == {}
    assert value(registry, "graphnap_deferrals_total", rule="night-stop", outcome="dropped") == 2
    deferrals.count()
    assert value(registry, "graphnap_graphs_deferred", rule="night-stop") == 0


def test_without_an_inventory_every_deferral_waits(deferrals: Deferrals) -> None:
    items = deferrals.due(NOW + timedelta(minutes=5))[("night-stop", "lab")]
    assert deferrals.still_waiting(items, None, set()) == items


def test_in_use_waits_until_max_then_gives_up_with_what_cloud_eye_said(
    deferrals: Deferrals, schedule: Schedule, registry: CollectorRegistry
) -> None:
    defer = schedule.defer_while_in_use
    assert defer is not None
    items = list(deferrals.pending.values())
    soon = NOW + timedelta(minutes=5)
    verdicts = deferrals.judge(defer, items, {"g1": IN_USE, "g2": IN_USE}, soon)
    assert verdicts.quiet == {}
    assert verdicts.gave_up == []
    assert deferrals.due(soon) == {}  # checked again after check_every
    late = NOW + timedelta(hours=1)
    verdicts = deferrals.judge(defer, items, None, late)
    assert [d.reason for d in verdicts.gave_up] == [
        "not stopped: still in use after 1h (Cloud Eye or GES did not answer)"
    ] * 2
    assert value(registry, "graphnap_deferrals_total", rule="night-stop", outcome="gave_up") == 2


def test_a_quiet_graph_is_released_with_why_and_stopped_once_requested(
    deferrals: Deferrals, schedule: Schedule, registry: CollectorRegistry
) -> None:
    defer = schedule.defer_while_in_use
    assert defer is not None
    items = list(deferrals.pending.values())
    later = NOW + timedelta(minutes=40)
    verdicts = deferrals.judge(defer, items, {"g1": QUIET, "g2": IN_USE}, later)
    assert list(verdicts.quiet) == ["g1"]
    planned = Decision("lab", "g1", "name-g1", "night-stop", "stop", True, "selected")
    (released,) = deferrals.release(verdicts, [planned], later)
    assert released.reason == "quiet now (quiet: 0 requests in the last 15m) after 40m deferred"
    deferrals.settle(verdicts, [Result(released, "requested", released.reason)])
    assert list(deferrals.pending) == [("night-stop", "lab", "g2")]
    assert value(registry, "graphnap_deferrals_total", rule="night-stop", outcome="stopped") == 1


def test_a_quiet_graph_planning_no_longer_stops_is_dropped_with_planning_reason(
    deferrals: Deferrals, schedule: Schedule
) -> None:
    defer = schedule.defer_while_in_use
    assert defer is not None
    verdicts = deferrals.judge(defer, list(deferrals.pending.values()), {"g1": QUIET}, NOW)
    skipped = Decision("lab", "g1", "name-g1", "night-stop", "stop", False, "opted out")
    assert deferrals.release(verdicts, [skipped], NOW) == [skipped]
    assert ("night-stop", "lab", "g1") not in deferrals


def test_the_store_is_read_only_to_its_readers(deferrals: Deferrals) -> None:
    with pytest.raises(TypeError):
        deferrals.pending[("x", "y", "z")] = deferrals.pending[("night-stop", "lab", "g1")]  # type: ignore[index]


async def test_deferrals_outlive_the_process_through_the_store(
    schedule: Schedule, tmp_path: Path
) -> None:
    """A restart (or a new leader) carries on with the deferred stops, times and all; an
    entry that cannot be read is dropped, the others are kept."""
    store = FileStore(tmp_path / "state.json")
    first = Deferrals(Metrics(CollectorRegistry()), store)
    assert schedule.defer_while_in_use is not None
    first.defer(schedule, schedule.defer_while_in_use, [stop("g1")], NOW, NOW + timedelta(hours=1))
    await first.keep()
    section = (await store.read_all())["deferrals"]
    await store.write("deferrals", [*section.value, {"schedule": "night-stop"}])  # type: ignore[misc]

    registry = CollectorRegistry()
    again = Deferrals(Metrics(registry), store)
    await again.load()
    assert dict(again.pending) == dict(first.pending)
    assert value(registry, "graphnap_graphs_deferred", rule="night-stop") == 1
    assert again.due(NOW + timedelta(minutes=5)) == {
        ("night-stop", "lab"): [first.pending["night-stop", "lab", "g1"]]
    }
