"""A pass's projects side by side: a crash costs its project only, and a project the
clients no longer know is left out out loud."""

from __future__ import annotations

import logging

import pytest

from daemon.runtime.fanout import fan_out, reachable


async def test_a_crash_costs_its_project_only(caplog: pytest.LogCaptureFixture) -> None:
    async def work(project: str) -> int:
        if project == "b":
            raise RuntimeError("boom")
        return len(project)

    answers = await fan_out(["a", "b", "cc"], work, "firing", "nightly")

    assert answers == {"a": 1, "b": None, "cc": 2}
    crashed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(crashed) == 1
    assert getattr(crashed[0], "rule", None) == "nightly"


def test_projects_without_clients_are_left_out_and_named(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)

    kept = reachable(["dev", "gone", "prod"], {"prod": object(), "dev": object()}, "nightly")

    assert kept == ["dev", "prod"]
    assert "left out of this pass: gone" in caplog.text


def test_nothing_is_said_when_every_project_has_clients(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)

    assert reachable(["dev"], {"dev"}, "nightly") == ["dev"]
    assert caplog.text == ""
