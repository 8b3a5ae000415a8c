"""Postpone links over real HTTP on loopback: the GET is a page that changes nothing (fetched
twice, as chat unfurlers and scanners do), only the page's POST makes the hold, bound to the
signed graph and firing; tampered, expired and hammered links get a 4xx page saying why."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import CollectorRegistry

from daemon.domain.hold import SectionName
from daemon.ops.control import ControlServer, control_app
from daemon.ops.links import Link, LinkKeyError, LinkSigner, key_from_file, link_key
from daemon.ops.postpone import Postpone, PostponeLimits
from daemon.ops.tokens import TokenBook
from daemon.runtime.store import FileStore
from daemon.telemetry.metrics import Metrics
from tests.controlfake import FakeBackend
from tests.test_control import GRAPHS, Clocks, write_tokens

SHANGHAI = ZoneInfo("Asia/Shanghai")
FIRE = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
NOW = datetime(2026, 11, 27, 19, 45, tzinfo=SHANGHAI).astimezone(UTC)
KEY = b"k" * 32


def link(**changes: object) -> Link:
    fields: dict[str, object] = {
        "project": "analytics", "graph_id": "g-2", "graph": "search-prod",
        "rule": "weeknight-stop", "fire_at": FIRE, "expires": FIRE,
    }  # fmt: skip
    fields.update(changes)
    return Link(**fields)  # type: ignore[arg-type]


@dataclass
class Served:
    url: str
    backend: FakeBackend
    clocks: Clocks
    signer: LinkSigner
    registry: CollectorRegistry
    http: httpx.AsyncClient

    def path(self, made: Link | None = None) -> str:
        return self.signer.url(made or link()).removeprefix(self.url)


async def serve(tmp_path: Path, limits: PostponeLimits | None = None) -> AsyncIterator[Served]:
    backend = FakeBackend(GRAPHS)
    clocks = Clocks(now=NOW)
    registry = CollectorRegistry()
    signer = LinkSigner(KEY, "http://127.0.0.1:0")
    postpone = Postpone(signer, monotonic=clocks.monotonic, limits=limits)
    app = control_app(
        backend,
        TokenBook.from_dir(write_tokens(tmp_path / "t")),
        Metrics(registry),
        clock=clocks.wall,
        monotonic=clocks.monotonic,
        postpone=postpone,
    )
    server = ControlServer(app, "127.0.0.1", 0)
    async with server, httpx.AsyncClient(base_url=server.url) as http:
        signer.base_url = server.url  # the public URL: here, the listener itself
        yield Served(server.url, backend, clocks, signer, registry, http)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async for s in serve(tmp_path):
        yield s


async def test_a_get_shows_the_graph_and_the_stop_and_changes_nothing(served: Served) -> None:
    for _ in range(2):  # the unfurler, then the person
        answer = await served.http.get(served.path())
        assert answer.status_code == 200
        assert "search-prod" in answer.text
        assert "weeknight-stop" in answer.text
        assert "Fri 27 Nov 20:00 +08:00" in answer.text
        assert "Keep running until 22:00 (2h past the stop)" in answer.text
        assert 'value="2026-11-27T22:00"' in answer.text  # the chosen time starts there too
        assert 'method="post"' in answer.text
    head = await served.http.head(served.path())
    assert head.status_code == 200
    assert served.backend.holds_by_id == {}  # nothing was held by looking


async def test_the_post_holds_that_graph_until_2h_past_the_stop_with_the_firing_as_reason(
    served: Served,
) -> None:
    answer = await served.http.post(served.path(), data={"for": "2h"})
    assert answer.status_code == 201, answer.text
    assert "Postponed" in answer.text
    (hold,) = served.backend.holds_by_id.values()
    assert (hold.project, hold.graph, hold.keep) == ("analytics", "g-2", "running")
    assert hold.until == FIRE + timedelta(hours=2)
    assert (
        hold.reason == "postponed weeknight-stop's stop of Fri 27 Nov 20:00 +08:00 from its warning"
    )
    assert hold.by.startswith("postpone link ")


async def test_a_second_post_or_a_later_get_shows_the_hold_and_makes_no_other(
    served: Served,
) -> None:
    await served.http.post(served.path(), data={"for": "2h"})
    again = await served.http.post(served.path(), data={"until": "2026-11-28T01:00"})
    assert again.status_code == 200
    assert "Already postponed" in again.text
    shown = await served.http.get(served.path())
    assert "Already postponed" in shown.text
    assert len(served.backend.holds_by_id) == 1
    # another graph's link is another hold
    other = link(graph_id="g-3", graph="billing-dev")
    assert (await served.http.post(served.path(other), data={"for": "2h"})).status_code == 201
    assert len(served.backend.holds_by_id) == 2


async def test_with_a_lead_longer_than_2h_the_button_still_keeps_the_graph_past_the_stop(
    served: Served,
) -> None:
    """`notify.before: 3h`: the warning comes at 19:45 for a stop at 22:45. Two hours from the
    click would end before the stop and keep nothing; the button holds until 00:45."""
    late = FIRE + timedelta(hours=2, minutes=45)
    made = link(fire_at=late, expires=late)
    page = await served.http.get(served.path(made))
    assert "Keep running until Sat 00:45 (2h past the stop)" in page.text
    assert served.backend.holds_by_id == {}
    answer = await served.http.post(served.path(made), data={"for": "2h"})
    assert answer.status_code == 201, answer.text
    assert "Sat 28 Nov 00:45 +08:00" in answer.text
    (hold,) = served.backend.holds_by_id.values()
    assert hold.until == late + timedelta(hours=2)


async def test_until_a_chosen_time_is_read_in_the_firings_offset(served: Served) -> None:
    answer = await served.http.post(served.path(), data={"until": "2026-11-27T23:30"})
    assert answer.status_code == 201
    (hold,) = served.backend.holds_by_id.values()
    assert hold.until == datetime(2026, 11, 27, 23, 30, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"until": "2026-11-27T19:50"}, 422, "not after the stop"),
        ({"until": "tomorrow"}, 400, "Give the time as the page asks"),
        ({"for": "7d"}, 400, "use its button"),
        ({}, 400, "Choose"),
        ({"until": "2026-12-27T20:00"}, 422, "longest hold"),  # beyond max_hold: the backend
    ],
)
async def test_a_bad_choice_is_told_on_a_page_and_holds_nothing(
    served: Served, form: dict[str, str], status: int, says: str
) -> None:
    answer = await served.http.post(served.path(), data=form)
    assert answer.status_code == status
    assert says in answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert served.backend.holds_by_id == {}


async def test_a_tampered_link_is_refused_for_any_other_graph(served: Served) -> None:
    path = served.path()
    token = path.removeprefix("/postpone/")
    version, body, signature = token.split(".")
    forged = LinkSigner(b"x" * 32, served.url).token(link(graph_id="g-3"))
    for bad in (
        f"{version}.{forged.split('.')[1]}.{signature}",  # another graph's content, our signature
        forged,  # signed with another key
        f"{version}.{body}.{signature[:-2]}AA",
    ):
        for method in ("GET", "POST"):
            answer = await served.http.request(method, f"/postpone/{bad}", data={"for": "2h"})
            assert answer.status_code == 403, (bad, answer.text)
            assert "signature does not match" in answer.text
    assert (await served.http.get("/postpone/nonsense")).status_code == 400
    assert served.backend.holds_by_id == {}


async def test_an_expired_link_is_gone_with_why(served: Served) -> None:
    served.clocks.now = FIRE.astimezone(UTC)
    answer = await served.http.post(served.path(), data={"for": "2h"})
    assert answer.status_code == 410
    assert "expired at Fri 27 Nov 20:00 +08:00" in answer.text
    assert served.backend.holds_by_id == {}
    value = served.registry.get_sample_value(
        "graphnap_control_requests_total", {"op": "public_postpone_confirm", "outcome": "expired"}
    )
    assert value == 1


async def test_pages_carry_a_strict_csp_that_lets_only_their_form_post_to_themselves(
    served: Served,
) -> None:
    for answer in (await served.http.get(served.path()), await served.http.get("/postpone/x")):
        csp = answer.headers["content-security-policy"]
        assert "script-src" not in csp
        assert "default-src 'none'" in csp
        assert "form-action 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["cache-control"] == "no-store"
    page = await served.http.get("/")  # the control page keeps its own
    assert "form-action 'none'" in page.headers["content-security-policy"]


async def test_what_people_see_is_escaped(served: Served) -> None:
    odd = link(graph="<img src=x onerror=alert(1)>", rule="r&d")
    answer = await served.http.get(served.path(odd))
    assert "<img" not in answer.text
    assert "&lt;img" in answer.text
    assert "r&amp;d" in answer.text


async def test_one_link_and_all_links_are_rate_limited(tmp_path: Path) -> None:
    limits = PostponeLimits(per_link_burst=3, all_burst=7)
    async for s in serve(tmp_path, limits):
        answers = [(await s.http.get(s.path())).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]
        refused = await s.http.get(s.path())
        assert int(refused.headers["retry-after"]) >= 1
        assert "try again in" in refused.text
        other = link(graph_id="g-3")
        # its own bucket is full, but all links together have had their 7
        assert [(await s.http.get(s.path(other))).status_code for _ in range(3)] == [200, 200, 429]
        s.clocks.mono += 3600  # refilled
        assert (await s.http.post(s.path(), data={"for": "2h"})).status_code == 201


async def test_the_key_is_kept_in_the_store_so_links_survive_a_restart(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state.json")
    first = await link_key(None, store)
    assert await link_key(None, store) == first  # the restart reads it back
    token = LinkSigner(first, "https://g.example.com").token(link())
    again = LinkSigner(await link_key(None, FileStore(tmp_path / "state.json")), "https://x")
    assert again.read(token, NOW).graph_id == "g-2"
    section: SectionName = "link_key"
    assert section in (await store.read_all())


def test_a_key_file_too_short_or_missing_is_a_clear_error_without_its_content(
    tmp_path: Path,
) -> None:
    short = tmp_path / "key"
    short.write_text("hunter2")
    with pytest.raises(LinkKeyError, match=r"holds 7 bytes.*openssl rand") as caught:
        key_from_file(short)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(LinkKeyError, match="cannot be read"):
        key_from_file(tmp_path / "absent")
    short.write_text("s" * 40 + "\n")
    assert key_from_file(short) == b"s" * 40


def test_a_link_url_carries_no_key_and_names_the_public_address() -> None:
    url = LinkSigner(KEY, "https://graphnap.example.com/").url(link())
    assert url.startswith("https://graphnap.example.com/postpone/v1.")
    assert KEY.decode() not in url
    assert re.fullmatch(r"https://graphnap\.example\.com/postpone/v1\.[\w-]+\.[\w-]+", url)
