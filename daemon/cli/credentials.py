"""`graphnap check-credentials`: for each project, one real token exchange with its
credential set's source and one GES list call, printed without a secret."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from daemon.cli.console import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from daemon.cli.settings import settings_from
from daemon.cloud.clients import Clients, missing_credentials
from daemon.cloud.errors import ApiError
from daemon.config.loader import load_config
from daemon.config.models import Config
from daemon.config.problems import ConfigError
from daemon.config.settings import Settings
from daemon.telemetry.metrics import Metrics


def cmd_check_credentials(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        config = load_config(settings.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    problems = missing_credentials(config, settings)
    if problems:
        for problem in problems:
            print(f"{settings.config}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(check(settings, config))


async def check(settings: Settings, config: Config) -> int:
    def now() -> datetime:  # the command line may read the clock
        return datetime.now(UTC)

    clients = Clients(
        settings,
        Metrics(CollectorRegistry()),
        clock=now,
        monotonic=time.monotonic,
        sleep=asyncio.sleep,
    )
    clients.update(config)
    status = EXIT_OK
    try:
        for project in config.projects:
            creds = settings.credential_set(project.credentials)
            assert creds is not None  # checked above
            where = f"project {project.name} (credential set {project.credentials}, source {creds.source})"
            try:
                if creds.kind != "password":
                    keys = await clients.holder(project).keys()
                    until = keys.expires_at.isoformat() if keys.expires_at else "no expiry (static)"
                    print(f"{where}: keys obtained, valid until {until}")
                graphs = await clients.graph_apis()[project.name].list_graphs()
            except ApiError as exc:  # redacted: no key, token or password in it
                print(f"{where}: FAILED: {exc}", file=sys.stderr)
                status = EXIT_FAILED
                continue
            print(f"{where}: GES answered, {len(graphs)} graphs listed")
    finally:
        await clients.close()
    return status
