"""The emulator's GES v1 management API (`/v1.0/{project_id}/graphs/...`, camelCase JSON,
`errorCode`/`errorMessage`): list, show, stop and start through `action`, job status and
the Task Center. Routes, field names, status codes and error bodies follow
../shared/ges-api.md, so that Huawei's own SDK works against it unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from daemon.emulator.cloud import Cloud
from daemon.emulator.faults import CloudFault
from daemon.emulator.graphs import EmuGraph
from daemon.emulator.jobs import JOB_NAMES, EmuJob
from daemon.emulator.wire import (
    CLOUD,
    TIME_FORMAT,
    date_param,
    json_body,
    json_response,
    known_project,
    page,
)


def graph_json(graph: EmuGraph, cloud: Cloud) -> dict[str, Any]:
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
        "created": graph.created.strftime(TIME_FORMAT),
        "updated": graph.updated.strftime(TIME_FORMAT),
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


def job_json(job: EmuJob, now: datetime) -> dict[str, Any]:
    status = job.status(now)
    return {
        "jobId": job.id,
        "status": status,
        "jobType": "GraphManagement",
        "jobName": JOB_NAMES[job.kind],
        "relatedGraph": job.graph_name,
        "beginTime": job.created.strftime(TIME_FORMAT),
        "endTime": job.end_at.strftime(TIME_FORMAT) if status in ("success", "failed") else None,
        "failReason": job.fail_reason if status == "failed" else None,
        "jobProgress": 100.0 if status == "success" else 0.0,
    }


async def list_graphs(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    graphs = cloud.list_graphs(known_project(request))
    return json_response(
        {"graphCount": len(graphs), "graphs": [graph_json(g, cloud) for g in page(request, graphs)]}
    )


async def show_graph(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    graph = cloud.graph(known_project(request), request.match_info["graph_id"])
    return json_response({"graph": graph_json(graph, cloud)})


async def graph_action(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    project_id = known_project(request)
    action = request.query.get("action_id", "")
    if action not in ("stop", "start"):
        raise CloudFault(400, "GES.7048", f"Invalid graph operation: {action or '(none)'}.")
    # stop takes no field (an empty object at most), start only graph_backup_id
    body = await json_body(request, set() if action == "stop" else {"graph_backup_id"})
    if body.get("graph_backup_id"):
        raise CloudFault(400, "GES.7024", "The backup does not exist.")
    job = cloud.act(project_id, request.match_info["graph_id"], action)  # type: ignore[arg-type]
    return json_response({"jobId": job.id})


async def job_status(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    job = cloud.job(
        known_project(request), request.match_info["graph_id"], request.match_info["job_id"]
    )
    return json_response(job_json(job, cloud.clock()))


async def list_jobs(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    status = request.query.get("status")
    if status not in (None, "running", "waiting", "success", "failed"):
        raise CloudFault(400, "GES.0001", "Invalid parameter status.")
    jobs = cloud.list_jobs(
        known_project(request),
        status=status,
        graph_name=request.query.get("graph_name"),
        since=date_param(request, "startTime"),
        until=date_param(request, "endTime"),
    )
    listed = page(request, jobs)
    now = cloud.clock()
    return json_response(
        {
            "jobCount": len(jobs),
            "jobList": [job_json(j, now) for j in listed],
        }
    )


def add_ges_v1_routes(app: web.Application) -> None:
    """GES v1 under /v1.0; the Task Center's path comes before the graph's, which would
    take `jobs` for a graph id."""
    prefix = "/v1.0/{project_id}/graphs"
    app.router.add_get(f"{prefix}/jobs", list_jobs, name="list_jobs")
    app.router.add_get(prefix, list_graphs, name="list_graphs")
    app.router.add_get(f"{prefix}/{{graph_id}}", show_graph, name="show_graph")
    app.router.add_post(f"{prefix}/{{graph_id}}/action", graph_action, name="graph_action")
    app.router.add_get(
        f"{prefix}/{{graph_id}}/jobs/{{job_id}}/status", job_status, name="job_status"
    )
