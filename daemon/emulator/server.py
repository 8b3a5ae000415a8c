"""The emulator's HTTP face: GES v1 management API, IAM tokens, and the gateway's checks.

Routes, field names, status codes and error bodies follow ../shared/ges-api.md, so that
Huawei's own SDK works against it unchanged. `/_emulator/*` is a control plane for demos
and tests (state, faults) and is not part of any Huawei API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from aiohttp import web

from daemon.emulator.cloud import (
    JOB_NAMES,
    Cloud,
    CloudFault,
    EmuGraph,
    EmuJob,
    RequestRecord,
    ScriptedFault,
)
from daemon.emulator.gateway import verify_signature

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLOUD: web.AppKey[Cloud] = web.AppKey("cloud", Cloud)
_TIME = "%Y-%m-%dT%H:%M:%S"


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        body, status=status, headers=headers, dumps=lambda o: json.dumps(o, separators=(",", ":"))
    )


def _error(fault: CloudFault, request_id: str) -> web.Response:
    if fault.source == "ges":
        body: dict[str, Any] = {"errorCode": fault.code, "errorMessage": fault.message}
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
    request_id = secrets.token_hex(16)
    operation = _operation(request)
    response: web.StreamResponse
    try:
        if cloud.faults.latency_s and not request.path.startswith("/_emulator"):
            await asyncio.sleep(cloud.faults.latency_s)
        if request.path.startswith("/v1.0/"):
            await _authenticate(request, cloud)
            fault = cloud.fault_for(operation)
            if fault:
                raise fault
        response = await handler(request)
    except CloudFault as fault:
        response = _error(fault, request_id)
    response.headers["X-Request-Id"] = request_id
    if not request.path.startswith("/_emulator"):
        cloud.requests.append(
            RequestRecord(request.method, request.path, operation, response.status)
        )
        log.debug("%s %s -> %s", request.method, request.path_qs, response.status)
    return response


async def _authenticate(request: web.Request, cloud: Cloud) -> None:
    project_id = request.match_info.get("project_id", "")
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "x-auth-token" in headers:
        token = cloud.check_token(headers["x-auth-token"])
        if token.project_id != project_id:
            raise CloudFault(
                400, "GES.0016", "The project id in the URL does not match the token's project."
            )
        return
    if "authorization" in headers:
        verify_signature(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=headers,
            body=await request.read(),
            access_keys=cloud.access_keys,
            now=cloud.clock(),
        )
        if headers.get("x-project-id", project_id) != project_id:
            raise CloudFault(
                400, "GES.0016", "X-Project-Id does not match the project id in the URL."
            )
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
    """POST {"throttle_rps": 5, "error_rate": 0.1, "job_failure_rate": 0.2, "latency_s": 0.1,
    "failing_jobs": 1, "expire_tokens": true, "scripted": [{"operation", "status", "code", "times"}]}."""
    cloud = request.app[CLOUD]
    try:
        body = await request.json()
        for key in (
            "latency_s",
            "throttle_rps",
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


def build_app(cloud: Cloud) -> web.Application:
    app = web.Application(middlewares=[gateway])
    app[CLOUD] = cloud
    prefix = "/v1.0/{project_id}/graphs"
    app.router.add_get(f"{prefix}/jobs", list_jobs, name="list_jobs")
    app.router.add_get(prefix, list_graphs, name="list_graphs")
    app.router.add_get(f"{prefix}/{{graph_id}}", show_graph, name="show_graph")
    app.router.add_post(f"{prefix}/{{graph_id}}/action", graph_action, name="graph_action")
    app.router.add_get(
        f"{prefix}/{{graph_id}}/jobs/{{job_id}}/status", job_status, name="job_status"
    )
    app.router.add_post("/v3/auth/tokens", create_token, name="create_token")
    app.router.add_get("/_emulator/state", emulator_state, name="emulator_state")
    app.router.add_post("/_emulator/faults", emulator_faults, name="emulator_faults")
    return app


class EmulatorServer:
    """Runs the emulator on the current event loop; port 0 picks a free port."""

    def __init__(self, cloud: Cloud, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cloud = cloud
        self._host = host
        self._port = port
        self._runner = web.AppRunner(build_app(cloud), access_log=None)
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
