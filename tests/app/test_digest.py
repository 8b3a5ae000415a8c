"""The daily digest from the real daemon, against the emulator and a receiver on loopback, on
a manual clock: yesterday's savings (as graphnap_estimated_savings_total counted them, split at
midnight in the digest's zone), stops and the total arrive at 09:00; a restart right after
does not send it again; under leader election the follower sends none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from daemon.app import App
from daemon.config.settings import Settings
from daemon.emulator import Cloud, ManualClock
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from daemon.emulator.graphs import EmuGraph
from daemon.notify.signatures import WHSEC_PREFIX
from tests.app.conftest import CONFIG, SHANGHAI, MakeApp, sample, start, statuses
from tests.conftest import PROJECT
from tests.kube_fake import FakeApiServer
from tests.receivers import Receiver, receiver

SECRET = WHSEC_PREFIX + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DIGEST = """
notifications:
  channels:
    team: {type: webhook}
  routes:
    - {channels: [team], match: {kinds: [digest]}}
  digest: {at: "09:00", timezone: Asia/Shanghai}
"""


@pytest.fixture
async def team() -> AsyncIterator[Receiver]:
    async with receiver() as rec:
        yield rec


@pytest.fixture
def told(config_file: Path) -> Path:
    config_file.write_text(config_file.read_text() + DIGEST)
    return config_file


def move_to(clock: ManualClock, when: datetime) -> None:
    clock.advance((when - clock()).total_seconds())


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def saved(app: App) -> float:
    return sample(app, "graphnap_estimated_savings_total", project="lab", currency="USD")


async def test_yesterdays_digest_arrives_at_nine_with_the_metrics_figures_and_only_once(
    make_app: MakeApp,
    told: Path,
    tmp_path: Path,
    lab: dict[str, EmuGraph],
    cloud: Cloud,
    clock: ManualClock,
    team: Receiver,
) -> None:
    def daemon() -> App:
        return make_app(
            state_file=tmp_path / "state.json", notify={"team": {"url": team.url, "secret": SECRET}}
        )

    app = await start(daemon())
    await app.fire("night-stop")  # Friday 18:00 in Shanghai
    await app.settle()
    assert statuses(cloud)["test-c"] == 900
    by_pass: dict[str, float] = {}
    for name, when in (("22", shanghai(27, 22)), ("23", shanghai(27, 23)), ("01", shanghai(28, 1))):
        move_to(clock, when)
        await app.inventory.refresh(app.config)
        by_pass[name] = saved(app)
    assert by_pass["23"] > 0
    # Everything up to 23:00 on the 27th; of 23:00-01:00, the hour before midnight.
    friday = by_pass["23"] + (by_pass["01"] - by_pass["23"]) / 2

    assert app.notifier is not None
    move_to(clock, shanghai(28, 8, 59))
    app.notifier.tick()
    move_to(clock, shanghai(28, 9, 0))
    app.notifier.tick()
    await team.wait_for(1)
    await app.notifier.drained()
    [event] = [s.json() for s in team.seen]
    assert event["type"] == "io.graphnap.digest"
    data = event["data"]
    assert (data["day"], data["timezone"], data["since"]) == (
        "2026-11-27", "Asia/Shanghai", "2026-11-27"
    )  # fmt: skip
    lab_day = {
        "project": "lab",
        "saved": {"USD": round(friday, 2)},
        "stopped": 3,  # dev-a, dev-b, test-c
        "stop_failures": 0,
        "total_saved": {"USD": round(friday, 2)},  # counting began on the 27th
    }
    assert data["projects"] == [lab_day]
    assert data["fleet"] == {k: v for k, v in lab_day.items() if k != "project"}
    assert (
        data["title"] == f"graphnap: digest for 2026-11-27 (Asia/Shanghai): saved {friday:,.2f} USD"
    )

    await app.shutdown()  # and back at 09:05: the digest was delivered, it is not sent again
    move_to(clock, shanghai(28, 9, 5))
    again = await start(daemon())
    assert again.notifier is not None
    again.notifier.tick()
    await again.notifier.drained()
    assert len(team.seen) == 1
    assert sample(again, "graphnap_notifications_total", channel="team", kind="digest",
                  outcome="deduplicated") == 1  # fmt: skip
    [kept] = again.notices.ledger.report(shanghai(27, 12).date(), ["lab"], "USD")
    assert kept.saved["USD"] == pytest.approx(friday)  # the figures outlived the process
    assert kept.stopped == 3


async def test_a_one_shot_command_keeps_no_digest_figures_and_sends_no_digest(
    make_app: MakeApp,
    told: Path,
    tmp_path: Path,
    lab: dict[str, EmuGraph],
    clock: ManualClock,
    team: Receiver,
) -> None:
    """`graphnap once` or `plan --live` beside the daemon: the daemon's figures are the
    Store's, and a one-shot run after 09:00 must not send the day's digest itself."""
    state = tmp_path / "state.json"
    move_to(clock, shanghai(28, 9, 30))
    app = await start(
        make_app(state_file=state, notify={"team": {"url": team.url, "secret": SECRET}}),
        one_shot=True,
    )
    await app.fire("night-stop")
    await app.settle()
    assert app.notifier is not None
    app.notifier.tick()
    await app.notifier.drained()
    await app.shutdown()
    assert [s.json()["type"] for s in team.seen if "digest" in s.json()["type"]] == []
    assert "savings_days" not in (state.read_text() if state.exists() else "")


# --- two replicas ---------------------------------------------------------------------------


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer() as server:
        (tmp_path / "token").write_text(server.token)
        yield server


async def test_the_follower_sends_no_digest(
    tmp_path: Path,
    emulator: str,
    api: FakeApiServer,
    lab: dict[str, EmuGraph],
    clock: ManualClock,
    team: Receiver,
) -> None:
    config = tmp_path / "ha.yaml"
    config.write_text(CONFIG.format(project=PROJECT, url=emulator) + DIGEST)
    apps: list[App] = []

    def replica(identity: str) -> App:
        leader: dict[str, Any] = dict(
            enabled=True, identity=identity, namespace="ops", api_url=api.url,
            token_file=tmp_path / "token", ca_file=None, store="configmap",
            lease_duration_s=2.0, renew_deadline_s=1.5, retry_period_s=0.25,
        )  # fmt: skip
        settings = Settings(
            config=config, listen_host="127.0.0.1", listen_port=0,
            credentials={"lab": {"ak": DEMO_AK, "sk": DEMO_SK}}, leader=leader,
            notify={"team": {"url": team.url, "secret": SECRET}},
        )  # type: ignore[arg-type]  # fmt: skip
        app = App(settings, clock=clock, sleep=clock.sleep, monotonic=lambda: 1000.0)
        apps.append(app)
        return app

    try:
        a, b = replica("pod-a"), replica("pod-b")
        for app in (a, b):
            await app.start_replica(serve=False, watch=False)
            assert app.leader is not None
            await app.leader.step(partial(app.start_active, schedule=False), app.stop_active)
        assert a.leader is not None
        assert a.leader.is_leading
        move_to(clock, shanghai(28, 9, 0))  # the next day: the 27th's digest is due
        assert a.notifier is not None
        a.notifier.tick()
        await team.wait_for(1)
        await a.notifier.drained()
        assert b.notifier is None  # a follower runs no notifier: nothing to tick
        assert len(team.seen) == 1
        assert sample(b, "graphnap_notifications_total", channel="team", kind="digest",
                      outcome="sent") == 0  # fmt: skip
    finally:
        for app in apps:
            await app.shutdown()
