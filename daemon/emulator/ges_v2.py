"""The emulator's GES v2 management API (`/v2/{project_id}/graphs/...`, snake_case JSON,
`error_code`/`error_msg`) over the same in-memory cloud as v1: list, show, stop, start, job
status and the Task Center, with the field names of Huawei's v2 SDK models.

Mounted at /v2 by daemon.emulator.server, behind daemon.emulator.gateway (auth, faults, the
request log), which renders errors of /v2 paths in v2's shape. The paging, date, body and
project checks are v1's (daemon.emulator.wire).
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

_JOB_FILTERS = (None, "running", "waiting", "success", "failed", "partiallyFailed")


def graph_json(graph: EmuGraph, cloud: Cloud) -> dict[str, Any]:
    """ListGraphsRespGraphs / ShowGraphRespGraph, snake_case."""
    return {
        "id": graph.id,
        "name": graph.name,
        "status": str(graph.status),
        "graph_size_type_index": graph.size_index,
        "origin_graph_size_type_index": graph.size_index,
        "product_type": graph.edition,
        "replication": graph.replication,
        "created_by": "emulator",
        "is_multi_az": "false",
        "region_code": cloud.region,
        "az_code": f"{cloud.region}a",
        "data_store_version": "2.3.18",
        "arch": "x86_64",
        "created": graph.created.strftime(TIME_FORMAT),
        "updated": graph.updated.strftime(TIME_FORMAT),
        "private_ip": "192.168.0.10",
        "public_ip": "",
        "traffic_ip_list": [],
        "vpc_id": "00000000-0000-4000-8000-000000000001",
        "subnet_id": "00000000-0000-4000-8000-000000000002",
        "security_group_id": "00000000-0000-4000-8000-000000000003",
        "encrypted": False,
        "enable_rbac": False,
        "enable_full_text_index": False,
        "enable_hyg": False,
        "enable_https": False,
        "enable_multi_label": False,
        "enable_lts": False,
        "crypt_algorithm": "generalAlgorithm",
        "vertex_id_type": {"id_type": "fixedLengthString", "id_length": 128},
        "sys_tags": [],
        "tags": [{"key": k, "value": v} for k, v in graph.tags.items()],
    }


def job_json(job: EmuJob, now: datetime) -> dict[str, Any]:
    """ShowJob2Response / ListJobsRespJobList, snake_case."""
    status = job.status(now)
    return {
        "job_id": job.id,
        "status": status,
        "job_type": "GraphManagement",
        "job_name": JOB_NAMES[job.kind],
        "related_graph": job.graph_name,
        "begin_time": job.created.strftime(TIME_FORMAT),
        "end_time": job.end_at.strftime(TIME_FORMAT) if status in ("success", "failed") else None,
        "fail_reason": job.fail_reason if status == "failed" else None,
        "job_progress": 100.0 if status == "success" else 0.0,
    }


async def list_graphs(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    graphs = cloud.list_graphs(known_project(request))
    return json_response(
        {
            "graph_count": len(graphs),
            "graphs": [graph_json(g, cloud) for g in page(request, graphs)],
        }
    )


async def show_graph(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    graph = cloud.graph(known_project(request), request.match_info["graph_id"])
    return json_response({"graph": graph_json(graph, cloud)})


async def stop_graph(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    project_id = known_project(request)
    await json_body(request, set())
    job = cloud.act(project_id, request.match_info["graph_id"], "stop")
    return json_response({"job_id": job.id})


async def start_graph(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    project_id = known_project(request)
    if (await json_body(request, {"graph_backup_id"})).get("graph_backup_id"):
        raise CloudFault(400, "GES.7024", "The backup does not exist.")
    job = cloud.act(project_id, request.match_info["graph_id"], "start")
    return json_response({"job_id": job.id})


async def job_status(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    job = cloud.job(
        known_project(request), request.match_info["graph_id"], request.match_info["job_id"]
    )
    return json_response(job_json(job, cloud.clock()))


async def list_jobs(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    status = request.query.get("status")
    if status not in _JOB_FILTERS:
        raise CloudFault(400, "GES.0001", "Invalid parameter status.")
    jobs = cloud.list_jobs(
        known_project(request),
        status=status,
        graph_name=request.query.get("graph_name"),
        since=date_param(request, "start_time"),
        until=date_param(request, "end_time"),
    )
    listed = page(request, jobs)
    now = cloud.clock()
    return json_response(
        {
            "job_count": len(jobs),
            "job_list": [job_json(j, now) for j in listed],
        }
    )


def build_v2(cloud: Cloud) -> web.Application:
    """The v2 routes, as an application to mount at /v2. Operation names are v1's where the
    operation is the same (faults and counts then apply to both), stop_graph/start_graph
    for v2's own action paths."""
    app = web.Application()
    app[CLOUD] = cloud
    prefix = "/{project_id}/graphs"
    app.router.add_get(f"{prefix}/jobs", list_jobs, name="list_jobs")
    app.router.add_get(prefix, list_graphs, name="list_graphs")
    app.router.add_get(f"{prefix}/{{graph_id}}", show_graph, name="show_graph")
    app.router.add_post(f"{prefix}/{{graph_id}}/stop", stop_graph, name="stop_graph")
    app.router.add_post(f"{prefix}/{{graph_id}}/start", start_graph, name="start_graph")
    app.router.add_get(
        f"{prefix}/{{graph_id}}/jobs/{{job_id}}/status", job_status, name="job_status"
    )
    return app
