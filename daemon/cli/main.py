"""Command line: parses arguments and hands over; no business rules live here.

Commands that read a config take --config FILE, defaulting to GRAPHNAP_CONFIG, then
/etc/graphnap/config.yaml.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from daemon import __version__
from daemon.app import App, serve, utc_now
from daemon.config.loader import ConfigError, load_config
from daemon.config.models import Config, Selector, config_json_schema
from daemon.config.settings import Settings
from daemon.domain.cron import cron_trigger, fire_times
from daemon.emulator.cloud import (
    DEMO_AK,
    DEMO_DOMAIN,
    DEMO_PASSWORD,
    DEMO_PROJECT_ID,
    DEMO_SK,
    DEMO_USER,
)
from daemon.rules.planning import holiday_reason
from daemon.telemetry.logs import setup_logging

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class SettingsError(Exception):
    """A GRAPHNAP_* variable (or secret file) that cannot be used."""


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    config = getattr(args, "file", None) or getattr(args, "config", None)
    if config:
        overrides["config"] = config
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # the secret files as a whole: the message names the file
                lines.append(f"  {message}")
                continue
            name = "GRAPHNAP_" + "__".join(str(part).upper() for part in err["loc"])
            lines.append(f"  {name}: {message}")
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None


def cmd_run(args: argparse.Namespace) -> int:
    # Logging first (the format from the environment, as the settings will say), so what
    # reading the settings warns about (a secret file others can read) is a log line too.
    setup_logging(args.log_level or "INFO", _log_format_from_env())
    settings = _settings(args)
    setup_logging(args.log_level or settings.log_level, settings.log_format)
    return asyncio.run(serve(settings))


def _log_format_from_env() -> Literal["json", "text", "auto"]:
    fmt = os.environ.get("GRAPHNAP_LOG_FORMAT", "auto").strip().lower()
    return fmt if fmt in ("json", "text") else "auto"  # type: ignore[return-value]


def _describe_selector(selector: Selector) -> str:
    parts = [
        f"{key}={','.join(values)}"
        for key, values in (
            ("projects", selector.projects),
            ("ids", selector.ids),
            ("names", selector.names),
        )
        if values
    ]
    if selector.tags:
        parts.append("tags=" + ",".join(f"{k}:{v}" for k, v in selector.tags.items()))
    return " ".join(parts)


def cmd_plan(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        config = load_config(settings.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    now = utc_now()
    rows = []
    for schedule in config.schedules:
        targets = _describe_selector(schedule.targets)
        if schedule.exclude:
            targets += f" minus {_describe_selector(schedule.exclude)}"
        trigger = cron_trigger(schedule.cron, schedule.timezone)
        for fire in fire_times(trigger, now, now + timedelta(hours=args.hours)):
            local = fire.astimezone(ZoneInfo(schedule.timezone))
            note = holiday_reason(schedule, config.calendars, fire)
            action = schedule.action + (" (dry run)" if schedule.dry_run else "")
            rows.append(
                (
                    fire,
                    schedule.name,
                    local.strftime("%a %Y-%m-%d %H:%M %Z"),
                    fire.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    f"skipped: {note}" if note else action,
                    targets,
                )
            )
    print(f"Actions in the next {args.hours:g} hours ({len(rows)}):")
    _table(
        ["schedule", "local time", "UTC time", "action", "targets"], [r[1:] for r in sorted(rows)]
    )
    if args.live:
        setup_logging(args.log_level or "WARNING", "text")
        return asyncio.run(_plan_live(settings, config))
    return EXIT_OK


@contextlib.asynccontextmanager
async def _offline_app(settings: Settings) -> AsyncIterator[App]:
    """The daemon without server, scheduler or watcher: for one-shot commands.
    A bad config raises ConfigError before anything is sent."""
    app = App(settings)
    try:
        await app.start(serve=False, schedule=False, watch=False)
        yield app
    finally:
        await app.shutdown()


async def _plan_live(settings: Settings, config: Config) -> int:
    """What each schedule would do if it fired now: the firing's own path (inventory,
    holidays, planning, executor) in dry-run, so it can never disagree with `once`."""
    try:
        async with _offline_app(settings) as app:
            rows = []
            for schedule in config.schedules:
                report = await app.fire(schedule.name, dry_run=True)
                if report.skipped_reason:
                    rows.append((schedule.name, "", "", "skip", report.skipped_reason))
                for result in report.results:
                    d = result.decision
                    acts = result.outcome == "dry_run"
                    rows.append(
                        (
                            schedule.name,
                            d.project,
                            d.graph_name,
                            d.action if acts else "skip",
                            d.reason if acts else result.reason,
                        )
                    )
            print("\nIf each schedule fired now:")
            _table(["schedule", "project", "graph", "decision", "reason"], rows)
            failed = app.inventory_errors()
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    for project, error in failed.items():
        print(f"project {project}: inventory failed: {error}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_once(args: argparse.Namespace) -> int:
    settings = _settings(args)
    setup_logging(args.log_level or "WARNING", "text")
    return asyncio.run(_once(settings, args.schedule, args.dry_run))


async def _once(settings: Settings, name: str, dry_run: bool) -> int:
    try:
        async with _offline_app(settings) as app:
            names = [s.name for s in app.config.schedules]
            if name not in names:
                print(
                    f"unknown schedule {name!r}; known: {', '.join(names) or 'none'}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            report = await app.fire(name, dry_run=dry_run)
            outcomes = await asyncio.gather(*(r.job for r in report.results if r.job is not None))
            errors = {p: app.passes.projects[p].error for p in report.failed_projects}
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    if report.skipped_reason:
        print(f"{name}: firing skipped: {report.skipped_reason}")
        return EXIT_OK
    done = {(o.job.project, o.job.graph_id): o for o in outcomes}
    rows, failed = [], bool(errors)
    for result in report.results:
        d = result.decision
        outcome, reason = result.outcome, result.reason
        if (job := done.get((d.project, d.graph_id))) is not None:
            outcome, reason = (
                job.outcome,
                f"{job.reason} (job {job.job.job_id}, {job.duration_s:.0f}s)",
            )
        failed |= outcome == "failed"
        rows.append((d.project, d.graph_name, d.graph_id, d.action, outcome, reason))
    _table(["project", "graph", "id", "action", "outcome", "reason"], rows)
    for project, error in errors.items():
        print(f"project {project}: inventory failed: {error}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_backtest(args: argparse.Namespace) -> int:
    settings = _settings(args)
    setup_logging(args.log_level or "WARNING", "text")
    return asyncio.run(_backtest(settings, args.rule, args.days))


async def _backtest(settings: Settings, name: str, days: float) -> int:
    from daemon.cli.backtest import backtest, render
    from daemon.runtime.passes import idle_criteria

    try:
        async with _offline_app(settings) as app:
            rules = {r.name: r for r in app.config.idle_rules}
            if name not in rules:
                known = ", ".join(rules) or "none"
                print(f"unknown idle rule {name!r}; known: {known}", file=sys.stderr)
                return EXIT_USAGE
            rule = rules[name]
            selection = await app.selected_now(rule)
            report = await backtest(
                rule.name,
                idle_criteria(rule),
                selection.graphs,
                app.metric_apis(),
                now=selection.now,
                days=days,
                check_every=rule.check_every,
                hourly_price=lambda g: app.config.pricing.hourly_price(g.size_index, g.replication),
                currency=app.config.pricing.currency,
            )
            report = replace(report, failures={**report.failures, **selection.unlisted})
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # a length Cloud Eye's history cannot cover
        print(f"backtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(render(report))
    return EXIT_FAILED if report.failures else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings(
        args,
        listen_host="127.0.0.1",
        listen_port=9464,
        log_format="text",
        poll_initial_s=2,
        poll_max_s=5,
        inventory_interval_s=10,
        reconcile_interval_s=30,
        credentials={"demo": {"ak": DEMO_AK, "sk": DEMO_SK}},
    )
    setup_logging(args.log_level or "INFO", "text")
    return asyncio.run(_demo(args.config, settings))


async def _demo(config: Path, settings: Settings) -> int:
    from daemon.emulator import Cloud, EmulatorServer, Faults, Timing

    cloud = Cloud(
        [DEMO_PROJECT_ID],
        seed=42,
        timing=Timing(pending_s=1, stop_s=6, start_s=10),
        faults=Faults(error_rate=0.03, job_failure_rate=0.05),
        access_keys={DEMO_AK: DEMO_SK},
        users={(DEMO_DOMAIN, DEMO_USER): DEMO_PASSWORD},
    )
    # Two hours of history, so Cloud Eye has data for the idle rule from the first minute.
    cloud.populate(DEMO_PROJECT_ID, 16, busy=2, stopped=2, history=timedelta(hours=2))
    cloud.add_graph(DEMO_PROJECT_ID, "dev-ledger-keep", tags={"env": "dev"})
    cloud.add_graph(
        DEMO_PROJECT_ID, "dev-pinned", tags={"env": "dev", "graphnap-skip": "owner asked"}
    )
    emulator = EmulatorServer(cloud, "127.0.0.1", 8900)
    url = await emulator.start()
    print(
        f"""
graphnap demo: the daemon runs {config} against the GES emulator at {url}.
  metrics   http://127.0.0.1:9464/metrics   (graphnap_actions_total, graphnap_jobs_in_flight, ...)
  status    http://127.0.0.1:9464/status    (next firings, jobs in flight, decisions and reasons)
  emulator  {url}/_emulator/state
Schedules fire every minute or two; watch the log lines below. Ctrl-C stops both.
""",
        flush=True,
    )
    try:
        return await App(settings).run()
    finally:
        await emulator.stop()


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
        for i, project in enumerate(config.projects):
            for service, url in project.endpoints.plain_http():
                print(
                    f"{path}: warning: projects[{i}].endpoints.{service}: plain http to {url}, "
                    "not loopback: requests travel unencrypted (use https)",
                    file=sys.stderr,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphnap",
        description="Stops idle Huawei Cloud GES graphs on schedules and idle rules.",
    )
    parser.add_argument("--version", action="version", version=f"graphnap {__version__}")
    parser.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_help = "config file (default: $GRAPHNAP_CONFIG, then /etc/graphnap/config.yaml)"

    p = sub.add_parser("run", help="run the daemon: schedules, job tracking, ops server")
    p.add_argument("--config", type=Path, help=config_help)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "plan", help="list the coming actions; --live: what each schedule would do now"
    )
    p.add_argument("file", nargs="?", type=Path, metavar="FILE", help="config file (or --config)")
    p.add_argument("--config", type=Path, help=config_help)
    p.add_argument("--hours", type=float, default=48, help="how far ahead to look (default 48)")
    p.add_argument(
        "--live", action="store_true", help="list graphs too: the decision and reason for each"
    )
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser(
        "once", help="fire one schedule now, follow its jobs, print the outcome per graph"
    )
    p.add_argument("schedule", metavar="SCHEDULE")
    p.add_argument("--config", type=Path, help=config_help)
    p.add_argument("--dry-run", action="store_true", help="everything but the final POST")
    p.set_defaults(func=cmd_once)

    p = sub.add_parser(
        "backtest",
        help="what an idle rule would have done over the last days, from Cloud Eye history",
    )
    p.add_argument("rule", metavar="RULE", help="an idle rule's name")
    p.add_argument("--config", type=Path, help=config_help)
    p.add_argument(
        "--days", type=float, default=7, help="how far back to replay (default 7, at most 30)"
    )
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("demo", help="the emulator and the daemon together, with config/demo.yaml")
    p.add_argument("--config", type=Path, default=Path("config/demo.yaml"))
    p.set_defaults(func=cmd_demo)

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
    p.set_defaults(func=cmd_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func in (cmd_validate, cmd_schema, cmd_emulator):
        setup_logging(args.log_level or "INFO", "text")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return int(args.func(args))
    except SettingsError as exc:
        print(f"graphnap: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        print(
            f"graphnap: cannot listen: {exc.strerror or exc}\n  hint: another process holds "
            "this address (an earlier demo or emulator?); stop it, or choose another port "
            "(--port for the emulator, GRAPHNAP_LISTEN_PORT for the daemon)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return EXIT_OK
