"""`graphnap run`: the daemon in the foreground until a signal."""

from __future__ import annotations

import argparse
import asyncio

from daemon.app import serve
from daemon.cli.settings import log_format_from_env, settings_from
from daemon.telemetry.logs import setup_logging


def cmd_run(args: argparse.Namespace) -> int:
    # Logging first (the format from the environment, as the settings will say), so what
    # reading the settings warns about (a secret file others can read) is a log line too.
    setup_logging(args.log_level or "INFO", log_format_from_env())
    settings = settings_from(args)
    setup_logging(args.log_level or settings.log_level, settings.log_format)
    return asyncio.run(serve(settings))
