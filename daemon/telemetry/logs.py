"""Log output: one JSON object per line for machines, key=value text for a terminal.

Decisions and outcomes carry their facts as `extra` fields (project, graph, rule, action,
job_id, outcome, reason, duration_s) so that both formats show them without parsing.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

FIELDS = (
    "project",
    "graph_id",
    "graph",
    "rule",
    "action",
    "job_id",
    "outcome",
    "reason",
    "duration_s",
    "config_version",
)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        facts = " ".join(
            f"{k}={_text(getattr(record, k))}"
            for k in FIELDS
            if getattr(record, k, None) not in (None, "")
        )
        return f"{line}  {facts}" if facts else line


def _text(value: Any) -> str:
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    return f'"{text}"' if " " in text else text


def setup_logging(
    level: str = "INFO", fmt: Literal["json", "text", "auto"] = "auto", stream: TextIO | None = None
) -> None:
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        TextFormatter()
        if fmt == "text"
        else JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601 in UTC
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; apscheduler narrates every run.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
