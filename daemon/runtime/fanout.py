"""A pass's work over its projects, side by side: one project's crash is logged and costs
that project only; the others go on."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
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


def reachable(projects: Sequence[str], clients: Collection[str], rule: str) -> list[str]:
    """The projects a pass has clients for, in order: a config older than the clients (a
    reload between the two) may name one that has left; it is named in a warning."""
    gone = [p for p in projects if p not in clients]
    if gone:
        log.warning(
            "not in the config any more, left out of this pass: %s",
            ", ".join(gone),
            extra={"rule": rule},
        )
    return [p for p in projects if p in clients]
