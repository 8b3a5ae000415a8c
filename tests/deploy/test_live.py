"""Live: a real Prometheus scraping the graphnap container that runs against the emulator.

.ci/deploy-check starts both and sets GRAPHNAP_DEPLOY_PROMETHEUS_URL (and the dashboard and
rules extracted from the rendered chart); without it these tests are a failure when the
deploy checks are on, since the live part is the point.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import (
    DASHBOARD,
    alert_rules,
    metric_names,
    panels,
    substitute,
    targets,
)

# Panels that show an event the CI run cannot be sure to produce; their queries must still
# run without error, and their metrics must be known to the daemon (test_dashboard).
NEEDS_AN_EVENT = {
    "Missed firings": "a firing missed by more than its misfire_grace",
    "Failures by reason": "a failed stop/start inside the window (the emulator fails some jobs at random)",
    "Time since last lease renewal": "leader election (the CI pod is one replica without it)",
    "Notifications dropped": "an outbox over its queue: likely with the CI config's queue of 1 "
    "and ci_hang holding each message 10 s, but only when messages come in a burst",
}
# Every firing since the daemon started is inside these windows.
WINDOWS = {"$__rate_interval": "5m", "$__range": "10m"}
VALUES = {"job": "graphnap", "namespace": "graphnap-ci"}


@pytest.fixture(scope="module")
def prometheus() -> str:
    url = os.environ.get("GRAPHNAP_DEPLOY_PROMETHEUS_URL")
    if not url:
        pytest.fail("GRAPHNAP_DEPLOY_PROMETHEUS_URL is not set: run .ci/deploy-check")
    return url.rstrip("/")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    path = Path(os.environ.get("GRAPHNAP_DEPLOY_DASHBOARD", DASHBOARD))
    return json.loads(path.read_text())


def api(prometheus: str, path: str, **params: str) -> Any:
    url = f"{prometheus}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        body = json.load(exc)
    assert body["status"] == "success", f"{path} {params}: {body.get('error')}"
    return body["data"]


def test_graphnap_is_scraped(prometheus: str) -> None:
    result = api(prometheus, "query", query='up{job="graphnap", namespace="graphnap-ci"}')["result"]
    assert [r["value"][1] for r in result] == ["1"]


def test_every_panel_query_returns_data(prometheus: str, dashboard: dict[str, Any]) -> None:
    empty, waiting = [], []
    for panel, target in targets(dashboard):
        expr = substitute(target["expr"], VALUES, WINDOWS)
        result = api(prometheus, "query", query=expr)["result"]
        if result:
            continue
        if panel["title"] in NEEDS_AN_EVENT:
            waiting.append(f"{panel['title']}: empty, it needs {NEEDS_AN_EVENT[panel['title']]}")
        else:
            empty.append(f"{panel['title']} [{target['refId']}]: {expr}")
    print("\n".join(["", *waiting]) if waiting else "\nevery panel returned data")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_annotations_and_variables_run(prometheus: str, dashboard: dict[str, Any]) -> None:
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("expr"):
            api(prometheus, "query", query=substitute(annotation["expr"], VALUES, WINDOWS))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        selector, label = variable["query"][len("label_values(") : -1].rsplit(",", 1)
        values = api(
            prometheus, f"label/{label.strip()}/values", **{"match[]": substitute(selector, VALUES)}
        )
        assert values, f"variable {variable['name']} would offer nothing"


def test_dashboard_metrics_are_scraped(prometheus: str, dashboard: dict[str, Any]) -> None:
    scraped = set(api(prometheus, "label/__name__/values"))
    wanted = set()
    for panel, target in targets(dashboard):
        if panel["title"] not in NEEDS_AN_EVENT:
            wanted |= metric_names(substitute(target["expr"], VALUES, WINDOWS))
    assert wanted - scraped == set()


def test_alert_rules_load_and_evaluate(prometheus: str) -> None:
    groups = api(prometheus, "rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert sorted(r["name"] for r in rules) == sorted(r["alert"] for r in alert_rules())
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
    # A healthy daemon, listing its project and checking its idle rule: none of these.
    active = {r["name"] for r in rules if r["state"] in ("pending", "firing")}
    quiet = {
        "GraphnapDown",
        "GraphnapAbsent",
        "GraphnapInventoryStale",
        "GraphnapIdleRuleNotChecking",
    }
    assert active & quiet == set()


def test_notifications_failing_fires_for_the_failing_channel_only(prometheus: str) -> None:
    """The CI config's ci_hang never answers in time and ci_hook takes everything: the
    alert, on the daemon's real series, names ci_hang alone, with the labels it routes on."""
    groups = api(prometheus, "rules")["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r["name"] == "GraphnapNotificationsFailing"]
    firing = [a["labels"] for a in rule["alerts"] if a["state"] == "firing"]
    assert [(a["channel"], a["namespace"], a["severity"]) for a in firing] == [
        ("ci_hang", "graphnap-ci", "warning")
    ], rule["alerts"]


def test_panel_titles_are_known(dashboard: dict[str, Any]) -> None:
    titles = {p.get("title") for p in panels(dashboard)}
    assert set(NEEDS_AN_EVENT) <= titles
