"""The emulator in a process of its own, for the benchmark: N projects of M graphs each, on
loopback, on the real clock. Prints one JSON line ({"url": ...}) once it listens, then
serves until SIGTERM. It runs on the other core, so the daemon under test does not share
its event loop with the cloud it talks to.

    .venv/bin/python bench/emulate.py --projects 10 --graphs 500 --latency 0.05 --stop 59
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from daemon.emulator import Cloud, EmulatorServer, Faults, Timing

AK = "BENCHAK0000000000000"
SK = "bench-secret-key-not-for-production"
ENVS = ("dev", "test", "prod")
TEAMS = 20  # graphs carry team t0..t19: what the benchmark's many schedules select by


def project_id(index: int) -> str:
    return f"{index + 1:032x}"


def build(args: argparse.Namespace) -> Cloud:
    ids = [project_id(i) for i in range(args.projects)]
    limits = (
        [float(x) for x in args.throttle_per_project.split(",")]
        if args.throttle_per_project
        else []
    )
    throttle = {pid: limits[i % len(limits)] for i, pid in enumerate(ids)} if limits else None
    cloud = Cloud(
        ids,
        seed=1,
        timing=Timing(pending_s=args.pending, stop_s=args.stop, start_s=args.start),
        faults=Faults(latency_s=args.latency, throttle_rps_per_project=throttle),
        access_keys={AK: SK},
    )
    for pid in ids:
        for i in range(args.graphs):
            cloud.add_graph(
                pid, f"g-{i:05d}", tags={"env": ENVS[i % len(ENVS)], "team": f"t{i % TEAMS}"}
            )
    return cloud


async def serve(args: argparse.Namespace) -> None:
    server = EmulatorServer(build(args), "127.0.0.1", args.port)
    url = await server.start()
    print(json.dumps({"url": url}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--projects", type=int, default=1)
    parser.add_argument("--graphs", type=int, default=100, help="graphs per project")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to answers")
    parser.add_argument(
        "--throttle-per-project", default=None, help="limits per second, given in turn: 20,50"
    )
    parser.add_argument("--pending", type=float, default=1.0)
    parser.add_argument("--stop", type=float, default=8.0)
    parser.add_argument("--start", type=float, default=15.0)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args(sys.argv[1:])))
