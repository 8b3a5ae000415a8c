"""Async client for Cloud Eye (CES v1) metric data of GES graphs: the batch query and the
single metric-data GET over the shared JsonApi transport (auth, rate gate, retries, error
vocabulary), split so no request meets the API's limits: 500 metrics, 3,000 datapoints, and
each period's window cap (which CES would enforce by silently dropping the window's start).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from daemon.cloud.errors import (
    ApiError,
    InvalidResponseError,
)
from daemon.cloud.failures import error_for_answer, parse_error_body
from daemon.cloud.transport import (
    JsonApi,
    RequestObserver,
    WireModel,
    check_project_id,
    check_resource_id,
    ignore_request,
)
from daemon.config.settings import RetrySettings
from daemon.domain.model import REQUEST_COUNT, Aggregation, Datapoint, Sleep, floor_time
from daemon.domain.periods import MAX_METRICS, MAX_POINTS, WINDOW_CAPS

SERVICE = "ces"
NAMESPACE = "SYS.GES"
DIMENSION = "instance_id"  # its value is the GES graph id


class WireDimension(WireModel):
    name: str
    value: str


class WirePoint(WireModel):
    """A datapoint carries the aggregate named by the request's filter."""

    timestamp: int
    average: float | None = None
    max: float | None = None
    min: float | None = None
    sum: float | None = None
    variance: float | None = None

    def to_model(self, how: Aggregation, operation: str) -> Datapoint:
        value: float | None = getattr(self, how)
        if value is None:
            raise InvalidResponseError(
                f"a datapoint has no {how!r} value",
                service=SERVICE,
                operation=operation,
                code="invalid_response",
            )
        return Datapoint(datetime.fromtimestamp(self.timestamp / 1000, UTC), value)


class WireSeries(WireModel):
    namespace: str = NAMESPACE
    metric_name: str
    dimensions: list[WireDimension] = []
    datapoints: list[WirePoint] = []

    def instance(self) -> str | None:
        return next((d.value for d in self.dimensions if d.name == DIMENSION), None)


class BatchAnswer(WireModel):
    metrics: list[WireSeries]


class SingleAnswer(WireModel):
    metric_name: str = ""
    datapoints: list[WirePoint] = []


class CesClient:
    """One project's Cloud Eye reads for GES graphs. Implements daemon.domain.model.MetricApi."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        project_id: str,
        *,
        retry: RetrySettings = RetrySettings(),
        sleep: Sleep,
        observe: RequestObserver = ignore_request,
        limiter: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self.project_id = check_project_id(project_id, SERVICE)
        self._api = JsonApi(
            http,
            SERVICE,
            self.project_id,
            map_error=error_for,
            retry=retry,
            sleep=sleep,
            observe=observe,
            limiter=limiter,
        )
        self._prefix = f"/V1.0/{self.project_id}"

    async def request_counts(
        self,
        graph_ids: list[str],
        *,
        metric: str = REQUEST_COUNT,
        aggregation: Aggregation = "sum",
        start: datetime,
        end: datetime,
        period_s: int,
    ) -> dict[str, list[Datapoint]]:
        """Every graph's datapoints with start <= at < end (start floored to the period, as
        CES does), oldest first; [] for a graph without data. Graphs go in chunks of 500,
        and time in slices short enough for the window cap and 3,000 datapoints."""
        ids = list(dict.fromkeys(_id(g) for g in graph_ids))
        merged: dict[str, dict[datetime, Datapoint]] = {gid: {} for gid in ids}
        for chunk, (since, until) in plan_requests(len(ids), start, end, period_s):
            got = await self.batch_query(
                ids[chunk],
                metric=metric,
                aggregation=aggregation,
                start=since,
                end=until,
                period_s=period_s,
            )
            for gid, points in got.items():
                for point in points:
                    merged[gid].setdefault(point.at, point)
        return {gid: [by_at[at] for at in sorted(by_at)] for gid, by_at in merged.items()}

    async def batch_query(
        self,
        graph_ids: list[str],
        *,
        metric: str = REQUEST_COUNT,
        aggregation: Aggregation = "sum",
        start: datetime,
        end: datetime,
        period_s: int,
    ) -> dict[str, list[Datapoint]]:
        """One batch request (the caller keeps it within the limits): datapoints per graph
        with start <= at < end."""
        if not 1 <= len(graph_ids) <= MAX_METRICS:
            raise ValueError(f"a batch query takes 1 to {MAX_METRICS} graphs, not {len(graph_ids)}")
        _check_period(period_s)
        body = {
            "metrics": [
                {
                    "namespace": NAMESPACE,
                    "metric_name": metric,
                    "dimensions": [{"name": DIMENSION, "value": _id(gid)}],
                }
                for gid in graph_ids
            ],
            "from": _ms(start),
            # a millisecond short of `end`: the period starting at `end` stays out whether
            # CES treats `to` as inclusive or not [UNVERIFIED which]
            "to": _ms(end) - 1,
            "period": str(period_s),  # a string in the batch API, an int in the single one
            "filter": aggregation,
        }
        answer = await self._api.call(
            "batch_query_metric_data",
            "POST",
            f"{self._prefix}/batch-query-metric-data",
            BatchAnswer,
            json=body,
        )
        out: dict[str, list[Datapoint]] = {gid: [] for gid in graph_ids}
        for series in answer.metrics:
            gid = series.instance()
            if gid not in out or series.metric_name != metric:
                continue
            out[gid] = _within(
                series.datapoints, aggregation, "batch_query_metric_data", start, end, period_s
            )
        return out

    async def metric_data(
        self,
        graph_id: str,
        *,
        metric: str = REQUEST_COUNT,
        aggregation: Aggregation = "sum",
        start: datetime,
        end: datetime,
        period_s: int,
    ) -> list[Datapoint]:
        """One graph's datapoints from the single metric-data GET (one request; the caller
        keeps it within the window cap and 3,000 datapoints)."""
        _check_period(period_s)
        params = {
            "namespace": NAMESPACE,
            "metric_name": metric,
            "dim.0": f"{DIMENSION},{_id(graph_id)}",
            "filter": aggregation,
            "period": str(period_s),
            "from": str(_ms(start)),
            "to": str(_ms(end) - 1),
        }
        answer = await self._api.call(
            "show_metric_data", "GET", f"{self._prefix}/metric-data", SingleAnswer, params=params
        )
        return _within(answer.datapoints, aggregation, "show_metric_data", start, end, period_s)


def plan_requests(
    graphs: int, start: datetime, end: datetime, period_s: int
) -> Iterator[tuple[slice, tuple[datetime, datetime]]]:
    """(which graphs, which time) for each request: chunks of at most 500 graphs, and time
    slices of whole periods, each within the window cap and 3,000 datapoints."""
    for first in range(0, graphs, MAX_METRICS):
        size = min(MAX_METRICS, graphs - first)
        for since, until in time_slices(start, end, period_s, size):
            yield slice(first, first + size), (since, until)


def time_slices(
    start: datetime, end: datetime, period_s: int, graphs: int
) -> list[tuple[datetime, datetime]]:
    """[since, until) slices covering [floor(start), end) for one request of `graphs` metrics."""
    _check_period(period_s)
    period = timedelta(seconds=period_s)
    per_slice = min(MAX_POINTS // max(graphs, 1), WINDOW_CAPS[period_s] // period)
    since = floor_time(start, period_s)
    slices: list[tuple[datetime, datetime]] = []
    while since < end:
        until = min(since + per_slice * period, end)
        slices.append((since, until))
        since = until
    return slices


def parse_ces_error(text: str) -> tuple[str, str]:
    """(code, message) from Cloud Eye's error shapes, then any other Huawei shape.

    CES v1: {"code": 400, "element": "Bad Request", "message": ..., "details": {"details": ...,
    "code": "ces.0014"}} and {"http_code": "403", "message": {"details": ..., "code": "403"}};
    v2 and the gateway: {"error_code", "error_msg"}."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        details, message = body.get("details"), body.get("message")
        if isinstance(details, dict) and details.get("code"):
            return str(details["code"]), str(message or details.get("details") or "")
        if isinstance(message, dict) and message.get("details"):
            return str(message.get("code") or ""), str(message["details"])
    return parse_error_body(text)


def error_for(response: httpx.Response, operation: str) -> ApiError:
    """Map a 4xx/5xx Cloud Eye answer to our error vocabulary (ces.0007 internal and
    ces.0008 database come as 5xx: retryable)."""
    return error_for_answer(response, SERVICE, operation, parse=parse_ces_error)


def _within(
    points: list[WirePoint],
    how: Aggregation,
    operation: str,
    start: datetime,
    end: datetime,
    period_s: int,
) -> list[Datapoint]:
    """Points of [floor(start), end) only, oldest first: CES may add a period at an edge."""
    since, until = _ms(floor_time(start, period_s)), _ms(end)
    kept = [p.to_model(how, operation) for p in points if since <= p.timestamp < until]
    return sorted(kept, key=lambda p: p.at)


def _check_period(period_s: int) -> None:
    if period_s not in WINDOW_CAPS:
        raise ValueError(f"period {period_s}s is not one of Cloud Eye's: {sorted(WINDOW_CAPS)}")


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _id(graph_id: str) -> str:
    return check_resource_id("graph", graph_id, SERVICE)
