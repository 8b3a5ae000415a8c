"""Deploy checks: the chart, the dashboard and the alerts, checked with the real tools.

They run only from .ci/deploy-check (GRAPHNAP_DEPLOY_CHECKS=1), which installs helm,
promtool and the Python tools first; `make test` skips them. When they are enabled, a
missing tool is a failure, not a skip.
"""

from __future__ import annotations

import os

import pytest

ENABLED = bool(os.environ.get("GRAPHNAP_DEPLOY_CHECKS"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(
        reason="deploy checks run from .ci/deploy-check (GRAPHNAP_DEPLOY_CHECKS=1)"
    )
    for item in items:
        if "tests/deploy/" in item.nodeid.replace("\\", "/"):
            item.add_marker(skip)
