"""Two real daemon processes, one Lease on the fake API server, one emulated cloud: exactly
one leads; a killed leader is replaced within the lease duration plus the retry period and
its cut-short firing is finished with no graph stopped twice; a paused leader that wakes
sends nothing; a graceful stop hands over at once. Waits are bounded by the lease settings."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.emulator import Cloud, EmulatorServer, Timing
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from tests.conftest import PROJECT
from tests.faultproxy import FaultProxy, fault_proxy
from tests.kube_fake import FakeApiServer
from tests.test_process import Bound, Record, daemon_env, finish, lab_config, read_until

# Short, yet long enough that a loaded 2-core machine does not make the leader miss its own
# renew deadline (it would step down on its own and hand over before the test says so).
LEASE_S, RENEW_S, RETRY_S = 6.0, 4.0, 0.5
GRACE_S = 2.0
# What a handover may take beyond lease + retry: a process's own scheduling on a busy
# 2-core machine. Generous on purpose: CI must not fail on timing; the fencing asserts
# (nothing sent by a replica that does not lead) are exact.
SLACK_S = 10.0
# Waits for an event: a start-up (imports, config, first inventory), then the lease's own.
TAKE_OVER = Bound.of((LEASE_S + RETRY_S, "lease duration + retry period"))
FIRING = Bound.of((30 / 10, "30 stops at 10/s"))
# Every wait of the test together: pytest's guard only above them, so a slow run fails on
# the wait that names its event.
pytestmark = pytest.mark.timeout(4 * TAKE_OVER.seconds + 2 * FIRING.seconds + 60)


async def start_daemon(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "run", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def leader_env(config: Path, api: FakeApiServer, token: Path, name: str) -> dict[str, str]:
    return daemon_env(
        config,
        GRAPHNAP_LEADER__ENABLED="true",
        GRAPHNAP_LEADER__API_URL=api.url,
        GRAPHNAP_LEADER__NAMESPACE="ops",
        GRAPHNAP_LEADER__TOKEN_FILE=str(token),
        GRAPHNAP_LEADER__IDENTITY=name,
        GRAPHNAP_LEADER__STORE="configmap",  # state both replicas share
        GRAPHNAP_LEADER__LEASE_DURATION_S=str(LEASE_S),
        GRAPHNAP_LEADER__RENEW_DEADLINE_S=str(RENEW_S),
        GRAPHNAP_LEADER__RETRY_PERIOD_S=str(RETRY_S),
        GRAPHNAP_PROJECT_RATE_PER_S="10",
        GRAPHNAP_POLL_INITIAL_S="60",
        GRAPHNAP_SHUTDOWN_GRACE_S=str(GRACE_S),
    )


async def recorded(api: FakeApiServer, schedule: str, bound: Bound) -> None:
    """Until the shared ConfigMap holds the schedule's last fire time (a firing is recorded
    once it has finished, a moment after it logs its count), within `bound`."""
    async with asyncio.timeout(bound.seconds):
        while True:
            state = api.configmap("ops", "graphnap-state")
            if state is not None and f'"{schedule}"' in state["data"].get("last_fire.json", ""):
                return
            await asyncio.sleep(0.05)  # the other process writes it; nothing here to await


def counted(proxy: FaultProxy) -> list[str]:
    """The requests that pass this daemon's own proxy to the emulator."""
    seen: list[str] = []
    take = proxy._take

    def counting(request):  # type: ignore[no-untyped-def]
        seen.append(f"{request.method} {request.path}")
        return take(request)

    proxy._take = counting  # type: ignore[method-assign]
    return seen


async def first_leader(
    procs: dict[str, asyncio.subprocess.Process], seen: dict[str, list[Record]]
) -> str:
    async def wait(name: str) -> str:
        stream = procs[name].stderr
        assert stream is not None
        await read_until(
            stream,
            seen[name],
            lambda r: "became the leader" in r.get("message", ""),
            f"{name} to lead",
            TAKE_OVER,
        )
        return name

    tasks = {asyncio.ensure_future(wait(n)) for n in procs}
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return next(iter(done)).result()


async def test_kill_pause_and_stop_of_the_leader_hand_over_and_no_graph_is_stopped_twice(
    tmp_path: Path,
) -> None:
    cloud = Cloud([PROJECT], timing=Timing(pending_s=1, stop_s=600), access_keys={DEMO_AK: DEMO_SK})
    for i in range(30):
        cloud.add_graph(PROJECT, f"dev-{i:02d}")
    fired = datetime.now(UTC) - timedelta(minutes=2)
    cron = f"{fired.minute} {fired.hour} * * *"
    async with (
        FakeApiServer() as api,
        EmulatorServer(cloud) as server,
        fault_proxy(server.url) as proxy_a,
        fault_proxy(server.url) as proxy_b,
    ):
        token = tmp_path / "token"
        token.write_text(api.token)
        sent = {"pod-a": counted(proxy_a), "pod-b": counted(proxy_b)}
        procs: dict[str, asyncio.subprocess.Process] = {}
        for name, proxy in (("pod-a", proxy_a), ("pod-b", proxy_b)):
            (tmp_path / name).mkdir()
            config = lab_config(
                tmp_path / name,
                proxy.url,
                f'{{name: s, action: stop, cron: "{cron}", timezone: UTC, '
                'targets: {names: ["dev-*"]}}',
            )
            procs[name] = await start_daemon(leader_env(config, api, token, name))
        seen: dict[str, list[Record]] = {n: [] for n in procs}
        try:
            leader = await first_leader(procs, seen)
            other = "pod-b" if leader == "pod-a" else "pod-a"
            lease = api.lease("ops", "graphnap")
            assert lease is not None
            assert lease["spec"]["holderIdentity"] == leader
            assert sent[other] == []  # the follower sends nothing to the cloud

            # Kill the leader halfway through its fan-out of stops.
            stream = procs[leader].stderr
            assert stream is not None
            for _ in range(5):
                await read_until(
                    stream,
                    seen[leader],
                    lambda r: r.get("outcome") == "requested",
                    "a stop",
                    FIRING,
                )
            procs[leader].kill()
            killed = time.monotonic()
            await procs[leader].wait()
            assert cloud.count("graph_action") < 30
            assert await first_leader({other: procs[other]}, seen) == other
            assert time.monotonic() - killed < LEASE_S + RETRY_S + SLACK_S
            out = procs[other].stderr
            assert out is not None
            await read_until(
                out,
                seen[other],
                lambda r: "actions requested" in r.get("message", ""),
                "the catch-up firing",
                FIRING,
            )
            await recorded(api, "s", FIRING)  # the firing is kept once it has finished

            # Pause the new leader past its lease; the restarted first one takes over.
            procs[leader] = await start_daemon(
                leader_env(tmp_path / leader / "config.yaml", api, token, leader)
            )
            seen[leader] = []
            procs[other].send_signal(signal.SIGSTOP)
            assert await first_leader({leader: procs[leader]}, seen) == leader
            back = procs[leader].stderr
            assert back is not None
            await read_until(  # its active group is up: the catch-up, if any, has been judged
                back,
                seen[leader],
                lambda r: "running:" in r.get("message", ""),
                "the returning leader's start",
                FIRING,
            )
            before = len(sent[other])
            procs[other].send_signal(signal.SIGCONT)
            await read_until(
                out,
                seen[other],
                lambda r: "leadership lost" in r.get("message", ""),
                "the paused leader to see it lost the lease",
                TAKE_OVER,
            )
            assert sent[other][before:] == []  # woke up fenced: not one request left it

            # A graceful stop of the leader: the other takes over at once.
            procs[leader].send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            assert await first_leader({other: procs[other]}, seen) == other
            assert time.monotonic() - stopped < GRACE_S + RETRY_S + SLACK_S
            code, output = await finish(procs[leader], seen[leader])
            assert code == 0, output[-2000:]
            assert "lease graphnap released" in output
            # The firing the new leader finished is in the shared ConfigMap, so the first
            # one, leading again, did not catch it up a second time.
            assert "missed while down" not in output
            state = api.configmap("ops", "graphnap-state")
            assert state is not None
            assert '"s"' in state["data"]["last_fire.json"]
        finally:
            for proc in procs.values():
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    stops: dict[str, int] = {}
    for job in cloud.jobs.values():
        stops[job.graph_id] = stops.get(job.graph_id, 0) + 1
    assert set(stops.values()) == {1}  # no graph given two stop jobs
    assert len(stops) == 30  # the firing cut short was finished
