"""Each channel against a loopback receiver that checks the payload and the signature the
way its vendor documents them (independently written here), with published vectors where
the vendor has them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from daemon.cloud.auth import AkSkAuth
from daemon.emulator import ManualClock
from daemon.emulator.smn import SmnEmulator
from daemon.notify import channels as ch
from daemon.notify import message as msg
from daemon.notify.message import WarnedGraph
from daemon.notify.signatures import BadSecret, webhook_key, webhook_signature
from tests.receivers import Scripted, receiver, serving

NOW = datetime(2026, 3, 10, 11, 45, tzinfo=UTC)
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks test suite's secret
PROJECT_ID = "0123456789abcdef0123456789abcdef"
TOPIC = f"urn:smn:cn-north-4:{PROJECT_ID}:graphnap"


def warning(n: int = 3) -> msg.Message:
    graphs = [
        WarnedGraph("analytics", f"g{i}", f"dev-{i:03d}", f"https://ctl.example/p/g{i}?sig=abc")
        for i in range(n)
    ]
    return msg.warning("weeknight-stop", "stop", NOW, graphs, max_items=20, key="warning/k")


@pytest.fixture
async def http() -> httpx.AsyncClient:
    async with httpx.AsyncClient() as client:
        yield client


# --- Standard Webhooks, CloudEvents ---------------------------------------------------------


def test_the_standard_webhooks_published_vector() -> None:
    # standard-webhooks/standard-webhooks, the reference libraries' test vector.
    key = webhook_key(WHSEC)
    signature = webhook_signature(
        key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_webhook_secret_of_the_wrong_shape_is_refused_without_showing_it() -> None:
    for bad in (
        "plain-secret-value",
        "whsec_not*base64",
        "whsec_" + base64.b64encode(b"short").decode(),
    ):
        with pytest.raises(BadSecret) as refused:
            webhook_key(bad)
        assert bad not in str(refused.value)


async def test_webhook_sends_a_signed_structured_cloudevent(http: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        channel = ch.WebhookChannel(
            "hook", http, url=SecretStr(rec.url), secret=SecretStr(WHSEC), clock=lambda: NOW
        )
        answer = await channel.send(warning())
    assert answer.status == 200
    seen = rec.seen[0]
    assert seen.headers["content-type"].startswith("application/cloudevents+json")
    # The receiver's check, as the spec describes it: id.timestamp.body, HMAC-SHA256, base64.
    ts = seen.headers["webhook-timestamp"]
    assert int(ts) == int(NOW.timestamp())
    signed = f"{seen.headers['webhook-id']}.{ts}.".encode() + seen.body
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert seen.headers["webhook-signature"] == f"v1,{expected}"
    event = seen.json()
    assert {"specversion", "id", "source", "type", "time", "datacontenttype", "data"} <= set(event)
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.graphnap.warning"
    assert event["id"] == seen.headers["webhook-id"]
    assert event["subject"] == "weeknight-stop"
    assert [g["name"] for g in event["data"]["graphs"]] == ["dev-000", "dev-001", "dev-002"]
    assert event["data"]["graphs"][0]["postpone_url"] == "https://ctl.example/p/g0?sig=abc"


async def test_a_retried_webhook_keeps_its_id_so_the_receiver_can_drop_repeats(
    http: httpx.AsyncClient,
) -> None:
    async with receiver() as rec:
        channel = ch.WebhookChannel(
            "hook", http, url=SecretStr(rec.url), secret=SecretStr(WHSEC), clock=lambda: NOW
        )
        await channel.send(warning())
        await channel.send(warning())
    assert rec.seen[0].headers["webhook-id"] == rec.seen[1].headers["webhook-id"]


# --- Slack ------------------------------------------------------------------------------------


async def test_slack_gets_text_and_mrkdwn_blocks_with_links(http: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        channel = ch.SlackChannel("slack", http, url=SecretStr(rec.url), clock=lambda: NOW)
        await channel.send(warning())
    body = rec.seen[0].json()
    assert body["text"].startswith("graphnap: weeknight-stop will stop 3 graphs")
    assert all(b["type"] == "section" and b["text"]["type"] == "mrkdwn" for b in body["blocks"])
    lines = body["blocks"][1]["text"]["text"]
    assert "<https://ctl.example/p/g0?sig=abc|postpone>" in lines


async def test_slack_escapes_what_mrkdwn_reads_as_markup(http: httpx.AsyncClient) -> None:
    message = msg.Message("test", "a <b> & c", (), NOW)
    async with receiver() as rec:
        await ch.SlackChannel("slack", http, url=SecretStr(rec.url), clock=lambda: NOW).send(
            message
        )
    assert rec.seen[0].json()["blocks"][0]["text"]["text"] == "*a &lt;b&gt; &amp; c*"


async def test_slack_429_is_retryable_with_its_retry_after(http: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        rec.script.append(Scripted(429, "rate_limited", {"Retry-After": "30"}))
        with pytest.raises(ch.SendError) as failed:
            await ch.SlackChannel("slack", http, url=SecretStr(rec.url), clock=lambda: NOW).send(
                warning()
            )
    assert failed.value.retryable
    assert failed.value.retry_after_s == 30


async def test_slack_404_is_not_retried(http: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        rec.script.append(Scripted(404, "no_service"))
        with pytest.raises(ch.SendError) as failed:
            await ch.SlackChannel("slack", http, url=SecretStr(rec.url), clock=lambda: NOW).send(
                warning()
            )
    assert not failed.value.retryable
    assert failed.value.answer == "no_service"


# --- WeCom ------------------------------------------------------------------------------------


async def test_wecom_gets_markdown_within_its_4096_bytes(http: httpx.AsyncClient) -> None:
    big = msg.warning(
        "weeknight-stop",
        "stop",
        NOW,
        [
            WarnedGraph("analytics", f"g{i}", f"开发图-{i:03d}", f"https://ctl.example/p/{i}")
            for i in range(500)
        ],
        max_items=200,
        key="k",
    )
    async with receiver() as rec:
        rec.default = Scripted(200, '{"errcode":0,"errmsg":"ok"}')
        await ch.WecomChannel(
            "wecom", http, url=SecretStr(rec.url + "?key=abc"), clock=lambda: NOW
        ).send(big)
    body = rec.seen[0].json()
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert content.startswith("**graphnap: weeknight-stop will stop 500 graphs")
    assert "[postpone](https://ctl.example/p/0)" in content


async def test_wecom_errcode_is_read_and_its_rate_limit_retried(http: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        rec.script.append(Scripted(200, '{"errcode":45009,"errmsg":"api freq out of limit"}'))
        rec.script.append(Scripted(200, '{"errcode":93000,"errmsg":"invalid webhook url"}'))
        channel = ch.WecomChannel("wecom", http, url=SecretStr(rec.url), clock=lambda: NOW)
        with pytest.raises(ch.SendError) as limited:
            await channel.send(warning())
        with pytest.raises(ch.SendError) as refused:
            await channel.send(warning())
    assert limited.value.retryable
    assert limited.value.retry_after_s == 60
    assert not refused.value.retryable
    assert "93000" in str(refused.value)


# --- DingTalk ---------------------------------------------------------------------------------


async def test_dingtalk_signs_in_the_query_as_its_documentation_computes_it(
    http: httpx.AsyncClient,
) -> None:
    secret = "SEC" + "a1b2c3d4" * 8
    times = [datetime.fromtimestamp(NOW.timestamp() + i, UTC) for i in range(12)]
    async with receiver() as rec:
        rec.default = Scripted(200, '{"errcode":0,"errmsg":"ok"}')
        for at in times:
            channel = ch.DingtalkChannel(
                "ding",
                http,
                url=SecretStr(rec.url + "?access_token=tok"),
                secret=SecretStr(secret),
                clock=lambda at=at: at,
            )
            await channel.send(warning())
    signs = []
    for at, seen in zip(times, rec.seen, strict=True):
        # The documentation's Python sample, in substance.
        timestamp = str(round(at.timestamp() * 1000))
        string_to_sign = f"{timestamp}\n{secret}"
        hmac_code = hmac.new(
            secret.encode("utf-8"), string_to_sign.encode("utf-8"), digestmod=hashlib.sha256
        ).digest()
        sign = base64.b64encode(hmac_code).decode()
        # Read as DingTalk's servers read a query (form decoding: a bare '+' would be a space).
        query = urllib.parse.parse_qs(seen.raw_query, strict_parsing=True)
        assert query == {"access_token": ["tok"], "timestamp": [timestamp], "sign": [sign]}
        signs.append(sign)
    assert any("+" in s for s in signs)  # the case that needs the encoding is among them
    body = rec.seen[0].json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("graphnap: weeknight-stop")
    assert "[postpone](https://ctl.example/p/g1?sig=abc)" in body["markdown"]["text"]


async def test_dingtalk_refusal_and_rate_limit(http: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        rec.script.append(Scripted(200, '{"errcode":310000,"errmsg":"sign not match"}'))
        rec.script.append(Scripted(200, '{"errcode":130101,"errmsg":"send too fast"}'))
        channel = ch.DingtalkChannel(
            "ding", http, url=SecretStr(rec.url), secret=SecretStr("SECx"), clock=lambda: NOW
        )
        with pytest.raises(ch.SendError) as refused:
            await channel.send(warning())
        with pytest.raises(ch.SendError) as limited:
            await channel.send(warning())
    assert not refused.value.retryable
    assert limited.value.retryable


# --- Feishu / Lark ----------------------------------------------------------------------------


async def test_feishu_signs_in_the_body_as_its_documentation_computes_it(
    http: httpx.AsyncClient,
) -> None:
    secret = "demo-feishu-secret"
    async with receiver() as rec:
        rec.default = Scripted(200, '{"code":0,"msg":"success","data":{}}')
        channel = ch.FeishuChannel(
            "lark", http, url=SecretStr(rec.url), secret=SecretStr(secret), clock=lambda: NOW
        )
        await channel.send(warning())
    body = rec.seen[0].json()
    # The documentation's Python sample: the string to sign is the HMAC's key, the message empty.
    string_to_sign = f"{body['timestamp']}\n{secret}"
    expected = base64.b64encode(
        hmac.new(string_to_sign.encode("utf-8"), digestmod=hashlib.sha256).digest()
    ).decode("utf-8")
    assert body["timestamp"] == str(int(NOW.timestamp()))
    assert body["sign"] == expected
    assert body["msg_type"] == "post"
    post = body["content"]["post"]["zh_cn"]
    assert post["title"].startswith("graphnap: weeknight-stop will stop 3 graphs")
    links = [seg for row in post["content"] for seg in row if seg["tag"] == "a"]
    assert [seg["href"] for seg in links][:1] == ["https://ctl.example/p/g0?sig=abc"]


async def test_feishu_sign_failure_is_a_refusal(http: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        rec.default = Scripted(
            200, '{"code":19021,"msg":"sign match fail or timestamp is not within one hour"}'
        )
        channel = ch.FeishuChannel(
            "lark", http, url=SecretStr(rec.url), secret=SecretStr("s"), clock=lambda: NOW
        )
        with pytest.raises(ch.SendError) as refused:
            await channel.send(warning())
    assert not refused.value.retryable
    assert "19021" in str(refused.value)


# --- Huawei Cloud SMN -------------------------------------------------------------------------


async def test_smn_publishes_signed_with_the_projects_own_keys(http: httpx.AsyncClient) -> None:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    smn = SmnEmulator({TOPIC}, {"AKDEMO": "SKDEMO"}, clock)
    async with serving(smn.app()) as endpoint:
        auth = AkSkAuth(
            SecretStr("AKDEMO"), SecretStr("SKDEMO"), project_id=PROJECT_ID, clock=clock
        )
        channel = ch.SmnChannel(
            "smn",
            http,
            endpoint=endpoint,
            project_id=PROJECT_ID,
            topic_urn=TOPIC,
            auth=auth,
            clock=clock,
        )
        answer = await channel.send(warning())
        wrong = AkSkAuth(
            SecretStr("AKDEMO"), SecretStr("not-the-sk"), project_id=PROJECT_ID, clock=clock
        )
        refused = ch.SmnChannel(
            "smn",
            http,
            endpoint=endpoint,
            project_id=PROJECT_ID,
            topic_urn=TOPIC,
            auth=wrong,
            clock=clock,
        )
        with pytest.raises(ch.SendError) as failed:
            await refused.send(warning())
    assert answer.status == 200
    assert "message_id" in answer.text
    [published] = smn.published
    assert published.topic_urn == TOPIC
    assert published.ak == "AKDEMO"
    assert published.subject.startswith("graphnap: weeknight-stop will stop 3 graphs")
    assert "dev-002 (analytics) postpone: https://ctl.example/p/g2?sig=abc" in published.message
    assert failed.value.status == 401
    assert not failed.value.retryable


# --- what a channel never shows ---------------------------------------------------------------


async def test_a_refused_answer_never_carries_the_url_or_secret(http: httpx.AsyncClient) -> None:
    async with receiver() as rec:
        url = rec.url + "?access_token=tok-0123456789"
        rec.default = Scripted(400, f"bad request to {url} with sign SECsecret-value")
        channel = ch.DingtalkChannel(
            "ding", http, url=SecretStr(url), secret=SecretStr("SECsecret-value"), clock=lambda: NOW
        )
        with pytest.raises(ch.SendError) as failed:
            await channel.send(warning())
    text = f"{failed.value} {failed.value.answer} {channel!r}"
    assert "tok-0123456789" not in text
    assert "SECsecret-value" not in text
    assert rec.url not in text


async def test_an_unreachable_receiver_is_named_by_the_error_class_only(
    http: httpx.AsyncClient,
) -> None:
    url = "http://127.0.0.1:9/hook?key=secret-key-123"  # the discard port: nothing listens
    channel = ch.SlackChannel("slack", http, url=SecretStr(url), clock=lambda: NOW)
    with pytest.raises(ch.SendError) as failed:
        await channel.send(warning())
    assert failed.value.retryable
    assert "secret-key-123" not in str(failed.value)
    assert "127.0.0.1" not in str(failed.value)
    assert failed.value.__cause__ is None  # httpx's error (and its URL) is not chained


def test_retry_after_as_seconds_or_an_http_date() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert ch.retry_after("120", now) == 120
    assert ch.retry_after("Tue, 10 Mar 2026 12:00:30 GMT", now) == 30
    assert ch.retry_after("soon", now) is None
    assert ch.retry_after(None, now) is None
