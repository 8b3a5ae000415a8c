"""One channel's outbox: a bounded queue (full: the oldest message is dropped and counted),
a worker that delivers in order with retries and back-off (Retry-After as a floor), and the
deduplication of keyed messages. `put` never blocks and never raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from daemon.config.notifications import Delivery
from daemon.domain.model import Clock, Sleep
from daemon.notify.channels import Answer, Channel, SendError
from daemon.notify.message import Message
from daemon.notify.sent import SentKeys
from daemon.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, SendError) and exc.retryable


class Outbox:
    def __init__(
        self,
        channel: Channel,
        *,
        delivery: Delivery,
        metrics: Metrics,
        sent: SentKeys,
        clock: Clock,
        sleep: Sleep,
    ) -> None:
        self.channel = channel
        self._delivery = delivery
        self._metrics = metrics
        self._sent = sent
        self._clock = clock
        self._sleep = sleep
        self._queue: deque[Message] = deque()
        self._queued_keys: set[str] = set()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._backoff = wait_exponential(
            multiplier=delivery.backoff_initial_s, max=delivery.backoff_max_s
        )

    @property
    def name(self) -> str:
        return self.channel.name

    def __len__(self) -> int:
        return len(self._queue)

    def _key(self, message: Message) -> str:
        return f"{self.name}/{message.key}" if message.key else ""

    def put(self, message: Message) -> None:
        """Queue `message`; a keyed message already sent or queued is not queued again."""
        try:
            key = self._key(message)
            if key and (key in self._queued_keys or self._sent.has(key)):
                self._metrics.notifications.labels(self.name, message.kind, "deduplicated").inc()
                return
            if len(self._queue) >= self._delivery.queue:
                dropped = self._queue.popleft()
                self._queued_keys.discard(self._key(dropped))
                self._metrics.notifications_dropped.labels(self.name, dropped.kind).inc()
                log.warning(
                    "notification outbox full: oldest message dropped",
                    extra={"channel": self.name, "kind": dropped.kind, "queue": len(self._queue)},
                )
            self._queue.append(message)
            if key:
                self._queued_keys.add(key)
            self._metrics.notification_queue.labels(self.name).set(len(self._queue))
            self._idle.clear()
            self._ready.set()
        except Exception:  # a notification must never cost the caller its action
            log.exception("notification not queued", extra={"channel": self.name})

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            await self._ready.wait()
            while self._queue:
                message = self._queue.popleft()
                self._metrics.notification_queue.labels(self.name).set(len(self._queue))
                try:
                    await self._deliver(message)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug in one delivery must not stop the channel
                    log.exception("notification delivery crashed", extra={"channel": self.name})
                finally:
                    self._queued_keys.discard(self._key(message))
            self._ready.clear()
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until the queue is empty and nothing is being delivered (tests, shutdown)."""
        await self._idle.wait()

    def _wait(self, state: RetryCallState) -> float:
        backoff = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, SendError) and exc.retry_after_s is not None:
            return max(backoff, min(exc.retry_after_s, self._delivery.retry_after_max_s))
        return backoff

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "notification attempt %d/%d failed (%s); will retry in %.0fs",
            state.attempt_number,
            self._delivery.attempts,
            exc,
            delay,
            extra=self._facts(exc),
        )

    def _facts(self, exc: BaseException | None) -> dict[str, Any]:
        facts: dict[str, Any] = {"channel": self.name, "channel_type": self.channel.type}
        if isinstance(exc, SendError):
            if exc.status is not None:
                facts["status"] = exc.status
            if exc.answer:
                facts["answer"] = exc.answer
        return facts

    async def _deliver(self, message: Message) -> Answer | None:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._delivery.attempts),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            answer: Answer = await retrying(self.channel.send, message)
        except SendError as exc:
            self._metrics.notifications.labels(self.name, message.kind, "failed").inc()
            log.error(
                "notification not delivered: %s",
                exc,
                extra={**self._facts(exc), "kind": message.kind, "rule": message.rule},
            )
            return None
        self._metrics.notifications.labels(self.name, message.kind, "sent").inc()
        log.info(
            "notification sent",
            extra={"channel": self.name, "kind": message.kind, "rule": message.rule},
        )
        key = self._key(message)
        if key:
            await self._sent.add(key, self._clock())
        return answer
