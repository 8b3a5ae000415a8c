"""What the emulated APIs share on the wire: the application's `Cloud` (under one key on the
main app and on GES v2's sub-app), compact JSON answers, the time format GES writes, and the
project, query parameters, paging and request bodies refused with GES's codes (the same in
v1 and v2)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any, TypeVar

from aiohttp import web

from daemon.emulator.cloud import Cloud
from daemon.emulator.faults import CloudFault

T = TypeVar("T")

CLOUD: web.AppKey[Cloud] = web.AppKey("cloud", Cloud)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        body, status=status, headers=headers, dumps=lambda o: json.dumps(o, separators=(",", ":"))
    )


def known_project(request: web.Request) -> str:
    """The URL's project, which must be one of the cloud's."""
    project_id = request.match_info["project_id"]
    if project_id not in request.app[CLOUD].graphs:
        raise CloudFault(400, "GES.0016", "Resource not found: unknown project id.")
    return project_id


def int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit():
        raise CloudFault(400, "GES.0001", f"Invalid parameter {name}.")
    return int(raw)


def date_param(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise CloudFault(
            400, "GES.0001", f"Invalid parameter {name}: expected yyyy-MM-dd."
        ) from None


def page(request: web.Request, items: Sequence[T]) -> Sequence[T]:
    """The slice `offset` and `limit` (default 0 and 10) ask for."""
    offset, limit = int_param(request, "offset", 0), int_param(request, "limit", 10)
    return items[offset : offset + limit]


async def json_body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """The JSON body, if any (the SDK sends none on stop; the docs' example sends {}): an
    object with no field outside `allowed`, else GES.7016."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise CloudFault(400, "GES.7016", "Invalid request body.") from None
    if not isinstance(body, dict) or set(body) - allowed:
        raise CloudFault(400, "GES.7016", "Invalid request body.")
    return body
