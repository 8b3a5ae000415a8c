"""What survives a restart: the scheduled time each rule last fired.

Optional (GRAPHNAP_STATE_FILE, an emptyDir in Kubernetes survives container restarts).
With it, firings missed while graphnap was down are counted as misfires; without it,
only the latest missed firing is considered. Jobs in flight need no state: they are
found again in the Task Center.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)


def load_last_fires(path: Path) -> dict[str, datetime]:
    """The recorded fire times; an absent file is a first start, a broken one is ignored
    with a warning (it only feeds misfire counting)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(rule): datetime.fromisoformat(when) for rule, when in raw["last_fire"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "state file %s is unreadable (%s); starting without it; delete it to silence this",
            path,
            exc,
        )
        return {}


def save_last_fires(path: Path, last_fires: dict[str, datetime]) -> None:
    """Write atomically (temp file + rename), so a crash never leaves half a file."""
    body = json.dumps(
        {"last_fire": {rule: when.isoformat() for rule, when in sorted(last_fires.items())}},
        indent=1,
    )
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning(
            "cannot write state file %s (%s); misfires while down will not be counted", path, exc
        )
