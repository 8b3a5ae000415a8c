"""The emulator's control plane (`/_emulator/*`), for demos, tests and benchmarks and part of
no Huawei API: the state at a glance, faults set at run time, the request log, a reset, and
each graph's traffic and Cloud Eye gaps. The gateway lets it through unchecked and unlogged.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from daemon.emulator.cloudeye import DailyTraffic
from daemon.emulator.faults import CloudFault, ScriptedFault
from daemon.emulator.wire import CLOUD, int_param, json_response


async def emulator_state(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    now = cloud.clock()
    return json_response(
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
        return json_response({"error": f"bad fault request: {exc}"}, 400)
    return json_response({"ok": True})


async def emulator_requests(request: web.Request) -> web.Response:
    """GET ?since=N: the request log from record N on, as rows [method, operation, status,
    project_id, graph_id, arrived_s, answered_s] (monotonic seconds), and `next` to ask
    from next time; `per_operation` counts everything since the last reset."""
    cloud = request.app[CLOUD]
    since = int_param(request, "since", 0)
    rows = [
        [r.method, r.operation, r.status, r.project_id, r.graph_id, r.arrived_s, r.answered_s]
        for r in cloud.requests[since:]
    ]
    return json_response({"next": len(cloud.requests), "requests": rows})


async def emulator_reset(request: web.Request) -> web.Response:
    """POST: every graph running again with no job, no jobs, an empty request log."""
    request.app[CLOUD].reset()
    return json_response({"ok": True})


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
                return json_response({"ok": True})
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
        return json_response({"error": f"bad traffic request: {fault.message}"}, 400)
    except (ValueError, TypeError, KeyError) as exc:
        return json_response({"error": f"bad traffic request: {exc!r}"}, 400)
    return json_response({"ok": True})


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/state", emulator_state, name="emulator_state")
    app.router.add_post("/_emulator/faults", emulator_faults, name="emulator_faults")
    app.router.add_get("/_emulator/requests", emulator_requests, name="emulator_requests")
    app.router.add_post("/_emulator/reset", emulator_reset, name="emulator_reset")
    app.router.add_post("/_emulator/traffic", emulator_traffic, name="emulator_traffic")
