"""The per-graph series (`graphnap_graph_stopped`, `graphnap_graph_hourly_price`): one row
per graph and project, kept as the last inventory left it, rendered to exposition text once
per change of a project (in the scrape's thread), never per series and per scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

_float_text = cast(Callable[[float], str], floatToGoString)  # as prometheus_client writes values

Row = tuple[str, str, int, float | None]
"""(graph id, name, 1 if stopped else 0, hourly price, or None for an unmanaged graph)"""

STOPPED = ("graphnap_graph_stopped", "1 while a graph is stopped.")
PRICE = (
    "graphnap_graph_hourly_price",
    "Configured pay-per-use price of a managed graph per hour.",
)


@dataclass(frozen=True, slots=True)
class _Rows:
    version: int
    rows: tuple[Row, ...]
    currency: str


@dataclass(frozen=True, slots=True)
class _Text:
    version: int
    stopped: str
    priced: str


class GraphSeries:
    """A Prometheus collector over the rows (what registry.collect() and tests read), and
    `text()`, the same families pre-rendered (what /metrics sends)."""

    def __init__(self) -> None:
        self._rows: dict[str, _Rows] = {}
        self._text: dict[str, _Text] = {}
        self._version = 0
        self._render_lock = threading.Lock()  # two scrapes at once render a change once

    def update(self, project: str, rows: Sequence[Row], currency: str) -> bool:
        """A project's rows from its latest inventory; False (and no work) when nothing
        changed since the last one."""
        rows = tuple(rows)
        last = self._rows.get(project)
        if last is not None and last.rows == rows and last.currency == currency:
            return False
        self._version += 1
        self._rows[project] = _Rows(self._version, rows, currency)
        return True

    def remove(self, project: str) -> None:
        self._rows.pop(project, None)
        self._text.pop(project, None)

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(*STOPPED, labels=[]), GaugeMetricFamily(*PRICE, labels=[])]

    def collect(self) -> Iterator[Metric]:
        stopped = GaugeMetricFamily(*STOPPED, labels=["project", "graph", "name"])
        price = GaugeMetricFamily(*PRICE, labels=["project", "graph", "name", "currency"])
        for project, entry in sorted(self._rows.items()):
            for graph, name, is_stopped, hourly in entry.rows:
                stopped.add_metric([project, graph, name], is_stopped)
                if hourly is not None:
                    price.add_metric([project, graph, name, entry.currency], hourly)
        yield stopped
        yield price

    def text(self) -> bytes:
        """Both families in the text exposition format, from each project's cached block;
        a project whose rows changed since is rendered again first."""
        blocks = []
        with self._render_lock:
            for project, entry in sorted(self._rows.items()):
                cached = self._text.get(project)
                if cached is None or cached.version != entry.version:
                    cached = _render(project, entry)
                    self._text[project] = cached
                blocks.append(cached)
        stopped = "".join(b.stopped for b in blocks)
        priced = "".join(b.priced for b in blocks)
        return (
            f"# HELP {STOPPED[0]} {STOPPED[1]}\n# TYPE {STOPPED[0]} gauge\n{stopped}"
            f"# HELP {PRICE[0]} {PRICE[1]}\n# TYPE {PRICE[0]} gauge\n{priced}"
        ).encode()


def _render(project: str, entry: _Rows) -> _Text:
    p, currency = _escape(project), _escape(entry.currency)
    stopped, priced = [], []
    for graph, name, is_stopped, hourly in entry.rows:
        labels = f'project="{p}",graph="{_escape(graph)}",name="{_escape(name)}"'
        stopped.append(f"{STOPPED[0]}{{{labels}}} {'1.0' if is_stopped else '0.0'}\n")
        if hourly is not None:
            priced.append(f'{PRICE[0]}{{{labels},currency="{currency}"}} {_float_text(hourly)}\n')
    return _Text(entry.version, "".join(stopped), "".join(priced))


def _escape(value: str) -> str:
    """A label value as the text format wants it (prometheus_client's own escaping)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value
