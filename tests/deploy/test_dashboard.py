"""The Grafana dashboard: generated, shipped as-is, and only asking for what the daemon exports.

The rules follow grafana/dashboard-linter (not installable here): datasource variable,
job/namespace variables, units and descriptions on every panel, $__rate_interval in rates.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from tests.deploy.support import (
    DASHBOARD,
    ROOT,
    exported_names,
    metric_names,
    panels,
    run,
    substitute,
    targets,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_committed_json_is_the_generator_output() -> None:
    result = run(sys.executable, str(ROOT / "deploy/dashboard/generate.py"), "--check")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_identity_and_variables(dashboard: dict) -> None:
    assert dashboard["uid"] == "graphnap-overview"
    assert dashboard["title"] == "graphnap"
    assert "graphnap" in dashboard["tags"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "job", "instance", "project"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
        assert "label_values(" in variables[name]["query"]


def test_panel_ids_are_explicit_and_unique(dashboard: dict) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids))


def test_every_panel_is_described_and_has_a_unit(dashboard: dict) -> None:
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel.get("title"), panel["id"]
        assert panel.get("description"), f"panel {panel['title']!r} has no description"
        if panel["type"] != "text":
            assert panel["datasource"] == DATASOURCE, panel["title"]
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']!r}: no unit"


def test_targets_select_the_chosen_target_and_rate_right(dashboard: dict) -> None:
    for panel, target in targets(dashboard):
        expr = target["expr"]
        assert target["datasource"] == DATASOURCE, panel["title"]
        assert 'job=~"$job"' in expr, f"{panel['title']!r} ignores $job"
        assert 'namespace=~"$namespace"' in expr, f"{panel['title']!r} ignores $namespace"
        for window in re.findall(r"(?:rate|increase)\([^\[]*\[([^\]]+)\]", expr):
            assert window in ("$__rate_interval", "$__range"), f"{panel['title']!r}: [{window}]"


def test_every_query_parses_and_uses_exported_metrics(dashboard: dict) -> None:
    exported = exported_names()
    exprs = [t["expr"] for _, t in targets(dashboard)]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if a.get("expr")]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(exprs) > 20
    for expr in exprs:
        if expr.startswith("label_values("):  # label_values(selector, label)
            expr = expr[len("label_values(") : expr.rindex(",")]
        names = metric_names(substitute(expr))
        assert names, expr
        assert names <= exported, f"not exported by daemon/metrics.py: {names - exported} in {expr}"


def test_the_panels_the_issue_lists(dashboard: dict) -> None:
    titles = {p["title"] for p in panels(dashboard)}
    for title in (
        "Graphs by status",
        "Actions by rule and outcome",
        "Failures by reason",
        "Job duration p50 / p95",
        "Jobs in flight",
        "Saving now (per hour)",
        "Saved over the range",
        "Estimated savings per hour",
        "API requests by operation",
        "API errors and 429s",
        "Config",
        "Config reloads",
        "Next and last firings",
        "Time to next firing",
        "Idle verdicts and deferrals",
    ):
        assert title in titles


def test_idle_rules_row_waits_for_the_feature(dashboard: dict) -> None:
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[-1]["title"] == "Idle rules"
    after = dashboard["panels"][dashboard["panels"].index(rows[-1]) + 1 :]
    assert [p["type"] for p in after] == ["text"]
    assert "idle rules land" in after[0]["options"]["content"]
