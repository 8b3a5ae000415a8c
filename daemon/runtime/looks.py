"""How the tracker looks at what it follows: the graphs (one paged listing when that costs
less than a call per graph, else, and for what a listing missed, one `show` per graph; a
graph GES did not answer about is left out, to be asked again next round), and the Task
Center's unfinished jobs, searched over one look-back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from daemon.cloud.errors import ApiError, NotFoundError
from daemon.domain.model import Graph, GraphApi, Job

log = logging.getLogger(__name__)

Looked = dict[str, Graph | None]  # graph id -> the graph now, or None: deleted
# How far back the Task Center is searched for a stop/start job still running: a job lasts
# at most its timeout (minutes), and the API filters by whole days.
TASK_CENTER_LOOKBACK = timedelta(days=2)


async def task_center(api: GraphApi, now: datetime, graph_name: str | None = None) -> list[Job]:
    """The Task Center's unfinished jobs (of one graph if named), newest first."""
    since = (now - TASK_CENTER_LOOKBACK).date()
    jobs: list[Job] = []
    for status in ("running", "waiting"):
        jobs += await api.list_jobs(status=status, graph_name=graph_name, since=since)
    return jobs


async def running_job(api: GraphApi, graph_name: str, now: datetime) -> str:
    """The id of the graph's running job in the Task Center, or "" if none shows."""
    try:
        jobs = await task_center(api, now, graph_name)
    except ApiError:
        return ""
    return jobs[0].id if jobs else ""


async def look_at(
    project: str,
    api: GraphApi,
    graph_ids: Sequence[str],
    *,
    list_first: bool,
    listed: Callable[[int], None],
) -> tuple[Looked, dict[str, Exception]]:
    """The graphs as they are now, and the ones whose look crashed (a bug: it must cost
    that graph's job only, which the caller ends). `listed` learns the fleet's size."""
    if not list_first:
        return await _each(project, api, graph_ids)
    try:
        everything = await api.list_graphs()
    except ApiError as exc:
        log.warning(
            "listing graphs to follow %d jobs failed (%s); will look again",
            len(graph_ids),
            exc,
            extra={"project": project},
        )
        return {}, {}
    listed(len(everything))
    by_id = {g.id: g for g in everything}
    found: Looked = {gid: by_id[gid] for gid in graph_ids if gid in by_id}
    # Missing from a listing is no proof of deletion (pages shift while they are read):
    # those graphs are asked about one by one.
    rest, crashed = await _each(project, api, [g for g in graph_ids if g not in by_id])
    return found | rest, crashed


async def _each(
    project: str, api: GraphApi, graph_ids: Sequence[str]
) -> tuple[Looked, dict[str, Exception]]:
    graphs: Looked = {}
    crashed: dict[str, Exception] = {}
    for graph_id in graph_ids:
        try:
            graphs[graph_id] = await api.show_graph(graph_id)
        except NotFoundError as exc:
            if exc.code == "GES.7000":
                graphs[graph_id] = None
        except ApiError as exc:
            log.warning(
                "polling job failed (%s); will poll again",
                exc,
                extra={"project": project, "graph_id": graph_id},
            )
        except Exception as exc:  # a bug must cost this job only
            crashed[graph_id] = exc
    return graphs, crashed
