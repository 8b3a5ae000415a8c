"""The postpone page in headless Chromium, as a person uses the link from a warning: it opens
on a page that changes nothing, a click on "Keep running until HH:MM (2h past the stop)" makes
the hold, and the page runs
no script and breaks no CSP rule (Debian's /usr/bin/chromium through playwright's driver)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from daemon.ops.control import ControlServer, control_app
from daemon.ops.links import Link, LinkSigner
from daemon.ops.postpone import Postpone
from daemon.ops.tokens import TokenBook
from daemon.telemetry.metrics import Metrics
from tests.controlfake import FakeBackend
from tests.test_control import GRAPHS, write_tokens
from tests.test_page import browser_page, pytestmark  # noqa: F401 - the browser and its skip


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, FakeBackend, datetime]]:
    backend = FakeBackend(GRAPHS)
    signer = LinkSigner(b"k" * 32, "http://127.0.0.1")
    app = control_app(
        backend,
        TokenBook.from_dir(write_tokens(tmp_path / "tokens")),
        Metrics(CollectorRegistry()),
        clock=lambda: datetime.now(UTC),
        monotonic=lambda: 0.0,
        postpone=Postpone(signer, monotonic=lambda: 0.0),
    )
    fire = (datetime.now(UTC) + timedelta(minutes=15)).replace(microsecond=0)
    link = Link("analytics", "g-2", "search-prod", "weeknight-stop", fire, fire)
    async with ControlServer(app, "127.0.0.1", 0) as server:
        signer.base_url = server.url
        yield signer.url(link), backend, fire


async def test_the_link_opens_a_page_and_only_its_button_makes_the_hold(
    served: tuple[str, FakeBackend, datetime],
    browser_page: Any,  # noqa: F811 - the fixture imported above
) -> None:
    url, backend, fire = served
    page = browser_page
    for _ in range(2):  # opened, and opened again: still nothing held
        await page.goto(url)
        await page.get_by_role("heading", name="Keep search-prod").wait_for()
    assert backend.holds_by_id == {}
    until = (fire + timedelta(hours=2)).strftime("%H:%M")  # a weekday before it past midnight
    button = re.compile(rf"^Keep running until (\w{{3}} )?{until} \(2h past the stop\)$")
    await page.get_by_role("button", name=button).click()
    await page.locator("#done", has_text="Postponed").wait_for()
    (hold,) = backend.holds_by_id.values()
    assert (hold.graph, hold.keep) == ("g-2", "running")
    assert hold.until == fire + timedelta(hours=2)  # 2h past the stop it warns of
    await page.goto(url)  # the link again, later: it shows the hold, and makes no other
    await page.locator("#done", has_text="Already postponed").wait_for()
    assert len(backend.holds_by_id) == 1
    assert page.problems == []  # no CSP violation (the stylesheet, the form) and no error
