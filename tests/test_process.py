"""`graphnap run` as a real process: SIGHUP reloads (a broken file is refused), SIGTERM
drains and exits 0. The test reads the daemon's JSON log lines; it never sleeps.

Every wait is for an event (a log line, an exit, a request held at the emulator) with a
bound derived from the settings the daemon runs with, plus SLACK_S for a busy machine; a
timeout says what was awaited, the bound and how it was reached, and the last lines seen.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web

from daemon.config.settings import Settings
from daemon.emulator import Cloud, EmulatorServer, Timing
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from daemon.emulator.server import build_app
from tests.conftest import PROJECT

Record = dict[str, Any]

# The one figure not derived from settings: how long a busy machine (two cores shared with
# other test runs) may keep a fresh Python process from starting, or from saying what it
# did. Everything else a wait allows for comes from the daemon's settings below.
SLACK_S = 60.0
SHUTDOWN_GRACE_S = 5.0  # every daemon here drains for at most this long on SIGTERM
DEFAULTS = Settings()


@dataclass(frozen=True)
class Bound:
    """How long a wait may take, and why."""

    seconds: float
    why: str

    @staticmethod
    def of(*parts: tuple[float, str]) -> Bound:
        parts = (*parts, (SLACK_S, "slack for a busy machine"))
        return Bound(sum(s for s, _ in parts), " + ".join(f"{why} {s:g}s" for s, why in parts))


def fan_out(graphs: int, rate_per_s: float = DEFAULTS.project_rate_initial_per_s) -> Bound:
    """A firing's requests for `graphs` graphs, paced by the project's rate, from start-up."""
    return Bound.of((graphs / rate_per_s, f"{graphs} requests at {rate_per_s:g}/s"))


DRAIN = Bound.of((SHUTDOWN_GRACE_S, "shutdown grace"))
AT_ONCE = Bound.of()  # an answer to a signal, or to a refused connection: no settings involved


def guard(*waits: Bound) -> pytest.MarkDecorator:
    """The per-test timeout above the sum of a test's waits, so that a slow run fails on
    the wait that names its event, not on pytest-timeout's generic guard."""
    return pytest.mark.timeout(sum(w.seconds for w in waits) + SLACK_S)


async def read_until(
    stream: asyncio.StreamReader,
    seen: list[Record],
    wanted: Callable[[Record], bool],
    what: str,
    bound: Bound,
) -> Record:
    try:
        async with asyncio.timeout(bound.seconds):
            while True:
                line = await stream.readline()
                if not line:
                    raise AssertionError(f"the daemon exited before {what}; it said: {seen[-5:]}")
                try:
                    record = json.loads(line)
                except ValueError:
                    record = {"message": line.decode(errors="replace").strip()}
                seen.append(record)
                if wanted(record):
                    return record
    except TimeoutError:
        raise AssertionError(
            f"waited {bound.seconds:g}s for {what} (bound: {bound.why}); "
            f"the last lines seen: {seen[-5:]}"
        ) from None


@guard(fan_out(2), AT_ONCE, DRAIN)
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
        async with running(daemon_env(config, GRAPHNAP_POLL_INITIAL_S="30")) as proc:
            assert proc.stderr is not None
            seen: list[Record] = []
            # The minute's firing came moments ago: it runs at start-up (within misfire_grace).
            requested: set[str] = set()
            while len(requested) < 2:
                record = await read_until(
                    proc.stderr,
                    seen,
                    lambda r: r.get("outcome") == "requested",
                    "the start-up firing's stops of dev-a and dev-b",
                    fan_out(2),
                )
                requested.add(record["graph"])
            assert requested == {"dev-a", "dev-b"}

            config.write_text("projects: [\n")
            proc.send_signal(signal.SIGHUP)
            failed = await read_until(
                proc.stderr,
                seen,
                lambda r: "config reload failed" in r.get("message", ""),
                "the refusal of the broken config after SIGHUP",
                AT_ONCE,
            )
            assert failed["level"] == "ERROR"
            assert "invalid YAML" in failed["message"]

            proc.send_signal(signal.SIGTERM)
            code, output = await finish(proc, seen)
    assert code == 0, output[-2000:]
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
        "GRAPHNAP_SHUTDOWN_GRACE_S": str(SHUTDOWN_GRACE_S),
        **more,
    }


@asynccontextmanager
async def running(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """`graphnap run` as a child process; killed on the way out if a test left it running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def finish(proc: asyncio.subprocess.Process, seen: list[Record]) -> tuple[int, str]:
    """Wait for the exit, up to the drain's bound (then kill it, and say so); its code and
    everything it logged."""
    assert proc.stderr is not None
    try:
        code = await asyncio.wait_for(proc.wait(), timeout=DRAIN.seconds)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        rest = (await proc.stderr.read()).decode()
        raise AssertionError(
            f"waited {DRAIN.seconds:g}s for the daemon to exit (bound: {DRAIN.why}); "
            f"killed it; it said: {(json.dumps(seen[-5:]) + rest)[-2000:]}"
        ) from None
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


@guard(AT_ONCE, DRAIN)
async def test_sigterm_while_the_start_up_waits_for_a_dead_ges_is_a_clean_exit(
    tmp_path: Path,
) -> None:
    # Item 8: port 1 on loopback refuses every connection; the first inventory retries.
    config = lab_config(
        tmp_path,
        "http://127.0.0.1:1",
        '{name: s, action: stop, cron: "0 20 * * *", timezone: UTC, targets: {names: ["dev-*"]}}',
    )
    async with running(daemon_env(config)) as proc:
        assert proc.stderr is not None
        seen: list[Record] = []
        await read_until(
            proc.stderr,
            seen,
            lambda r: "will retry" in r.get("message", ""),
            "the first inventory's refused connection and its retry",
            AT_ONCE,
        )
        proc.send_signal(signal.SIGTERM)
        code, output = await finish(proc, seen)
    assert code == 0, output[-2000:]
    assert "stop requested during start-up" in output
    assert "graphnap stopped" in output
    assert "Traceback" not in output


@guard(fan_out(1), AT_ONCE, DRAIN)
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
        env = daemon_env(config, GRAPHNAP_INVENTORY_INTERVAL_S="0.2")
        async with running(env) as proc:
            assert proc.stderr is not None
            seen: list[Record] = []
            await read_until(
                proc.stderr,
                seen,
                lambda r: "running:" in r.get("message", ""),
                "the first inventory and the daemon running",
                fan_out(1),
            )
            proxy.add("GET", r"/graphs$", "hang")  # the next inventory never gets an answer
            await proxy.wait_for_fault()  # (its bound, 30 s, is 150 inventory intervals)
            proc.send_signal(signal.SIGTERM)
            code, output = await finish(proc, seen)
    assert code == 0, output[-2000:]
    assert "graphnap stopped" in output
    assert "Traceback" not in output
    assert "CancelledError" not in output


class StopGate:
    """Lets the first `allow` stop requests reach the emulator and holds the rest unanswered
    (then answers them 503, never acting), so a daemon killed "halfway" is killed at exactly
    that point, however slowly the test reads its log. `open()` lets everything through."""

    def __init__(self, allow: int) -> None:
        self.allow: int | None = allow
        self.held = 0
        self._release = asyncio.Event()

    def open(self) -> None:
        self.allow = None
        self._release.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route
        if route.name != "graph_action" or self.allow is None:
            return cast(web.StreamResponse, await handler(request))
        if self.allow > 0:
            self.allow -= 1
            return cast(web.StreamResponse, await handler(request))
        self.held += 1
        await self._release.wait()
        return web.Response(status=503, text="held by the test's gate; never acted on")


@asynccontextmanager
async def gated_emulator(cloud: Cloud, gate: StopGate) -> AsyncIterator[str]:
    """The emulator over HTTP as EmulatorServer serves it, with the gate behind its gateway."""
    app = build_app(cloud)
    app.middlewares.append(gate.middleware)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        gate.open()
        await runner.cleanup()


@pytest.mark.parametrize(
    ("with_state_file", "kill_after"), [(True, 5), (False, 5), (True, 30), (False, 1)]
)
@guard(fan_out(30, 10), AT_ONCE, fan_out(40, 10), DRAIN)
async def test_sigkill_halfway_through_a_fan_out_is_finished_by_the_next_start(
    tmp_path: Path, with_state_file: bool, kill_after: int
) -> None:
    # Item 2, on a real process: the firing ran two minutes ago (within its grace); the
    # daemon is killed after `kill_after` stops (the gate holds the others unanswered); the
    # restart, with the same state file, stops the rest.
    cloud = Cloud([PROJECT], timing=Timing(pending_s=1, stop_s=600), access_keys={DEMO_AK: DEMO_SK})
    for i in range(40):
        cloud.add_graph(PROJECT, f"dev-{i:02d}")
    fired = datetime.now(UTC) - timedelta(minutes=2)
    cron = f"{fired.minute} {fired.hour} * * *"
    gate = StopGate(allow=kill_after)
    async with gated_emulator(cloud, gate) as url:
        config = lab_config(
            tmp_path,
            url,
            f'{{name: s, action: stop, cron: "{cron}", timezone: UTC, targets: {{names: ["dev-*"]}}}}',
        )
        env = daemon_env(
            config,
            GRAPHNAP_PROJECT_RATE_PER_S="10",  # a fan-out that takes a few seconds
            GRAPHNAP_POLL_INITIAL_S="60",
        )
        if with_state_file:
            env["GRAPHNAP_STATE_FILE"] = str(tmp_path / "state.json")
        async with running(env) as first:
            assert first.stderr is not None
            seen: list[Record] = []
            for n in range(1, kill_after + 1):
                await read_until(
                    first.stderr,
                    seen,
                    lambda r: r.get("outcome") == "requested",
                    f"stop {n} of the {kill_after} the gate lets through",
                    fan_out(kill_after, 10),
                )
            first.kill()
            await asyncio.wait_for(first.wait(), timeout=AT_ONCE.seconds)
        assert len(cloud.jobs) == kill_after  # the rest were held, and never reached GES

        gate.open()
        async with running(env) as second:
            assert second.stderr is not None
            seen = []
            await read_until(
                second.stderr,
                seen,
                lambda r: "actions requested" in r.get("message", ""),
                "the restart's firing to finish the fan-out",
                fan_out(40, 10),
            )
            second.send_signal(signal.SIGTERM)
            code, output = await finish(second, seen)
    assert code == 0, output[-2000:]
    assert {g.status for g in cloud.all_graphs()} <= {901, 900}  # every one stopping or stopped
    stops: dict[str, int] = {}
    for job in cloud.jobs.values():
        stops[job.graph_id] = stops.get(job.graph_id, 0) + 1
    assert set(stops.values()) == {1}  # and none twice
    assert len(stops) == 40
