"""Command line: parses arguments and hands over; no business rules live here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from daemon import __version__
from daemon.config import ConfigError, config_json_schema, load_config
from daemon.emulator.cloud import (
    DEMO_AK,
    DEMO_DOMAIN,
    DEMO_PASSWORD,
    DEMO_PROJECT_ID,
    DEMO_SK,
    DEMO_USER,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def cmd_validate(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for path in args.files:
        try:
            config = load_config(path)
        except ConfigError as exc:
            print(exc.render(), file=sys.stderr)
            status = EXIT_USAGE
            continue
        print(
            f"{path}: ok ({len(config.projects)} projects, {len(config.schedules)} schedules, "
            f"{len(config.idle_rules)} idle rules)"
        )
    return status


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return EXIT_OK


def cmd_emulator(args: argparse.Namespace) -> int:
    from daemon.emulator import Cloud, EmulatorServer, Faults, Timing

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
            error_rate=args.error_rate,
            job_failure_rate=args.job_failure_rate,
            token_ttl_s=args.token_ttl,
        ),
        access_keys={args.ak: args.sk},
        users={(args.domain, args.user): args.password},
    )
    for project_id in project_ids:
        cloud.populate(project_id, args.graphs, busy=args.busy, stopped=args.stopped)

    async def serve() -> None:
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

    asyncio.run(serve())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphnap",
        description="Stops idle Huawei Cloud GES graphs on schedules and idle rules.",
    )
    parser.add_argument("--version", action="version", version=f"graphnap {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check config files; exit 0 when valid, 2 when not")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the config's JSON Schema (for editor completion)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser(
        "emulator",
        help="serve a fake GES + IAM on loopback",
        description="A fake Huawei cloud for demos and tests: GES v1 graphs, jobs and actions, IAM "
        "tokens, AK/SK signature checks, and faults on demand. The defaults match config/demo.yaml.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
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
        "--error-rate", type=float, default=0.0, help="fraction of requests answered 5xx"
    )
    p.add_argument("--job-failure-rate", type=float, default=0.0, help="fraction of jobs that fail")
    p.add_argument("--token-ttl", type=float, default=86400.0, help="IAM token lifetime, seconds")
    p.set_defaults(func=cmd_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        return int(args.func(args))
    return EXIT_OK
