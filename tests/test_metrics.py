"""The metrics as a dashboard reads them: series of projects and rules a config no longer
has are removed, and the test helper `sample` fails on a name the registry does not have."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

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
