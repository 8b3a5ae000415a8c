"""The tracker follows each job to a real end, on a manual clock, against a scripted fake of
the GraphApi protocol: what it reports is what a user reads in the log and the metrics."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import pytest
from prometheus_client import CollectorRegistry

from daemon.cloud.errors import ApiError, NotFoundError, RetryableError
from daemon.domain.model import Graph, Job, JobState, PageSink
from daemon.emulator import ManualClock
from daemon.rules.jobs import Reply
from daemon.rules.planning import Decision
from daemon.runtime.looks import TASK_CENTER_LOOKBACK
from daemon.runtime.outcomes import Outcomes
from daemon.runtime.tracker import (
    RESUMED_RULE,
    JobOutcome,
    Tracker,
)
from daemon.telemetry.metrics import Metrics

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=10)
T = TypeVar("T")


class ScriptedGes:
    """Answers from scripts: each graph's statuses (for show_graph and list_graphs) and the
    job's states; an entry is a value or an ApiError to raise; the last entry repeats."""

    def __init__(
        self,
        jobs: list[JobState | ApiError],
        graphs: list[int | ApiError],
        *,
        others: int = 0,
    ) -> None:
        self.jobs = jobs
        self.scripts: dict[str, list[int | ApiError]] = {"g-1": graphs}
        self.others = others  # more graphs in the project, untouched
        self.listed: list[Job] = []
        self.calls: list[str] = []
        self.since: list[date | None] = []  # the Task Center window of each search

    async def job_status(self, graph_id: str, job_id: str) -> Job:
        self.calls.append("job_status")
        answer = take(self.jobs)
        if isinstance(answer, ApiError):
            raise answer
        return Job(id=job_id, state=answer, fail_reason="disk full" if answer == "failed" else None)

    async def show_graph(self, graph_id: str) -> Graph:
        self.calls.append("show_graph")
        answer = take(self.scripts[graph_id])
        if isinstance(answer, ApiError):
            raise answer
        return Graph(id=graph_id, name=graph_id, status=answer)

    async def list_graphs(self, on_page: PageSink | None = None) -> list[Graph]:
        self.calls.append("list_graphs")
        graphs = [Graph(id=f"other-{i}", name=f"other-{i}", status=200) for i in range(self.others)]
        for graph_id, script in self.scripts.items():
            answer = take(script)
            if isinstance(answer, ApiError):
                raise answer
            graphs.append(Graph(id=graph_id, name=graph_id, status=answer))
        return graphs

    async def stop_graph(self, graph_id: str) -> str:
        raise AssertionError("the tracker never issues actions")

    async def start_graph(self, graph_id: str, backup_id: str | None = None) -> str:
        raise AssertionError("the tracker never issues actions")

    async def list_jobs(
        self, *, status: str | None = None, graph_name: str | None = None, since: date | None = None
    ) -> list[Job]:
        self.since.append(since)
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


async def test_a_graph_that_never_gets_there_fails_at_its_timeout_and_is_freed(
    tracker: Tracker, metrics: Metrics, clock: ManualClock
) -> None:
    outcome = await follow(tracker, ScriptedGes(["running"], [901]))
    assert (outcome.outcome, outcome.reason) == (
        "failed",
        "timeout: graph still stopping after 600s",
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
    outcome = await follow(tracker, ScriptedGes(["running"], [901, not_found("GES.7000")]))
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


async def test_the_graphs_status_is_the_proof_the_job_is_not_even_asked(tracker: Tracker) -> None:
    # Item 3 of the hostile-environment review: a job the Task Center keeps calling
    # "running" while the graph is in fact stopped is a success, not a timeout.
    ges = ScriptedGes(["running"], [900])
    outcome = await follow(tracker, ges)
    assert (outcome.outcome, outcome.reason) == ("succeeded", "graph is stopped")
    assert ges.calls == ["show_graph"]


async def test_a_job_the_api_no_longer_knows_with_the_graph_elsewhere_is_a_failure(
    tracker: Tracker,
) -> None:
    ges = ScriptedGes([not_found("GES.7007")], [200])
    outcome = await follow(tracker, ges)
    assert (outcome.outcome, outcome.reason) == ("failed", "job ended but graph is running")
    assert ges.calls == ["show_graph", "job_status"]


async def test_poll_errors_are_logged_and_polled_again_until_the_job_ends(
    tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    ges = ScriptedGes(["running"], [unavailable(), unavailable(), 901, 900])
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
    outcome = await follow(tracker, ScriptedGes(["failed"], [901, 200]))
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


async def test_a_job_accepted_but_not_begun_is_waited_for(tracker: Tracker) -> None:
    ges = ScriptedGes(["pending"], [200, 901, 900])  # GES moves the graph when the job begins
    outcome = await follow(tracker, ges)
    assert (outcome.outcome, outcome.reason) == ("succeeded", "graph is stopped")


async def test_a_start_waits_through_starting_and_succeeds_when_running(tracker: Tracker) -> None:
    outcome = await follow(tracker, ScriptedGes(["success"], [920, 920, 200]), action="start")
    assert (outcome.outcome, outcome.reason) == ("succeeded", "graph is running")


async def test_many_jobs_are_followed_with_one_listing_per_round(
    clock: ManualClock, metrics: Metrics
) -> None:
    tracker = Tracker(
        Outcomes(metrics), metrics, clock=clock, sleep=clock.sleep, poll_initial_s=10, poll_max_s=60
    )
    ges = ScriptedGes(["running"], [901], others=40)
    for i in range(30):
        ges.scripts[f"g-{i}"] = [901, 901, 901, 900]  # stopped on the fourth look
    tracker.note_fleet("lab", 70)  # one page of 100: a listing is one request
    futures = [
        tracker.follow(ges, "lab", f"g-{i}", f"g-{i}", f"job-{i}", "stop", "night", TIMEOUT)
        for i in range(30)
    ]
    outcomes = await asyncio.gather(*futures)
    assert {o.outcome for o in outcomes} == {"succeeded"}
    assert ges.calls == ["list_graphs"] * 4  # four rounds, one request each, for 30 jobs
    await tracker.stop()


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
    ges.scripts["g-2"] = [202]
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


async def test_a_lost_answer_is_followed_by_the_job_the_task_center_shows(
    tracker: Tracker,
) -> None:
    # GES said "already stopping" (our own answer, lost): the job it runs is found and
    # followed, in the same Task Center window a restart searches.
    ges = ScriptedGes(["failed"], [901, 901, 200])
    ges.listed = [Job(id="j-lost", state="running", graph_name="dev-a")]
    said = "GES says GES.7003: The graph is being stopped."
    decision = Decision("lab", "g-1", "dev-a", "night", "stop", True, "running")
    assert tracker.claim("lab", "g-1")
    handed = await tracker.hand_over(ges, decision, Reply("already", said=said), TIMEOUT)
    assert (handed.outcome, handed.reason) == (
        "requested",
        f"{said}; graph is stopping: following job j-lost",
    )
    assert handed.job is not None
    outcome = await handed.job
    assert (outcome.outcome, outcome.reason) == ("failed", "job failed: disk full")
    await tracker.resume("lab", ges, [Graph(id="g-2", name="dev-b", status=901)], TIMEOUT)
    assert set(ges.since) == {(START - TASK_CENTER_LOOKBACK).date()}
