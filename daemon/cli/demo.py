"""The fake cloud on the command line: `graphnap emulator` (its options and server) and
`graphnap demo` (the emulator and the daemon together). Imported only by those commands."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import signal
import tempfile
from datetime import timedelta
from pathlib import Path

from daemon.app import App
from daemon.cli.console import EXIT_OK
from daemon.cli.inbox import Inbox, new_secret
from daemon.cli.settings import settings_from
from daemon.config.settings import Settings
from daemon.domain.hold import HoldGraphs
from daemon.emulator import Cloud, EmulatorServer, Faults, Timing
from daemon.emulator.cloud import (
    DEMO_AK,
    DEMO_DOMAIN,
    DEMO_PASSWORD,
    DEMO_PROJECT_ID,
    DEMO_SK,
    DEMO_USER,
)
from daemon.telemetry.logs import setup_logging


def add_emulator_arguments(p: argparse.ArgumentParser) -> None:
    """`graphnap emulator`'s options; their defaults are the demo's credentials."""
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8900)
    p.add_argument(
        "--project-id",
        action="append",
        help="a project to serve (repeatable); default the demo project",
    )
    p.add_argument("--region", default="cn-north-4")
    p.add_argument("--graphs", type=int, default=20, help="graphs per project")
    p.add_argument(
        "--busy", type=int, default=2, help="graphs per project stuck importing/exporting"
    )
    p.add_argument("--stopped", type=int, default=2, help="graphs per project that start stopped")
    p.add_argument(
        "--history-minutes",
        type=float,
        default=0,
        help="graphs created this long ago: Cloud Eye has their data from the start",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds graph names and random faults")
    p.add_argument("--ak", default=DEMO_AK, help="the access key it accepts")
    p.add_argument("--sk", default=DEMO_SK, help="the secret key of --ak")
    p.add_argument("--user", default=DEMO_USER, help="IAM user for tokens")
    p.add_argument("--password", default=DEMO_PASSWORD, help="that user's password")
    p.add_argument("--domain", default=DEMO_DOMAIN, help="that user's account (domain) name")
    p.add_argument("--pending-seconds", type=float, default=1.0, help="a job's time in 'pending'")
    p.add_argument("--stop-seconds", type=float, default=8.0, help="how long a stop runs")
    p.add_argument("--start-seconds", type=float, default=15.0, help="how long a start runs")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    p.add_argument(
        "--throttle-rps", type=float, default=None, help="answer 429 APIG.0308 above this rate"
    )
    p.add_argument(
        "--throttle-rps-per-project",
        type=float,
        default=None,
        help="answer 429 APIG.0308 above this rate in any one project",
    )
    p.add_argument(
        "--error-rate", type=float, default=0.0, help="fraction of requests answered 5xx"
    )
    p.add_argument("--job-failure-rate", type=float, default=0.0, help="fraction of jobs that fail")
    p.add_argument("--token-ttl", type=float, default=86400.0, help="IAM token lifetime, seconds")


def cmd_demo(args: argparse.Namespace) -> int:
    setup_logging(args.log_level or "INFO", "text")
    return asyncio.run(_demo(args))


def _demo_settings(args: argparse.Namespace, inbox_url: str, secret: str, tmp: Path) -> Settings:
    """The demo's settings: the emulator's keys, quick polling, the inbox as the webhook's
    receiver, and the control listener on loopback (a token of this run, so postpone links
    open their page)."""
    tokens = tmp / "tokens"
    tokens.mkdir()
    (tokens / "demo.json").write_text(
        json.dumps({"secret": secrets.token_hex(24), "projects": ["*"]})
    )
    link_key = tmp / "link.key"
    link_key.write_text(base64.b64encode(secrets.token_bytes(48)).decode())
    return settings_from(
        args,
        listen_host="127.0.0.1",
        listen_port=9464,
        log_format="text",
        poll_initial_s=2,
        poll_max_s=5,
        inventory_interval_s=10,
        reconcile_interval_s=30,
        credentials={"demo": {"ak": DEMO_AK, "sk": DEMO_SK}},
        notify={"inbox": {"url": inbox_url, "secret": secret}},
        control_host="127.0.0.1",
        control_port=9465,
        control_tokens_dir=tokens,
        control_public_url="http://127.0.0.1:9465",
        control_link_key_file=link_key,
    )


async def _demo(args: argparse.Namespace) -> int:
    config: Path = args.config
    cloud = Cloud(
        [DEMO_PROJECT_ID],
        seed=42,
        timing=Timing(pending_s=1, stop_s=6, start_s=10),
        faults=Faults(error_rate=0.03, job_failure_rate=0.05),
        access_keys={DEMO_AK: DEMO_SK},
        users={(DEMO_DOMAIN, DEMO_USER): DEMO_PASSWORD},
    )
    # Two hours of history, so Cloud Eye has data for the idle rule from the first minute.
    history = timedelta(hours=2)
    cloud.populate(DEMO_PROJECT_ID, 16, busy=2, stopped=2, history=history)
    cloud.add_graph(DEMO_PROJECT_ID, "dev-ledger-keep", tags={"env": "dev"})
    cloud.add_graph(
        DEMO_PROJECT_ID, "dev-pinned", tags={"env": "dev", "graphnap-skip": "owner asked"}
    )
    cloud.add_graph(DEMO_PROJECT_ID, "dev-on-call", tags={"env": "dev"})  # held running
    cloud.add_graph(DEMO_PROJECT_ID, "batch-nightly", status=900)  # woken for a batch job
    # Nobody has queried it for two hours: prod-idle warns of it, then stops it.
    cloud.add_graph(
        DEMO_PROJECT_ID, "prod-forgotten", tags={"env": "prod"}, created=cloud.clock() - history
    )
    emulator = EmulatorServer(cloud, "127.0.0.1", 8900)
    url = await emulator.start()
    secret = new_secret()
    inbox = Inbox(secret)
    inbox_url = await inbox.start()
    with tempfile.TemporaryDirectory(prefix="graphnap-demo-") as tmp:
        try:
            settings = _demo_settings(args, inbox_url, secret, Path(tmp))
            print(
                f"""
graphnap demo: the daemon runs {config} against the GES emulator at {url}.
  metrics   http://127.0.0.1:9464/metrics   (graphnap_actions_total, graphnap_notifications_total, ...)
  status    http://127.0.0.1:9464/status    (next firings, jobs in flight, decisions and reasons)
  emulator  {url}/_emulator/state
  inbox     {inbox_url}   (a webhook receiver: what graphnap tells people is printed here)
Schedules fire every minute or two; watch the log lines below. Ctrl-C stops both.
A minute before each dev-stop a warning lists the graphs it will stop, each with a postpone
link: open one in a browser and press "Keep running 2h", and dev-stop skips that graph.
Summaries follow each firing; prod-idle warns of prod-forgotten and stops it 2 minutes later.
Once it runs, the demo holds dev-on-call running for an hour (dev-stop skips it, saying
why) and wakes batch-nightly for 30 minutes (its start job is followed): holds in /status.
""",
                flush=True,
            )
            app = App(settings)
            people = asyncio.ensure_future(_hold_and_wake(app))
            try:
                return await app.run()
            finally:
                people.cancel()
        finally:
            await inbox.stop()
            await emulator.stop()


async def _hold_and_wake(app: App) -> None:
    """What a person and a pipeline would do through the control API, once the daemon
    has its first inventory."""
    for _ in range(300):  # up to a minute
        if app.source.is_loaded and not app.status.readiness():
            break
        await asyncio.sleep(0.2)
    else:
        return
    hold = await app.people.create_hold(
        HoldGraphs("demo", names=("dev-on-call",)),
        keep="running",
        until=(app.clock() + timedelta(hours=1)).replace(microsecond=0),
        reason="on call tonight",
        by="demo",
    )
    print(f"demo: hold {hold.id} keeps dev-on-call running for an hour", flush=True)
    wake = await app.people.wake(
        "demo", "batch-nightly", hold_for=timedelta(minutes=30), by="demo", reason="batch job"
    )
    print(
        f"demo: woke batch-nightly ({wake.outcome}); held until {wake.hold.until:%H:%M}", flush=True
    )
    running = await wake.wait()
    print(f"demo: batch-nightly {'runs' if running else 'did not start'}", flush=True)


def cmd_emulator(args: argparse.Namespace) -> int:
    project_ids = args.project_id or [DEMO_PROJECT_ID]
    cloud = Cloud(
        project_ids,
        region=args.region,
        seed=args.seed,
        timing=Timing(
            pending_s=args.pending_seconds, stop_s=args.stop_seconds, start_s=args.start_seconds
        ),
        faults=Faults(
            latency_s=args.latency,
            throttle_rps=args.throttle_rps,
            throttle_rps_per_project=args.throttle_rps_per_project,
            error_rate=args.error_rate,
            job_failure_rate=args.job_failure_rate,
            token_ttl_s=args.token_ttl,
        ),
        access_keys={args.ak: args.sk},
        users={(args.domain, args.user): args.password},
    )
    for project_id in project_ids:
        cloud.populate(
            project_id,
            args.graphs,
            busy=args.busy,
            stopped=args.stopped,
            history=timedelta(minutes=args.history_minutes),
        )

    async def serve_emulator() -> None:
        server = EmulatorServer(cloud, args.host, args.port)
        url = await server.start()
        print(
            f"GES emulator on {url}: projects {', '.join(project_ids)}, {args.graphs} graphs each, "
            f"region {args.region}. Ctrl-C stops it.",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()

    asyncio.run(serve_emulator())
    return EXIT_OK
