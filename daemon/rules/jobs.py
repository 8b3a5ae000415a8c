"""What a followed action's latest look means: GES's answer to the request, the graph's
status, the job's state (only when asked) and the deadline -> an outcome with its reason,
or "look again", or "ask the job". Pure: one table for the first look and every round after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from daemon.domain.model import MOVING_STATUS, TARGET_STATUS, Action, Job, describe_status

Answer = Literal["job", "already", "unreadable"]
"""What GES answered the action request: a job id; "already" there or on its way (GES.7001,
GES.7003; perhaps our own request whose answer was lost); or a 2xx we could not read (no
usable job id, though GES may well have acted)."""

GraphLook = int | Literal["deleted", "unanswered"]
"""The graph's status code, or that it is gone, or that GES did not say this time."""

JobLook = Job | Literal["gone", "unreadable"] | None
"""The job's status when asked; "gone" when GES no longer knows it (GES.7007); None: not asked."""

Ruling = Literal["succeeded", "already_done", "failed", "follow", "ask_job"]


@dataclass(frozen=True, slots=True)
class Reply:
    """GES's answer to one action request, as the executor heard it."""

    answer: Answer
    job_id: str = ""
    said: str = ""  # GES's words for "already", or what made the answer unreadable
    code: str = ""  # the error code of "already" (GES.7001, GES.7003)


@dataclass(frozen=True, slots=True)
class Look:
    action: Action
    answer: Answer
    graph: GraphLook
    job: JobLook = None
    has_job: bool = False  # a job id to ask about
    first: bool = False  # the look right after an "already" answer, to confirm it
    timed_out: bool = False
    timeout_s: float = 0.0
    said: str = ""  # GES's words for "already" ("GES says GES.7003: ...")
    code: str = ""  # and their code


@dataclass(frozen=True, slots=True)
class Verdict:
    ruling: Ruling
    reason: str = ""
    failure: str = ""  # for a failure: its metric label


FOLLOW = Verdict("follow")
ASK_JOB = Verdict("ask_job")


def judge_look(look: Look) -> Verdict:
    """The table, row by row (tests/test_jobs.py reads as the same table)."""
    if look.graph == "unanswered":
        if look.first:
            return Verdict("failed", f"{look.said}; its status could not be read to confirm")
        return _until_deadline(look, "no answer about the graph after {s}")
    if look.graph == "deleted":
        return Verdict("failed", "graph deleted while its job ran", "GES.7000")
    where = describe_status(look.graph)
    if look.graph == TARGET_STATUS[look.action]:
        return _there(look, where)
    if look.graph == MOVING_STATUS[look.action]:
        if look.first:
            return Verdict("follow", f"{look.said}; graph is {where}")
        return _until_deadline(look, f"graph still {where} after {{s}}")
    return _elsewhere(look, where)


def _there(look: Look, where: str) -> Verdict:
    if look.first:
        return Verdict("already_done", f"{look.said}; graph is {where}")
    if look.answer == "unreadable":
        return Verdict("succeeded", f"the answer was unreadable; the graph is {where}")
    late = f" (its job still ran after {look.timeout_s:.0f}s)" if look.timed_out else ""
    return Verdict("succeeded", f"graph is {where}{late}")


def _elsewhere(look: Look, where: str) -> Verdict:
    """Neither there nor on its way: the job says why, or that it has not begun yet."""
    if look.first:
        return Verdict("failed", f"{look.said}, but graph is {where}", look.code)
    if look.has_job and look.job is None:
        return ASK_JOB
    if isinstance(look.job, Job):
        if look.job.is_failed:
            reason = f"job failed: {look.job.fail_reason or 'no reason given'}"
            return Verdict("failed", reason, "job_failed")
        if look.job.state in ("pending", "running"):  # accepted, not begun: not moved yet
            return _until_deadline(
                look, f"job still {look.job.state} after {{s}}; graph is {where}"
            )
    elif look.job == "unreadable":
        return _until_deadline(look, f"job status unreadable after {{s}}; graph is {where}")
    elif look.answer == "unreadable":  # no job to ask: the stop may not have begun
        return _until_deadline(
            look, f"the answer was unreadable and graph is still {where} after {{s}}"
        )
    return Verdict("failed", f"job ended but graph is {where}", "job_failed")


def _until_deadline(look: Look, timeout: str) -> Verdict:
    """Look again, until the deadline: then a timeout, `{s}` in its reason the seconds."""
    if not look.timed_out:
        return FOLLOW
    return Verdict(
        "failed", "timeout: " + timeout.replace("{s}", f"{look.timeout_s:.0f}s"), "timeout"
    )


def ended(ruling: Ruling) -> Literal["succeeded", "failed"]:
    """A round's final ruling as an outcome (the table's tests keep the rest out)."""
    return "succeeded" if ruling == "succeeded" else "failed"


def confirmed(ruling: Ruling) -> Literal["already_done", "failed"]:
    """The first look's final ruling as an outcome."""
    return "already_done" if ruling == "already_done" else "failed"


_LABELS = frozenset(
    {"timeout", "job_failed", "internal", "inventory", "connection", "request", "error"}
)


def failure_reason(code: str) -> str:
    """An error code as a bounded metric label: a service code shaped like GES.7001 or
    APIG.0308, http_5xx for any 5xx, http_NNN, or our own few words; anything else a
    gateway makes up is `other` (a hostile answer must not mint a series per request)."""
    if code.startswith("http_5"):
        return "http_5xx"
    if re.fullmatch(r"[A-Z][A-Z0-9]{1,9}\.\d{4}", code) or re.fullmatch(r"http_\d{3}", code):
        return code
    if code in _LABELS or re.fullmatch(r"(invalid|tls)_[a-z_]{1,20}", code):
        return code
    return "other"
