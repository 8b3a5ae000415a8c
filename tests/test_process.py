"""`graphnap run` as a real process: SIGHUP reloads (a broken file is refused), SIGTERM
drains and exits 0. The test reads the daemon's JSON log lines; it never sleeps."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
