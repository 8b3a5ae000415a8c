"""The channels: one class per receiver, each writing the receiver's documented format and
reading its documented answer, over an injected httpx.AsyncClient (nothing blocks the loop).

A channel never shows its URL or secret: errors carry the status, the vendor's code and a
short, redacted answer; a transport error only its class name (httpx puts the URL in its text).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote_plus

import httpx
from pydantic import SecretStr

from daemon.cloud.redaction import redact
from daemon.domain.model import Clock
from daemon.notify.message import Message
from daemon.notify.signatures import dingtalk_sign, feishu_sign, webhook_key, webhook_signature

log = logging.getLogger(__name__)

ANSWER_LIMIT = 200  # characters of a receiver's answer kept for logs and `notify test`
USER_AGENT = "graphnap-notify"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str  # cut and redacted


class SendError(Exception):
    """A delivery that did not succeed. `retryable`: worth another attempt (5xx, 429, a
    vendor's rate-limit code, a timeout); `retry_after_s`: the receiver's own wait, a floor."""

    def __init__(
        self,
        what: str,
        *,
        retryable: bool,
        status: int | None = None,
        answer: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.retryable = retryable
        self.status = status
        self.answer = answer
        self.retry_after_s = retry_after_s


class Channel(Protocol):
    name: str
    type: str

    async def send(self, message: Message) -> Answer:
        """Deliver one message once; raise SendError."""
        ...


def retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds (RFC 9110: delay-seconds or an HTTP-date), None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


class HttpChannel:
    """What every HTTP channel shares: one POST, its errors in SendError's terms."""

    type = "http"

    def __init__(
        self,
        name: str,
        http: httpx.AsyncClient,
        *,
        url: SecretStr | None,
        secret: SecretStr | None = None,
        timeout_s: float = 10.0,
        clock: Clock,
    ) -> None:
        self.name = name
        self._http = http
        self._url = url
        self._secret = secret
        self._timeout_s = timeout_s
        self._clock = clock

    async def send(self, message: Message) -> Answer:
        raise NotImplementedError

    def __repr__(self) -> str:  # never the URL: it is the credential
        return f"{type(self).__name__}(name={self.name!r})"

    def _secrets(self) -> list[str]:
        values = [s.get_secret_value() for s in (self._url, self._secret) if s is not None]
        if self._url is not None:  # the URL's query (a key, an access token) on its own too
            query = httpx.URL(self._url.get_secret_value()).query.decode()
            values += [part.partition("=")[2] for part in query.split("&")]
        return sorted({v for v in values if v}, key=len, reverse=True)

    def _cut(self, text: str) -> str:
        return redact(" ".join(text.split()), self._secrets())[:ANSWER_LIMIT]

    async def _post(
        self,
        url: str,
        *,
        body: bytes,
        headers: Mapping[str, str],
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.post(
                url,
                content=body,
                headers={"User-Agent": USER_AGENT, **headers},
                timeout=self._timeout_s,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                follow_redirects=False,
            )
        except httpx.TimeoutException as exc:
            raise SendError(f"no answer within {self._timeout_s:g}s", retryable=True) from exc
        except httpx.HTTPError as exc:  # its text names the URL: only the class is shown
            raise SendError(
                f"cannot reach the receiver ({type(exc).__name__})", retryable=True
            ) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise SendError(
                f"HTTP {response.status_code}",
                retryable=True,
                status=response.status_code,
                answer=self._cut(response.text),
                retry_after_s=retry_after(response.headers.get("Retry-After"), self._clock()),
            )
        if not 200 <= response.status_code < 300:
            raise SendError(
                f"HTTP {response.status_code}",
                retryable=False,
                status=response.status_code,
                answer=self._cut(response.text),
            )
        return response

    def _url_value(self) -> str:
        if self._url is None:
            raise SendError("no URL: give the file notify.<channel>.url", retryable=False)
        return self._url.get_secret_value()

    def _json_answer(
        self, response: httpx.Response, code_key: str, rate_limited: frozenset[int]
    ) -> Answer:
        """Chat robots answer 200 with a code of their own: 0 is success."""
        try:
            answer = response.json()
            code = int(answer.get(code_key, answer.get("StatusCode", -1)))
        except (ValueError, TypeError, AttributeError):
            raise SendError(
                "the receiver answered 200 without its JSON code",
                retryable=False,
                status=response.status_code,
                answer=self._cut(response.text),
            ) from None
        if code != 0:
            raise SendError(
                f"the receiver refused: code {code}",
                retryable=code in rate_limited,
                status=response.status_code,
                answer=self._cut(response.text),
                retry_after_s=60.0 if code in rate_limited else None,  # their limits are per minute
            )
        return Answer(response.status_code, self._cut(response.text))


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _cut_bytes(text: str, limit: int) -> str:
    """`text` in at most `limit` UTF-8 bytes, cut at a character."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 4].decode("utf-8", errors="ignore") + "\n..."


class WebhookChannel(HttpChannel):
    """Any HTTP receiver: a CloudEvent 1.0 in structured mode (application/cloudevents+json),
    signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)."""

    type = "webhook"

    def __init__(self, *args: Any, cloudevents: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cloudevents = cloudevents
        self._key = webhook_key(self._secret.get_secret_value()) if self._secret else None

    @staticmethod
    def event_id(message: Message) -> str:
        """The same for every attempt at one message, so a receiver can drop repeats."""
        basis = message.key or f"{message.kind}|{message.title}|{message.at.isoformat()}"
        return "msg_" + hashlib.sha256(basis.encode()).hexdigest()[:26]

    def event(self, message: Message) -> dict[str, Any]:
        data = {
            "kind": message.kind,
            "title": message.title,
            "text": "\n".join(message.lines()),
            **(message.data or {}),
        }
        if not self._cloudevents:
            return {"id": self.event_id(message), "type": message.kind, **data}
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.event_id(message),
            "source": "graphnap",
            "type": f"io.graphnap.{message.kind}",
            "time": message.at.isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
        if message.rule:
            event["subject"] = message.rule
        return event

    async def send(self, message: Message) -> Answer:
        body = _json_bytes(self.event(message))
        msg_id = self.event_id(message)
        headers = {
            "Content-Type": "application/cloudevents+json; charset=utf-8"
            if self._cloudevents
            else "application/json",
            "webhook-id": msg_id,
        }
        if self._key is not None:
            timestamp = int(self._clock().timestamp())
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = webhook_signature(self._key, msg_id, timestamp, body)
        response = await self._post(self._url_value(), body=body, headers=headers)
        return Answer(response.status_code, self._cut(response.text))


def _slack_escape(text: str) -> str:
    # api.slack.com/reference/surfaces/formatting#escaping: these three, nothing else.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackChannel(HttpChannel):
    """A Slack incoming webhook (api.slack.com/messaging/webhooks): `text` as the
    notification fallback and Block Kit sections in mrkdwn; Slack answers `ok`."""

    type = "slack"
    SECTION_LIMIT = 3000  # characters of one section's text
    MAX_BLOCKS = 50

    def payload(self, message: Message) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{_slack_escape(message.title)}*"},
            }
        ]
        for block in message.blocks:
            lines = [f"*{_slack_escape(block.heading)}*"] if block.heading else []
            for line in block.lines:
                link = f" <{line.link}|{_slack_escape(line.link_text)}>" if line.link else ""
                lines.append(f"• {_slack_escape(line.text)}{link}")
            if block.more:
                lines.append(f"• and {block.more} more")
            text = "\n".join(lines)
            if len(text) > self.SECTION_LIMIT:
                text = text[: self.SECTION_LIMIT - 4] + "\n..."
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        return {"text": message.title, "blocks": blocks[: self.MAX_BLOCKS]}

    async def send(self, message: Message) -> Answer:
        response = await self._post(
            self._url_value(),
            body=_json_bytes(self.payload(message)),
            headers={"Content-Type": "application/json"},
        )
        return Answer(response.status_code, self._cut(response.text))


class WecomChannel(HttpChannel):
    """A WeCom group robot (developer.work.weixin.qq.com/document/path/91770): a markdown
    message of at most 4096 bytes; `errcode` 0 is success, 45009 its rate limit (20 a minute)."""

    type = "wecom"
    CONTENT_LIMIT = 4096
    RATE_LIMITED = frozenset({45009})

    def payload(self, message: Message) -> dict[str, Any]:
        return {
            "msgtype": "markdown",
            "markdown": {"content": _cut_bytes(message.markdown(), self.CONTENT_LIMIT)},
        }

    async def send(self, message: Message) -> Answer:
        response = await self._post(
            self._url_value(),
            body=_json_bytes(self.payload(message)),
            headers={"Content-Type": "application/json"},
        )
        return self._json_answer(response, "errcode", self.RATE_LIMITED)


class DingtalkChannel(HttpChannel):
    """A DingTalk custom robot (open.dingtalk.com/document/robots/custom-robot-access): a
    markdown message; with 加签, `timestamp` (ms) and `sign` added to the URL's query.
    `errcode` 0 is success, 130101 its rate limit (20 a minute)."""

    type = "dingtalk"
    RATE_LIMITED = frozenset({130101})

    def payload(self, message: Message) -> dict[str, Any]:
        return {
            "msgtype": "markdown",
            "markdown": {"title": message.title, "text": message.markdown()},
        }

    async def send(self, message: Message) -> Answer:
        url = self._url_value()
        if self._secret is not None:
            # Appended by hand: httpx's params= would replace the URL's access_token, and
            # the documented sample encodes the sign with quote_plus ('/' too, as %2F).
            timestamp_ms = int(self._clock().timestamp() * 1000)
            sign = dingtalk_sign(self._secret.get_secret_value(), timestamp_ms)
            joiner = "&" if "?" in url else "?"
            url = f"{url}{joiner}timestamp={timestamp_ms}&sign={quote_plus(sign)}"
        response = await self._post(
            url,
            body=_json_bytes(self.payload(message)),
            headers={"Content-Type": "application/json"},
        )
        return self._json_answer(response, "errcode", self.RATE_LIMITED)


class FeishuChannel(HttpChannel):
    """A Feishu / Lark custom bot (open.feishu.cn/document/client-docs/bot-v3/add-custom-bot):
    a `post` (rich text) message; with signature verification, `timestamp` (s) and `sign` in
    the body. `code` 0 is success; 11232 is its rate limit."""

    type = "feishu"
    RATE_LIMITED = frozenset({11232})

    def payload(self, message: Message) -> dict[str, Any]:
        rows: list[list[dict[str, str]]] = []
        for block in message.blocks:
            if block.heading:
                rows.append([{"tag": "text", "text": block.heading}])
            for line in block.lines:
                row = [{"tag": "text", "text": f"- {line.text}"}]
                if line.link:
                    row.append({"tag": "a", "text": f" {line.link_text}", "href": line.link})
                rows.append(row)
            if block.more:
                rows.append([{"tag": "text", "text": f"- and {block.more} more"}])
        body: dict[str, Any] = {
            "msg_type": "post",
            "content": {"post": {"zh_cn": {"title": message.title, "content": rows}}},
        }
        if self._secret is not None:
            timestamp = int(self._clock().timestamp())
            body = {
                "timestamp": str(timestamp),
                "sign": feishu_sign(self._secret.get_secret_value(), timestamp),
                **body,
            }
        return body

    async def send(self, message: Message) -> Answer:
        response = await self._post(
            self._url_value(),
            body=_json_bytes(self.payload(message)),
            headers={"Content-Type": "application/json"},
        )
        return self._json_answer(response, "code", self.RATE_LIMITED)


class SmnChannel(HttpChannel):
    """Huawei Cloud SMN, publish to a topic (support.huaweicloud.com/api-smn/PublishMessage.html):
    POST /v2/{project_id}/notifications/topics/{topic_urn}/publish with `subject` (at most
    512 bytes) and `message` (at most 256 KB), signed by the project's own AK/SK."""

    type = "smn"
    SUBJECT_LIMIT = 512
    MESSAGE_LIMIT = 256 * 1024

    def __init__(
        self,
        name: str,
        http: httpx.AsyncClient,
        *,
        endpoint: str,
        project_id: str,
        topic_urn: str,
        auth: httpx.Auth,
        timeout_s: float = 10.0,
        clock: Clock,
    ) -> None:
        super().__init__(name, http, url=None, timeout_s=timeout_s, clock=clock)
        self._publish_url = (
            f"{endpoint.rstrip('/')}/v2/{project_id}/notifications/topics/{topic_urn}/publish"
        )
        self._auth = auth

    def payload(self, message: Message) -> dict[str, Any]:
        return {
            "subject": _cut_bytes(message.title, self.SUBJECT_LIMIT).replace("\n", " "),
            "message": _cut_bytes(message.text(), self.MESSAGE_LIMIT),
        }

    async def send(self, message: Message) -> Answer:
        response = await self._post(
            self._publish_url,
            body=_json_bytes(self.payload(message)),
            headers={"Content-Type": "application/json;charset=utf8"},
            auth=self._auth,
        )
        return Answer(response.status_code, self._cut(response.text))
