"""The emulator's HTTP face: GES v1 management API (v2 in daemon.emulator.ges_v2, mounted
here), Cloud Eye metric queries, IAM tokens, and the gateway's checks.

Routes, field names, status codes and error bodies follow ../shared/ges-api.md, so that
Huawei's own SDK works against it unchanged. `/_emulator/*` is a control plane for demos
and tests (state, faults, traffic) and is not part of any Huawei API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from http import HTTPStatus
from typing import Any

from aiohttp import web

from daemon.emulator import cloudeye
from daemon.emulator.cloud import Cloud
from daemon.emulator.cloudeye import DailyTraffic
from daemon.emulator.faults import CloudFault, ScriptedFault
from daemon.emulator.gateway import verify_signature
from daemon.emulator.ges_v2 import build_v2
from daemon.emulator.graphs import EmuGraph
from daemon.emulator.identity import IDENTITY, AccessKeys, Identity, add_identity_routes
from daemon.emulator.jobs import JOB_NAMES, EmuJob
from daemon.emulator.request_log import RequestRecord

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLOUD: web.AppKey[Cloud] = web.AppKey("cloud", Cloud)
_TIME = "%Y-%m-%dT%H:%M:%S"


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        body, status=status, headers=headers, dumps=lambda o: json.dumps(o, separators=(",", ":"))
    )


def _error(fault: CloudFault, request_id: str, *, v2: bool = False) -> web.Response:
    if fault.source == "ges" and v2:  # GES v2 says error_code/error_msg
        body: dict[str, Any] = {"error_code": fault.code, "error_msg": fault.message}
    elif fault.source == "ges":
        body = {"errorCode": fault.code, "errorMessage": fault.message}
    elif fault.source == "ces":
        # Cloud Eye v1's own error shape (api-ces ErrorCode page): the code is nested.
        body = {
            "code": fault.status,
            "element": HTTPStatus(fault.status).phrase,
            "message": fault.message,
            "details": {"details": fault.message, "code": fault.code},
        }
    elif fault.source == "iam":
        body = {
            "error": {"code": fault.status, "message": fault.message, "title": "Unauthorized"},
            "error_code": fault.code,
            "error_msg": fault.message,
        }
    else:
        body = {"error_code": fault.code, "error_msg": fault.message, "request_id": request_id}
    return _json(body, fault.status)


def _graph_json(graph: EmuGraph, cloud: Cloud) -> dict[str, Any]:
    return {
        "id": graph.id,
        "name": graph.name,
        "status": str(graph.status),
        "graphSizeTypeIndex": graph.size_index,
        "replication": graph.replication,
        "createdBy": "emulator",
        "isMultiAz": "false",
        "regionCode": cloud.region,
        "azCode": f"{cloud.region}a",
        "dataStoreVersion": "2.3.18",
        "arch": "x86_64",
        "created": graph.created.strftime(_TIME),
        "updated": graph.updated.strftime(_TIME),
        "privateIp": "192.168.0.10",
        "publicIp": "",
        "trafficIpList": [],
        "vpcId": "00000000-0000-4000-8000-000000000001",
        "subnetId": "00000000-0000-4000-8000-000000000002",
        "securityGroupId": "00000000-0000-4000-8000-000000000003",
        "encrypted": False,
        "enableRBAC": False,
        "enableFulltextIndex": False,
        "enableHyG": False,
        "enableHttps": False,
        "cryptAlgorithm": "generalAlgorithm",
        "sys_tags": [],
        "tags": [{"key": k, "value": v} for k, v in graph.tags.items()],
    }


def _job_json(job: EmuJob, now: datetime) -> dict[str, Any]:
    status = job.status(now)
    return {
        "jobId": job.id,
        "status": status,
        "jobType": "GraphManagement",
        "jobName": JOB_NAMES[job.kind],
        "relatedGraph": job.graph_name,
        "beginTime": job.created.strftime(_TIME),
        "endTime": job.end_at.strftime(_TIME) if status in ("success", "failed") else None,
        "failReason": job.fail_reason if status == "failed" else None,
        "jobProgress": 100.0 if status == "success" else 0.0,
    }


# --- middlewares ---------------------------------------------------------------------------


def _operation(request: web.Request) -> str:
    route = request.match_info.route
    return str(route.name) if route and route.name else "unknown"


@web.middleware
async def gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record, delay, authenticate, throttle and fault-inject, as the real gateway would."""
    cloud = request.app[CLOUD]
    arrived_s = cloud.monotonic()
    request_id = secrets.token_hex(16)
    operation = _operation(request)
    project_id = request.match_info.get("project_id", "")
    response: web.StreamResponse
    try:
        if cloud.faults.latency_s and not request.path.startswith("/_emulator"):
            await asyncio.sleep(cloud.faults.latency_s)
        if request.path.startswith(("/v1.0/", "/V1.0/", "/v2/")):
            await _authenticate(request, cloud)
            fault = cloud.injector.fault_for(operation, project_id)
            if fault and fault.source == "ges" and request.path.startswith("/V1.0/"):
                # a random or scripted engine fault, answered the way Cloud Eye would
                code = "ces.0007" if fault.status >= 500 else fault.code
                fault = CloudFault(fault.status, code, fault.message, source="ces")
            if fault:
                raise fault
        response = await handler(request)
    except CloudFault as fault:
        response = _error(fault, request_id, v2=request.path.startswith("/v2/"))
    response.headers["X-Request-Id"] = request_id
    if not request.path.startswith("/_emulator"):
        cloud.log.add(
            RequestRecord(
                request.method,
                request.path,
                operation,
                response.status,
                project_id,
                request.match_info.get("graph_id", ""),
                arrived_s,
                cloud.monotonic(),
            )
        )
        log.debug("%s %s -> %s", request.method, request.path_qs, response.status)
    return response


def _wrong_project(request: web.Request, what: str) -> CloudFault:
    if request.path.startswith("/V1.0/"):
        return CloudFault(
            400, "ces.0003", f"The tenant ID is incorrect: it is not {what}.", source="ces"
        )
    return CloudFault(400, "GES.0016", f"The project id in the URL does not match {what}.")


async def _authenticate(request: web.Request, cloud: Cloud) -> None:
    project_id = request.match_info.get("project_id", "")
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "x-auth-token" in headers:
        token = cloud.iam.check_token(headers["x-auth-token"])
        if token.project_id != project_id:
            raise _wrong_project(request, "the token's project")
        return
    if "authorization" in headers:
        ak = verify_signature(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=headers,
            body=await request.read(),
            access_keys=AccessKeys(cloud.access_keys, request.app[IDENTITY]),
            now=cloud.clock(),
        )
        request.app[IDENTITY].check_temporary(ak, headers)  # token, signed, not expired
        if headers.get("x-project-id", project_id) != project_id:
            raise _wrong_project(request, "X-Project-Id")
        return
    raise CloudFault(
        401,
        "APIG.0301",
        "Incorrect IAM authentication information: no token or signature",
        source="gateway",
    )


# --- GES v1 --------------------------------------------------------------------------------


def _project(request: web.Request) -> str:
    project_id = request.match_info["project_id"]
    if project_id not in request.app[CLOUD].graphs:
        raise CloudFault(400, "GES.0016", "Resource not found: unknown project id.")
    return project_id


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit():
        raise CloudFault(400, "GES.0001", f"Invalid parameter {name}.")
    return int(raw)


async def list_graphs(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    graphs = cloud.list_graphs(_project(request))
    offset, limit = _int_param(request, "offset", 0), _int_param(request, "limit", 10)
    page = graphs[offset : offset + limit]
    return _json({"graphCount": len(graphs), "graphs": [_graph_json(g, cloud) for g in page]})


async def show_graph(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    graph = cloud.graph(_project(request), request.match_info["graph_id"])
    return _json({"graph": _graph_json(graph, cloud)})


async def graph_action(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    project_id = _project(request)
    action = request.query.get("action_id", "")
    if action not in ("stop", "start"):
        raise CloudFault(400, "GES.7048", f"Invalid graph operation: {action or '(none)'}.")
    raw = await request.read()
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            raise CloudFault(400, "GES.7016", "Invalid request body.") from None
        if (
            not isinstance(body, dict)
            or (action == "stop" and body)
            or set(body) - {"graph_backup_id"}
        ):
            raise CloudFault(400, "GES.7016", "Invalid request body.")
        if body.get("graph_backup_id"):
            raise CloudFault(400, "GES.7024", "The backup does not exist.")
    job = cloud.act(project_id, request.match_info["graph_id"], action)  # type: ignore[arg-type]
    return _json({"jobId": job.id})


async def job_status(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    job = cloud.job(_project(request), request.match_info["graph_id"], request.match_info["job_id"])
    return _json(_job_json(job, cloud.clock()))


def _date_param(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise CloudFault(
            400, "GES.0001", f"Invalid parameter {name}: expected yyyy-MM-dd."
        ) from None


async def list_jobs(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    status = request.query.get("status")
    if status not in (None, "running", "waiting", "success", "failed"):
        raise CloudFault(400, "GES.0001", "Invalid parameter status.")
    jobs = cloud.list_jobs(
        _project(request),
        status=status,
        graph_name=request.query.get("graph_name"),
        since=_date_param(request, "startTime"),
        until=_date_param(request, "endTime"),
    )
    offset, limit = _int_param(request, "offset", 0), _int_param(request, "limit", 10)
    now = cloud.clock()
    return _json(
        {
            "jobCount": len(jobs),
            "jobList": [_job_json(j, now) for j in jobs[offset : offset + limit]],
        }
    )


# --- Cloud Eye -----------------------------------------------------------------------------


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
    return _json({"metrics": answer})


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
    return _json(
        {
            "metric_name": name,
            "datapoints": [{how: value, "timestamp": ts, "unit": unit} for ts, value in points],
        }
    )


# --- IAM -----------------------------------------------------------------------------------


async def create_token(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    try:
        auth = (await request.json())["auth"]
        user = auth["identity"]["password"]["user"]
        project = auth["scope"]["project"]
        project_id = project.get("id") or project.get("name")
        token = cloud.issue_token(
            user["domain"]["name"], user["name"], user["password"], project_id
        )
    except (ValueError, KeyError, TypeError):
        raise CloudFault(400, "IAM.0011", "Request parameter error.", source="iam") from None
    body = {
        "token": {
            "expires_at": token.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "issued_at": cloud.clock().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "methods": ["password"],
            "project": {"id": token.project_id, "name": cloud.region},
            "user": {"name": token.user},
        }
    }
    return _json(body, 201, headers={"X-Subject-Token": token.value})


# --- control plane -------------------------------------------------------------------------


async def emulator_state(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    now = cloud.clock()
    return _json(
        {
            "now": now.isoformat(),
            "graphs": [
                {
                    "project_id": g.project_id,
                    "id": g.id,
                    "name": g.name,
                    "status": g.status,
                    "tags": g.tags,
                }
                for g in cloud.all_graphs()
            ],
            "jobs": [
                {"id": j.id, "graph": j.graph_name, "kind": j.kind, "status": j.status(now)}
                for j in cloud.jobs.values()
            ],
            "requests": len(cloud.requests),
        }
    )


async def emulator_faults(request: web.Request) -> web.Response:
    """POST {"throttle_rps": 5, "throttle_rps_per_project": 20 (or {"<project id>": 20}),
    "error_rate": 0.1, "job_failure_rate": 0.2, "latency_s": 0.1, "failing_jobs": 1,
    "expire_tokens": true, "scripted": [{"operation", "status", "code", "times"}]}."""
    cloud = request.app[CLOUD]
    try:
        body = await request.json()
        for key in (
            "latency_s",
            "throttle_rps",
            "throttle_rps_per_project",
            "error_rate",
            "job_failure_rate",
            "token_ttl_s",
            "failing_jobs",
        ):
            if key in body:
                setattr(cloud.faults, key, body[key])
        for item in body.get("scripted", []):
            cloud.faults.scripted.append(ScriptedFault(**item))
        if body.get("expire_tokens"):
            cloud.expire_tokens()
    except (ValueError, TypeError, AttributeError) as exc:
        return _json({"error": f"bad fault request: {exc}"}, 400)
    return _json({"ok": True})


async def emulator_requests(request: web.Request) -> web.Response:
    """GET ?since=N: the request log from record N on, as rows [method, operation, status,
    project_id, graph_id, arrived_s, answered_s] (monotonic seconds), and `next` to ask
    from next time; `per_operation` counts everything since the last reset."""
    cloud = request.app[CLOUD]
    since = _int_param(request, "since", 0)
    rows = [
        [r.method, r.operation, r.status, r.project_id, r.graph_id, r.arrived_s, r.answered_s]
        for r in cloud.requests[since:]
    ]
    return _json({"next": len(cloud.requests), "requests": rows})


async def emulator_reset(request: web.Request) -> web.Response:
    """POST: every graph running again with no job, no jobs, an empty request log."""
    request.app[CLOUD].reset()
    return _json({"ok": True})


async def emulator_traffic(request: web.Request) -> web.Response:
    """POST {"project_id", "graph_id", "requests_per_minute": 12.5,
    "gaps": [{"from": "2026-11-27T10:00:00+00:00", "to": "..."}]}: a graph's traffic (while it
    runs) and periods without Cloud Eye data. Instead of requests_per_minute, "daily":
    {"from_hour": 8, "to_hour": 20, "requests_per_minute": 10} gives traffic in those UTC
    hours only. {"metrics_lag_s": 480} alone sets how late Cloud Eye publishes a minute."""
    cloud = request.app[CLOUD]
    try:
        body = await request.json()
        if "metrics_lag_s" in body:
            cloud.timing.metrics_lag_s = float(body["metrics_lag_s"])
            if "graph_id" not in body:
                return _json({"ok": True})
        project_id, graph_id = body["project_id"], body["graph_id"]
        if "requests_per_minute" in body:
            cloud.set_traffic(project_id, graph_id, float(body["requests_per_minute"]))
        if "daily" in body:
            daily = body["daily"]
            cloud.set_traffic(
                project_id,
                graph_id,
                DailyTraffic(
                    int(daily["from_hour"]),
                    int(daily["to_hour"]),
                    float(daily["requests_per_minute"]),
                ),
            )
        for gap in body.get("gaps", []):
            cloud.add_gap(
                project_id,
                graph_id,
                datetime.fromisoformat(gap["from"]),
                datetime.fromisoformat(gap["to"]),
            )
    except CloudFault as fault:
        return _json({"error": f"bad traffic request: {fault.message}"}, 400)
    except (ValueError, TypeError, KeyError) as exc:
        return _json({"error": f"bad traffic request: {exc!r}"}, 400)
    return _json({"ok": True})


def build_app(cloud: Cloud, identity: Identity | None = None) -> web.Application:
    app = web.Application(middlewares=[gateway])
    app[CLOUD] = cloud
    add_identity_routes(app, identity or Identity(cloud))  # pod identity, IAM federation
    prefix = "/v1.0/{project_id}/graphs"
    app.router.add_get(f"{prefix}/jobs", list_jobs, name="list_jobs")
    app.router.add_get(prefix, list_graphs, name="list_graphs")
    app.router.add_get(f"{prefix}/{{graph_id}}", show_graph, name="show_graph")
    app.router.add_post(f"{prefix}/{{graph_id}}/action", graph_action, name="graph_action")
    app.router.add_get(
        f"{prefix}/{{graph_id}}/jobs/{{job_id}}/status", job_status, name="job_status"
    )
    app.add_subapp("/v2", build_v2(cloud))
    app.router.add_post(
        "/V1.0/{project_id}/batch-query-metric-data",
        batch_query_metric_data,
        name="batch_query_metric_data",
    )
    app.router.add_get("/V1.0/{project_id}/metric-data", show_metric_data, name="show_metric_data")
    app.router.add_post("/v3/auth/tokens", create_token, name="create_token")
    app.router.add_get("/_emulator/state", emulator_state, name="emulator_state")
    app.router.add_post("/_emulator/faults", emulator_faults, name="emulator_faults")
    app.router.add_get("/_emulator/requests", emulator_requests, name="emulator_requests")
    app.router.add_post("/_emulator/reset", emulator_reset, name="emulator_reset")
    app.router.add_post("/_emulator/traffic", emulator_traffic, name="emulator_traffic")
    return app


class EmulatorServer:
    """Runs the emulator on the current event loop; port 0 picks a free port."""

    def __init__(
        self,
        cloud: Cloud,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        identity: Identity | None = None,
    ) -> None:
        self.cloud = cloud
        self.identity = identity or Identity(cloud)
        self._host = host
        self._port = port
        self._runner = web.AppRunner(build_app(cloud, self.identity), access_log=None)
        self.url = ""

    async def start(self) -> str:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
