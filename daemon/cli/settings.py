"""The daemon's settings for a command: GRAPHNAP_* and secret files, --config, and an
error that names the variable instead of a pydantic traceback."""

from __future__ import annotations

import argparse
import os
from typing import Literal

from pydantic import ValidationError

from daemon.cli.console import SettingsError
from daemon.config.settings import Settings


def settings_from(args: argparse.Namespace, **overrides: object) -> Settings:
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


def log_format_from_env() -> Literal["json", "text", "auto"]:
    fmt = os.environ.get("GRAPHNAP_LOG_FORMAT", "auto").strip().lower()
    return fmt if fmt in ("json", "text") else "auto"  # type: ignore[return-value]
