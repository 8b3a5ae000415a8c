"""The control API on the real daemon against the emulator, used the way people use it: a
hold made over HTTP is honoured by the next firing with its reason, tokens are scoped, bad
input changes nothing, API holds outlive a restart, and `graphnap wake --wait` returns when
the graph runs (non-zero when its start job fails)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from daemon.app import App
from daemon.emulator import Cloud, ManualClock
from daemon.emulator.graphs import EmuGraph
from tests.app.conftest import MakeApp, actions, start, statuses

SEARCH_SECRET = "search-team-secret-0123456789abcdef"
OPS_SECRET = "ops-secret-0123456789abcdef0123456789"
HELD = "held running until 23:00 +08:00 by token search-team: release test"
UNTIL = "2026-11-27T23:00:00+08:00"  # the clock starts at 18:00 in Shanghai


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    directory = tmp_path / "tokens"
    directory.mkdir()
    (directory / "search-team.json").write_text(
        json.dumps({"secret": SEARCH_SECRET, "projects": ["lab"], "names": ["dev-*"]})
    )
    (directory / "ops.json").write_text(json.dumps({"secret": OPS_SECRET, "projects": ["*"]}))
    for file in directory.iterdir():
        file.chmod(0o600)
    return directory


async def serving(make_app: MakeApp, tokens: Path, **overrides: object) -> App:
    app = make_app(control_tokens_dir=tokens, control_host="127.0.0.1", control_port=0, **overrides)
    return await start(app, serve=True)


@pytest.fixture
async def api(
    make_app: MakeApp, tokens: Path, lab: dict[str, EmuGraph]
) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    app = await serving(make_app, tokens)  # after `lab`: its first inventory lists them
    assert app.control is not None
    async with httpx.AsyncClient(
        base_url=app.control.url, headers={"Authorization": f"Bearer {SEARCH_SECRET}"}
    ) as client:
        yield app, client


async def test_a_hold_made_over_http_is_honoured_by_the_next_firing_with_its_reason(
    api: tuple[App, httpx.AsyncClient], cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    app, client = api
    made = await client.post(
        "/api/v1/holds",
        json={"project": "lab", "graph": "dev-a", "until": UNTIL, "reason": "release test"},
    )
    assert made.status_code == 201, made.text
    hold_id = made.json()["hold"]["id"]

    clock.advance(2 * 3600)  # 20:00: the nightly stop
    report = await app.fire("night-stop")
    await app.settle()
    reasons = {r.decision.graph_name: r.reason for r in report.results}
    assert reasons["dev-a"] == HELD
    assert statuses(cloud)["dev-a"] == 200
    assert statuses(cloud)["dev-b"] == 900

    listed = (await client.get("/api/v1/holds")).json()["holds"]
    assert [(h["id"], h["graph"], h["by"]) for h in listed] == [
        (hold_id, "dev-a", "token search-team")
    ]
    released = await client.delete(f"/api/v1/holds/{hold_id}")
    assert released.status_code == 200, released.text
    assert app.people.list_holds() == []


async def test_no_token_is_401_and_outside_the_scope_is_403_saying_nothing_of_existence(
    api: tuple[App, httpx.AsyncClient], lab: dict[str, EmuGraph]
) -> None:
    app, client = api
    hold = {"project": "lab", "until": UNTIL, "reason": "mine"}
    anonymous = await client.post(
        "/api/v1/holds", json={**hold, "graph": "dev-a"}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
    outside = await client.post("/api/v1/holds", json={**hold, "graph": "prod-x"})
    missing = await client.post("/api/v1/holds", json={**hold, "graph": "dev-nope"})
    assert (outside.status_code, missing.status_code) == (403, 403)
    assert outside.json()["error"].replace("prod-x", "X") == missing.json()["error"].replace(
        "dev-nope", "X"
    )
    woken = await client.post("/api/v1/wakes", json={"project": "lab", "graph": "prod-x"})
    assert woken.status_code == 403
    assert app.people.list_holds() == []


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        ({"until": "2026-11-27T08:00:00+08:00"}, 422, "in the past"),
        ({"until": "2026-12-20T08:00:00+08:00"}, 422, "beyond the longest allowed hold"),
        ({"graph": "dev-[a"}, 400, "`graph`"),
        ({"graph": "dev-zz*"}, 422, "no graph of lab matches"),
        ({"reason": "x" * 5000}, 400, "`reason`"),
    ],
)
async def test_bad_input_gets_a_4xx_with_a_message_and_changes_nothing(
    api: tuple[App, httpx.AsyncClient],
    lab: dict[str, EmuGraph],
    body: dict[str, str],
    status: int,
    said: str,
) -> None:
    app, client = api
    request = {"project": "lab", "graph": "dev-a", "until": UNTIL, "reason": "r", **body}
    answer = await client.post("/api/v1/holds", json=request)
    assert answer.status_code == status, answer.text
    assert said in answer.json()["error"]
    assert app.people.list_holds() == []


async def test_a_huge_body_is_refused_before_it_is_read(
    api: tuple[App, httpx.AsyncClient], lab: dict[str, EmuGraph]
) -> None:
    app, client = api
    answer = await client.post(
        "/api/v1/holds",
        content=b"{" + b" " * (64 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert app.people.list_holds() == []


async def test_api_holds_survive_a_restart(
    make_app: MakeApp, tokens: Path, tmp_path: Path, lab: dict[str, EmuGraph]
) -> None:
    state = tmp_path / "state.json"
    first = await serving(make_app, tokens, state_file=state)
    assert first.control is not None
    async with httpx.AsyncClient(
        base_url=first.control.url, headers={"Authorization": f"Bearer {OPS_SECRET}"}
    ) as client:
        made = await client.post(
            "/api/v1/holds",
            json={"project": "lab", "graph": "prod-x", "for": "3h", "reason": "demo tomorrow"},
        )
        assert made.status_code == 201, made.text
    await first.shutdown()

    second = await serving(make_app, tokens, state_file=state)
    assert second.control is not None
    async with httpx.AsyncClient(
        base_url=second.control.url, headers={"Authorization": f"Bearer {OPS_SECRET}"}
    ) as client:
        listed = (await client.get("/api/v1/holds")).json()["holds"]
    assert [(h["id"], h["reason"]) for h in listed] == [
        (made.json()["hold"]["id"], "demo tomorrow")
    ]


async def wake_cli(url: str, graph: str) -> tuple[int, str]:
    """`graphnap wake GRAPH --for 2h --wait` as a person runs it (through a port-forward)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "wake", graph, "--for", "2h", "--wait",
        "--server", url, "--timeout", "5m",
        env={**os.environ, "GRAPHNAP_CONTROL_TOKEN": SEARCH_SECRET},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_wake_wait_returns_when_the_graph_runs_and_fails_when_its_start_fails(
    api: tuple[App, httpx.AsyncClient], cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    app, _ = api
    assert app.control is not None
    code, out = await wake_cli(app.control.url, "lab/dev-stopped")
    assert code == 0, out
    assert statuses(cloud)["dev-stopped"] == 200
    assert actions(app, "succeeded", rule="wake", action="start") == 1
    assert [h.graphs.ids for h in app.people.list_holds()] == [(lab["dev-stopped"].id,)]

    cloud.faults.failing_jobs = 1
    lab["dev-stopped"].status = 900  # stopped again, by hand
    await app.inventory.refresh(app.config)
    code, out = await wake_cli(app.control.url, "lab/dev-stopped")
    assert code == 1, out
    assert actions(app, "failed", rule="wake", action="start") == 1
    assert timedelta(0) < app.people.list_holds()[0].until - app.clock()
