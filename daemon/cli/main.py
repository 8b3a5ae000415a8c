"""The command line: the parser, and the hand-over to each command's module, imported only
when that command runs (so `graphnap --help` loads neither the daemon nor the emulator).

Commands that read a config take --config FILE, defaulting to GRAPHNAP_CONFIG, then
/etc/graphnap/config.yaml.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys
from collections.abc import Sequence
from pathlib import Path

from daemon import __version__
from daemon.cli import control
from daemon.cli.console import EXIT_OK, EXIT_USAGE, SettingsError


def cmd_run(args: argparse.Namespace) -> int:
    from daemon.cli.run import cmd_run

    return cmd_run(args)


def cmd_plan(args: argparse.Namespace) -> int:
    from daemon.cli.config import cmd_plan

    return cmd_plan(args)


def cmd_once(args: argparse.Namespace) -> int:
    from daemon.cli.oneshot import cmd_once

    return cmd_once(args)


def cmd_backtest(args: argparse.Namespace) -> int:
    from daemon.cli.oneshot import cmd_backtest

    return cmd_backtest(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from daemon.cli.demo import cmd_demo

    return cmd_demo(args)


def cmd_validate(args: argparse.Namespace) -> int:
    from daemon.cli.config import cmd_validate

    return cmd_validate(args)


def cmd_schema(args: argparse.Namespace) -> int:
    from daemon.cli.config import cmd_schema

    return cmd_schema(args)


def cmd_notify_test(args: argparse.Namespace) -> int:
    from daemon.cli.notify import cmd_notify_test as notify_test

    return notify_test(args)


def cmd_check_credentials(args: argparse.Namespace) -> int:
    from daemon.cli.credentials import cmd_check_credentials as check

    return check(args)


def cmd_emulator(args: argparse.Namespace) -> int:
    from daemon.cli.demo import cmd_emulator

    return cmd_emulator(args)


def build_parser(*, with_emulator_options: bool = True) -> argparse.ArgumentParser:
    """The whole command line. The emulator's options are left out unless asked for: their
    defaults (the demo's credentials) live in the emulator, which `--help` must not import."""
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

    p = sub.add_parser(
        "check-credentials",
        help="per project: one real key exchange and one GES list call (secrets never printed)",
    )
    p.add_argument("--config", type=Path, help=config_help)
    p.set_defaults(func=cmd_check_credentials)

    p = sub.add_parser("schema", help="print the config's JSON Schema (for editor completion)")
    p.set_defaults(func=cmd_schema)

    notify = sub.add_parser("notify", help="notification channels: send a test message")
    actions = notify.add_subparsers(dest="notify_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "test", help="send a sample message to CHANNEL and print the receiver's answer"
    )
    p.add_argument("channel", metavar="CHANNEL", help="a name under notifications.channels")
    p.add_argument("--config", type=Path, help=config_help)
    p.set_defaults(func=cmd_notify_test)

    control.add_parsers(sub)  # hold, holds, release, wake: clients of the control API

    p = sub.add_parser(
        "emulator",
        help="serve a fake GES + IAM on loopback",
        description="A fake Huawei cloud for demos and tests: GES v1 graphs, jobs and actions, IAM "
        "tokens, AK/SK signature checks, and faults on demand. The defaults match config/demo.yaml.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    if with_emulator_options:
        from daemon.cli.demo import add_emulator_arguments

        add_emulator_arguments(p)
    p.set_defaults(func=cmd_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(with_emulator_options="emulator" in argv).parse_args(argv)
    if args.func in (cmd_validate, cmd_schema, cmd_emulator):
        from daemon.telemetry.logs import setup_logging

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
