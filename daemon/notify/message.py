"""A message as channels receive it (a title, blocks of lines with optional links, and a
machine form for webhooks), and how each kind is written from what graphnap knows.

Lists are bounded: a 500-graph firing is one message with `max_items` lines and "and 480 more".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from daemon.config.notifications import MessageKind
from daemon.domain.hold import Hold


class OutcomeFacts(Protocol):
    """What a message needs of daemon.runtime.outcomes.Outcome (notify sits below runtime,
    so it names the shape, not the class)."""

    @property
    def at(self) -> datetime: ...
    @property
    def project(self) -> str: ...
    @property
    def graph_id(self) -> str: ...
    @property
    def graph(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def failure(self) -> str: ...


@dataclass(frozen=True, slots=True)
class WarnedGraph:
    """A graph a coming stop would stop, with the link that postpones it (signed by the
    control page: notify only shows it)."""

    project: str
    graph_id: str
    graph: str
    postpone_url: str = ""
    tags: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ProjectDay:
    """One project's day in the daily digest (daemon.notify.ledger): money saved by
    currency, stops done and failed, and the money saved since counting began."""

    project: str
    saved: Mapping[str, float]
    stopped: int
    failed: int
    total: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    link: str = ""  # shown after the text as `link_text`
    link_text: str = ""


@dataclass(frozen=True, slots=True)
class Block:
    heading: str
    lines: tuple[Line, ...] = ()
    more: int = 0  # lines left out: "and N more"


@dataclass(frozen=True, slots=True)
class Message:
    kind: MessageKind
    title: str
    blocks: tuple[Block, ...]
    at: datetime
    rule: str = ""
    key: str = ""  # deduplication key; "" for a message that may go twice
    data: Mapping[str, Any] | None = None  # the machine form (the webhook's event data)

    def lines(self) -> list[str]:
        """Plain text lines, links written out (SMN, logs, tests)."""
        out: list[str] = []
        for block in self.blocks:
            if block.heading:
                out.append(block.heading)
            for line in block.lines:
                out.append(
                    f"- {line.text}" + (f" {line.link_text}: {line.link}" if line.link else "")
                )
            if block.more:
                out.append(f"- and {block.more} more")
        return out

    def text(self) -> str:
        return "\n".join([self.title, *self.lines()])

    def markdown(self) -> str:
        """Markdown as WeCom and DingTalk render it: `**bold**`, `[text](url)`, `- ` lists."""
        out = [f"**{_md(self.title)}**"]
        for block in self.blocks:
            if block.heading:
                out.append(f"**{_md(block.heading)}**")
            for line in block.lines:
                link = f" [{_md(line.link_text)}]({line.link})" if line.link else ""
                out.append(f"- {_md(line.text)}{link}")
            if block.more:
                out.append(f"- and {block.more} more")
        return "\n".join(out)


def _md(text: str) -> str:
    return text.replace("[", "(").replace("]", ")").replace("*", "\\*")


def _bounded(lines: Sequence[Line], heading: str, max_items: int) -> Block:
    return Block(heading, tuple(lines[:max_items]), max(len(lines) - max_items, 0))


def _graph(project: str, graph: str) -> str:
    return f"{graph} ({project})"


# --- the kinds ----------------------------------------------------------------------------


def warning(
    rule: str,
    action: str,
    fire_at: datetime,
    graphs: Sequence[WarnedGraph],
    *,
    max_items: int,
    key: str,
) -> Message:
    """Before a firing: the graphs it would act on, each with its postpone link."""
    when = fire_at.strftime("%H:%M %z")
    lines = [
        Line(_graph(g.project, g.graph), g.postpone_url, "postpone" if g.postpone_url else "")
        for g in sorted(graphs, key=lambda g: (g.project, g.graph))
    ]
    return Message(
        kind="warning",
        title=f"graphnap: {rule} will {action} {len(graphs)} graph{_s(len(graphs))} at {when}",
        blocks=(_bounded(lines, "Postpone a graph to keep it running:", max_items),),
        at=fire_at,
        rule=rule,
        key=key,
        data={
            "rule": rule,
            "action": action,
            "fire_at": fire_at.isoformat(),
            "graphs": [
                {
                    "project": g.project,
                    "id": g.graph_id,
                    "name": g.graph,
                    "postpone_url": g.postpone_url,
                }
                for g in graphs
            ],
        },
    )


def summary(
    rule: str, outcomes: Sequence[OutcomeFacts], *, max_items: int, idle: bool, key: str = ""
) -> Message:
    """After a firing: what became of each graph, counted, with bounded lists."""
    by_kind: dict[str, list[OutcomeFacts]] = {}
    for o in outcomes:
        by_kind.setdefault(o.outcome, []).append(o)
    action = outcomes[0].action if outcomes else "stop"
    done = by_kind.get("succeeded", [])
    verb = {"stop": "stopped", "start": "started"}.get(action, action)
    blocks: list[Block] = []
    counts = [f"{verb} {len(done)}"]
    if done:
        blocks.append(
            _bounded(
                [Line(_graph(o.project, o.graph)) for o in done], f"{verb.capitalize()}:", max_items
            )
        )
    if by_kind.get("already_done"):
        counts.append(f"already {verb} {len(by_kind['already_done'])}")
    if by_kind.get("dry_run"):
        counts.append(f"dry run {len(by_kind['dry_run'])}")
        blocks.append(
            _bounded(
                [Line(_graph(o.project, o.graph)) for o in by_kind["dry_run"]],
                f"Would have {verb} (dry run):",
                max_items,
            )
        )
    skipped = by_kind.get("skipped", [])
    if skipped:
        counts.append(f"skipped {len(skipped)}")
        reasons = Counter(o.reason for o in skipped)
        blocks.append(
            _bounded(
                [Line(f"{n}x {reason}") for reason, n in reasons.most_common()],
                "Skipped, by reason:",
                max_items,
            )
        )
    failed = by_kind.get("failed", [])
    if failed:
        codes = Counter(o.failure or "error" for o in failed)
        counts.append(
            f"failed {len(failed)} ({', '.join(f'{c} x{n}' for c, n in codes.most_common())})"
        )
        blocks.append(_failure_block(failed, max_items))
    pending = by_kind.get("requested", [])
    if pending:
        counts.append(f"still running {len(pending)}")
    at = max((o.at for o in outcomes), default=datetime.min)
    return Message(
        kind="idle_stop" if idle else "summary",
        title=f"graphnap: {rule}: " + ", ".join(counts),
        blocks=tuple(blocks),
        at=at,
        rule=rule,
        key=key,
        data={
            "rule": rule,
            "action": action,
            "counts": {kind: len(items) for kind, items in by_kind.items()},
            "failures": dict(Counter(o.failure or "error" for o in failed)),
            "graphs": [_outcome_data(o) for o in outcomes[: max_items * 10]],
            "graphs_left_out": max(len(outcomes) - max_items * 10, 0),
        },
    )


def _failure_block(failed: Sequence[OutcomeFacts], max_items: int) -> Block:
    return _bounded(
        [Line(f"{_graph(o.project, o.graph)}: {o.failure or 'error'}: {o.reason}") for o in failed],
        "Failed:",
        max_items,
    )


def failures(rule: str, failed: Sequence[OutcomeFacts], *, max_items: int) -> Message:
    """Actions that failed, as soon as they are known."""
    action = failed[0].action if failed else "stop"
    return Message(
        kind="failure",
        title=f"graphnap: {rule}: {action} failed for {len(failed)} graph{_s(len(failed))}",
        blocks=(_failure_block(failed, max_items),),
        at=max(o.at for o in failed),
        rule=rule,
        data={"rule": rule, "action": action, "graphs": [_outcome_data(o) for o in failed]},
    )


def deferrals(rule: str, given_up: Sequence[OutcomeFacts], *, max_items: int) -> Message:
    """Deferred stops given up: the graphs stayed in use until the deferral's `max`."""
    return Message(
        kind="deferral",
        title=f"graphnap: {rule}: {len(given_up)} graph{_s(len(given_up))} not stopped, still in use",
        blocks=(
            _bounded(
                [Line(f"{_graph(o.project, o.graph)}: {o.reason}") for o in given_up],
                "Deferral given up:",
                max_items,
            ),
        ),
        at=max(o.at for o in given_up),
        rule=rule,
        data={"rule": rule, "graphs": [_outcome_data(o) for o in given_up]},
    )


def hold(
    event: str, made: Hold, *, at: datetime, names: Mapping[str, str] | None = None
) -> Message:
    """A hold made ("made") or ended ("expired", "released"); `names` gives the names of
    graphs held by id, where the inventory knows them."""
    graphs = made.graphs
    named = names or {}
    which = ", ".join([*(named.get(i, i) for i in graphs.ids), *graphs.names]) or "(none)"
    until = made.until.strftime("%Y-%m-%d %H:%M %z")
    return Message(
        kind="hold",
        title=f"graphnap: hold {event}: keep {made.keep} {which} ({graphs.project}) until {until}",
        blocks=(Block("", (Line(f"by {made.by}: {made.reason}"),)),),
        at=at,
        key=f"hold/{made.id}/{event}",
        data={
            "event": event,
            "id": made.id,
            "project": graphs.project,
            "ids": list(graphs.ids),
            "names": list(graphs.names),
            "keep": made.keep,
            "until": made.until.isoformat(),
            "reason": made.reason,
            "by": made.by,
            "source": made.source,
        },
    )


def digest(
    day: date,
    zone: str,
    rows: Sequence[ProjectDay],
    *,
    since: date,
    at: datetime,
    max_items: int,
    key: str,
) -> Message:
    """Once a day: `day`'s estimated savings, stops and failed stops per project, the
    totals since `since`, and a fleet line with the sums."""
    fleet = ProjectDay(
        "fleet",
        saved=_sum(r.saved for r in rows),
        stopped=sum(r.stopped for r in rows),
        failed=sum(r.failed for r in rows),
        total=_sum(r.total for r in rows),
    )
    lines = [Line(f"{r.project}: {_day_text(r, since)}") for r in rows]
    return Message(
        kind="digest",
        title=f"graphnap: digest for {day.isoformat()} ({zone}): saved {_money(fleet.saved)}",
        blocks=(
            _bounded(lines, "Per project:", max_items),
            Block("Fleet:", (Line(_day_text(fleet, since)),)),
        ),
        at=at,
        key=key,
        data={
            "day": day.isoformat(),
            "timezone": zone,
            "since": since.isoformat(),
            "projects": [_day_data(r) for r in rows],
            "fleet": {k: v for k, v in _day_data(fleet).items() if k != "project"},
        },
    )


def _sum(amounts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for by_currency in amounts:
        for currency, amount in by_currency.items():
            total[currency] = total.get(currency, 0.0) + amount
    return total


def _money(by_currency: Mapping[str, float]) -> str:
    return " + ".join(f"{a:,.2f} {c}" for c, a in sorted(by_currency.items())) or "nothing"


def _day_text(r: ProjectDay, since: date) -> str:
    failed = f", {r.failed} stop{_s(r.failed)} failed" if r.failed else ""
    return (
        f"saved {_money(r.saved)}; {r.stopped} graph{_s(r.stopped)} stopped{failed}; "
        f"{_money(r.total)} since {since.isoformat()}"
    )


def _day_data(r: ProjectDay) -> dict[str, Any]:
    return {
        "project": r.project,
        "saved": {c: round(a, 2) for c, a in sorted(r.saved.items())},
        "stopped": r.stopped,
        "stop_failures": r.failed,
        "total_saved": {c: round(a, 2) for c, a in sorted(r.total.items())},
    }


def sample(channel: str, *, at: datetime) -> Message:
    """What `graphnap notify test` sends."""
    return Message(
        kind="test",
        title=f"graphnap: test message to channel {channel}",
        blocks=(
            Block(
                "If you can read this, graphnap can reach you here.",
                (
                    Line(
                        "a warning lists graphs like this one",
                        "https://example.invalid/",
                        "postpone",
                    ),
                ),
            ),
        ),
        at=at,
        data={"channel": channel},
    )


def _outcome_data(o: OutcomeFacts) -> dict[str, str]:
    return {
        "project": o.project,
        "id": o.graph_id,
        "name": o.graph,
        "outcome": o.outcome,
        "reason": o.reason,
        "failure": o.failure,
        "at": o.at.isoformat(),
    }


def _s(n: int) -> str:
    return "" if n == 1 else "s"
