"""The control API over real HTTP on loopback, with an honest fake backend: who may do what,
what bad input is told, what is logged and counted."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from daemon.config.settings import Settings
from daemon.ops.control import ControlServer, control_app, control_server
from daemon.ops.limits import Limits
from daemon.ops.tokens import TokenBook
from daemon.ops.views import GraphView, NextAction
from daemon.telemetry.metrics import Metrics
from tests.controlfake import FakeBackend

NOW = datetime(2026, 11, 27, 19, 30, tzinfo=UTC)
SEARCH_SECRET = "s3arch-team-" + "a" * 24
OPS_SECRET = "ops-team-" + "b" * 24
SEARCH = {"Authorization": f"Bearer {SEARCH_SECRET}"}
OPS = {"Authorization": f"Bearer {OPS_SECRET}"}

GRAPHS = [
    GraphView("analytics", "g-1", "search-dev", "stopped",
              (NextAction("morning-start", "start", NOW + timedelta(hours=12)),)),
    GraphView("analytics", "g-2", "search-prod", "running",
              (NextAction("weeknight-stop", "stop", NOW + timedelta(minutes=30)),)),
    GraphView("analytics", "g-3", "billing-dev", "running"),
    GraphView("finance", "g-4", "search-ledger", "running"),
]  # fmt: skip


def write_tokens(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "search-team.json").write_text(
        json.dumps({"secret": SEARCH_SECRET, "projects": ["analytics"], "names": ["search-*"]})
    )
    (directory / "ops.json").write_text(json.dumps({"secret": OPS_SECRET, "projects": ["*"]}))
    return directory


@dataclass
class Clocks:
    now: datetime = NOW
    mono: float = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono


@dataclass
class Api:
    url: str
    backend: FakeBackend
    registry: CollectorRegistry
    clocks: Clocks
    http: httpx.AsyncClient = field(repr=False)

    def count(self, op: str, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "graphnap_control_requests_total", {"op": op, "outcome": outcome}
        )
        assert value is not None, f"no series for op={op} outcome={outcome}"
        return value


async def serve(tmp_path: Path, limits: Limits | None = None) -> AsyncIterator[Api]:
    backend = FakeBackend(GRAPHS)
    registry = CollectorRegistry()
    clocks = Clocks()
    app = control_app(
        backend,
        TokenBook.from_dir(write_tokens(tmp_path / "tokens")),
        Metrics(registry),
        clock=clocks.wall,
        monotonic=clocks.monotonic,
        limits=limits,
    )
    server = ControlServer(app, "127.0.0.1", 0)
    async with server, httpx.AsyncClient(base_url=server.url) as http:
        yield Api(server.url, backend, registry, clocks, http)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async for a in serve(tmp_path):
        yield a


def hold_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "project": "analytics", "graph": "search-dev", "for": "3h", "reason": "release test"
    }  # fmt: skip
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def test_without_or_with_a_wrong_token_nothing_is_shown_or_changed(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic x"}):
        listed = await api.http.get("/api/v1/graphs", headers=headers)
        made = await api.http.post("/api/v1/holds", json=hold_body(), headers=headers)
        for answer in (listed, made):
            assert answer.status_code == 401
            assert answer.headers["WWW-Authenticate"] == 'Bearer realm="graphnap"'
            assert "token" in answer.json()["error"]
    assert api.backend.holds_by_id == {}
    assert api.count("hold", "unauthorized") == 3


async def test_a_token_sees_only_the_graphs_of_its_scope(api: Api) -> None:
    search = (await api.http.get("/api/v1/graphs", headers=SEARCH)).json()["graphs"]
    assert [(g["project"], g["name"]) for g in search] == [
        ("analytics", "search-dev"), ("analytics", "search-prod")
    ]  # fmt: skip
    assert search[1]["next_actions"] == [
        {"rule": "weeknight-stop", "action": "stop", "at": "2026-11-27T20:00:00+00:00"}
    ]
    everything = (await api.http.get("/api/v1/graphs", headers=OPS)).json()["graphs"]
    assert len(everything) == 4


async def test_a_hold_made_is_listed_logged_and_counted(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="daemon.ops.control")
    made = await api.http.post("/api/v1/holds", json=hold_body(), headers=SEARCH)
    assert made.status_code == 201, made.text
    hold = made.json()["hold"]
    assert hold["until"] == "2026-11-27T22:30:00+00:00"
    assert hold["by"] == "token search-team"
    listed = (await api.http.get("/api/v1/holds", headers=SEARCH)).json()["holds"]
    assert [h["id"] for h in listed] == [hold["id"]]
    graphs = (await api.http.get("/api/v1/graphs", headers=SEARCH)).json()["graphs"]
    assert [h["id"] for h in graphs[0]["holds"]] == [hold["id"]]
    (line,) = [r.getMessage() for r in caplog.records if "created" in r.getMessage()]
    assert hold["id"] in line
    assert "token search-team" in line
    assert SEARCH_SECRET not in caplog.text
    assert api.count("hold", "ok") == 1


async def test_until_and_keep_stopped_are_taken_as_given(api: Api) -> None:
    body = hold_body(**{"for": None, "until": "2026-11-28T08:00:00+08:00", "keep": "stopped"})
    hold = (await api.http.post("/api/v1/holds", json=body, headers=SEARCH)).json()["hold"]
    assert (hold["keep"], hold["until"]) == ("stopped", "2026-11-28T08:00:00+08:00")


async def test_outside_the_scope_and_not_existing_answer_the_same(api: Api) -> None:
    answers = [
        await api.http.post("/api/v1/holds", json=hold_body(graph=graph), headers=SEARCH)
        for graph in ("billing-dev", "no-such-graph", "g-3", "search-nope")
    ]
    answers.append(
        await api.http.post(
            "/api/v1/holds",
            json=hold_body(project="finance", graph="search-ledger"),
            headers=SEARCH,
        )
    )
    assert {a.status_code for a in answers} == {403}
    errors = {a.json()["error"].split(" that ")[1] for a in answers}
    assert errors == {"token search-team may touch (its scope: projects analytics; names search-*)"}
    assert api.backend.holds_by_id == {}
    assert api.count("hold", "forbidden") == 5


async def test_globs_must_lie_inside_the_scope(api: Api) -> None:
    inside = await api.http.post("/api/v1/holds", json=hold_body(graph="search-d*"), headers=SEARCH)
    assert inside.status_code == 201, inside.text
    wider = await api.http.post("/api/v1/holds", json=hold_body(graph="*-dev"), headers=SEARCH)
    assert wider.status_code == 403
    assert len(api.backend.holds_by_id) == 1


@pytest.mark.parametrize(
    ("changes", "status", "words"),
    [
        ({"until": "2026-11-27T18:00:00+00:00", "for": None}, 422, "in the past"),
        ({"for": "8d"}, 422, "longest hold"),
        ({"until": "2026-11-28T08:00:00", "for": None}, 400, "UTC offset"),
        ({"until": "tomorrow", "for": None}, 400, "ISO 8601"),
        ({"until": "2026-11-28T08:00:00+08:00"}, 400, "either `until`"),
        ({"for": "3"}, 400, "not a duration"),
        ({"graph": "search-[dev"}, 400, "not a graph name or glob"),
        ({"reason": None}, 400, "`reason`"),
        ({"reason": "x" * 201}, 400, "at most 200"),
        ({"keep": "paused"}, 400, "`keep`"),
        ({"graph": "search-x*"}, 422, "no graph matches"),
    ],
)
async def test_bad_input_is_told_and_changes_nothing(
    api: Api, changes: dict[str, object], status: int, words: str
) -> None:
    answer = await api.http.post("/api/v1/holds", json=hold_body(**changes), headers=SEARCH)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    assert api.backend.holds_by_id == {}


async def chunks() -> AsyncIterator[bytes]:
    for chunk in (b'{"reason": "', b"x" * 20_000, b'"}'):
        yield chunk


async def test_bodies_are_bounded_and_must_be_json_objects(api: Api) -> None:
    huge = hold_body(reason="x" * 20_000)
    too_big = await api.http.post("/api/v1/holds", json=huge, headers=SEARCH)
    assert too_big.status_code == 413
    assert "16384 bytes" in too_big.json()["error"]
    streamed = await api.http.post(
        "/api/v1/holds",
        content=chunks(),  # no Content-Length: aiohttp itself stops reading at the bound
        headers={**SEARCH, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    for content, kind, words in [
        (b"[1, 2]", "application/json", "JSON object"),
        (b"{not json", "application/json", "not JSON"),
        (b"project=analytics", "application/x-www-form-urlencoded", "as JSON"),
    ]:
        answer = await api.http.post(
            "/api/v1/holds", content=content, headers={**SEARCH, "Content-Type": kind}
        )
        assert answer.status_code in (400, 415)
        assert words in answer.json()["error"]
    assert api.count("hold", "too_large") == 2
    assert api.backend.holds_by_id == {}


async def test_a_hold_is_released_only_by_a_token_that_may_see_it(api: Api) -> None:
    hold = (await api.http.post("/api/v1/holds", json=hold_body(), headers=SEARCH)).json()["hold"]
    other = (await api.http.post(
        "/api/v1/holds", json=hold_body(graph="billing-dev"), headers=OPS
    )).json()["hold"]  # fmt: skip
    foreign = await api.http.delete(f"/api/v1/holds/{other['id']}", headers=SEARCH)
    unknown = await api.http.delete("/api/v1/holds/h-999", headers=SEARCH)
    assert foreign.status_code == unknown.status_code == 403
    assert other["id"] in api.backend.holds_by_id
    released = await api.http.delete(f"/api/v1/holds/{hold['id']}", headers=SEARCH)
    assert released.status_code == 200
    assert released.json()["hold"]["id"] == hold["id"]
    assert hold["id"] not in api.backend.holds_by_id
    assert (await api.http.get("/api/v1/holds", headers=SEARCH)).json()["holds"] == []


async def test_a_config_hold_is_not_released_through_the_api(api: Api) -> None:
    api.backend.add_config_hold("analytics", "search-dev", NOW + timedelta(hours=1))
    answer = await api.http.delete("/api/v1/holds/cfg-1", headers=SEARCH)
    assert answer.status_code == 409
    assert "config" in answer.json()["error"]
    assert "cfg-1" in api.backend.holds_by_id


async def test_an_expired_hold_is_no_longer_listed(api: Api) -> None:
    await api.http.post("/api/v1/holds", json=hold_body(**{"for": "1h"}), headers=SEARCH)
    api.clocks.now = NOW + timedelta(hours=1, seconds=1)
    assert (await api.http.get("/api/v1/holds", headers=SEARCH)).json()["holds"] == []


async def test_wake_starts_a_stopped_graph_and_says_when_it_runs(api: Api) -> None:
    body = {"project": "analytics", "graph": "search-dev", "for": "2h"}
    answer = await api.http.post("/api/v1/wakes", json=body, headers=SEARCH)
    assert answer.status_code == 202, answer.text
    wake = answer.json()["wake"]
    assert (wake["state"], wake["hold"]["until"]) == ("starting", "2026-11-27T21:30:00+00:00")
    assert api.backend.starts == ["g-1"]
    still = (await api.http.get(f"/api/v1/wakes/{wake['id']}?wait_s=0", headers=SEARCH)).json()
    assert still["wake"]["state"] == "starting"
    api.backend.end_start(wake["id"], ok=True)
    done = (await api.http.get(f"/api/v1/wakes/{wake['id']}?wait_s=5", headers=SEARCH)).json()
    assert done["wake"]["state"] == "running"
    foreign = await api.http.get(f"/api/v1/wakes/{wake['id']}", headers={"Authorization": "x"})
    assert foreign.status_code == 401


async def test_wake_outside_the_scope_starts_nothing(api: Api) -> None:
    for graph in ("billing-dev", "nothing", "search-*"):
        body = {"project": "analytics", "graph": graph}
        answer = await api.http.post("/api/v1/wakes", json=body, headers=SEARCH)
        assert answer.status_code in (400, 403)
    assert api.backend.starts == []


async def test_requests_per_token_are_bounded(tmp_path: Path) -> None:
    async for api in serve(tmp_path, Limits(rate_per_s=0.5, burst=3)):
        codes = [
            (await api.http.get("/api/v1/holds", headers=SEARCH)).status_code for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        limited = await api.http.get("/api/v1/holds", headers=SEARCH)
        assert limited.headers["Retry-After"] == "2"
        assert "retry in 2s" in limited.json()["error"]
        assert (await api.http.get("/api/v1/holds", headers=OPS)).status_code == 200  # its own
        api.clocks.mono += 2
        assert (await api.http.get("/api/v1/holds", headers=SEARCH)).status_code == 200
        assert api.count("holds", "rate_limited") == 2


async def test_guessing_tokens_is_slowed(tmp_path: Path) -> None:
    limits = Limits(unauthenticated_rate_per_s=0.1, unauthenticated_burst=2)
    async for api in serve(tmp_path, limits):
        bad = {"Authorization": "Bearer guess"}
        codes = [(await api.http.get("/api/v1/graphs", headers=bad)).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        assert (await api.http.get("/api/v1/graphs", headers=SEARCH)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/api/v1/graphs"), ("GET", "/nope"), ("GET", "/static/page.js"),
     ("GET", "/static/../tokens"), ("PUT", "/api/v1/holds"), ("POST", "/api/v1/graphs")],
)  # fmt: skip
async def test_every_answer_carries_the_security_headers(api: Api, method: str, path: str) -> None:
    answer = await api.http.request(method, path, headers=SEARCH)
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Server"] == "graphnap"
    if answer.status_code >= 400:
        assert answer.json()["error"]


async def test_a_get_changes_nothing(api: Api) -> None:
    for path in ("/api/v1/holds?project=analytics&graph=search-dev&for=1h", "/api/v1/wakes"):
        answer = await api.http.get(path, headers=SEARCH)
        assert answer.status_code in (200, 405)
    assert api.backend.holds_by_id == {}
    assert api.backend.starts == []
    assert (await api.http.request("PUT", "/api/v1/holds", headers=SEARCH)).status_code == 405


def test_off_unless_token_files_are_given(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    backend = FakeBackend(GRAPHS)

    def build(**env: object) -> ControlServer | None:
        return control_server(
            Settings(**env),
            backend,
            metrics,
            clock=lambda: NOW,
            monotonic=lambda: 0.0,  # type: ignore[arg-type]
        )

    assert build() is None
    (tmp_path / "empty").mkdir()
    assert build(control_tokens_dir=tmp_path / "empty") is None
    assert build(control_tokens_dir=write_tokens(tmp_path / "tokens"), control_port=0) is not None


async def test_the_listener_from_settings_serves_the_api(tmp_path: Path) -> None:
    settings = Settings(
        control_tokens_dir=write_tokens(tmp_path / "tokens"), control_host="127.0.0.1",
        control_port=0, control_burst=2,
    )  # fmt: skip
    server = control_server(
        settings, FakeBackend(GRAPHS), Metrics(CollectorRegistry()),
        clock=lambda: NOW, monotonic=lambda: 0.0,
    )  # fmt: skip
    assert server is not None
    async with server, httpx.AsyncClient(base_url=server.url) as http:
        codes = [(await http.get("/api/v1/holds", headers=OPS)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_the_page_table_escapes_what_people_typed(api: Api) -> None:
    typed = '<img src=x onerror="alert(1)">'
    made = await api.http.post("/api/v1/holds", json=hold_body(reason=typed), headers=SEARCH)
    assert made.status_code == 201
    table = await api.http.get("/fragment/graphs", headers=SEARCH)
    assert table.status_code == 200
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in table.text
    assert "<img" not in table.text
    assert "billing-dev" not in table.text  # outside the token's scope
    assert (await api.http.get("/fragment/graphs")).status_code == 401
