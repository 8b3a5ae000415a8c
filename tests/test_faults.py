"""The fault suite: the real daemon against the emulator through a fault-injecting proxy, on
a manual clock. Every scenario ends with the same invariant, the promise a user relies on:
every graph the rule selected is stopped, or reported with a reason; none gets two stop
jobs; nothing claims success for a graph that is not stopped; no secret in the logs,
/status or /metrics; no traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from daemon.app import App
from daemon.config.settings import Settings
from daemon.emulator import Cloud, ManualClock, Timing
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from daemon.emulator.graphs import EmuGraph
from daemon.runtime.firing import Report
from tests.app.conftest import CONFIG, SHANGHAI, START, sample
from tests.conftest import PROJECT
from tests.faultproxy import FaultProxy, fault_proxy

STOPPED = 900
MakeApp = Callable[..., App]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def proxy(emulator: str) -> AsyncIterator[FaultProxy]:
    async with fault_proxy(emulator) as proxy:
        yield proxy


@pytest.fixture
def config_file(tmp_path: Path, proxy: FaultProxy) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(project=PROJECT, url=proxy.url))
    return path


@pytest.fixture
async def make_app(config_file: Path, clock: ManualClock) -> AsyncIterator[MakeApp]:
    apps: list[App] = []

    def make(**overrides: object) -> App:
        settings = Settings(
            config=config_file,
            listen_host="127.0.0.1",
            listen_port=0,
            credentials={"lab": {"ak": DEMO_AK, "sk": DEMO_SK}},
            project_rate_per_s=1000,
            project_rate_initial_per_s=1000,
            poll_initial_s=5,
            poll_max_s=15,
            request_timeout_s=0.5,  # a hung answer costs half a second of real time
            retry={
                "attempts": 4,
                "backoff_initial_s": 1,
                "backoff_max_s": 4,
                "backoff_jitter_s": 0,
            },
            **overrides,
        )  # type: ignore[arg-type]
        app = App(settings, clock=clock, sleep=clock.sleep)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.shutdown()


@pytest.fixture
def fleet(cloud: Cloud) -> dict[str, EmuGraph]:
    """Graphs the night-stop schedule selects (dev-*, test-*), and one it must not touch.
    A stop takes ten minutes: the manual clock, moved by every task's sleep, must not let a
    job end before a retry of its own request."""
    cloud.timing = Timing(pending_s=5, stop_s=600, start_s=600)
    graphs = {
        name: cloud.add_graph(PROJECT, name, tags={"env": "dev"})
        for name in ("dev-a", "dev-b", "dev-c", "test-d")
    }
    graphs["prod-x"] = cloud.add_graph(PROJECT, "prod-x")
    return graphs


async def fire_and_follow(app: App) -> tuple[Report, dict[str, tuple[str, str]]]:
    """Fire night-stop, follow its jobs to the end; each graph's final (outcome, reason)."""
    report = await app.fire("night-stop")
    final = {r.decision.graph_name: (str(r.outcome), r.reason) for r in report.results}
    for outcome in await asyncio.gather(*(r.job for r in report.results if r.job is not None)):
        final[outcome.job.graph_name] = (outcome.outcome, outcome.reason)
    await app.settle()
    return report, final


def assert_promises_kept(
    app: App,
    cloud: Cloud,
    final: dict[str, tuple[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    status = {g.name: g.status for g in cloud.all_graphs()}
    for graph, (outcome, reason) in final.items():
        if outcome in ("succeeded", "already_done"):
            assert status[graph] == STOPPED, f"{graph} claimed {outcome} but is {status[graph]}"
        elif outcome in ("failed", "skipped"):
            assert reason, f"{graph} {outcome} without a reason"
        else:
            raise AssertionError(f"{graph} ended as {outcome!r}: {reason}")
    for graph in ("dev-a", "dev-b", "dev-c", "test-d"):
        assert graph in final, f"{graph} was selected but never reported"
    stop_jobs: dict[str, int] = {}
    for job in cloud.jobs.values():
        if job.kind == "stop":
            stop_jobs[job.graph_name] = stop_jobs.get(job.graph_name, 0) + 1
    assert all(n == 1 for n in stop_jobs.values()), f"two stop jobs for one graph: {stop_jobs}"
    assert status["prod-x"] == 200
    texts = [
        caplog.text,
        json.dumps(app.status.status(), default=str),
        generate_latest(app.registry).decode(),
    ]
    for text in texts:
        assert DEMO_SK not in text
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, f"traceback logged: {tracebacks[0].getMessage()}"


ACTION = r"/graphs/[^/]+/action$"


async def test_a_stop_whose_answer_is_lost_and_whose_job_then_fails_is_reported_failed(
    make_app: MakeApp,
    cloud: Cloud,
    proxy: FaultProxy,
    fleet: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Item 1: GES accepts the stop, the connection drops before the answer; the retry gets
    # GES.7003 ("already stopping"); then the job fails and the graph keeps running.
    proxy.add("POST", ACTION, "reset_after")
    cloud.faults.failing_jobs = 1
    app = make_app()
    await app.start(serve=False, schedule=False, watch=False)
    with caplog.at_level(logging.INFO):
        _, final = await fire_and_follow(app)
    assert_promises_kept(app, cloud, final, caplog)
    failed = {g: r for g, (o, r) in final.items() if o == "failed"}
    (graph, reason) = next(iter(failed.items()))
    assert len(failed) == 1
    assert reason.startswith("job failed: emulated failure")
    assert {g.name: g.status for g in cloud.all_graphs()}[graph] == 200
    assert sum(o == "succeeded" for o, _ in final.values()) == 3


async def test_a_stop_whose_answer_is_lost_is_followed_to_its_real_end(
    make_app: MakeApp,
    cloud: Cloud,
    proxy: FaultProxy,
    fleet: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy.add("POST", ACTION, "reset_after", times=2)
    app = make_app()
    await app.start(serve=False, schedule=False, watch=False)
    with caplog.at_level(logging.INFO):
        _, final = await fire_and_follow(app)
    assert_promises_kept(app, cloud, final, caplog)
    assert {o for o, _ in final.values()} == {"succeeded"}
    followed = [r for _, r in final.values()]
    assert all(r == "graph is stopped" for r in followed)


@pytest.mark.parametrize(
    ("method", "path", "fault"),
    [
        ("POST", ACTION, "reset_before"),  # the request never reached GES
        ("POST", ACTION, "hang"),  # an answer slower than the request timeout
        ("GET", r"/graphs$", "html"),  # a gateway's HTML error page instead of JSON
        ("GET", r"/graphs$", "truncate"),  # half an answer, then the connection drops
        ("GET", r"/graphs$", "hang"),  # no answer to a listing
        ("GET", r"/graphs$", "reset_before"),
    ],
)
async def test_network_faults_cost_a_retry_not_a_graph(
    make_app: MakeApp,
    cloud: Cloud,
    proxy: FaultProxy,
    fleet: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    fault: str,
) -> None:
    proxy.add(method, path, fault, times=2)  # type: ignore[arg-type]
    app = make_app()
    await app.start(serve=False, schedule=False, watch=False)
    with caplog.at_level(logging.INFO):
        _, final = await fire_and_follow(app)
    assert_promises_kept(app, cloud, final, caplog)
    assert len(proxy.faulted) >= 1
    assert {o for o, _ in final.values()} == {"succeeded"}


async def test_a_firing_that_comes_while_ges_is_down_tries_again_within_its_grace(
    make_app: MakeApp,
    cloud: Cloud,
    clock: ManualClock,
    fleet: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Item 9: every attempt of two inventory rounds fails (4 retries each); GES is back on the third.
    app = make_app()
    await app.start(serve=False, schedule=False, watch=False)
    app.scheduler.apply(app.config)
    cloud.inject("list_graphs", 503, "APIG.1009", "Service unavailable.", times=8)
    clock.advance(2 * 3600 + 60)  # 20:01
    due = datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI)
    with caplog.at_level(logging.INFO):
        await app.scheduler.run("night-stop", due)
        await app.settle()
    status = {g.name: g.status for g in cloud.all_graphs()}
    assert [n for n in ("dev-a", "dev-b", "dev-c", "test-d") if status[n] != STOPPED] == []
    assert caplog.text.count("the firing tries again in") == 2
    assert clock() - due < timedelta(hours=1)  # within night-stop's misfire_grace
    assert (
        sample(
            app, "graphnap_action_failures_total", project="lab", action="stop", reason="inventory"
        )
        == 0
    )


async def test_a_firing_gives_up_on_a_project_at_the_end_of_its_grace_and_says_so(
    make_app: MakeApp,
    cloud: Cloud,
    clock: ManualClock,
    fleet: dict[str, EmuGraph],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()
    await app.start(serve=False, schedule=False, watch=False)
    app.scheduler.apply(app.config)
    cloud.inject("list_graphs", 503, "APIG.1009", "Service unavailable.", times=10_000)
    clock.advance(2 * 3600 + 60)
    with caplog.at_level(logging.INFO):
        await app.scheduler.run("night-stop", datetime(2026, 11, 27, 20, 0, tzinfo=SHANGHAI))
    assert cloud.count("graph_action") == 0
    assert (
        sample(
            app, "graphnap_action_failures_total", project="lab", action="stop", reason="inventory"
        )
        == 1
    )
    assert "inventory failed" in caplog.text
    assert clock() <= datetime(2026, 11, 27, 21, 1, tzinfo=SHANGHAI)  # stopped trying at the grace
