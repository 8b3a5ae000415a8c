"""The commands that read a config and talk to no cloud: `validate`, `schema`, and
`plan`'s list of coming actions (`plan --live` hands over to the one-shot daemon)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from daemon.cli.console import EXIT_OK, EXIT_USAGE, table
from daemon.cli.settings import settings_from
from daemon.config.holds import config_holds
from daemon.config.loader import load_config
from daemon.config.models import Selector, config_json_schema
from daemon.config.problems import ConfigError, format_loc
from daemon.rules.holds import config_hold_problems
from daemon.rules.upcoming import upcoming_firings
from daemon.telemetry.logs import setup_logging


def describe_selector(selector: Selector) -> str:
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
    settings = settings_from(args)
    try:
        config = load_config(settings.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    now = datetime.now(UTC)  # the command line, like app.py, may read the clock
    rows = []
    for firing in upcoming_firings(config, now, now + timedelta(hours=args.hours)):
        schedule = firing.schedule
        targets = describe_selector(schedule.targets)
        if schedule.exclude:
            targets += f" minus {describe_selector(schedule.exclude)}"
        action = schedule.action + (" (dry run)" if schedule.dry_run else "")
        rows.append(
            (
                schedule.name,
                firing.local_time.strftime("%a %Y-%m-%d %H:%M %Z"),
                firing.fire_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                f"skipped: {firing.skipped}" if firing.skipped else action,
                targets,
            )
        )
    print(f"Actions in the next {args.hours:g} hours ({len(rows)}):")
    table(["schedule", "local time", "UTC time", "action", "targets"], rows)
    if args.live:
        from daemon.cli.oneshot import plan_live

        setup_logging(args.log_level or "WARNING", "text")
        return plan_live(settings, config)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for path in args.files:
        try:
            config = load_config(path)
        except ConfigError as exc:
            print(exc.render(), file=sys.stderr)
            status = EXIT_USAGE
            continue
        holds = config_hold_problems(
            config_holds(config.holds), now=datetime.now(UTC), max_hold=config.max_hold
        )
        for problem in holds:  # an expired hold is a warning; the others refuse the config
            print(
                f"{path}: {problem.severity}: {format_loc(problem.loc)}: {problem.message}"
                + (f"\n    hint: {problem.hint}" if problem.hint else ""),
                file=sys.stderr,
            )
        if any(p.severity == "error" for p in holds):
            status = EXIT_USAGE
            continue
        print(
            f"{path}: ok ({len(config.projects)} projects, {len(config.schedules)} schedules, "
            f"{len(config.idle_rules)} idle rules, {len(config.holds)} holds)"
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
