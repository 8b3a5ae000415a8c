"""Retries of retryable calls: the policy is data (the settings' RetrySettings), the backoff
exponential with jitter and Retry-After as a floor; each retry is logged with its attempt
number and the last attempt re-raises.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from daemon.cloud.errors import ApiError
from daemon.config.settings import RetrySettings
from daemon.domain.model import Sleep

log = logging.getLogger(__name__)

T = TypeVar("T")


def backoff(policy: RetrySettings) -> Callable[[RetryCallState], float]:
    """The wait before each retry: exponential with jitter, capped; a server's Retry-After
    is a floor (itself capped)."""
    exponential = wait_exponential_jitter(
        initial=policy.backoff_initial_s, max=policy.backoff_max_s, jitter=policy.backoff_jitter_s
    )

    def delay(retry_state: RetryCallState) -> float:
        base = float(exponential(retry_state))
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ApiError) and exc.retry_after_s:
            return max(base, min(exc.retry_after_s, policy.backoff_max_s))
        return base

    return delay


async def with_retries(
    call: Callable[[], Awaitable[T]], policy: RetrySettings, sleep: Sleep, what: str
) -> T:
    """Run `call` until it succeeds, fails permanently, or the attempts are used up."""

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: attempt %d/%d failed (%s); will retry in %.1fs",
            what,
            state.attempt_number,
            policy.attempts,
            exc,
            wait,
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=backoff(policy),
        retry=retry_if_exception(lambda exc: isinstance(exc, ApiError) and exc.retryable),
        sleep=sleep,
        before_sleep=log_retry,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")
