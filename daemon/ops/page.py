"""The control page: a static shell, its script and style, and the graph table rendered here.

The table is HTML made on the server with every value escaped; the page's script only fetches
it with the bearer token and puts it in place, so the browser runs no code but ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from html import escape
from importlib.resources import files

from daemon.ops.views import GraphView, HoldView

ASSETS = {"page.js": "application/javascript", "page.css": "text/css"}
KEEP_FOR = ("1h", "3h")
WAKE_FOR = "2h"


@cache
def _read(name: str) -> str:
    return files("daemon.ops").joinpath("page", name).read_text(encoding="utf-8")


def index_html() -> str:
    return _read("index.html")


def asset(name: str) -> tuple[str, str] | None:
    """An asset's text and content type; None for any name not shipped with the page."""
    if name not in ASSETS:
        return None
    return _read(name), ASSETS[name]


def _when(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "—"
    left = at - now
    hint = "now" if left <= timedelta(0) else f"in {_span(left)}"
    stamp = at.strftime("%a %d %b %H:%M %z")
    stamp = f"{stamp[:-2]}:{stamp[-2:]}" if at.utcoffset() is not None else stamp
    return f'<time datetime="{escape(at.isoformat())}">{escape(stamp)}</time> <small>{hint}</small>'


def _span(left: timedelta) -> str:
    minutes = int(left.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def _next(graph: GraphView, action: str, now: datetime) -> str:
    times = [n.at for n in graph.next_actions if n.action == action and n.at is not None]
    if not times:
        return "—"
    soonest = min(times)
    rule = next(n.rule for n in graph.next_actions if n.at == soonest and n.action == action)
    return f"{_when(soonest, now)}<br><small>{escape(rule)}</small>"


def _hold(hold: HoldView, now: datetime) -> str:
    release = (
        f'<button type="button" data-act="release" data-hold="{escape(hold.id)}">Release</button>'
        if hold.source == "api"
        else "<small>(config)</small>"
    )
    return (
        f'<li class="hold keep-{escape(hold.keep)}" data-hold-id="{escape(hold.id)}">'
        f"<b>{escape(hold.keep)}</b> until {_when(hold.until, now)} by {escape(hold.by)}: "
        f"{escape(hold.reason)} {release}</li>"
    )


def _actions(graph: GraphView) -> str:
    data = f'data-project="{escape(graph.project)}" data-graph="{escape(graph.id)}"'
    buttons = [
        f'<button type="button" data-act="hold" data-for="{span}" {data}>'
        f"Keep running {span}</button>"
        for span in KEEP_FOR
    ]
    buttons.append(
        f'<span class="until"><input type="datetime-local" aria-label="keep running until">'
        f'<button type="button" data-act="hold-until" {data}>Keep running until</button></span>'
    )
    if graph.status != "running":
        buttons.append(
            f'<button type="button" data-act="wake" data-for="{WAKE_FOR}" {data}>'
            f"Wake for {WAKE_FOR}</button>"
        )
    return " ".join(buttons)


def _row(graph: GraphView, holds: Sequence[HoldView], now: datetime) -> str:
    mine = [h for h in holds if h.project == graph.project and h in graph.holds]
    held = f'<ul class="holds">{"".join(_hold(h, now) for h in mine)}</ul>' if mine else "—"
    outcome = f"<br><small>{escape(graph.last_outcome)}</small>" if graph.last_outcome else ""
    return (
        f'<tr data-graph-id="{escape(graph.id)}" data-graph-name="{escape(graph.name)}">'
        f"<td><b>{escape(graph.name)}</b><br><small>{escape(graph.project)} · "
        f"{escape(graph.id)}</small></td>"
        f'<td><span class="status status-{escape(graph.status)}">{escape(graph.status)}</span>'
        f"{outcome}</td>"
        f"<td>{_next(graph, 'stop', now)}</td><td>{_next(graph, 'start', now)}</td>"
        f'<td>{held}</td><td class="actions">{_actions(graph)}</td></tr>'
    )


def render_graphs(
    graphs: Sequence[GraphView], holds: Sequence[HoldView], *, token_name: str, now: datetime
) -> str:
    """The graph table, and below it the holds on globs (those not tied to one graph)."""
    tied = {h.id for g in graphs for h in g.holds}
    loose = [h for h in holds if h.id not in tied]
    rows = "".join(_row(g, holds, now) for g in graphs)
    if not rows:
        rows = '<tr><td colspan="6">No graph this token may touch is managed.</td></tr>'
    extra = (
        f'<h2>Holds on name patterns</h2><ul class="holds">'
        f"{''.join(f'<li>{escape(h.project)}/{escape(h.graph)}: {_hold(h, now)}</li>' for h in loose)}</ul>"
        if loose
        else ""
    )
    return (
        f'<p class="who">Signed in as token <b>{escape(token_name)}</b>; '
        f"as of {_when(now, now)}.</p>"
        "<table><thead><tr><th>Graph</th><th>Status</th><th>Next stop</th><th>Next start</th>"
        "<th>Holds</th><th>Keep it up</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{extra}"
    )
