"""`graphnap notify test CHANNEL`, run as a process against a loopback receiver."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.receivers import Scripted, receiver

RUN = "import sys\nfrom daemon.cli.main import main\nsys.exit(main())\n"  # graphnap itself
CONFIG = """
projects:
  - {name: analytics, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdef, credentials: analytics}
notifications:
  channels:
    ding: {type: dingtalk}
  routes:
    - channels: [ding]
"""


async def notify_test(tmp_path: Path, channel: str) -> tuple[int, str, str]:
    env = {**os.environ, "GRAPHNAP_SECRETS_DIR": str(tmp_path / "secrets")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUN,
        "notify",
        "test",
        channel,
        "--config",
        str(tmp_path / "config.yaml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def setup(tmp_path: Path, url: str) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, value in {
        "notify.ding.url": url,
        "notify.ding.secret": "SECtestsecret",
        "analytics.ak": "AK",
        "analytics.sk": "SK",
    }.items():
        (secrets / name).write_text(value)
        (secrets / name).chmod(0o600)


async def test_notify_test_prints_the_answer_and_exits_0(tmp_path: Path) -> None:
    async with receiver() as rec:
        rec.default = Scripted(200, '{"errcode":0,"errmsg":"ok"}')
        setup(tmp_path, rec.url + "?access_token=tok-secret-123")
        code, out, err = await notify_test(tmp_path, "ding")
    assert code == 0, err
    assert out.strip() == 'ding (dingtalk): delivered, HTTP 200: {"errcode":0,"errmsg":"ok"}'
    assert rec.seen[0].json()["markdown"]["title"] == "graphnap: test message to channel ding"
    assert "sign" in rec.seen[0].query


async def test_notify_test_says_what_a_refusal_was_without_the_secret(tmp_path: Path) -> None:
    async with receiver() as rec:
        rec.default = Scripted(200, '{"errcode":310000,"errmsg":"sign not match"}')
        setup(tmp_path, rec.url + "?access_token=tok-secret-123")
        code, out, err = await notify_test(tmp_path, "ding")
    assert code == 1
    assert "code 310000" in err
    assert "sign not match" in err
    assert "tok-secret-123" not in out + err


async def test_notify_test_names_an_unknown_channel(tmp_path: Path) -> None:
    setup(tmp_path, "http://127.0.0.1:9/")
    code, _, err = await notify_test(tmp_path, "slack")
    assert code == 2
    assert "unknown channel 'slack'; known: ding" in err
