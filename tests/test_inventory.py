"""The inventory against scripted fakes of GraphApi: what readiness, /status and the graph
gauges show after a listing, a failed listing, and the Task Center resume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from daemon.cloud.errors import RetryableError
from daemon.config.loader import parse_config
from daemon.domain.model import Graph, GraphApi
from daemon.emulator import ManualClock
from daemon.runtime.inventory import Inventory
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.tracker import Tracker
from daemon.telemetry.metrics import Metrics
from tests.fakes import FakeGes

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CONFIG = parse_config(
    """
projects:
  - {name: lab, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdef, credentials: lab}
  - {name: ops, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdee, credentials: lab}
"""
)


async def never(seconds: float) -> None:
    raise AssertionError("the inventory never sleeps")


def make(apis: dict[str, GraphApi], clock: ManualClock) -> tuple[Inventory, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    tracker = Tracker(Outcomes(metrics), metrics, clock=clock, sleep=never)
    inventory = Inventory(
        lambda: apis, tracker, metrics, job_timeout=timedelta(minutes=10), clock=clock
    )
    return inventory, registry


async def test_a_failed_listing_costs_that_project_only_and_keeps_its_last_graphs() -> None:
    clock = ManualClock(START)
    lab = FakeGes([Graph("g1", "dev-a", 200), Graph("g2", "dev-b", 900)])
    ops = FakeGes([Graph("o1", "ops-a", 200)])
    inventory, registry = make({"lab": lab, "ops": ops}, clock)
    await inventory.refresh(CONFIG)
    assert inventory.projects["lab"].at == START
    assert (
        registry.get_sample_value("graphnap_graphs", {"project": "lab", "status": "stopped"}) == 1
    )

    lab.fail = RetryableError("GES is down", service="ges", operation="list_graphs", status=503)
    clock.advance(60)
    await inventory.refresh(CONFIG)
    assert inventory.errors() == {"lab": str(lab.fail)}
    assert [g.name for g in inventory.projects["lab"].graphs] == ["dev-a", "dev-b"]
    assert inventory.projects["lab"].at == START  # the last listing that answered
    assert inventory.projects["ops"].at == START + timedelta(seconds=60)


async def test_the_task_center_is_read_once_per_project_until_forgotten() -> None:
    clock = ManualClock(START)
    lab = FakeGes([Graph("g1", "dev-a", 901)])  # stopping: its job is looked for
    inventory, _ = make({"lab": lab}, clock)
    await inventory.refresh(CONFIG)  # `ops` has no clients: left out, no crash
    assert lab.calls.count("list_jobs") >= 1
    read = lab.calls.count("list_jobs")
    await inventory.refresh(CONFIG)
    assert lab.calls.count("list_jobs") == read
    inventory.forget_resumed()
    await inventory.refresh(CONFIG)
    assert lab.calls.count("list_jobs") > read


async def test_selected_names_the_graphs_a_rule_selects_and_the_projects_not_listed() -> None:
    config = parse_config(
        """
projects:
  - {name: lab, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdef, credentials: lab}
  - {name: ops, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdee, credentials: lab}
idle_rules:
  - name: idle-dev
    targets: {projects: [lab, ops], names: ["dev-*"]}
    exclude: {names: ["*-keep"]}
    idle_for: 1h
"""
    )
    clock = ManualClock(START)
    lab = FakeGes([Graph("g1", "dev-a", 200), Graph("g2", "dev-keep", 200), Graph("g3", "x", 200)])
    ops = FakeGes(
        [], fail=RetryableError("GES is down", service="ges", operation="list_graphs", status=503)
    )
    inventory, _ = make({"lab": lab, "ops": ops}, clock)
    selection = await inventory.selected(config, config.idle_rules[0])
    assert selection.now == START
    assert {p: [g.name for g in gs] for p, gs in selection.graphs.items()} == {"lab": ["dev-a"]}
    assert list(selection.unlisted) == ["ops"]
    assert selection.unlisted["ops"].startswith("inventory failed: ")
