"""The alert rules: monitoring-mixins style, runbooks that exist, metrics that exist, and a
promtool unit test that makes each alert fire and one that keeps it quiet."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.deploy.support import ALERTS, ROOT, alert_rules, exported_names, metric_names, run, tool

TESTS = Path(__file__).parent / "alerts_test.yaml"
RUNBOOKS = ROOT / "deploy/runbooks.md"


def test_promtool_check_and_unit_tests() -> None:
    promtool = tool("promtool", "GRAPHNAP_PROMTOOL")
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(TESTS)]):
        result = run(promtool, *args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_mixin_style() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert re.fullmatch(r"Graphnap[A-Z][A-Za-z]+", name), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = rule["annotations"]
        assert annotations["summary"].endswith("."), name
        assert "{{ $" in annotations["description"] or "job=" in annotations["description"], name
        # No link in the file: graphnap has no public address (the chart adds runbook_url
        # from prometheusRule.runbookBaseUrl); the section is named as text.
        assert annotations["runbook"] == f"deploy/runbooks.md#{name.lower()}", name
        assert "runbook_url" not in annotations, name


def test_every_runbook_exists() -> None:
    headings = {
        line[3:].strip().lower()
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in alert_rules():
        assert rule["alert"].lower() in headings, f"deploy/runbooks.md lacks ## {rule['alert']}"


def test_the_plain_files_runbook_url_recipe_works(tmp_path: Path) -> None:
    """The header's sed line gives every alert a runbook_url to its anchor, and the file
    stays a valid rules file."""
    (line,) = [ln for ln in ALERTS.read_text().splitlines() if ln.startswith("#   sed ")]
    script = line.removeprefix("#   sed ").rstrip(" \\")
    assert script[0] == script[-1] == "'"
    result = run("sed", script[1:-1], str(ALERTS))
    assert result.returncode == 0, result.stderr
    linked = tmp_path / "alerts.yaml"
    linked.write_text(result.stdout)
    check = run(tool("promtool", "GRAPHNAP_PROMTOOL"), "check", "rules", str(linked))
    assert check.returncode == 0, check.stdout + check.stderr
    rules = [r for g in yaml.safe_load(result.stdout)["groups"] for r in g["rules"]]
    assert len(rules) == len(alert_rules())
    for rule in rules:
        anchor = rule["alert"].lower()
        assert rule["annotations"]["runbook"] == f"deploy/runbooks.md#{anchor}"
        assert rule["annotations"]["runbook_url"] == (
            f"https://git.example.com/graphnap/blob/v1/deploy/runbooks.md#{anchor}"
        )


def test_alerts_use_exported_metrics() -> None:
    exported = exported_names() | {"up"}
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names <= exported, f"{rule['alert']}: {names - exported}"


def test_each_alert_fires_and_keeps_quiet_in_a_unit_test() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts never made to fire"
    assert names - quiet == set(), "alerts never checked to keep quiet"


def test_the_alerts_the_issue_lists() -> None:
    assert {rule["alert"] for rule in alert_rules()} >= {
        "GraphnapDown",
        "GraphnapAbsent",
        "GraphnapActionsFailing",
        "GraphnapJobsTimedOut",
        "GraphnapConfigReloadFailed",
        "GraphnapApiThrottled",
        "GraphnapScheduleMissed",
        "GraphnapInventoryFailing",
        "GraphnapInventoryStale",
        "GraphnapIdleRuleNotChecking",
        "GraphnapDeferralsGivingUp",
        "GraphnapNoLeader",  # leader election (issue 17)
        "GraphnapLeaderFlapping",
    }
