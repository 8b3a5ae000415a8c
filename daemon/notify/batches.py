"""Outcomes gathered per rule into what people read once: a firing's summary when it has
settled (no news for `settle`, and its jobs ended or `max_wait` passed), failures and given-up
deferrals a few seconds after they happen. Time comes from an injected monotonic clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from daemon.notify.message import OutcomeFacts

FAILURE_SETTLE_S = 5.0  # failures of one pass arrive together: one message, not one a graph
# What daemon.runtime.passes writes when a deferred stop is given up (the graph stayed in use).
DEFERRAL_GIVEN_UP = "not stopped: still in use"
# A summary is worth sending when something was done or tried; a pass that only skipped
# (a keep-stopped window finding its graphs stopped, every 5 minutes) says nothing new.
_ACTED = frozenset({"succeeded", "failed", "dry_run", "requested"})


@dataclass
class _Batch:
    first_s: float
    last_s: float
    latest: dict[tuple[str, str], OutcomeFacts] = field(default_factory=dict)
    pending: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class _Quick:
    last_s: float
    items: list[OutcomeFacts] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Ready:
    """What is ready to be told: `kind` summary, failure or deferral, for one rule."""

    kind: str
    rule: str
    outcomes: tuple[OutcomeFacts, ...]


class Batches:
    def __init__(
        self, *, monotonic: Callable[[], float], settle_s: float, max_wait_s: float
    ) -> None:
        self._monotonic = monotonic
        self.settle_s = settle_s
        self.max_wait_s = max_wait_s
        self._batches: dict[str, _Batch] = {}
        self._failures: dict[str, _Quick] = {}
        self._deferrals: dict[str, _Quick] = {}

    def add(self, o: OutcomeFacts) -> None:
        now = self._monotonic()
        if o.outcome == "skipped" and o.reason.startswith(DEFERRAL_GIVEN_UP):
            quick = self._deferrals.setdefault(o.rule, _Quick(now))
            quick.items.append(o)
            quick.last_s = now
            return
        batch = self._batches.setdefault(o.rule, _Batch(now, now))
        batch.last_s = now
        graph = (o.project, o.graph_id)
        batch.latest[graph] = o
        if o.outcome == "requested":
            batch.pending.add(graph)
        else:
            batch.pending.discard(graph)
        if o.outcome == "failed":
            quick = self._failures.setdefault(o.rule, _Quick(now))
            quick.items.append(o)
            quick.last_s = now

    def due(self, *, flush_all: bool = False) -> list[Ready]:
        """Take what is ready now (everything, with `flush_all`: at shutdown)."""
        now = self._monotonic()
        ready: list[Ready] = []
        for kind, quicks in (("failure", self._failures), ("deferral", self._deferrals)):
            for rule, quick in list(quicks.items()):
                if flush_all or now - quick.last_s >= FAILURE_SETTLE_S:
                    del quicks[rule]
                    ready.append(Ready(kind, rule, tuple(quick.items)))
        for rule, batch in list(self._batches.items()):
            settled = now - batch.last_s >= self.settle_s and not batch.pending
            if not (flush_all or settled or now - batch.first_s >= self.max_wait_s):
                continue
            del self._batches[rule]
            outcomes = tuple(batch.latest.values())
            if any(o.outcome in _ACTED for o in outcomes):
                ready.append(Ready("summary", rule, outcomes))
        return ready
