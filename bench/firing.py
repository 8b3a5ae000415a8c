"""How one firing scales with the number of graphs, over real loopback HTTP.

Runs the daemon (App) against the in-process emulator (jobs take 1.2 s) and times the
phases of one stop firing for growing fleets: inventory (paged listing), planning (pure),
issuing the stop requests, and following every job to its end (mostly the emulated job time, plus polling). Prints absolute times
and, because this machine is shared and noisy, ratios taken within the same run.

    .venv/bin/python bench/firing.py [--sizes 200 1000 3000] [--in-flight 32]

Polling runs every 0.5 s here (10-60 s in production), so during a long issuing phase
the trackers' polls compete with the stops: issue time grows faster than the fleet.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from daemon.app import App
from daemon.config.models import OptOutTags
from daemon.config.settings import Settings
from daemon.emulator import Cloud, EmulatorServer, Timing
from daemon.emulator.cloud import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK
from daemon.rules.planning import plan

CONFIG = """
projects:
  - {{name: lab, region: cn-north-4, project_id: {pid}, credentials: lab, endpoints: {{ges: "{url}"}}}}
schedules:
  - {{name: stop-all, action: stop, cron: "0 20 * * *", timezone: UTC, targets: {{tags: {{env: dev}}}}}}
"""


async def one_size(
    count: int, workdir: Path, *, trace_memory: bool = False, in_flight: int = 32
) -> dict[str, float]:
    cloud = Cloud(
        [DEMO_PROJECT_ID], timing=Timing(pending_s=0.2, stop_s=1.0), access_keys={DEMO_AK: DEMO_SK}
    )
    for i in range(count):
        cloud.add_graph(DEMO_PROJECT_ID, f"dev-{i:05d}", tags={"env": "dev" if i % 4 else "prod"})
    async with EmulatorServer(cloud) as server:
        config = workdir / f"c{count}.yaml"
        config.write_text(CONFIG.format(pid=DEMO_PROJECT_ID, url=server.url))
        settings = Settings(
            config=config,
            credentials={"lab": {"ak": DEMO_AK, "sk": DEMO_SK}},
            project_rate_per_s=100000,
            project_rate_initial_per_s=100000,
            max_concurrency=32,
            poll_initial_s=0.5,
            poll_max_s=0.5,
        )  # type: ignore[arg-type]
        app = App(settings)
        await app.start(serve=False, schedule=False, watch=False)
        graphs = app.inventory.projects["lab"].graphs
        schedule = app.config.schedule("stop-all")

        started = time.perf_counter()
        await app.inventory.refresh(app.config)
        inventory_s = time.perf_counter() - started

        started = time.perf_counter()
        for _ in range(10):
            decisions = plan(schedule, {"lab": graphs}, datetime.now(UTC), OptOutTags())
        plan_s = (time.perf_counter() - started) / 10

        if trace_memory:  # slows Python several-fold: never in a timed pass
            tracemalloc.start()
        started = time.perf_counter()
        report = await app.fire("stop-all")
        issue_s = time.perf_counter() - started
        tracking_bytes = tracemalloc.get_traced_memory()[0] if trace_memory else 0.0
        tracemalloc.stop()
        started = time.perf_counter()
        await app.settle()
        track_s = time.perf_counter() - started
        await app.shutdown()
    acted = sum(r.outcome == "requested" for r in report.results)
    planned = len([d for d in decisions if d.act])
    outcomes = sorted({r.outcome for r in report.results})
    assert acted == planned == count - (count + 3) // 4, (acted, planned, outcomes)
    return {
        "graphs": count,
        "stops": acted,
        "inventory_s": inventory_s,
        "plan_s": plan_s,
        "issue_s": issue_s,
        "track_s": track_s,
        "kib_per_job": tracking_bytes / 1024 / max(acted, 1),
        "requests": len(cloud.requests),
    }


async def main(sizes: list[int], in_flight: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [await one_size(n, Path(tmp), in_flight=in_flight) for n in sizes]
        memory = await one_size(sizes[-1], Path(tmp), trace_memory=True, in_flight=in_flight)
    print(
        f"{'graphs':>7} {'stops':>6} {'inventory':>10} {'plan':>9} {'issue':>8} {'track':>8} {'requests':>9}"
    )
    for r in rows:
        print(
            f"{r['graphs']:>7.0f} {r['stops']:>6.0f} {r['inventory_s'] * 1000:>8.1f}ms {r['plan_s'] * 1000:>7.2f}ms "
            f"{r['issue_s']:>7.2f}s {r['track_s']:>7.2f}s {r['requests']:>9.0f}"
        )
    print(
        f"memory held per job in flight at {memory['graphs']:.0f} graphs: {memory['kib_per_job']:.1f} KiB (tracemalloc, untimed pass)"
    )
    first, last = rows[0], rows[-1]
    scale = last["graphs"] / first["graphs"]
    print(f"\nratios, largest vs smallest fleet ({scale:.0f}x the graphs):")
    for key in ("inventory_s", "plan_s", "issue_s", "track_s"):
        print(f"  {key[:-2]:>9}: {last[key] / first[key]:.1f}x the time")
    print(
        f"  planning is {last['plan_s'] / last['issue_s'] * 100:.2f}% of issuing the stops at {last['graphs']:.0f} graphs"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 3000])
    parser.add_argument(
        "--in-flight",
        type=int,
        default=32,
        help="GRAPHNAP_MAX_CONCURRENCY: requests in flight per project",
    )
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.in_flight))
