"""Shared helpers of the deploy checks: rendering the chart, PromQL, exported metric names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm/graphnap"
DASHBOARD = CHART / "files/graphnap-dashboard.json"
ALERTS = CHART / "files/graphnap-alerts.yaml"
KUBE_VERSION = "1.31.0"
MONITORING_API = "monitoring.coreos.com/v1"


def tool(name: str, env: str) -> str:
    """A tool's path: $env, then .tools/, then PATH. Missing is a failure, not a skip."""
    for candidate in (os.environ.get(env), ROOT / ".tools" / name, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail(f"{name} not found (set {env} or run .ci/deploy-check, which installs it)")


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run one of the checks' own tools with fixed arguments; the caller judges the result."""
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)  # noqa: S603


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = run(tool("helm", "GRAPHNAP_HELM"), *args)
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def render(
    *values: Path | str,
    api: bool = False,
    sets: Iterable[str] = (),
    release: str = "gn",
    namespace: str = "graphnap",
    chart: Path = CHART,
) -> list[dict[str, Any]]:
    args = ["template", release, str(chart), "--namespace", namespace]
    args += ["--kube-version", KUBE_VERSION]
    if api:
        args += ["--api-versions", MONITORING_API]
    for file in values:
        args += ["-f", str(file)]
    for item in sets:
        args += ["--set", item]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind}*{name_suffix}, got {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


# --- PromQL ---------------------------------------------------------------------------------

GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$__interval": "30s",
}


def substitute(
    expr: str, values: dict[str, str] | None = None, windows: dict[str, str] | None = None
) -> str:
    """Grafana variables -> values Prometheus accepts ($job -> graphnap, others -> .*)."""
    for name, value in {**GRAFANA_VARIABLES, **(windows or {})}.items():
        expr = expr.replace(name, value)
    chosen = {"job": "graphnap", **(values or {})}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: chosen.get(m.group(1), ".*"), expr)


def metric_names(expr: str) -> set[str]:
    """Every metric name an expression selects, from promql-parser's AST."""
    import promql_parser

    found: set[str] = set()

    def walk(node: Any) -> None:
        kind = type(node).__name__
        if kind == "VectorSelector":
            assert node.name, f"selector without a metric name in {expr!r}"
            found.add(node.name)
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None and type(child).__module__ == type(node).__module__:
                walk(child)
        for arg in getattr(node, "args", None) or []:
            walk(arg)

    walk(promql_parser.parse(expr))
    return found


@cache
def exported_names() -> frozenset[str]:
    """Sample names the daemon exports, from its real Metrics class on a fresh registry."""
    from prometheus_client import CollectorRegistry

    from daemon.telemetry.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return frozenset(names)


# --- dashboard ------------------------------------------------------------------------------


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep theirs inside


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]
