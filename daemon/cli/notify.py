"""`graphnap notify test CHANNEL`: send a sample message to one configured channel, once,
and print what the receiver answered (exit 0 on a 2xx and the vendor's own success code).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

import httpx
from pydantic import ValidationError

from daemon.config.loader import load_config
from daemon.config.models import Config
from daemon.config.problems import ConfigError
from daemon.config.settings import Settings
from daemon.notify import message
from daemon.notify.catalog import aksk_signers, build_channels, secret_problems
from daemon.notify.channels import SendError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def cmd_notify_test(args: argparse.Namespace) -> int:
    try:
        settings = Settings(**({"config": args.config} if args.config else {}))
    except ValidationError as exc:
        print(f"graphnap: invalid settings: {exc.error_count()} problem(s)", file=sys.stderr)
        for err in exc.errors():
            print(f"  {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(settings.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    notifications = config.notifications
    if args.channel not in notifications.channels:
        known = ", ".join(notifications.channels) or "none"
        print(f"unknown channel {args.channel!r}; known: {known}", file=sys.stderr)
        return EXIT_USAGE
    problems = [p for p in secret_problems(notifications, settings) if p.channel == args.channel]
    if problems:
        for problem in problems:
            print(str(problem), file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_send(args.channel, config, settings))


async def _send(name: str, config: Config, settings: Settings) -> int:
    notifications = config.notifications

    def now() -> datetime:
        return datetime.now(UTC)

    async with httpx.AsyncClient() as http:
        channels = build_channels(
            notifications,
            settings,
            {p.name: p for p in config.projects},
            http=http,
            clock=now,
            auth_for=aksk_signers(settings, now),
        )
        channel = channels.get(name)
        if channel is None:
            print(
                f"channel {name!r} cannot be built: its project has no AK/SK credential set",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            answer = await channel.send(message.sample(name, at=now()))
        except SendError as exc:
            status = f"HTTP {exc.status}: " if exc.status is not None else ""
            print(f"{name} ({channel.type}): not delivered: {status}{exc}", file=sys.stderr)
            if exc.answer:
                print(f"  the receiver answered: {exc.answer}", file=sys.stderr)
            return EXIT_FAILED
    print(f"{name} ({channel.type}): delivered, HTTP {answer.status}: {answer.text or '(empty)'}")
    return EXIT_OK
