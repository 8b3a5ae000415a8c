"""The emulator's Cloud Eye API (`/V1.0/{project_id}/...`): batch and single metric queries,
refused as CES refuses (its ces.00xx codes, window caps, at most 500 metrics and 3000
datapoints an answer), answered from each graph's history (daemon.emulator.cloudeye).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.emulator import cloudeye
from daemon.emulator.faults import CloudFault
from daemon.emulator.wire import CLOUD, json_response


def _ces_fault(code: str, message: str) -> CloudFault:
    return CloudFault(400, code, message, source="ces")


def _ces_project(request: web.Request) -> str:
    project_id = request.match_info["project_id"]
    if project_id not in request.app[CLOUD].graphs:
        raise _ces_fault("ces.0003", "The tenant ID is left blank or incorrect.")
    return project_id


def _window(period: object, how: object, from_ms: object, to_ms: object, code: str) -> None:
    """Refuse what CES refuses; `code` is ces.0014 for a body, ces.0013 for URL parameters."""
    if period not in cloudeye.WINDOW_CAPS:
        raise _ces_fault(
            code, f"Invalid period {period!r}: one of 1, 60, 300, 1200, 3600, 14400, 86400."
        )
    if how not in cloudeye.FILTERS:
        raise _ces_fault(code, f"Invalid filter {how!r}: one of {', '.join(cloudeye.FILTERS)}.")
    if not (isinstance(from_ms, int) and isinstance(to_ms, int)) or isinstance(from_ms, bool):
        raise _ces_fault(code, "from and to must be epoch milliseconds.")
    if from_ms >= to_ms:
        raise _ces_fault(code, "from must be earlier than to.")


def _instance(dimensions: list[dict[str, Any]]) -> str | None:
    return next((d["value"] for d in dimensions if d.get("name") == cloudeye.DIMENSION), None)


async def batch_query_metric_data(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    project_id = _ces_project(request)
    try:
        body = await request.json()
    except ValueError:
        raise _ces_fault("ces.0014", "Some content in message body is not correct.") from None
    if not isinstance(body, dict) or not isinstance(body.get("metrics"), list):
        raise _ces_fault("ces.0014", "Some content in message body is not correct: metrics.")
    metrics: list[Any] = body["metrics"]
    if not 1 <= len(metrics) <= cloudeye.MAX_METRICS:
        raise _ces_fault(
            "ces.0014",
            f"Some content in message body is not correct: metrics must have 1 to "
            f"{cloudeye.MAX_METRICS} items, got {len(metrics)}.",
        )
    period_raw = body.get("period")
    if not isinstance(period_raw, str) or not period_raw.isdigit():
        raise _ces_fault("ces.0014", "Some content in message body is not correct: period.")
    period, how = int(period_raw), body.get("filter")
    _window(period, how, body.get("from"), body.get("to"), "ces.0014")
    for metric in metrics:
        dims = metric.get("dimensions") if isinstance(metric, dict) else None
        if (
            not isinstance(dims, list)
            or not 1 <= len(dims) <= 4
            or not all(isinstance(d, dict) and {"name", "value"} <= set(d) for d in dims)
            or not isinstance(metric.get("namespace"), str)
            or not isinstance(metric.get("metric_name"), str)
        ):
            raise _ces_fault("ces.0014", "Some content in message body is not correct: metrics.")
    budget = cloudeye.MAX_POINTS  # for all metrics together: later ones get what is left
    answer = []
    for metric in metrics:
        name, graph_id = metric["metric_name"], _instance(metric["dimensions"])
        points: list[tuple[int, float]] = []
        if metric["namespace"] == cloudeye.NAMESPACE and graph_id is not None and budget > 0:
            points = cloud.metric_points(
                project_id,
                graph_id,
                name,
                str(how),
                period_s=period,
                from_ms=body["from"],
                to_ms=body["to"],
                limit=budget,
            )
        budget -= len(points)
        known = cloudeye.METRICS.get(name)
        answer.append(
            {
                "namespace": metric["namespace"],
                "metric_name": name,
                "dimensions": metric["dimensions"],
                "unit": known.unit if known else "",
                "datapoints": [{str(how): value, "timestamp": ts} for ts, value in points],
            }
        )
    return json_response({"metrics": answer})


async def show_metric_data(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    project_id = _ces_project(request)
    query = request.query
    missing = [
        k
        for k in ("namespace", "metric_name", "dim.0", "filter", "period", "from", "to")
        if not query.get(k)
    ]
    if missing:
        raise _ces_fault(
            "ces.0013", f"The URL parameter is invalid or does not exist: {missing[0]}."
        )
    numbers = {k: query[k] for k in ("period", "from", "to")}
    if not all(v.isdigit() for v in numbers.values()):
        raise _ces_fault(
            "ces.0013", "The URL parameter is invalid: period, from and to are integers."
        )
    key, _, graph_id = query["dim.0"].partition(",")
    if not graph_id:
        raise _ces_fault("ces.0013", "The URL parameter is invalid: dim.0 is key,value.")
    period, how, from_ms, to_ms = (
        int(numbers["period"]),
        query["filter"],
        int(numbers["from"]),
        int(numbers["to"]),
    )
    _window(period, how, from_ms, to_ms, "ces.0013")
    name = query["metric_name"]
    points: list[tuple[int, float]] = []
    if query["namespace"] == cloudeye.NAMESPACE and key == cloudeye.DIMENSION:
        points = cloud.metric_points(
            project_id,
            graph_id,
            name,
            how,
            period_s=period,
            from_ms=from_ms,
            to_ms=to_ms,
            limit=cloudeye.MAX_POINTS,
        )
    known = cloudeye.METRICS.get(name)
    unit = known.unit if known else ""
    return json_response(
        {
            "metric_name": name,
            "datapoints": [{how: value, "timestamp": ts, "unit": unit} for ts, value in points],
        }
    )


def add_ces_routes(app: web.Application) -> None:
    app.router.add_post(
        "/V1.0/{project_id}/batch-query-metric-data",
        batch_query_metric_data,
        name="batch_query_metric_data",
    )
    app.router.add_get("/V1.0/{project_id}/metric-data", show_metric_data, name="show_metric_data")
