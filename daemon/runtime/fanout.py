"""A pass's work over its projects, side by side: one project's crash is logged and costs
that project only; the others go on."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from daemon.runtime.inventory import side_by_side

log = logging.getLogger(__name__)

T = TypeVar("T")


async def fan_out(
    projects: Sequence[str],
    work: Callable[[str], Awaitable[T | None]],
    what: str,
    rule: str,
) -> dict[str, T | None]:
    """Each project's work side by side; a project whose work crashes answers None."""
    out: dict[str, T | None] = {}
    for project, answer in (await side_by_side(projects, work)).items():
        if isinstance(answer, Exception):
            log.error(
                "%s crashed for this project; the others went on",
                what,
                exc_info=answer,
                extra={"rule": rule, "project": project},
            )
            out[project] = None
        else:
            out[project] = answer
    return out
