"""`graphnap run` as a real process: SIGHUP reloads (a broken file is refused), SIGTERM
drains and exits 0. The test reads the daemon's JSON log lines; it never sleeps."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.emulator import Cloud, EmulatorServer, Timing
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from tests.conftest import PROJECT

Record = dict[str, Any]


async def read_until(
    stream: asyncio.StreamReader, seen: list[Record], wanted: Callable[[Record], bool]
) -> Record:
    while True:
        line = await asyncio.wait_for(stream.readline(), timeout=30)
        if not line:
            raise AssertionError(f"the daemon exited; it said: {seen[-5:]}")
        try:
            record = json.loads(line)
        except ValueError:
            record = {"message": line.decode(errors="replace").strip()}
        seen.append(record)
        if wanted(record):
            return record


async def test_sighup_refuses_a_broken_config_and_sigterm_drains_and_exits_0(
    tmp_path: Path,
) -> None:
    cloud = Cloud(
        [PROJECT],
        timing=Timing(pending_s=1, stop_s=600, start_s=600),
        access_keys={DEMO_AK: DEMO_SK},
    )
    for name in ("dev-a", "dev-b"):
        cloud.add_graph(PROJECT, name, tags={"env": "dev"})
    async with EmulatorServer(cloud) as server:
        config = tmp_path / "config.yaml"
        config.write_text(
            f"""
projects:
  - {{name: lab, region: cn-north-4, project_id: {PROJECT}, credentials: lab, endpoints: {{ges: "{server.url}"}}}}
schedules:
  - {{name: every-minute, action: stop, cron: "* * * * *", timezone: UTC, targets: {{names: ["dev-*"]}}}}
"""
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GRAPHNAP_")},
            "GRAPHNAP_CONFIG": str(config),
            "GRAPHNAP_CREDENTIALS__LAB__AK": DEMO_AK,
            "GRAPHNAP_CREDENTIALS__LAB__SK": DEMO_SK,
            "GRAPHNAP_LISTEN_HOST": "127.0.0.1",
            "GRAPHNAP_LISTEN_PORT": "0",
            "GRAPHNAP_LOG_FORMAT": "json",
            "GRAPHNAP_POLL_INITIAL_S": "30",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "daemon",
            "run",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        seen: list[Record] = []
        try:
            # The minute's firing came moments ago: it runs at start-up (within misfire_grace).
            requested: set[str] = set()
            while len(requested) < 2:
                record = await read_until(
                    proc.stderr, seen, lambda r: r.get("outcome") == "requested"
                )
                requested.add(record["graph"])
            assert requested == {"dev-a", "dev-b"}

            config.write_text("projects: [\n")
            proc.send_signal(signal.SIGHUP)
            failed = await read_until(
                proc.stderr, seen, lambda r: "config reload failed" in r.get("message", "")
            )
            assert failed["level"] == "ERROR"
            assert "invalid YAML" in failed["message"]

            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), timeout=30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        rest = (await proc.stderr.read()).decode()
    assert code == 0
    output = json.dumps(seen) + rest
    assert "jobs still running in GES; the next start picks them up" in output
    assert "graphnap stopped" in output
    assert DEMO_SK not in output
    assert cloud.count("graph_action") == 2


def daemon_env(config: Path, **more: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("GRAPHNAP_")},
        "GRAPHNAP_CONFIG": str(config),
        "GRAPHNAP_CREDENTIALS__LAB__AK": DEMO_AK,
        "GRAPHNAP_CREDENTIALS__LAB__SK": DEMO_SK,
        "GRAPHNAP_LISTEN_HOST": "127.0.0.1",
        "GRAPHNAP_LISTEN_PORT": "0",
        "GRAPHNAP_LOG_FORMAT": "json",
        **more,
    }


async def start_daemon(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, seen: list[Record]) -> tuple[int, str]:
    """Wait for the exit (kill it after 30 s); its code and everything it logged."""
    assert proc.stderr is not None
    try:
        code = await asyncio.wait_for(proc.wait(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    rest = (await proc.stderr.read()).decode()
    return code, json.dumps(seen) + rest


def lab_config(tmp_path: Path, url: str, schedule: str) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
projects:
  - {{name: lab, region: cn-north-4, project_id: {PROJECT}, credentials: lab, endpoints: {{ges: "{url}"}}}}
schedules:
  - {schedule}
"""
    )
    return config


async def test_sigterm_while_the_start_up_waits_for_a_dead_ges_is_a_clean_exit(
    tmp_path: Path,
) -> None:
    # Item 8: port 1 on loopback refuses every connection; the first inventory retries.
    config = lab_config(
        tmp_path,
        "http://127.0.0.1:1",
        '{name: s, action: stop, cron: "0 20 * * *", timezone: UTC, targets: {names: ["dev-*"]}}',
    )
    proc = await start_daemon(daemon_env(config))
    assert proc.stderr is not None
    seen: list[Record] = []
    await read_until(proc.stderr, seen, lambda r: "will retry" in r.get("message", ""))
    proc.send_signal(signal.SIGTERM)
    code, output = await finish(proc, seen)
    assert code == 0, output[-2000:]
    assert "stop requested during start-up" in output
    assert "graphnap stopped" in output
    assert "Traceback" not in output


async def test_sigterm_during_a_periodic_inventory_exits_0_without_a_traceback(
    tmp_path: Path,
) -> None:
    from tests.faultproxy import fault_proxy

    cloud = Cloud([PROJECT], access_keys={DEMO_AK: DEMO_SK})
    cloud.add_graph(PROJECT, "dev-a")
    async with EmulatorServer(cloud) as server, fault_proxy(server.url) as proxy:
        config = lab_config(
            tmp_path,
            proxy.url,
            '{name: s, action: stop, cron: "0 20 * * *", timezone: UTC, targets: {names: ["dev-*"]}}',
        )
        proc = await start_daemon(daemon_env(config, GRAPHNAP_INVENTORY_INTERVAL_S="0.2"))
        assert proc.stderr is not None
        seen: list[Record] = []
        await read_until(proc.stderr, seen, lambda r: "running:" in r.get("message", ""))
        proxy.add("GET", r"/graphs$", "hang")  # the next inventory never gets an answer
        await proxy.wait_for_fault()
        proc.send_signal(signal.SIGTERM)
        code, output = await finish(proc, seen)
    assert code == 0, output[-2000:]
    assert "graphnap stopped" in output
    assert "Traceback" not in output
    assert "CancelledError" not in output


@pytest.mark.parametrize(
    ("with_state_file", "kill_after"), [(True, 5), (False, 5), (True, 30), (False, 1)]
)
async def test_sigkill_halfway_through_a_fan_out_is_finished_by_the_next_start(
    tmp_path: Path, with_state_file: bool, kill_after: int
) -> None:
    # Item 2, on a real process: the firing ran two minutes ago (within its grace); the
    # daemon is killed after a few stops; the restart, with the same state file, stops the rest.
    cloud = Cloud([PROJECT], timing=Timing(pending_s=1, stop_s=600), access_keys={DEMO_AK: DEMO_SK})
    for i in range(40):
        cloud.add_graph(PROJECT, f"dev-{i:02d}")
    fired = datetime.now(UTC) - timedelta(minutes=2)
    cron = f"{fired.minute} {fired.hour} * * *"
    async with EmulatorServer(cloud) as server:
        config = lab_config(
            tmp_path,
            server.url,
            f'{{name: s, action: stop, cron: "{cron}", timezone: UTC, targets: {{names: ["dev-*"]}}}}',
        )
        env = daemon_env(
            config,
            GRAPHNAP_PROJECT_RATE_PER_S="10",  # a fan-out that takes a few seconds
            GRAPHNAP_POLL_INITIAL_S="60",
        )
        if with_state_file:
            env["GRAPHNAP_STATE_FILE"] = str(tmp_path / "state.json")
        first = await start_daemon(env)
        assert first.stderr is not None
        seen: list[Record] = []
        for _ in range(kill_after):
            await read_until(first.stderr, seen, lambda r: r.get("outcome") == "requested")
        first.kill()
        await first.wait()
        stopped_first = cloud.count("graph_action")
        assert stopped_first < 40

        second = await start_daemon(env)
        assert second.stderr is not None
        seen = []
        await read_until(second.stderr, seen, lambda r: "actions requested" in r.get("message", ""))
        second.send_signal(signal.SIGTERM)
        code, output = await finish(second, seen)
    assert code == 0, output[-2000:]
    assert {g.status for g in cloud.all_graphs()} <= {901, 900}  # every one stopping or stopped
    stops: dict[str, int] = {}
    for job in cloud.jobs.values():
        stops[job.graph_id] = stops.get(job.graph_id, 0) + 1
    assert set(stops.values()) == {1}  # and none twice
    assert len(stops) == 40
