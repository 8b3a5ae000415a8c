"""The tracker follows each job to a real end, on a manual clock, against a scripted fake of
the GraphApi protocol: what it reports is what a user reads in the log and the metrics."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import pytest
from prometheus_client import CollectorRegistry

from daemon.api import ApiError, NotFoundError, RetryableError
from daemon.emulator import ManualClock
from daemon.metrics import Metrics
from daemon.model import Graph, Job, JobState
from daemon.outcomes import Outcomes
from daemon.tracker import RESUMED_RULE, JobOutcome, Tracker

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=10)
T = TypeVar("T")


class ScriptedGes:
    """Answers job_status and show_graph from scripts: each entry is a value to return or
    an ApiError to raise; the last entry repeats."""

    def __init__(self, jobs: list[JobState | ApiError], graphs: list[int | ApiError]) -> None:
        self.jobs = jobs
        self.graphs = graphs
        self.listed: list[Job] = []
        self.calls: list[str] = []

    async def job_status(self, graph_id: str, job_id: str) -> Job:
        self.calls.append("job_status")
        answer = take(self.jobs)
        if isinstance(answer, ApiError):
            raise answer
        return Job(id=job_id, state=answer, fail_reason="disk full" if answer == "failed" else None)

    async def show_graph(self, graph_id: str) -> Graph:
        self.calls.append("show_graph")
        answer = take(self.graphs)
        if isinstance(answer, ApiError):
            raise answer
        return Graph(id=graph_id, name="dev-a", status=answer)

    async def list_graphs(self) -> list[Graph]:
        raise AssertionError("the tracker never lists graphs")

    async def stop_graph(self, graph_id: str) -> str:
        raise AssertionError("the tracker never issues actions")

    async def start_graph(self, graph_id: str, backup_id: str | None = None) -> str:
        raise AssertionError("the tracker never issues actions")

    async def list_jobs(self, *, status: str | None = None, since: date | None = None) -> list[Job]:
        return [j for j in self.listed if status == "running"]


def take(script: list[T]) -> T:
    return script.pop(0) if len(script) > 1 else script[0]


def not_found(code: str) -> NotFoundError:
    return NotFoundError("gone", service="ges", operation="x", status=404, code=code)


def unavailable() -> RetryableError:
    return RetryableError("busy", service="ges", operation="x", status=503)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
def tracker(clock: ManualClock, metrics: Metrics) -> Tracker:
    return Tracker(
        Outcomes(metrics), metrics, clock=clock, sleep=clock.sleep, poll_initial_s=10, poll_max_s=60
    )


async def follow(tracker: Tracker, ges: ScriptedGes, action: str = "stop") -> JobOutcome:
    task = tracker.follow(ges, "lab", "g-1", "dev-a", "job-1", action, "night", TIMEOUT)  # type: ignore[arg-type]
    assert tracker.in_flight() == {("lab", "g-1")}
    return await task


def counted(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_job_that_never_ends_fails_at_its_timeout_and_frees_the_graph(
    tracker: Tracker, metrics: Metrics, clock: ManualClock
) -> None:
    outcome = await follow(tracker, ScriptedGes(["running"], [901]))
    assert (outcome.outcome, outcome.reason) == (
        "failed",
        "timeout: still job running after 600s; graph is stopping",
    )
    assert clock() == START + TIMEOUT  # it polled until the deadline, not past it
    assert (
        counted(
            metrics,
            "graphnap_action_failures_total",
            project="lab",
            action="stop",
            reason="timeout",
        )
        == 1
    )
    assert counted(metrics, "graphnap_jobs_in_flight", project="lab", action="stop") == 0
    assert tracker.in_flight() == frozenset()


async def test_a_graph_deleted_while_its_job_runs_is_a_failure_named_so(
    tracker: Tracker, metrics: Metrics
) -> None:
    outcome = await follow(tracker, ScriptedGes(["running", not_found("GES.7000")], [901]))
    assert (outcome.outcome, outcome.reason) == ("failed", "graph deleted while its job ran")
    assert (
        counted(
            metrics,
            "graphnap_action_failures_total",
            project="lab",
            action="stop",
            reason="GES.7000",
        )
        == 1
    )


async def test_a_job_the_api_no_longer_knows_is_judged_by_the_graphs_status(
    tracker: Tracker,
) -> None:
    ges = ScriptedGes([not_found("GES.7007")], [900])
    outcome = await follow(tracker, ges)
    assert (outcome.outcome, outcome.reason) == ("succeeded", "graph is stopped")
    assert ges.calls == ["job_status", "show_graph"]


async def test_poll_errors_are_logged_and_polled_again_until_the_job_ends(
    tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    ges = ScriptedGes([unavailable(), unavailable(), "running", "success"], [901, 900])
    with caplog.at_level(logging.WARNING):
        outcome = await follow(tracker, ges)
    assert outcome.outcome == "succeeded"
    assert caplog.text.count("polling job failed") == 2
    assert "will poll again" in caplog.text


async def test_a_job_that_says_success_while_the_graph_is_elsewhere_is_a_failure(
    tracker: Tracker, metrics: Metrics
) -> None:
    outcome = await follow(tracker, ScriptedGes(["success"], [200]), action="stop")
    assert (outcome.outcome, outcome.reason) == ("failed", "job ended but graph is running")
    assert (
        counted(
            metrics,
            "graphnap_action_failures_total",
            project="lab",
            action="stop",
            reason="job_failed",
        )
        == 1
    )


async def test_a_failed_job_reports_the_reason_ges_gives(
    tracker: Tracker, metrics: Metrics
) -> None:
    outcome = await follow(tracker, ScriptedGes(["running", "failed"], [200]))
    assert (outcome.outcome, outcome.reason) == ("failed", "job failed: disk full")
    assert (
        counted(
            metrics,
            "graphnap_actions_total",
            project="lab",
            rule="night",
            action="stop",
            outcome="failed",
        )
        == 1
    )
    assert counted(metrics, "graphnap_job_duration_seconds_count", action="stop") == 1


async def test_a_start_waits_through_starting_and_succeeds_when_running(tracker: Tracker) -> None:
    outcome = await follow(tracker, ScriptedGes(["success"], [920, 920, 200]), action="start")
    assert (outcome.outcome, outcome.reason) == ("succeeded", "graph is running")


async def test_a_claimed_graph_is_in_flight_until_released_or_followed(tracker: Tracker) -> None:
    assert tracker.claim("lab", "g-1")
    assert not tracker.claim("lab", "g-1")  # a second action on the same graph is refused
    assert tracker.in_flight() == {("lab", "g-1")}
    tracker.release("lab", "g-1")
    assert tracker.claim("lab", "g-1")


async def test_resume_follows_only_jobs_of_graphs_that_are_moving(
    tracker: Tracker, clock: ManualClock
) -> None:
    ges = ScriptedGes(["success"], [900])
    ges.listed = [
        Job(id="j-stop", state="running", graph_name="dev-a", begin=START - timedelta(minutes=2)),
        Job(id="j-import", state="running", graph_name="dev-busy"),
    ]
    graphs = [
        Graph(id="g-1", name="dev-a", status=901),
        Graph(id="g-2", name="dev-busy", status=202),  # its job is an import: not ours
    ]
    assert await tracker.resume("lab", ges, graphs, TIMEOUT) == 1
    (job,) = tracker.jobs()
    assert (job.graph_id, job.job_id, job.action, job.rule) == (
        "g-1",
        "j-stop",
        "stop",
        RESUMED_RULE,
    )
    assert job.requested_at == START - timedelta(minutes=2)  # the job's own begin time
    await tracker.wait()
    assert tracker.jobs() == []


async def test_a_job_stuck_running_while_the_graph_is_stopped_is_judged_by_the_graph(
    tracker: Tracker, metrics: Metrics
) -> None:
    ges = ScriptedGes(["running"], [900])
    outcome = await follow(tracker, ges)
    assert (outcome.outcome, outcome.reason) == (
        "succeeded",
        "graph is stopped (its job still said job running after 600s)",
    )
    assert ges.calls[-1] == "show_graph"
    assert (
        counted(
            metrics,
            "graphnap_action_failures_total",
            project="lab",
            action="stop",
            reason="timeout",
        )
        == 0
    )
