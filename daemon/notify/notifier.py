"""The notifier: what the daemon calls. It routes each message (by project, rule, graph tags
and kind) to its channels' outboxes, one message per route, and gathers outcomes into
summaries. Every entry point is synchronous, returns at once and never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime

from daemon.config.notifications import MessageKind, Notifications, Route
from daemon.domain.hold import Hold
from daemon.domain.model import Clock, Sleep
from daemon.notify import message as msg
from daemon.notify.batches import Batches
from daemon.notify.channels import Channel
from daemon.notify.digest import DailyDigest
from daemon.notify.message import Message, OutcomeFacts, WarnedGraph
from daemon.notify.outbox import Outbox
from daemon.notify.sent import SentKeys
from daemon.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

TagLookup = Callable[[str, str], Mapping[str, str] | None]
"""(project, graph id) -> the graph's tags from the last inventory, None when unknown."""
NameLookup = Callable[[str, str], str | None]
"""(project, graph id) -> the graph's name from the last inventory, None when unknown."""
TICK_S = 1.0


def _no_tags(project: str, graph_id: str) -> None:
    return None


def route_id(route: Route) -> str:
    """A route's identity in deduplication keys: its content, so reordering routes in the
    config does not make a warning look new."""
    return hashlib.sha256(route.model_dump_json().encode()).hexdigest()[:12]


class Notifier:
    def __init__(
        self,
        config: Notifications,
        channels: Mapping[str, Channel],
        *,
        metrics: Metrics,
        sent: SentKeys,
        clock: Clock,
        monotonic: Callable[[], float],
        sleep: Sleep,
        idle_rules: Collection[str] = (),
        tags: TagLookup = _no_tags,
        names: NameLookup | None = None,
        daily: DailyDigest | None = None,
    ) -> None:
        self._metrics = metrics
        self._daily = daily
        self._sent = sent
        self._clock = clock
        self._sleep = sleep
        self._tags = tags
        self._names = names
        self._outboxes: dict[str, Outbox] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._config = config
        self._idle_rules = frozenset(idle_rules)
        self._batches = Batches(
            monotonic=monotonic, settle_s=config.settle, max_wait_s=config.summary_max_wait
        )
        self.update(config, channels, idle_rules=idle_rules)

    # --- life ---

    def update(
        self,
        config: Notifications,
        channels: Mapping[str, Channel],
        *,
        idle_rules: Collection[str] = (),
    ) -> None:
        """A reloaded config: new channels get an outbox, removed ones are stopped (what
        they still held is dropped and counted), kept ones keep their queue."""
        self._config = config
        self._idle_rules = frozenset(idle_rules)
        self._batches.settle_s = config.settle
        self._batches.max_wait_s = config.summary_max_wait
        for name in list(self._outboxes):
            if name not in channels or channels[name] is not self._outboxes[name].channel:
                self._retire(name)
        for name, channel in channels.items():
            if name not in self._outboxes:
                self._outboxes[name] = Outbox(
                    channel,
                    delivery=config.delivery,
                    metrics=self._metrics,
                    sent=self._sent,
                    clock=self._clock,
                    sleep=self._sleep,
                )
                if self._runner is not None:
                    self._tasks[name] = asyncio.create_task(self._outboxes[name].run())

    def _retire(self, name: str) -> None:
        outbox = self._outboxes.pop(name)
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
        if len(outbox):  # the channel left the config: what it still held goes unsent
            self._metrics.notifications_dropped.labels(name, "reload").inc(len(outbox))
        self._metrics.notification_queue.labels(name).set(0)

    def start(self) -> None:
        """Start the outboxes' workers and the batches' clock (inside the running loop)."""
        if self._runner is not None:
            return
        for name, outbox in self._outboxes.items():
            self._tasks[name] = asyncio.create_task(outbox.run())
        self._runner = asyncio.create_task(self._tick_forever())

    async def close(self, grace_s: float = 5.0) -> None:
        """Flush the batches, give the outboxes `grace_s` to deliver, then stop them."""
        self._flush(flush_all=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained(), grace_s)
        tasks = [*self._tasks.values(), *([self._runner] if self._runner else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._runner = None

    async def drained(self) -> None:
        """Until every outbox is empty and idle."""
        for outbox in list(self._outboxes.values()):
            await outbox.wait_idle()

    async def _tick_forever(self) -> None:
        while True:
            await self._sleep(TICK_S)
            self.tick()

    def tick(self) -> None:
        """Send what the batches have ready, and the daily digest when it is due (the run
        loop calls this every second)."""
        self._flush(flush_all=False)
        self._tell_digest()
        if self._daily is not None:
            self._daily.keep()

    # --- what the daemon tells ---

    def on_outcome(self, outcome: OutcomeFacts) -> None:
        """An Outcomes subscriber: `outcomes.subscribe(notifier.on_outcome)`."""
        try:
            self._batches.add(outcome)
        except Exception:
            log.exception("outcome not taken for notification", extra={"rule": outcome.rule})

    def warn(
        self, rule: str, action: str, fire_at: datetime, graphs: Sequence[WarnedGraph]
    ) -> None:
        """Before a firing: one message per route that takes some of `graphs`, sent once
        per firing, route and channel, even across a restart."""
        try:
            for route in self._routes("warning"):
                chosen = [
                    g for g in graphs if route.match.is_graph(g.project, rule, _tags(g, self._tags))
                ]
                if chosen:
                    key = f"warning/{rule}/{fire_at.isoformat()}/{route_id(route)}"
                    message = msg.warning(
                        rule, action, fire_at, chosen, max_items=self._config.max_items, key=key
                    )
                    self._send(route, message)
        except Exception:
            log.exception("warning not queued", extra={"rule": rule})

    def hold_event(self, event: str, hold: Hold) -> None:
        """A hold `made`, `expired` or `released`."""
        try:
            for route in self._routes("hold"):
                project = hold.graphs.project
                if route.match.projects and project not in route.match.projects:
                    continue
                if route.match.rules or route.match.tags:
                    continue  # a hold belongs to no rule, and names graphs, not their tags
                self._send(route, msg.hold(event, hold, at=self._clock(), names=self._named(hold)))
        except Exception:
            log.exception("hold notification not queued", extra={"hold": hold.id})

    def send_message(self, message: Message) -> None:
        """Any message, routed by its kind and rule alone."""
        for route in self._routes(message.kind):
            if (
                not route.match.projects
                and not route.match.tags
                and (not route.match.rules or message.rule in route.match.rules)
            ):
                self._send(route, message)

    # --- inside ---

    def _named(self, hold: Hold) -> dict[str, str]:
        """The names of a hold's graphs held by id (a wake holds by id), where known."""
        if self._names is None:
            return {}
        found = {i: self._names(hold.graphs.project, i) for i in hold.graphs.ids}
        return {i: name for i, name in found.items() if name}

    def _routes(self, kind: MessageKind) -> list[Route]:
        return [r for r in self._config.routes if r.match.is_kind(kind)]

    def _send(self, route: Route, message: Message) -> None:
        for name in dict.fromkeys(route.channels):
            outbox = self._outboxes.get(name)
            if outbox is None:  # a channel without its secrets: reported at load
                self._metrics.notifications.labels(name, message.kind, "failed").inc()
                continue
            outbox.put(message)

    def _flush(self, *, flush_all: bool) -> None:
        try:
            ready = self._batches.due(flush_all=flush_all)
        except Exception:
            log.exception("notification batches failed")
            return
        for item in ready:
            kind: MessageKind
            if item.kind == "summary":
                kind = "idle_stop" if item.rule in self._idle_rules else "summary"
            elif item.kind == "failure":
                kind = "failure"
            else:
                kind = "deferral"
            for route in self._routes(kind):
                chosen = [
                    o
                    for o in item.outcomes
                    if route.match.is_graph(o.project, o.rule, self._tags(o.project, o.graph_id))
                ]
                if not chosen:
                    continue
                try:
                    self._send(route, self._render(kind, item.rule, chosen))
                except Exception:
                    log.exception("notification not rendered", extra={"rule": item.rule})

    def _tell_digest(self) -> None:
        schedule = self._config.digest
        if self._daily is None or schedule is None:
            return
        try:
            now = self._clock()
            day = self._daily.due(schedule, now)
            if day is None:
                return
            self._daily.done(day)  # once, even if a route fails to render
            for route in self._routes("digest"):
                if route.match.rules or route.match.tags:
                    continue  # the digest belongs to no rule and lists no graphs
                key = f"digest/{day.isoformat()}/{route_id(route)}"
                message = self._daily.message(
                    day, schedule, route.match.projects, at=now,
                    max_items=self._config.max_items, key=key,
                )  # fmt: skip
                if message is not None:
                    self._send(route, message)
        except Exception:
            log.exception("daily digest not queued")

    def _render(self, kind: MessageKind, rule: str, outcomes: Sequence[OutcomeFacts]) -> Message:
        max_items = self._config.max_items
        if kind == "failure":
            return msg.failures(rule, outcomes, max_items=max_items)
        if kind == "deferral":
            return msg.deferrals(rule, outcomes, max_items=max_items)
        return msg.summary(rule, outcomes, max_items=max_items, idle=kind == "idle_stop")


def _tags(graph: WarnedGraph, lookup: TagLookup) -> Mapping[str, str] | None:
    return graph.tags if graph.tags is not None else lookup(graph.project, graph.graph_id)
