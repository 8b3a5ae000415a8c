"""What Cloud Eye says about the graphs' use, for the passes: idle verdicts for an idle rule,
and recent use for a stop schedule that defers while in use. One read of Cloud Eye for both;
when it does not answer, the pass is told what it does without it (missing data is never
idle; a stop whose use cannot be told goes ahead).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from daemon.cloud.errors import ApiError
from daemon.config.models import IdleRule, Schedule
from daemon.domain.model import REQUEST_COUNT, Aggregation, Datapoint, Graph, MetricApi
from daemon.domain.periods import choose_period
from daemon.rules.idle import (
    DEFAULT_LAG,
    Verdict,
    VerdictKind,
    fetch_range,
    idle_criteria,
    judge,
    recent_range,
    recent_use,
)
from daemon.rules.planning import Decision, defer_in_use
from daemon.runtime.deferrals import Deferrals

log = logging.getLogger(__name__)


async def idle_verdicts(
    api: MetricApi, rule: IdleRule, project: str, candidates: Sequence[Graph], now: datetime
) -> dict[tuple[str, str], Verdict]:
    """Each candidate's idle verdict under `rule` at `now`; not judged when Cloud Eye is down."""
    if not candidates:
        return {}
    criteria = idle_criteria(rule)
    span = max(criteria.idle_for, criteria.min_uptime)
    period_s = (
        int(rule.period.total_seconds())
        if rule.period is not None
        else choose_period(span, len(candidates))
    )
    start, end = fetch_range(now, criteria, period_s)
    points = await request_counts(
        api,
        project,
        [g.id for g in candidates],
        (start, end, period_s),
        rule.name,
        "no graph of this project is judged idle this pass",
        metric=criteria.metric,
        aggregation=criteria.aggregation,
    )
    if isinstance(points, ApiError):  # missing data is never idle
        reason = f"not judged: Cloud Eye did not answer ({points.code})"
        silent = Verdict(VerdictKind.NOT_JUDGED, reason)
        return {(project, g.id): silent for g in candidates}
    return {
        (project, g.id): judge(
            g, points.get(g.id, []), now=now, criteria=criteria, period_s=period_s
        )
        for g in candidates
    }


async def recent_uses(
    api: MetricApi, project: str, graph_ids: Sequence[str], schedule: Schedule, now: datetime
) -> dict[str, Verdict] | None:
    """Each graph's use over the schedule's `within`, or None when Cloud Eye cannot say."""
    defer = schedule.defer_while_in_use
    assert defer is not None
    period_s = choose_period(defer.within + DEFAULT_LAG, len(graph_ids))
    start, end = recent_range(now, defer.within, period_s)
    points = await request_counts(
        api,
        project,
        graph_ids,
        (start, end, period_s),
        schedule.name,
        "cannot tell whether graphs are in use",
    )
    if isinstance(points, ApiError):
        return None
    return {
        gid: recent_use(
            points.get(gid, []),
            now=now,
            within=defer.within,
            period_s=period_s,
            threshold=defer.threshold,
        )
        for gid in graph_ids
    }


async def request_counts(
    api: MetricApi,
    project: str,
    graph_ids: Sequence[str],
    span: tuple[datetime, datetime, int],
    rule: str,
    consequence: str,
    *,
    metric: str = REQUEST_COUNT,
    aggregation: Aggregation = "sum",
) -> dict[str, list[Datapoint]] | ApiError:
    """The one Cloud Eye read of the passes: the graphs' datapoints over `span` (start,
    end, period), or the error when Cloud Eye does not answer, logged with what the pass
    does without it."""
    start, end, period_s = span
    try:
        return await api.request_counts(
            list(graph_ids),
            metric=metric,
            aggregation=aggregation,
            start=start,
            end=end,
            period_s=period_s,
        )
    except ApiError as exc:
        log.warning(
            "Cloud Eye did not answer; %s: %s",
            consequence,
            exc,
            extra={"project": project, "rule": rule},
        )
        return exc


async def defer_stops_in_use(
    api: MetricApi,
    deferrals: Deferrals,
    schedule: Schedule,
    project: str,
    decisions: list[Decision],
    now: datetime,
    *,
    remember: bool,
) -> list[Decision]:
    """Hold back the stops of graphs in use, to be stopped once quiet. When Cloud Eye
    cannot say, the stops go ahead: the schedule is the owner's wish, and deferral the
    exception that needs evidence of use. A dry run (`remember` False) says so and keeps
    nothing."""
    defer = schedule.defer_while_in_use
    assert defer is not None
    acting = [d.graph_id for d in decisions if d.act]
    use = await recent_uses(api, project, acting, schedule, now) if acting else None
    if not use:
        return decisions
    until = now + defer.max
    kept, deferred = defer_in_use(decisions, {(project, g): v for g, v in use.items()}, until)
    if remember:
        deferrals.defer(schedule, defer, deferred, now, until)
    return kept
