"""One-shot commands on the daemon without its server, scheduler or watcher: `once`,
`backtest` and `plan --live`; each runs the firing's own path and prints what it did."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import replace

from daemon.app import App
from daemon.cli.console import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from daemon.cli.console import table as _table
from daemon.cli.settings import settings_from as _settings
from daemon.config.models import Config
from daemon.config.problems import ConfigError
from daemon.config.settings import Settings
from daemon.ops.heap import quiet_gc
from daemon.telemetry.logs import setup_logging


def plan_live(settings: Settings, config: Config) -> int:
    return asyncio.run(_plan_live(settings, config))


@contextlib.asynccontextmanager
async def _offline_app(settings: Settings) -> AsyncIterator[App]:
    """The daemon without server, scheduler or watcher, and no inventory of its own (each
    firing or selection lists the graphs): for one-shot commands. A bad config raises
    ConfigError before anything is sent."""
    app = App(settings)
    try:
        await app.start(serve=False, schedule=False, watch=False, one_shot=True)
        quiet_gc()
        yield app
    finally:
        await app.shutdown()


async def _plan_live(settings: Settings, config: Config) -> int:
    """What each schedule would do if it fired now: the firing's own path (inventory,
    holidays, planning, executor) in dry-run, so it can never disagree with `once`."""
    try:
        async with _offline_app(settings) as app:
            # Every project listed, not only those a firing targets: errors are the exit code
            await app.inventory.refresh(app.config)
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
            holds = app.people.list_holds()
            print(f"\nHolds in force ({len(holds)}):")
            _table(
                ["hold", "graphs", "keep", "until", "by", "source", "reason"],
                [
                    (
                        h.id,
                        f"{h.graphs.project}/{','.join((*h.graphs.ids, *h.graphs.names))}",
                        h.keep,
                        h.until.isoformat(),
                        h.by,
                        h.source,
                        h.reason,
                    )
                    for h in holds
                ],
            )
            failed = app.inventory.errors()
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    for project, error in failed.items():
        print(f"project {project}: inventory failed: {error}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


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
            listed = app.inventory.errors()
            errors = {p: listed.get(p, "inventory failed") for p in report.failed_projects}
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
    from daemon.rules.idle import idle_criteria

    try:
        async with _offline_app(settings) as app:
            rules = {r.name: r for r in app.config.idle_rules}
            if name not in rules:
                known = ", ".join(rules) or "none"
                print(f"unknown idle rule {name!r}; known: {known}", file=sys.stderr)
                return EXIT_USAGE
            rule = rules[name]
            selection = await app.inventory.selected(app.config, rule)
            report = await backtest(
                rule.name,
                idle_criteria(rule),
                selection.graphs,
                app.clients.metric_apis(),
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
