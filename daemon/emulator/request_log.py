"""The gateway's request log: every request with its arrival and answer times, and running
counts so that counting never scans the log."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass
class RequestRecord:
    """One request as the gateway saw it. Times are seconds on the emulator's monotonic
    clock (time.monotonic by default: the same clock in every process of the machine, so
    a benchmark can compare them with its own instants)."""

    method: str
    path: str
    operation: str
    status: int
    project_id: str = ""
    graph_id: str = ""
    arrived_s: float = 0.0
    answered_s: float = 0.0


class RequestLog:
    """Every request with its arrival and answer times, and running counts per operation,
    per (operation, graph) and per graph, so that counting never scans the log."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self._by_operation: Counter[str] = Counter()
        self._by_graph: Counter[tuple[str, str]] = Counter()
        self.per_graph: Counter[str] = Counter()  # graph id -> requests naming it

    def add(self, record: RequestRecord) -> None:
        self.records.append(record)
        self._by_operation[record.operation] += 1
        if record.graph_id:
            self._by_graph[(record.operation, record.graph_id)] += 1
            self.per_graph[record.graph_id] += 1

    def count(self, operation: str, graph_id: str | None = None) -> int:
        if graph_id is None:
            return self._by_operation[operation]
        return self._by_graph[(operation, graph_id)]

    def clear(self) -> None:
        self.records.clear()
        self._by_operation.clear()
        self._by_graph.clear()
        self.per_graph.clear()
