"""The one seam every decision and every action outcome goes through: it counts the metric,
writes the log line and keeps the recent history for /status. Whatever else should learn
of outcomes (a notifier, an audit trail) subscribes here. It decides nothing.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from daemon.domain.model import Action
from daemon.telemetry.metrics import Metrics

log = logging.getLogger("daemon.runtime.outcomes")

Kind = Literal[
    "skipped",  # planning or the executor chose not to act, for `reason`
    "dry_run",  # would have acted
    "already_done",  # GES said so, and the graph shows it (on its way: followed, `requested`)
    "requested",  # the action was accepted; a job is being followed
    "succeeded",  # the job ended and the graph is where the action leads
    "failed",  # the request or the job failed, for `reason` (metric label: `failure`)
]
_VERB = {
    "skipped": "skip",
    "dry_run": "dry run",
    "already_done": "already done",
    "requested": "requested",
    "succeeded": "succeeded",
    "failed": "failed",
}
_JOB_ENDS = ("succeeded", "failed")


@dataclass(frozen=True, slots=True)
class Outcome:
    at: datetime
    project: str
    graph_id: str
    graph: str
    rule: str
    action: Action
    outcome: Kind
    reason: str
    job_id: str = ""
    failure: str = ""  # for `failed`: a bounded metric label (an error code, timeout, job_failed)
    duration_s: float | None = None  # for a job's end: from the request to now

    @property
    def is_job_end(self) -> bool:
        """The end of a followed job (it has a duration), as opposed to a decision."""
        return self.duration_s is not None and self.outcome in _JOB_ENDS


Subscriber = Callable[[Outcome], None]


class Outcomes:
    def __init__(self, metrics: Metrics, *, history: int = 200) -> None:
        self._metrics = metrics
        self._history: deque[Outcome] = deque(maxlen=history)
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        """Called with every outcome after it is counted and logged; must not raise."""
        self._subscribers.append(subscriber)

    def record(self, outcome: Outcome) -> None:
        o = outcome
        if o.outcome != "requested":  # a request is counted when its job ends
            self._metrics.actions.labels(o.project, o.rule, o.action, o.outcome).inc()
        if o.outcome == "failed":
            self._metrics.action_failures.labels(o.project, o.action, o.failure or "error").inc()
        if o.is_job_end and o.duration_s is not None:  # (mypy cannot see through is_job_end)
            self._metrics.job_duration.labels(o.action).observe(o.duration_s)
        facts: dict[str, Any] = {
            "project": o.project,
            "graph_id": o.graph_id,
            "graph": o.graph,
            "rule": o.rule,
            "action": o.action,
            "outcome": o.outcome,
            "reason": o.reason,
        }
        if o.job_id:
            facts["job_id"] = o.job_id
        if o.duration_s is not None:
            facts["duration_s"] = o.duration_s
        level = logging.ERROR if o.outcome == "failed" else logging.INFO
        log.log(level, "%s %s", o.action, _VERB[o.outcome], extra=facts)
        self._history.append(o)
        for subscriber in self._subscribers:
            try:
                subscriber(o)
            except Exception:  # a listener's bug must not cost an outcome
                log.exception("outcome subscriber failed", extra={"rule": o.rule})

    def inventory_failed(self, project: str, action: Action) -> None:
        """A firing could not list a project's graphs: its graphs are left for the next pass."""
        self._metrics.action_failures.labels(project, action, "inventory").inc()

    def last(self, project: str, graph_id: str) -> dict[str, Any] | None:
        """The latest outcome of a graph still in the history, or None."""
        for o in reversed(self._history):
            if o.project == project and o.graph_id == graph_id:
                return _view(o)
        return None

    def decisions(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest decisions (what each pass chose and why), oldest first, for /status."""
        chosen = [o for o in self._history if not o.is_job_end][-limit:]
        return [_view(o) for o in chosen]

    def job_ends(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest jobs that reached their end, oldest first, for /status."""
        ended = [o for o in self._history if o.is_job_end][-limit:]
        return [_view(o) for o in ended]


def _view(outcome: Outcome) -> dict[str, Any]:
    view = asdict(outcome)
    view["time"] = view.pop("at").isoformat()
    if view["duration_s"] is not None:
        view["duration_s"] = round(view["duration_s"], 1)
    return view
