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
    alert_rules,
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
        "Idle verdicts by rule",
        "Graphs judged idle vs in use",
        "Deferral outcomes",
    ):
        assert title in titles


def test_idle_rules_and_daemon_rows(dashboard: dict) -> None:
    """Idle verdicts and deferrals, then the process and inventory age (then notifications),
    each panel on the metric it is about (no placeholder left)."""
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[-3:-1] == ["Idle rules and deferrals", "Daemon and inventory"]
    assert all(p["type"] != "text" for p in panels(dashboard))
    wanted = {
        "Idle verdicts by rule": "graphnap_idle_verdicts_total",
        "Graphs judged idle vs in use": "graphnap_idle_verdicts_total",
        "Last idle check age": "graphnap_idle_last_check_timestamp_seconds",
        "Graphs deferred now": "graphnap_graphs_deferred",
        "Deferral outcomes": "graphnap_deferrals_total",
        "Time since last successful inventory": "graphnap_inventory_last_success_timestamp_seconds",
        "Process CPU": "process_cpu_seconds_total",
        "Resident memory": "process_resident_memory_bytes",
        "Open file descriptors": "process_open_fds",
    }
    by_title = {p["title"]: p for p in panels(dashboard)}
    for title, metric in wanted.items():
        used = set().union(
            *(metric_names(substitute(t["expr"])) for t in by_title[title]["targets"])
        )
        assert metric in used, f"{title!r} does not read {metric}"


def test_age_panels_mark_their_alert_thresholds(dashboard: dict) -> None:
    """The idle-check age panel draws the line GraphnapIdleRuleNotChecking fires at."""
    (rule,) = [r for r in alert_rules() if r["alert"] == "GraphnapIdleRuleNotChecking"]
    (threshold,) = re.findall(r">\s*(\d+)\s*$", rule["expr"].strip())
    (panel,) = [p for p in panels(dashboard) if p["title"] == "Last idle check age"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, int(threshold)]


# --- leader election (issue 17) -------------------------------------------------------------


def test_the_leader_election_row_says_who_leads_and_how_often_it_changed(dashboard: dict) -> None:
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[1] == "Leader election"  # right under the overview
    wanted = {
        "Replicas leading": "graphnap_leader",
        "Leader by replica": "graphnap_leader",
        "Leadership transitions": "graphnap_leader_transitions_total",
        "Time since last lease renewal": "graphnap_leader_last_renew_timestamp_seconds",
    }
    by_title = {p["title"]: p for p in panels(dashboard)}
    for title, metric in wanted.items():
        used = set().union(
            *(metric_names(substitute(t["expr"])) for t in by_title[title]["targets"])
        )
        assert metric in used, f"{title!r} does not read {metric}"
    # Exactly one leader is green; none, or two, red.
    steps = by_title["Replicas leading"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["value"], s["color"]) for s in steps] == [(None, "red"), (1, "green"), (2, "red")]


def test_the_leader_panels_mark_the_flapping_threshold() -> None:
    """The transitions panel's description names the alert's threshold."""
    (rule,) = [r for r in alert_rules() if r["alert"] == "GraphnapLeaderFlapping"]
    (threshold,) = re.findall(r">\s*(\d+)\s*$", rule["expr"].strip())
    dashboard = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in panels(dashboard) if p["title"] == "Leadership transitions"]
    assert f"more than {threshold} in 15 minutes" in panel["description"]
    assert "[15m]" in rule["expr"]


# --- notifications (issue 15) ---------------------------------------------------------------


def test_the_notifications_row_reads_every_notification_metric(dashboard: dict) -> None:
    """The last row: each panel on its metric and outcome, and no notification metric the
    daemon exports left off the dashboard."""
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[-1] == "Notifications"
    by_title = {p["title"]: p for p in panels(dashboard)}
    wanted = {
        "Notifications sent": ("graphnap_notifications_total", 'outcome=~"sent|deduplicated"'),
        "Notifications failed": ("graphnap_notifications_total", 'outcome="failed"'),
        "Notifications dropped": ("graphnap_notifications_dropped_total", ""),
        "Outbox queue": ("graphnap_notification_queue", ""),
    }
    read: set[str] = set()
    for title, (metric, matcher) in wanted.items():
        exprs = [t["expr"] for t in by_title[title]["targets"]]
        used = set().union(*(metric_names(substitute(e)) for e in exprs))
        assert metric in used, f"{title!r} does not read {metric}"
        assert all(matcher in e for e in exprs), f"{title!r} lacks {matcher}"
        read |= used
    exported = {
        n
        for n in exported_names()
        if n.startswith("graphnap_notification") and not n.endswith("_created")
    }
    assert exported, "the daemon exports no notification metric: renamed?"
    assert exported <= read, f"notification metrics on no panel: {exported - read}"


def test_the_failed_panel_names_its_alert(dashboard: dict) -> None:
    """The alert and the panel count the same thing: failed messages, by channel."""
    (rule,) = [r for r in alert_rules() if r["alert"] == "GraphnapNotificationsFailing"]
    assert 'outcome="failed"' in rule["expr"]
    assert "(namespace, channel)" in rule["expr"]
    (panel,) = [p for p in panels(dashboard) if p["title"] == "Notifications failed"]
    assert "GraphnapNotificationsFailing" in panel["description"]
    assert "30 minutes" in panel["description"]
    assert "[30m]" in rule["expr"]
