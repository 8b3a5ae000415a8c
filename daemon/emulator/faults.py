"""What goes wrong: the error answer every emulated service raises (`CloudFault`), the faults
a test or demo injects (scripted errors, random 5xx, failing jobs, latency), and the
gateway's throttles, sliding windows of one second on the emulator's clock."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from daemon.emulator.clock import Clock


class CloudFault(Exception):
    """An error answer: HTTP status plus the body shape of whoever produced it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        source: Literal["ges", "gateway", "iam", "ces"] = "ges",
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.source = source


@dataclass
class ScriptedFault:
    """Answer the next `times` requests of `operation` ('*' = any) with this error."""

    operation: str
    status: int
    code: str
    message: str = "injected fault"
    times: int = 1


@dataclass
class Faults:
    """Throttles are sliding windows of one second on the emulator's clock: a request is
    answered 429 APIG.0308 when the window already holds `limit` admitted requests (the
    refused ones do not count, as the gateway's do not). `throttle_rps` is the gateway's
    limit for everyone together; `throttle_rps_per_project` one limit for each project
    (a number for all, or {project_id: limit}); a request must pass both. IAM token
    requests name no project and meet only the global limit."""

    latency_s: float = 0.0
    throttle_rps: float | None = None  # more requests than this in one second -> 429 APIG.0308
    throttle_rps_per_project: float | dict[str, float] | None = None
    error_rate: float = 0.0  # fraction of API requests answered with a 5xx
    job_failure_rate: float = 0.0  # fraction of jobs that end failed
    token_ttl_s: float = 24 * 3600.0
    scripted: list[ScriptedFault] = field(default_factory=list)
    failing_jobs: int = 0  # the next N jobs fail, whatever the rate


class SlidingWindow:
    """At most `limit` admissions in any one second: the admission times of the last
    second, dropped as they age (each at most once: O(1) amortised per request)."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def is_full(self, now_s: float, limit: float) -> bool:
        while self._times and now_s - self._times[0] >= 1.0:
            self._times.popleft()
        return len(self._times) >= limit

    def admit(self, now_s: float) -> None:
        self._times.append(now_s)


class FaultInjector:
    """Which error, if any, a request meets at the gateway, from the `Faults` in force (read
    at every request: the control plane changes them at run time) and the throttle windows."""

    def __init__(self, faults: Faults, *, clock: Clock, rng: random.Random) -> None:
        self.faults = faults
        self.clock = clock
        self.rng = rng  # the cloud's own: one seeded sequence for the whole emulator
        self._window = SlidingWindow()
        self._project_windows: dict[str, SlidingWindow] = {}

    def fault_for(self, operation: str, project_id: str = "") -> CloudFault | None:
        """The error, if any, this request meets before reaching the graph (throttle, 5xx)."""
        for fault in self.faults.scripted:
            if fault.times > 0 and fault.operation in (operation, "*"):
                fault.times -= 1
                source: Literal["ges", "gateway", "ces"] = (
                    "gateway"
                    if fault.code.startswith("APIG")
                    else "ces"
                    if fault.code.startswith("ces.")
                    else "ges"
                )
                return CloudFault(fault.status, fault.code, fault.message, source=source)
        if self.faults.scripted:
            self.faults.scripted = [f for f in self.faults.scripted if f.times > 0]
        throttled = self._throttle(project_id)
        if throttled is not None:
            return throttled
        if self.faults.error_rate and self.rng.random() < self.faults.error_rate:
            if self.rng.random() < 0.5:
                return CloudFault(500, "GES.7006", "An internal error occurs in the graph engine.")
            return CloudFault(503, "APIG.1009", "Service unavailable.", source="gateway")
        return None

    def _throttle(self, project_id: str) -> CloudFault | None:
        """429 when the project's window or the gateway's is full. The project's is asked
        first: a request it refuses takes no place in the gateway's window."""
        limits: list[tuple[SlidingWindow, float, str]] = []
        per_project = self.faults.throttle_rps_per_project
        if project_id and per_project is not None:
            limit = per_project.get(project_id) if isinstance(per_project, dict) else per_project
            if limit is not None:
                window = self._project_windows.setdefault(project_id, SlidingWindow())
                limits.append((window, limit, "user"))
        if self.faults.throttle_rps is not None:
            limits.append((self._window, self.faults.throttle_rps, "ip"))
        if not limits:
            return None
        now_s = self.clock().timestamp()
        for window, limit, policy in limits:
            if window.is_full(now_s, limit):
                return CloudFault(
                    429,
                    "APIG.0308",
                    f"The throttling threshold has been reached: policy {policy} over ratelimit,limit:{limit:g},time:1 second",
                    source="gateway",
                )
        for window, _, _ in limits:
            window.admit(now_s)
        return None

    def forget_windows(self) -> None:
        """Throttle windows empty again (a benchmark's next round starts clean)."""
        self._window = SlidingWindow()
        self._project_windows.clear()
