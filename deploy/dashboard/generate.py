"""The graphnap Grafana dashboard, as code: the one source of helm/graphnap/files/graphnap-dashboard.json.

    python deploy/dashboard/generate.py          # rewrite the JSON
    python deploy/dashboard/generate.py --check  # exit 1 when the committed JSON differs

Built with grafana-foundation-sdk (pinned in pyproject's `deploy` extra, so the output is
stable). Every query uses only metrics that daemon/metrics.py declares; tests/deploy checks
that, parses every expression and runs each one against a live Prometheus in CI.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import (
    common,
    dashboard,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    BigValueTextMode,
    GraphDrawStyle,
    GraphTresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUTPUT = Path(__file__).resolve().parents[2] / "helm/graphnap/files/graphnap-dashboard.json"
UID = "graphnap-overview"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")

# Every query selects the chosen target(s); project-scoped metrics also the chosen projects.
SEL = 'job=~"$job", namespace=~"$namespace", instance=~"$instance"'
PSEL = SEL + ', project=~"$project"'


class Ids:
    """Explicit, stable panel ids in layout order (Grafana and linters rely on them)."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> int:
        self._next += 1
        return self._next


def query(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False):
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    if legend:
        q = q.legend_format(legend)
    if instant:
        q = q.instant().format(PromQueryFormat.TABLE)
    return q


def legend_table():
    return (
        common.VizLegendOptions()
        .display_mode(LegendDisplayMode.TABLE)
        .placement(LegendPlacement.RIGHT)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )


def ts(
    ids: Ids,
    title: str,
    description: str,
    unit: str,
    *queries,
    bars: bool = False,
    stacked: bool = False,
    span: int = 12,
):
    panel = (
        timeseries.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .min(0)
        .height(8)
        .span(span)
        .legend(legend_table())
        .fill_opacity(20 if stacked else 10)
        .line_width(1)
    )
    if bars:
        panel = panel.draw_style(GraphDrawStyle.BARS).fill_opacity(80)
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(StackingMode.NORMAL))
    for q in queries:
        panel = panel.with_target(q)
    return panel


def single(ids: Ids, title: str, description: str, unit: str, q, *, span: int = 4, decimals=None):
    panel = (
        stat.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .height(4)
        .span(span)
        .graph_mode(BigValueGraphMode.AREA)
        .color_mode(BigValueColorMode.VALUE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(q)
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def build() -> dict[str, object]:
    ids = Ids()
    board = (
        dashboard.Dashboard("graphnap")
        .uid(UID)
        .description(
            "graphnap: which GES graphs it stopped and started, how its jobs went, "
            "what the cloud API answered and the money saved."
        )
        .tags(["graphnap", "ges", "cost"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-24h", "now")
        .timezone("browser")
        .refresh("1m")
        .with_variable(
            dashboard.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .description("The Prometheus that scrapes graphnap.")
        )
        .with_variable(
            label_variable(
                "namespace",
                "Namespace",
                "label_values(graphnap_build_info, namespace)",
                "Kubernetes namespace of the graphnap release (All includes targets without one).",
            )
        )
        .with_variable(
            dashboard.QueryVariable("job")
            .label("Job")
            .description("Prometheus job of graphnap (the chart's is graphnap).")
            .datasource(DS)
            .query('label_values(graphnap_build_info{namespace=~"$namespace"}, job)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
        .with_variable(
            label_variable(
                "instance",
                "Instance",
                'label_values(graphnap_build_info{job=~"$job", namespace=~"$namespace"}, instance)',
                "A graphnap pod (normally one).",
            )
        )
        .with_variable(
            label_variable(
                "project",
                "Project",
                f"label_values(graphnap_graphs{{{SEL}}}, project)",
                "graphnap projects (config `projects[].name`).",
            )
        )
        .annotation(
            dashboard.AnnotationQuery()
            .name("graphnap actions")
            .datasource(DS)
            .enable(True)
            .icon_color("rgba(255, 152, 48, 1)")
            .expr(
                f"sum by (rule, action, outcome) (changes(graphnap_actions_total{{{PSEL}}}[2m])) > 0"
            )
        )
    )

    board = board.with_row(dashboard.Row("Overview").id(ids()))
    board = (
        board.with_panel(
            single(
                ids,
                "Graphs running",
                "Graphs in status running at the last inventory, in the selected projects.",
                "none",
                query(f'sum(graphnap_graphs{{{PSEL}, status="running"}})'),
            )
        )
        .with_panel(
            single(
                ids,
                "Graphs stopped",
                "Graphs in status stopped at the last inventory, in the selected projects.",
                "none",
                query(f'sum(graphnap_graphs{{{PSEL}, status="stopped"}})'),
            )
        )
        .with_panel(
            single(
                ids,
                "Saving now (per hour)",
                "Hourly pay-per-use price of the managed graphs that are stopped right now: "
                "what graphnap saves each hour at this moment.",
                "none",
                query(
                    f"sum by (currency) (graphnap_graph_hourly_price{{{PSEL}}} * ignoring(currency) "
                    f"group_left graphnap_graph_stopped{{{PSEL}}})",
                    "{{currency}} / hour",
                ),
                decimals=2,
            )
        )
        .with_panel(
            single(
                ids,
                "Saved over the range",
                "Estimated money not spent on managed graphs while they were stopped, over the "
                "dashboard's time range (price x replication x hours stopped).",
                "none",
                query(
                    f"sum by (currency) (increase(graphnap_estimated_savings_total{{{PSEL}}}[$__range]))",
                    "{{currency}}",
                ),
                decimals=2,
            )
        )
        .with_panel(
            single(
                ids,
                "Jobs in flight",
                "Stop/start jobs graphnap is following to their end right now.",
                "none",
                query(f"sum(graphnap_jobs_in_flight{{{PSEL}}})"),
            )
        )
        .with_panel(
            single(
                ids,
                "Config",
                "Whether the last config (re)load succeeded. Failed: graphnap keeps the previous "
                "config; /status shows the error.",
                "none",
                query(f"min(graphnap_config_last_reload_successful{{{SEL}}})"),
            ).mappings(
                [
                    ValueMap(
                        options={
                            "0": ValueMappingResult(text="Reload failed", color="red", index=0),
                            "1": ValueMappingResult(text="Loaded", color="green", index=1),
                        }
                    )
                ]
            )
        )
    )

    board = leader_election_row(board, ids)

    board = board.with_row(dashboard.Row("Graphs").id(ids()))
    board = board.with_panel(
        ts(
            ids,
            "Graphs by status",
            "Graphs per project and status class (running, stopped, busy, faulty, "
            "transitional, frozen) at each inventory.",
            "none",
            query(
                f"sum by (project, status) (graphnap_graphs{{{PSEL}}}) > 0",
                "{{project}} {{status}}",
            ),
            stacked=True,
        )
    ).with_panel(
        ts(
            ids,
            "Stopped graphs by project",
            "Graphs stopped per project; with their hourly price, the cost being avoided.",
            "none",
            query(f"sum by (project) (graphnap_graph_stopped{{{PSEL}}})", "{{project}}"),
        )
    )

    board = board.with_row(dashboard.Row("Actions and jobs").id(ids()))
    board = (
        board.with_panel(
            ts(
                ids,
                "Actions by rule and outcome",
                "Stop/start decisions per interval, by schedule, action and outcome (succeeded, "
                "failed, skipped, already_done, dry_run).",
                "short",
                query(
                    f"sum by (rule, action, outcome) (increase(graphnap_actions_total{{{PSEL}}}[$__rate_interval])) > 0",
                    "{{rule}} {{action}} {{outcome}}",
                ),
                bars=True,
            )
        )
        .with_panel(
            ts(
                ids,
                "Failures by reason",
                "Failed actions per interval by project, action and reason (a GES error code, "
                "http_5xx, timeout, job_failed, inventory).",
                "short",
                query(
                    f"sum by (project, action, reason) (increase(graphnap_action_failures_total{{{PSEL}}}[$__rate_interval])) > 0",
                    "{{project}} {{action}} {{reason}}",
                ),
                bars=True,
            )
        )
        .with_panel(
            ts(
                ids,
                "Job duration p50 / p95",
                "From the stop/start request to the job's end, by action (histogram quantiles "
                "over the interval; empty while no job ended).",
                "s",
                query(
                    f"histogram_quantile(0.5, sum by (le, action) (rate(graphnap_job_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                    "p50 {{action}}",
                ),
                query(
                    f"histogram_quantile(0.95, sum by (le, action) (rate(graphnap_job_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                    "p95 {{action}}",
                    "B",
                ),
            )
        )
        .with_panel(
            ts(
                ids,
                "Jobs in flight",
                "Stop/start jobs being followed, by project and action.",
                "none",
                query(
                    f"sum by (project, action) (graphnap_jobs_in_flight{{{PSEL}}})",
                    "{{project}} {{action}}",
                ),
            )
        )
    )

    board = board.with_row(dashboard.Row("Schedules").id(ids()))
    board = (
        board.with_panel(
            table.Panel()
            .id(ids())
            .title("Next and last firings")
            .description("When each schedule fires next and when it last fired (browser time).")
            .datasource(DS)
            .unit("dateTimeAsIso")
            .height(8)
            .span(12)
            .with_target(
                query(
                    f"max by (rule) (graphnap_schedule_next_fire_timestamp_seconds{{{SEL}}}) * 1000",
                    instant=True,
                )
            )
            .with_target(
                query(
                    f"max by (rule) (graphnap_schedule_last_fire_timestamp_seconds{{{SEL}}}) * 1000",
                    ref="B",
                    instant=True,
                )
            )
            .with_transformation(
                DataTransformerConfig(id_val="merge", options={})  # one row per rule
            )
            .with_transformation(
                DataTransformerConfig(
                    id_val="organize",
                    options={
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            "rule": "Schedule",
                            "Value #A": "Next firing",
                            "Value #B": "Last firing",
                        },
                    },
                )
            )
        )
        .with_panel(
            ts(
                ids,
                "Time to next firing",
                "Seconds until each schedule fires next.",
                "s",
                query(
                    f"min by (rule) (graphnap_schedule_next_fire_timestamp_seconds{{{SEL}}}) - time()",
                    "{{rule}}",
                ),
                span=6,
            )
        )
        .with_panel(
            ts(
                ids,
                "Missed firings",
                "Firings missed by more than their misfire_grace (graphnap down or blocked), "
                "per schedule and interval.",
                "short",
                query(
                    f"sum by (rule) (increase(graphnap_schedule_misfires_total{{{SEL}}}[$__rate_interval]))",
                    "{{rule}}",
                ),
                bars=True,
                span=6,
            )
        )
    )

    board = board.with_row(dashboard.Row("Cloud API").id(ids()))
    board = (
        board.with_panel(
            ts(
                ids,
                "API requests by operation",
                "Requests graphnap sent to the cloud APIs, by service, operation and answer code.",
                "reqps",
                query(
                    f"sum by (service, operation, code) (rate(graphnap_api_requests_total{{{SEL}}}[$__rate_interval]))",
                    "{{service}} {{operation}} {{code}}",
                ),
                span=8,
            )
        )
        .with_panel(
            ts(
                ids,
                "API errors and 429s",
                "Answers other than 2xx by code (HTTP status, timeout, connection), and the share "
                "of requests throttled with 429.",
                "reqps",
                query(
                    f'sum by (code) (rate(graphnap_api_requests_total{{{SEL}, code!~"2.."}}[$__rate_interval]))',
                    "{{code}}",
                ),
                query(
                    f'sum(rate(graphnap_api_requests_total{{{SEL}, code="429"}}[$__rate_interval])) '
                    f"/ sum(rate(graphnap_api_requests_total{{{SEL}}}[$__rate_interval]))",
                    "429 share",
                    "B",
                ),
                span=8,
            ).override_by_name(
                "429 share",
                [
                    {"id": "unit", "value": "percentunit"},
                    {"id": "custom.axisPlacement", "value": "right"},
                ],
            )
        )
        .with_panel(
            ts(
                ids,
                "API latency p95",
                "95th percentile of cloud API request latency, by operation.",
                "s",
                query(
                    f"histogram_quantile(0.95, sum by (le, service, operation) (rate(graphnap_api_request_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                    "{{service}} {{operation}}",
                ),
                span=8,
            )
        )
    )

    board = board.with_row(dashboard.Row("Savings and config").id(ids()))
    board = (
        board.with_panel(
            ts(
                ids,
                "Estimated savings per hour",
                "Money not spent on managed graphs while stopped, as an hourly rate, by project.",
                "none",
                query(
                    f"sum by (project, currency) (rate(graphnap_estimated_savings_total{{{PSEL}}}[$__rate_interval])) * 3600",
                    "{{project}} ({{currency}} / hour)",
                ),
                stacked=True,
            )
        )
        .with_panel(
            ts(
                ids,
                "Config reloads",
                "Config reloads per interval by result; a failure keeps the previous config.",
                "short",
                query(
                    f"sum by (result) (increase(graphnap_config_reloads_total{{{SEL}}}[$__rate_interval]))",
                    "{{result}}",
                ),
                bars=True,
                span=6,
            )
        )
        .with_panel(
            single(
                ids,
                "Version",
                "graphnap version of the selected target.",
                "none",
                query(f"max by (version) (graphnap_build_info{{{SEL}}})", "{{version}}"),
                span=6,
            ).text_mode(BigValueTextMode.NAME)
        )
    )

    board = board.with_row(dashboard.Row("Idle rules and deferrals").id(ids()))
    board = (
        board.with_panel(
            ts(
                ids,
                "Idle verdicts by rule",
                "Verdicts per minute each idle rule reaches over the graphs it selects: idle "
                "(stopped unless dry_run), in_use (left running), not_judged (Cloud Eye data "
                "missing or too short, or up less than min_uptime: never idle), busy (importing, "
                "exporting...). A rule outside its active_hours judges nothing.",
                "opm",
                query(
                    f"sum by (rule, verdict) (rate(graphnap_idle_verdicts_total{{{SEL}}}[$__rate_interval])) * 60",
                    "{{rule}} {{verdict}}",
                ),
                stacked=True,
            )
        )
        .with_panel(
            ts(
                ids,
                "Graphs judged idle vs in use",
                "Graphs each idle rule judged idle (to stop) or in use (kept running) per "
                "interval: the verdicts that decided something. A rule judges every graph it "
                "selects once per check_every.",
                "short",
                query(
                    f'sum by (rule, verdict) (increase(graphnap_idle_verdicts_total{{{SEL}, verdict=~"idle|in_use"}}[$__rate_interval]))',
                    "{{rule}} {{verdict}}",
                ),
                bars=True,
            )
        )
        .with_panel(
            ts(
                ids,
                "Last idle check age",
                "Time since each idle rule last judged its graphs; it should stay below its "
                "check_every. Outside active_hours a rule does not check, so the age grows until "
                "they begin. The line is GraphnapIdleRuleNotChecking's 15 min.",
                "s",
                query(
                    f"time() - max by (rule) (graphnap_idle_last_check_timestamp_seconds{{{SEL}}})",
                    "{{rule}}",
                ),
                span=8,
            )
            .thresholds(
                dashboard.ThresholdsConfig()
                .mode(ThresholdsMode.ABSOLUTE)
                .steps([Threshold(value=None, color="green"), Threshold(value=900, color="red")])
            )
            .thresholds_style(
                common.GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED)
            )
        )
        .with_panel(
            ts(
                ids,
                "Graphs deferred now",
                "Graphs whose scheduled stop is held back now because they are in use "
                "(defer_while_in_use), by schedule: re-checked every check_every, stopped once "
                "quiet.",
                "none",
                query(
                    f"sum by (rule) (graphnap_graphs_deferred{{{SEL}}})",
                    "{{rule}}",
                ),
                span=8,
            )
        )
        .with_panel(
            ts(
                ids,
                "Deferral outcomes",
                "What became of deferred stops per interval, by schedule: deferred (held back "
                "at a firing), stopped (once quiet), gave_up (still in use when max ran out: "
                "left running), dropped (no longer running, or the schedule changed).",
                "short",
                query(
                    f"sum by (rule, outcome) (increase(graphnap_deferrals_total{{{SEL}}}[$__rate_interval]))",
                    "{{rule}} {{outcome}}",
                ),
                bars=True,
                span=8,
            )
        )
    )

    board = board.with_row(dashboard.Row("Daemon and inventory").id(ids()))
    board = (
        board.with_panel(
            ts(
                ids,
                "Time since last successful inventory",
                "Age of each project's last successful graph listing (every inventory "
                "interval, 1 min by default, and at every firing). A growing line means GES "
                "cannot be listed: credentials, endpoint or an outage. GraphnapInventoryStale "
                "fires at 15 min.",
                "s",
                query(
                    f"time() - max by (project) (graphnap_inventory_last_success_timestamp_seconds{{{PSEL}}})",
                    "{{project}}",
                ),
            )
        )
        .with_panel(
            ts(
                ids,
                "Process CPU",
                "CPU used by the graphnap process, as a share of one core. A few percent "
                "between firings; a firing over thousands of graphs takes a burst.",
                "percentunit",
                query(
                    f"sum by (instance) (rate(process_cpu_seconds_total{{{SEL}}}[$__rate_interval]))",
                    "{{instance}}",
                ),
            )
        )
        .with_panel(
            ts(
                ids,
                "Resident memory",
                "Resident set size of the graphnap process (about 60 MiB idle); compare with "
                "the chart's resources.limits.memory.",
                "bytes",
                query(
                    f"sum by (instance) (process_resident_memory_bytes{{{SEL}}})",
                    "{{instance}}",
                ),
            )
        )
        .with_panel(
            ts(
                ids,
                "Open file descriptors",
                "File descriptors the graphnap process holds: sockets to GES, IAM and Cloud "
                "Eye, and a few files. A line that only grows is a leak.",
                "short",
                query(f"sum by (instance) (process_open_fds{{{SEL}}})", "{{instance}}"),
            )
        )
    )
    board = notifications_row(board, ids)
    built = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    # The SDK's AnnotationQuery has no setters for the Prometheus annotation options yet.
    for annotation in built["annotations"]["list"]:
        if annotation.get("name") == "graphnap actions":
            annotation.update(
                titleFormat="{{action}} by {{rule}}: {{outcome}}",
                tagKeys="rule,action,outcome",
                step="1m",
            )
    return built


# --- leader election (issue 17) ------------------------------------------------------------


def leader_election_row(board, ids: Ids):
    """Who leads and how often that changed: every replica exports graphnap_leader (1 on the
    one that acts, 0 on followers) and counts the times it became the leader."""
    board = board.with_row(dashboard.Row("Leader election").id(ids()))
    return (
        board.with_panel(
            single(
                ids,
                "Replicas leading",
                "Replicas with graphnap_leader 1: exactly 1 is right. 0 means nothing stops or "
                "starts graphs (GraphnapNoLeader fires after 2 minutes); a replica without "
                "leader election always leads.",
                "none",
                query(f"sum(max by (namespace, instance) (graphnap_leader{{{SEL}}}))"),
                span=4,
            ).thresholds(
                dashboard.ThresholdsConfig()
                .mode(ThresholdsMode.ABSOLUTE)
                .steps(
                    [
                        Threshold(value=None, color="red"),
                        Threshold(value=1, color="green"),
                        Threshold(value=2, color="red"),
                    ]
                )
            )
        )
        .with_panel(
            ts(
                ids,
                "Leader by replica",
                "1 while a replica holds the Lease and acts, 0 while it follows. A handover "
                "shows as one line dropping and another rising within the lease duration.",
                "short",
                query(
                    f"max by (pod, instance) (graphnap_leader{{{SEL}}})",
                    "{{pod}} {{instance}}",
                ),
                span=8,
            )
        )
        .with_panel(
            ts(
                ids,
                "Leadership transitions",
                "Times each replica became the leader. One at a rollout or a node drain is "
                "normal; GraphnapLeaderFlapping fires at more than 3 in 15 minutes.",
                "short",
                query(
                    f"sum by (pod, instance) (increase(graphnap_leader_transitions_total{{{SEL}}}[$__rate_interval]))",
                    "{{pod}} {{instance}}",
                ),
                bars=True,
                span=6,
            )
        )
        .with_panel(
            ts(
                ids,
                "Time since last lease renewal",
                "Age of each replica's last renewal of the Lease. The leader's stays below the "
                "retry period (2 s by default); a follower's grows from when it last led.",
                "s",
                query(
                    f"time() - max by (pod, instance) (graphnap_leader_last_renew_timestamp_seconds{{{SEL}}} > 0)",
                    "{{pod}} {{instance}}",
                ),
                span=6,
            )
        )
    )


# --- end of leader election ----------------------------------------------------------------


# --- notifications (issue 15) --------------------------------------------------------------


def notifications_row(board, ids: Ids):
    """What graphnap told people, per channel and message kind: delivered, given up after
    the retries (GraphnapNotificationsFailing), dropped unsent, and what waits in each
    channel's outbox. The series appear with a channel's first message."""
    board = board.with_row(dashboard.Row("Notifications").id(ids()))
    return (
        board.with_panel(
            ts(
                ids,
                "Notifications sent",
                "Messages per interval a channel's receiver accepted, by channel and kind "
                "(warning before a stop, summary after a firing, failure, deferral, idle_stop, "
                "hold, test); deduplicated: a warning already sent or queued, not sent again.",
                "short",
                query(
                    f'sum by (channel, kind, outcome) (increase(graphnap_notifications_total{{{SEL}, outcome=~"sent|deduplicated"}}[$__rate_interval])) > 0',
                    "{{channel}} {{kind}} {{outcome}}",
                ),
                bars=True,
                stacked=True,
                span=12,
            )
        )
        .with_panel(
            ts(
                ids,
                "Notifications failed",
                "Messages per interval given up after every retry (or routed to a channel whose "
                "secrets are missing), by channel and kind. Any in 30 minutes fires "
                "GraphnapNotificationsFailing; the log line `notification not delivered` has the "
                "receiver's answer. Stops and starts go on regardless.",
                "short",
                query(
                    f'sum by (channel, kind) (increase(graphnap_notifications_total{{{SEL}, outcome="failed"}}[$__rate_interval])) > 0',
                    "{{channel}} {{kind}}",
                ),
                bars=True,
                span=12,
            )
        )
        .with_panel(
            ts(
                ids,
                "Notifications dropped",
                "Messages per interval dropped unsent, by channel and kind: the oldest in a "
                "full outbox (a receiver slower than the messages for long; "
                "notifications.delivery.queue bounds it) or, kind reload, what a channel "
                "removed from the config still held.",
                "short",
                query(
                    f"sum by (channel, kind) (increase(graphnap_notifications_dropped_total{{{SEL}}}[$__rate_interval])) > 0",
                    "{{channel}} {{kind}}",
                ),
                bars=True,
                span=12,
            )
        )
        .with_panel(
            ts(
                ids,
                "Outbox queue",
                "Messages waiting in each channel's outbox, not counting the one being "
                "delivered. Near 0 normally; a line that stays up is a slow or failing "
                "receiver, and at notifications.delivery.queue the oldest are dropped.",
                "none",
                query(
                    f"max by (channel) (graphnap_notification_queue{{{SEL}}})",
                    "{{channel}}",
                ),
                span=12,
            )
        )
    )


# --- end of notifications -------------------------------------------------------------------


def label_variable(name: str, label: str, expr: str, description: str):
    """A multi-value query variable whose All matches any value, and also no label at all."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DS)
        .query(expr)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    wanted = render()
    if args.check:
        have = args.output.read_text() if args.output.exists() else ""
        if have != wanted:
            sys.stdout.writelines(
                difflib.unified_diff(
                    have.splitlines(keepends=True),
                    wanted.splitlines(keepends=True),
                    str(args.output),
                    "generated",
                )
            )
            print(
                f"{args.output} is not what deploy/dashboard/generate.py makes: run it and commit.",
                file=sys.stderr,
            )
            return 1
        return 0
    args.output.write_text(wanted)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
