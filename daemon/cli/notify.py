"""`graphnap notify test CHANNEL`: send a sample message to one configured channel, once,
and print what the receiver answered (exit 0 on a 2xx and the vendor's own success code).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from daemon.cloud.clients import Clients
from daemon.config.loader import load_config
from daemon.config.models import Config
from daemon.config.notifications import SmnChannel
from daemon.config.problems import ConfigError
from daemon.config.settings import Settings
from daemon.notify import message
from daemon.notify.catalog import build_channels, secret_problems
from daemon.notify.channels import SendError
from daemon.telemetry.metrics import Metrics

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
    def now() -> datetime:
        return datetime.now(UTC)

    # SMN publishes with its project's own auth, as the daemon signs them (static or
    # keyless keys, or an IAM token): that project's clients are built, no request made.
    clients = Clients(
        settings, Metrics(CollectorRegistry()), clock=now, monotonic=time.monotonic,
        sleep=asyncio.sleep,
    )  # fmt: skip
    given = config.notifications.channels[name]
    if isinstance(given, SmnChannel):
        project = config.project(given.project)  # it exists: checked at load
        if settings.credential_set(project.credentials) is None:
            print(
                f"channel {name!r} cannot be built: project {project.name}'s credential set "
                f"{project.credentials!r} is not given",
                file=sys.stderr,
            )
            return EXIT_USAGE
        clients.update(config.model_copy(update={"projects": [project]}))
    try:
        async with httpx.AsyncClient() as http:
            return await _deliver(name, config, settings, http, clients, now)
    finally:
        await clients.close()


async def _deliver(
    name: str,
    config: Config,
    settings: Settings,
    http: httpx.AsyncClient,
    clients: Clients,
    now: Callable[[], datetime],
) -> int:
    channels = build_channels(
        config.notifications,
        settings,
        {p.name: p for p in config.projects},
        http=http,
        clock=now,
        auth_for=clients.project_auth,
    )
    channel = channels[name]  # its secrets were checked: it is built
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
