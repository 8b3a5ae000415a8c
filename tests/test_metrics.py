"""The metrics as a dashboard reads them: series of projects and rules a config no longer
has are removed, and the test helper `sample` fails on a name the registry does not have."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from daemon.telemetry.metrics import Metrics
from tests.conftest import sample


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def test_a_config_without_a_project_or_rule_removes_their_series(metrics: Metrics) -> None:
    metrics.declare(["lab", "prod"], ["night"], ["idle"], [])
    metrics.actions.labels("lab", "night", "stop", "succeeded").inc()
    metrics.actions.labels("prod", "night", "stop", "succeeded").inc()
    metrics.last_fire.labels("night").set(1)
    metrics.declare(["prod"], [], ["idle"], [])
    exposed = {s.labels.get("project") for f in metrics.registry.collect() for s in f.samples}
    assert "lab" not in exposed
    assert "prod" in exposed
    rules = {
        s.labels.get("rule")
        for f in metrics.registry.collect()
        if f.name.startswith("graphnap_schedule")
        for s in f.samples
    }
    assert "night" not in rules
    assert (
        sample(metrics.registry, "graphnap_idle_verdicts_total", rule="idle", verdict="idle") == 0
    )


def test_sample_reads_a_series_and_zero_for_one_never_counted(metrics: Metrics) -> None:
    metrics.misfires.labels("night").inc(2)
    assert sample(metrics.registry, "graphnap_schedule_misfires_total", rule="night") == 2
    assert sample(metrics.registry, "graphnap_schedule_misfires_total", rule="other") == 0
    assert sample(metrics.registry, "graphnap_config_last_reload_successful") == 0


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("graphnap_schedule_misfire_total", {"rule": "night"}),  # misspelt metric
        ("graphnap_schedule_misfires", {"rule": "night"}),  # a counter without _total
        ("graphnap_schedule_misfires_total", {"rules": "night"}),  # misspelt label
        ("graphnap_schedule_misfires_total", {}),  # labels left out
        ("graphnap_config_last_reload_successful", {"rule": "night"}),  # labels it has not
    ],
)
def test_sample_fails_on_a_name_the_registry_does_not_have(
    metrics: Metrics, name: str, labels: dict[str, str]
) -> None:
    with pytest.raises(AssertionError):
        sample(metrics.registry, name, **labels)


def rendered(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What /metrics sends, parsed back as Prometheus would read it (the process's own
    CPU and memory left out: they move between two reads)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics.render().decode())
        for s in f.samples
        if not s.name.startswith("process_")
    }


def collected(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What the registry holds, as any reader of it sees it."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in metrics.registry.collect()
        for s in f.samples
        if not s.name.endswith("_created") and not s.name.startswith("process_")
    }


NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_the_scrape_says_what_the_registry_holds_per_graph_series_included(
    metrics: Metrics,
) -> None:
    metrics.declare(["lab"], ["night"], [], [])
    metrics.observe_inventory(
        "lab",
        [("g1", "dev-a", 900, 1.25), ("g2", 'odd"na\\me', 200, None), ("g3", "dev-c", 200, 24.0)],
        NOW,
        "USD",
    )
    metrics.misfires.labels("night").inc()
    scrape = rendered(metrics)
    assert scrape == collected(metrics)
    assert (
        scrape["graphnap_graph_stopped", (("graph", "g1"), ("name", "dev-a"), ("project", "lab"))]
        == 1
    )
    assert (
        scrape[
            "graphnap_graph_stopped", (("graph", "g2"), ("name", 'odd"na\\me'), ("project", "lab"))
        ]
        == 0
    )
    price = (
        "graphnap_graph_hourly_price",
        (("currency", "USD"), ("graph", "g3"), ("name", "dev-c"), ("project", "lab")),
    )
    assert scrape[price] == 24


def test_no_counter_carries_a_created_sample_in_the_scrape(metrics: Metrics) -> None:
    metrics.declare(["lab"], [f"s{i}" for i in range(200)], [], [])
    text = metrics.render().decode()
    assert "graphnap_schedule_misfires_total{" in text
    assert "_created" not in text


def test_a_graph_that_changed_is_scraped_as_it_is_now_and_gone_ones_disappear(
    metrics: Metrics,
) -> None:
    metrics.declare(["lab"], [], [], [])
    metrics.observe_inventory("lab", [("g1", "a", 200, 1.0), ("g2", "b", 200, 1.0)], NOW, "USD")
    assert (
        'graphnap_graph_stopped{project="lab",graph="g1",name="a"} 0.0' in metrics.render().decode()
    )
    later = NOW + timedelta(minutes=1)
    metrics.observe_inventory("lab", [("g1", "a", 900, 1.0)], later, "USD")
    text = metrics.render().decode()
    assert 'graphnap_graph_stopped{project="lab",graph="g1",name="a"} 1.0' in text
    assert 'graph="g2"' not in text
    metrics.declare([], [], [], [])  # the project left the config
    assert 'project="lab"' not in metrics.render().decode()


def test_an_unchanged_inventory_rewrites_no_series(metrics: Metrics) -> None:
    rows = [(f"g{i}", f"n{i}", 200, 1.0) for i in range(100)]
    metrics.observe_inventory("lab", rows, NOW, "USD")
    assert not metrics.graph_series.update(
        "lab", [(f"g{i}", f"n{i}", 0, 1.0) for i in range(100)], "USD"
    )
    assert metrics.graph_series.update("lab", [("g0", "n0", 1, 1.0)], "USD")


def test_per_graph_series_off_leaves_no_series_per_graph() -> None:
    metrics = Metrics(CollectorRegistry(), per_graph=False)
    metrics.observe_inventory("lab", [("g1", "a", 900, 1.0)], NOW, "USD")
    text = metrics.render().decode()
    assert "graphnap_graph_stopped{" not in text
    assert 'graphnap_graphs{project="lab",status="stopped"} 1.0' in text
