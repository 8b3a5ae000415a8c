"""`graphnap hold / holds / release / wake` against a real control listener (fake backend):
what a person or a pipeline sees, and the exit codes it branches on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from daemon.cli.control import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_REJECTED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    main,
)
from daemon.ops.control import ControlServer, control_app
from daemon.ops.tokens import TokenBook
from daemon.telemetry.metrics import Metrics
from tests.controlfake import FakeBackend
from tests.test_control import GRAPHS, SEARCH_SECRET, write_tokens

NOW = datetime.now(UTC).replace(microsecond=0)  # the CLI reads the clock for --until


class Cli:
    def __init__(self, url: str, backend: FakeBackend, token_file: Path) -> None:
        self.url, self.backend, self.token_file = url, backend, token_file

    async def __call__(self, *argv: str, token: bool = True) -> int:
        args = [*argv, "--server", self.url]
        if token:
            args += ["--token-file", str(self.token_file)]
        # The CLI is synchronous (httpx.Client): off the loop that serves its requests.
        return await asyncio.to_thread(main, args)


@pytest.fixture
async def cli(tmp_path: Path) -> AsyncIterator[Cli]:
    backend = FakeBackend(GRAPHS)
    app = control_app(
        backend,
        TokenBook.from_dir(write_tokens(tmp_path / "tokens")),
        Metrics(CollectorRegistry()),
        clock=lambda: datetime.now(UTC),
        monotonic=lambda: 0.0,
    )
    token_file = tmp_path / "token"
    token_file.write_text(SEARCH_SECRET + "\n")
    async with ControlServer(app, "127.0.0.1", 0) as server:
        yield Cli(server.url, backend, token_file)


async def test_hold_then_holds_then_release(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    code = await cli("hold", "analytics/search-dev", "--for", "3h", "--reason", "release test")
    assert code == EXIT_OK
    (hold,) = cli.backend.holds_by_id.values()
    assert (hold.graph, hold.keep, hold.reason, hold.by) == (
        "search-dev", "running", "release test", "token search-team"
    )  # fmt: skip
    assert f"held: {hold.id}  analytics/search-dev  keep running until" in capsys.readouterr().out
    assert await cli("holds") == EXIT_OK
    assert "release test" in capsys.readouterr().out
    assert await cli("release", hold.id) == EXIT_OK
    assert "back under its rules" in capsys.readouterr().out
    assert cli.backend.holds_by_id == {}
    assert await cli("holds") == EXIT_OK
    assert capsys.readouterr().out == "no holds\n"


async def test_until_keep_stopped_and_json(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    until = "2099-01-01T08:00:00+08:00"
    code = await cli("hold", "analytics/g-1", "--until", until, "--reason", "on leave",
                     "--keep", "stopped")  # fmt: skip
    assert code == EXIT_REJECTED  # beyond the longest hold
    assert "longest hold" in capsys.readouterr().err
    assert await cli("hold", "analytics/g-1", "--until", "23:59", "--reason", "x", "--json") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["hold"]["graph"] == "g-1"
    assert datetime.fromisoformat(answer["hold"]["until"]) > NOW


async def test_the_token_from_the_environment(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRAPHNAP_CONTROL_TOKEN", SEARCH_SECRET)
    assert await cli("holds", token=False) == EXIT_OK
    monkeypatch.delenv("GRAPHNAP_CONTROL_TOKEN")
    assert await cli("holds", token=False) == EXIT_USAGE
    assert "GRAPHNAP_CONTROL_TOKEN" in capsys.readouterr().err


async def test_refused_rejected_and_usage_are_told_apart(
    cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        await cli("hold", "analytics/billing-dev", "--for", "1h", "--reason", "x") == EXIT_REFUSED
    )
    assert "search-team may touch" in capsys.readouterr().err
    wrong = tmp_path / "wrong"
    wrong.write_text("x" * 30)
    assert await cli("holds", "--token-file", str(wrong), token=False) == EXIT_REFUSED
    assert await cli("hold", "analytics/search-[", "--for", "1h", "--reason", "x") == EXIT_REJECTED
    assert await cli("hold", "search-dev", "--for", "1h", "--reason", "x") == EXIT_USAGE
    assert await cli("hold", "analytics/search-dev", "--for", "3", "--reason", "x") == EXIT_USAGE
    assert (
        await cli("hold", "analytics/search-dev", "--until", "soon", "--reason", "x") == EXIT_USAGE
    )
    assert await cli("release", "h-404") == EXIT_REFUSED
    assert cli.backend.holds_by_id == {}
    with pytest.raises(SystemExit) as usage:  # argparse: --for or --until is required
        await cli("hold", "analytics/search-dev", "--reason", "x")
    assert usage.value.code == EXIT_USAGE


async def test_no_server_is_its_own_exit_code(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    cli.url = "http://127.0.0.1:9"  # discard: nothing listens
    assert await cli("holds") == EXIT_UNREACHABLE
    assert "port-forward" in capsys.readouterr().err


async def test_wake_wait_returns_when_the_graph_runs(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    waking = asyncio.create_task(cli("wake", "analytics/search-dev", "--for", "2h", "--wait"))
    await asyncio.wait_for(cli.backend.woken.wait(), 10)
    assert not waking.done()
    cli.backend.end_start("w-1", ok=True)
    assert await asyncio.wait_for(waking, 10) == EXIT_OK
    out = capsys.readouterr().out
    assert "analytics/search-dev starting; held running until" in out
    assert out.endswith("analytics/search-dev running\n")
    assert cli.backend.starts == ["g-1"]


async def test_wake_wait_fails_when_the_start_job_fails(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    waking = asyncio.create_task(cli("wake", "analytics/g-1", "--wait"))
    await asyncio.wait_for(cli.backend.woken.wait(), 10)
    cli.backend.end_start("w-1", ok=False)
    assert await asyncio.wait_for(waking, 10) == EXIT_FAILED
    assert "failed: job failed: GES.8001" in capsys.readouterr().out


async def test_waking_a_running_graph_only_holds_it(cli: Cli) -> None:
    assert await cli("wake", "analytics/search-prod", "--wait", "--for", "1h") == EXIT_OK
    assert cli.backend.starts == []
    (hold,) = cli.backend.holds_by_id.values()
    assert hold.keep == "running"


def test_the_cli_default_server_is_the_control_listener_default() -> None:
    from daemon.cli.control import CONTROL_PORT
    from daemon.config.settings import Settings

    assert Settings.model_fields["control_port"].default == CONTROL_PORT
