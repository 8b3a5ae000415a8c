"""The table of what a followed action's look means, one row a case a person would recognise:
GES's answer, the graph's status, the job's state (when asked) and the deadline -> the
outcome and the reason a user reads in the log and the metrics."""

from __future__ import annotations

import pytest

from daemon.domain.model import Job
from daemon.rules.jobs import Look, Verdict, failure_reason, judge_look

RUNNING, STOPPED, STOPPING, STARTING, IMPORTING = 200, 900, 901, 920, 202
SAID = "GES says GES.7003: The graph is being stopped."


def job(state: str, fail_reason: str | None = None) -> Job:
    return Job(id="job-1", state=state, fail_reason=fail_reason)  # type: ignore[arg-type]


def stop(graph: object, *, answer: str = "job", **more: object) -> Look:
    facts: dict[str, object] = {"has_job": answer == "job", "timeout_s": 600} | more
    return Look("stop", answer, graph, **facts)  # type: ignore[arg-type]


def already(graph: object) -> Look:
    return stop(graph, answer="already", first=True, said=SAID, code="GES.7003")


ROWS = [
    # -- a job id to follow --
    pytest.param(stop(STOPPED), Verdict("succeeded", "graph is stopped"), id="stopped: done"),
    pytest.param(
        stop(STOPPED, timed_out=True),
        Verdict("succeeded", "graph is stopped (its job still ran after 600s)"),
        id="stopped after the deadline: still done, and said late",
    ),
    pytest.param(stop(STOPPING), Verdict("follow"), id="stopping: look again"),
    pytest.param(
        stop(STOPPING, timed_out=True),
        Verdict("failed", "timeout: graph still stopping after 600s", "timeout"),
        id="still stopping at the deadline: timeout",
    ),
    pytest.param(
        stop("deleted"),
        Verdict("failed", "graph deleted while its job ran", "GES.7000"),
        id="graph deleted meanwhile",
    ),
    pytest.param(stop("unanswered"), Verdict("follow"), id="GES said nothing: ask again"),
    pytest.param(
        stop("unanswered", timed_out=True),
        Verdict("failed", "timeout: no answer about the graph after 600s", "timeout"),
        id="GES said nothing until the deadline",
    ),
    pytest.param(stop(RUNNING), Verdict("ask_job"), id="still running: only now ask the job"),
    pytest.param(
        stop(RUNNING, job=job("failed", "disk full")),
        Verdict("failed", "job failed: disk full", "job_failed"),
        id="the job failed: its reason",
    ),
    pytest.param(
        stop(RUNNING, job=job("failed")),
        Verdict("failed", "job failed: no reason given", "job_failed"),
        id="the job failed without a reason",
    ),
    pytest.param(
        stop(RUNNING, job=job("pending")), Verdict("follow"), id="job accepted, not begun: wait"
    ),
    pytest.param(
        stop(RUNNING, job=job("running"), timed_out=True),
        Verdict("failed", "timeout: job still running after 600s; graph is running", "timeout"),
        id="job never moved the graph before the deadline",
    ),
    pytest.param(
        stop(RUNNING, job=job("success")),
        Verdict("failed", "job ended but graph is running", "job_failed"),
        id="job says success while the graph runs: no success",
    ),
    pytest.param(
        stop(IMPORTING, job="gone"),
        Verdict("failed", "job ended but graph is importing", "job_failed"),
        id="job forgotten by GES, graph elsewhere",
    ),
    pytest.param(stop(RUNNING, job="unreadable"), Verdict("follow"), id="job status unreadable"),
    pytest.param(
        stop(RUNNING, job="unreadable", timed_out=True),
        Verdict("failed", "timeout: job status unreadable after 600s; graph is running", "timeout"),
        id="job status unreadable until the deadline",
    ),
    # -- "already": the first look confirms or refutes GES --
    pytest.param(
        already(STOPPED),
        Verdict("already_done", f"{SAID}; graph is stopped"),
        id="already stopped, and it is",
    ),
    pytest.param(
        already(STOPPING),
        Verdict("follow", f"{SAID}; graph is stopping"),
        id="already stopping (perhaps our own lost answer): follow it",
    ),
    pytest.param(
        already(RUNNING),
        Verdict("failed", f"{SAID}, but graph is running", "GES.7003"),
        id="already, says GES, of a running graph: no success",
    ),
    pytest.param(
        already("unanswered"),
        Verdict("failed", f"{SAID}; its status could not be read to confirm"),
        id="already, and the graph cannot be seen",
    ),
    pytest.param(
        stop(RUNNING, answer="already"),
        Verdict("failed", "job ended but graph is running", "job_failed"),
        id="followed after already, no job: back where it was",
    ),
    # -- an answer we could not read: the graph is all there is --
    pytest.param(
        stop(STOPPED, answer="unreadable"),
        Verdict("succeeded", "the answer was unreadable; the graph is stopped"),
        id="unreadable answer, graph stopped",
    ),
    pytest.param(
        stop(RUNNING, answer="unreadable"), Verdict("follow"), id="unreadable, not begun: wait"
    ),
    pytest.param(
        stop(RUNNING, answer="unreadable", timed_out=True),
        Verdict(
            "failed",
            "timeout: the answer was unreadable and graph is still running after 600s",
            "timeout",
        ),
        id="unreadable answer, graph never moved",
    ),
    pytest.param(
        stop(RUNNING, answer="unreadable", has_job=True, job=job("failed", "disk full")),
        Verdict("failed", "job failed: disk full", "job_failed"),
        id="unreadable answer, job found in the Task Center, and it failed",
    ),
]


@pytest.mark.parametrize(("look", "verdict"), ROWS)
def test_each_look_means_one_thing(look: Look, verdict: Verdict) -> None:
    assert judge_look(look) == verdict


@pytest.mark.parametrize(
    ("graph", "ruling"),
    [(RUNNING, "succeeded"), (STARTING, "follow"), (STOPPED, "ask_job")],
)
def test_a_start_reads_the_same_table_the_other_way_round(graph: int, ruling: str) -> None:
    look = Look("start", "job", graph, has_job=True, timeout_s=600)
    assert judge_look(look).ruling == ruling


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("GES.7041", "GES.7041"),
        ("APIG.0308", "APIG.0308"),
        ("http_503", "http_5xx"),
        ("http_404", "http_404"),
        ("timeout", "timeout"),
        ("invalid_paging", "invalid_paging"),
        ("<html>502 Bad Gateway</html>", "other"),
        ("GES.7041-and-some-junk", "other"),
    ],
)
def test_failure_labels_stay_bounded_whatever_a_gateway_answers(code: str, label: str) -> None:
    assert failure_reason(code) == label
