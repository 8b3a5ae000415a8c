"""`graphnap backtest RULE`: what an idle rule would have done over the last days. It fetches
the selected graphs' Cloud Eye history in batches per project, replays it per graph with the
live verdict (daemon.rules.idle.replay), and renders hours stopped, stops and money saved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from daemon.cloud.errors import ApiError
from daemon.domain.model import Graph, MetricApi
from daemon.domain.periods import history_period
from daemon.rules.idle import IdleCriteria, Replay, fmt_duration, replay


@dataclass(frozen=True, slots=True)
class GraphBacktest:
    project: str
    graph: Graph
    replay: Replay
    hourly_price: float | None  # None: its size has no price in the config

    @property
    def saved(self) -> float | None:
        return None if self.hourly_price is None else self.replay.saved(self.hourly_price)


@dataclass(frozen=True, slots=True)
class BacktestReport:
    rule: str
    start: datetime
    end: datetime
    period_s: int
    currency: str
    graphs: tuple[GraphBacktest, ...]
    failures: Mapping[str, str] = field(default_factory=dict)  # project -> why it is missing

    @property
    def hours_stopped(self) -> float:
        return sum(g.replay.hours_stopped for g in self.graphs)

    @property
    def stops(self) -> int:
        return sum(len(g.replay.stops) for g in self.graphs)

    @property
    def saved(self) -> float:
        return sum(g.saved or 0.0 for g in self.graphs)


async def backtest(
    rule: str,
    criteria: IdleCriteria,
    graphs: Mapping[str, Sequence[Graph]],
    apis: Mapping[str, MetricApi],
    *,
    now: datetime,
    days: float,
    check_every: timedelta,
    hourly_price: Callable[[Graph], float | None],
    currency: str = "USD",
) -> BacktestReport:
    """Replay `criteria` over the last `days` for the graphs selected per project (the caller
    selects them, as the live pass would). A project whose history cannot be read is named
    in `failures`; the others are still replayed."""
    period_s = history_period(days)
    start, end = now - timedelta(days=days), now
    results: list[GraphBacktest] = []
    failures: dict[str, str] = {}
    for project, selected in graphs.items():
        if not selected:
            continue
        try:
            history = await apis[project].request_counts(
                [g.id for g in selected],
                metric=criteria.metric,
                aggregation=criteria.aggregation,
                start=start,
                end=end,
                period_s=period_s,
            )
        except ApiError as exc:
            failures[project] = str(exc)
            continue
        for graph in selected:
            results.append(
                GraphBacktest(
                    project,
                    graph,
                    replay(
                        graph,
                        history.get(graph.id, []),
                        start=start,
                        end=end,
                        criteria=criteria,
                        period_s=period_s,
                        check_every=check_every,
                    ),
                    hourly_price(graph),
                )
            )
    results.sort(key=lambda r: (r.project, r.graph.name))
    return BacktestReport(rule, start, end, period_s, currency, tuple(results), failures)


def render(report: BacktestReport) -> str:
    """A table per graph, then failures, then the totals (always the last line)."""
    days = (report.end - report.start) / timedelta(days=1)
    lines = [
        f"backtest {report.rule}: {days:g} days of Cloud Eye history, "
        f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC, "
        f"{fmt_duration(timedelta(seconds=report.period_s))} periods",
    ]
    saved_head = f"saved ({report.currency})"
    rows = [("project", "graph", "stops", "hours stopped", saved_head)]
    for result in report.graphs:
        saved = result.saved
        rows.append(
            (
                result.project,
                result.graph.name,
                str(len(result.replay.stops)),
                f"{result.replay.hours_stopped:.1f}",
                "no price" if saved is None else f"{saved:.2f}",
            )
        )
    total = ("total", "", str(report.stops), f"{report.hours_stopped:.1f}", f"{report.saved:.2f}")
    widths = [max(len(row[i]) for row in [*rows, total]) for i in range(5)]

    def line(row: tuple[str, str, str, str, str]) -> str:
        left = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        right = [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        return "  ".join(left + right).rstrip()

    lines += [line(row) for row in rows]
    lines += [f"{project}: not replayed: {why}" for project, why in report.failures.items()]
    lines.append(line(total))
    return "\n".join(lines)
