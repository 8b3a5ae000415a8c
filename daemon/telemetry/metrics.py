"""Every Prometheus metric graphnap exports, declared once on an injected registry, and
the exposition /metrics sends (`Metrics.render`).

Names are a contract with the Grafana dashboard and the alert rules (design.md §5).
Labels are bounded: project, rule, action, outcome, status class, error code; never a job id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    Metric,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from daemon import __version__
from daemon.domain.model import GraphStatus
from daemon.telemetry.graph_series import GraphSeries, Row

OUTCOMES = ("succeeded", "failed", "skipped", "already_done", "dry_run")
SavingsHook = Callable[[str, str, float, datetime, datetime], None]
"""(project, currency, amount, since, until): the savings counter just grew by `amount` for
the time from `since` to `until` (daemon.notify.ledger counts it by day). Must not raise."""


class Metrics:
    def __init__(self, registry: CollectorRegistry, *, per_graph: bool = True) -> None:
        self.registry = registry
        self._per_graph = per_graph  # off: no series per graph, for very large fleets
        # The per-graph series are rows rendered once per change (graph_series.py); the
        # others live on a registry of their own. Both are collectors of `registry`, so
        # whoever reads it sees every family; /metrics renders them apart (render()).
        self.graph_series = GraphSeries()
        own = self._own = CollectorRegistry()
        registry.register(own)
        registry.register(self.graph_series)
        registry = own
        self.actions = Counter(
            "graphnap_actions",
            "Stop/start decisions by outcome.",
            ["project", "rule", "action", "outcome"],
            registry=registry,
        )
        self.action_failures = Counter(
            "graphnap_action_failures",
            "Failed actions by reason (error code, http_5xx, timeout, job_failed).",
            ["project", "action", "reason"],
            registry=registry,
        )
        self.job_duration = Histogram(
            "graphnap_job_duration_seconds",
            "From the action request to the job's terminal state.",
            ["action"],
            registry=registry,
            buckets=(5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600),
        )
        self.jobs_in_flight = Gauge(
            "graphnap_jobs_in_flight",
            "Stop/start jobs being followed.",
            ["project", "action"],
            registry=registry,
        )
        self.graphs = Gauge(
            "graphnap_graphs",
            "Graphs by status class at the last inventory.",
            ["project", "status"],
            registry=registry,
        )
        self.savings = Counter(
            "graphnap_estimated_savings",
            "Money not spent on managed graphs while they were stopped.",
            ["project", "currency"],
            registry=registry,
        )
        self.next_fire = Gauge(
            "graphnap_schedule_next_fire_timestamp_seconds",
            "When a schedule fires next.",
            ["rule"],
            registry=registry,
        )
        self.last_fire = Gauge(
            "graphnap_schedule_last_fire_timestamp_seconds",
            "When a schedule last fired.",
            ["rule"],
            registry=registry,
        )
        self.misfires = Counter(
            "graphnap_schedule_misfires",
            "Firings missed beyond their grace time.",
            ["rule"],
            registry=registry,
        )
        self.api_requests = Counter(
            "graphnap_api_requests",
            "Cloud API requests by answer code.",
            ["service", "operation", "code"],
            registry=registry,
        )
        self.api_duration = Histogram(
            "graphnap_api_request_duration_seconds",
            "Cloud API request latency.",
            ["service", "operation"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.config_reloads = Counter(
            "graphnap_config_reloads", "Config reloads by result.", ["result"], registry=registry
        )
        self.config_ok = Gauge(
            "graphnap_config_last_reload_successful",
            "1 if the last config (re)load succeeded.",
            registry=registry,
        )
        self.notifications = Counter(
            "graphnap_notifications",
            "Notification messages by channel, kind and outcome (sent, failed, deduplicated).",
            ["channel", "kind", "outcome"],
            registry=registry,
        )
        self.notification_queue = Gauge(
            "graphnap_notification_queue",
            "Notification messages waiting in a channel's outbox.",
            ["channel"],
            registry=registry,
        )
        self.notifications_dropped = Counter(
            "graphnap_notifications_dropped",
            "Notification messages dropped unsent because a channel's outbox was full.",
            ["channel", "kind"],
            registry=registry,
        )
        self.idle_verdicts = Counter(
            "graphnap_idle_verdicts",
            "Idle verdicts by rule: idle, in_use, not_judged, busy.",
            ["rule", "verdict"],
            registry=registry,
        )
        self.idle_last_check = Gauge(
            "graphnap_idle_last_check_timestamp_seconds",
            "When an idle rule last judged its graphs.",
            ["rule"],
            registry=registry,
        )
        self.deferrals = Counter(
            "graphnap_deferrals",
            "Stops a schedule deferred because the graph was in use, by what became of them: "
            "deferred, stopped (once quiet), gave_up (still in use at max), dropped.",
            ["rule", "outcome"],
            registry=registry,
        )
        self.deferred = Gauge(
            "graphnap_graphs_deferred",
            "Graphs whose stop is deferred now because they are in use.",
            ["rule"],
            registry=registry,
        )
        self.holds = Gauge(
            "graphnap_holds",
            "Holds in force, by project and what they keep: running or stopped.",
            ["project", "keep"],
            registry=registry,
        )
        self.inventory_success = Gauge(
            "graphnap_inventory_last_success_timestamp_seconds",
            "When a project's graphs were last listed successfully.",
            ["project"],
            registry=registry,
        )
        self.control_requests = Counter(
            "graphnap_control_requests",
            "Control API requests by operation (graphs, holds, hold, release, wake, ...) and "
            "outcome (ok, unauthorized, forbidden, invalid, refused, too_large, rate_limited).",
            ["op", "outcome"],
            registry=registry,
        )
        # --- leader election (every replica exports these; one has graphnap_leader 1) ---
        self.leader = Gauge(
            "graphnap_leader",
            "1 while this replica acts (it holds the lease, or runs without leader election); "
            "0 while it follows.",
            registry=registry,
        )
        self.leader_transitions = Counter(
            "graphnap_leader_transitions",
            "Times this replica became the leader.",
            registry=registry,
        )
        self.leader_last_renew = Gauge(
            "graphnap_leader_last_renew_timestamp_seconds",
            "When this replica last took or renewed the lease.",
            registry=registry,
        )
        # --- credential sources (daemon/cloud/credentials.py) ---
        self.credential_refreshes = Counter(
            "graphnap_credential_refresh",
            "Fetches of a credential set's keys by source and outcome (success, failed, "
            "invalid: new secret files refused, the keys in use kept).",
            ["set", "source", "outcome"],
            registry=registry,
        )
        self.credential_expiry = Gauge(
            "graphnap_credential_expiry_timestamp_seconds",
            "When a credential set's temporary keys expire.",
            ["set"],
            registry=registry,
        )
        self.credential_rotations = Counter(
            "graphnap_credential_rotations",
            "New static keys taken from swapped secret files, without a restart.",
            ["set"],
            registry=registry,
        )
        # --- end credential sources ---
        self.build_info = Info("graphnap_build", "Build information.", registry=registry)
        self.build_info.info({"version": __version__})
        # CPU, memory and file descriptors of the daemon itself, for the dashboard.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        for result in ("success", "failure"):
            self.config_reloads.labels(result)
        self._counts: dict[str, dict[str, int]] = {}  # graphs by class, as last set
        self._last_seen: dict[str, tuple[datetime, set[str]]] = {}
        self._known_rules: set[str] = set()
        self._declared: tuple[set[str], set[str]] | None = None
        self._savings_hooks: list[SavingsHook] = []
        # metrics labelled by project or by rule, and the label's name
        self._by_project = [
            (m, "project")
            for m in (
                self.actions,
                self.action_failures,
                self.jobs_in_flight,
                self.graphs,
                self.savings,
                self.inventory_success,
                self.holds,
            )
        ]
        self._by_rule = [
            (m, "rule")
            for m in (
                self.next_fire,
                self.last_fire,
                self.misfires,
                self.idle_verdicts,
                self.idle_last_check,
                self.deferrals,
                self.deferred,
            )
        ]

    def declare(
        self,
        projects: Iterable[str],
        schedules: Iterable[str],
        idle_rules: Iterable[str],
        deferring: Iterable[str],
    ) -> None:
        """Make the series match a config: failure, misfire, verdict and deferral counters
        start at 0 for its projects and rules (so the first event is an increase Prometheus
        can see, not a new series), and the series of projects and rules it no longer has
        are removed (else alerts on their staleness would fire forever)."""
        projects, rules = set(projects), set(schedules) | set(idle_rules)
        for project in projects:
            for action in ("stop", "start"):
                for reason in ("timeout", "job_failed", "inventory"):
                    self.action_failures.labels(project, action, reason)
        for rule in rules:
            self.misfires.labels(rule)
        for rule in idle_rules:
            for verdict in ("idle", "in_use", "not_judged", "busy"):
                self.idle_verdicts.labels(rule, verdict)
        for rule in deferring:
            for outcome in ("deferred", "stopped", "gave_up", "dropped"):
                self.deferrals.labels(rule, outcome)
        if self._declared is not None:
            old_projects, old_rules = self._declared
            for metric, name in self._by_project:
                _remove_where(metric, name, old_projects - projects)
            for metric, name in self._by_rule:
                _remove_where(metric, name, old_rules - rules)
            for project in old_projects - projects:
                self.graph_series.remove(project)
                self._counts.pop(project, None)
                self._last_seen.pop(project, None)
        self._declared = (projects, rules)

    def on_savings(self, hook: SavingsHook) -> None:
        """Also tell `hook` of every increase of graphnap_estimated_savings_total."""
        self._savings_hooks.append(hook)

    def observe_request(self, service: str, operation: str, code: str, duration_s: float) -> None:
        self.api_requests.labels(service, operation, code).inc()
        self.api_duration.labels(service, operation).observe(duration_s)

    def observe_inventory(
        self,
        project: str,
        graphs: Iterable[tuple[str, str, int, float | None]],
        now: datetime,
        currency: str,
    ) -> None:
        """Refresh a project's graph gauges and accrue savings.

        `graphs` is (id, name, status code, hourly price or None for unmanaged). Savings
        accrue for the time since the previous inventory, for managed graphs that were
        stopped at both ends of it: a conservative estimate.
        """
        seen = self._last_seen.get(project)
        if seen is not None and now < seen[0]:
            return  # an older listing that finished late: the newer one already counted
        counts = dict.fromkeys(
            ("running", "stopped", "busy", "faulty", "transitional", "frozen", "other"), 0
        )
        stopped_now: set[str] = set()
        prices: dict[str, float] = {}
        rows: list[Row] = []
        for graph_id, name, code, price in graphs:
            cls = GraphStatus.classify(code)
            counts[cls] += 1
            if self._per_graph:
                rows.append((graph_id, name, 1 if cls == "stopped" else 0, price))
            if price is not None:
                prices[graph_id] = price
                if cls == "stopped":
                    stopped_now.add(graph_id)
        if self._per_graph:
            self.graph_series.update(project, rows, currency)  # a no-op when unchanged
        last_counts = self._counts.get(project, {})
        for status, count in counts.items():
            if last_counts.get(status) != count:  # an unchanged gauge is not rewritten
                self.graphs.labels(project, status).set(count)
        self._counts[project] = counts

        previous = self._last_seen.get(project)
        if previous is not None:
            since, stopped_then = previous
            hours = max((now - since).total_seconds(), 0.0) / 3600
            saved = sum(prices[g] for g in stopped_then & stopped_now) * hours
            if saved > 0:
                self.savings.labels(project, currency).inc(saved)
                for hook in self._savings_hooks:
                    hook(project, currency, saved, since, now)
        self._last_seen[project] = (now, stopped_now)
        self.inventory_success.labels(project).set(now.timestamp())

    def forget_accrual(self) -> None:
        """A term as the active replica ended: the next listing starts counting savings
        afresh, since the time another replica led was that replica's to count."""
        self._last_seen.clear()

    def render(self) -> bytes:
        """What /metrics sends: the registry's families in the text format, per-graph
        series from their cached text. A counter's `_created` sample is left out: at 200
        schedules it is 200 more series of misfire counters alone, no panel or alert reads
        it, and Prometheus finds counter resets without it."""
        return generate_latest(_WithoutCreated(self._own)) + self.graph_series.text()

    def set_next_fire_times(self, times: Mapping[str, datetime | None]) -> None:
        _remove_where(self.next_fire, "rule", self._known_rules - set(times))
        for rule, when in times.items():
            if when is not None:
                self.next_fire.labels(rule).set(when.timestamp())
        self._known_rules = set(times)


def _remove_where(metric: Counter | Gauge, label: str, values: set[str]) -> None:
    """Remove every series of `metric` whose `label` is one of `values` (prometheus_client's
    public remove_by_labels, 0.23 and later: pyproject pins it)."""
    for value in values:
        metric.remove_by_labels({label: value})


class _WithoutCreated:
    """A registry's families without their `_created` samples (see Metrics.render)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family
