"""The command line as a person uses it: exit codes and what is printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli.main import main

ROOT = Path(__file__).parents[1]


def test_validate_accepts_the_shipped_configs(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["validate", str(ROOT / "config/example.yaml"), str(ROOT / "config/demo.yaml")]) == 0
    )
    assert capsys.readouterr().out.count(": ok (") == 2


def test_validate_prints_every_error_with_location_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "projects:\n  - {name: p, region: cn-north-4, project_id: abc, credentials: p}\n"
        "schedules:\n  - {name: s, action: stop, cron: '0 25 * * *', timezone: Mars/Base, targets: {projects: [p]}}\n"
    )
    assert main(["validate", str(bad), str(ROOT / "config/demo.yaml")]) == 2
    captured = capsys.readouterr()
    assert "line 4: schedules[0].cron: invalid cron expression" in captured.err
    assert "schedules[0].timezone: unknown time zone 'Mars/Base'" in captured.err
    assert "demo.yaml: ok" in captured.out


def test_validate_warns_on_an_expired_hold_and_refuses_one_beyond_max_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = "projects:\n  - {name: p, region: cn-north-4, project_id: abc, credentials: p}\n"
    hold = "holds:\n  - {graphs: {project: p, names: [dev-a]}, keep: running, until: '%s', reason: demo}\n"
    expired = tmp_path / "expired.yaml"
    expired.write_text(head + hold % "2020-01-01T00:00:00+08:00")
    assert main(["validate", str(expired)]) == 0  # a warning does not change the exit code
    captured = capsys.readouterr()
    assert (
        "warning: holds[0].until: expired: until 2020-01-01 00:00 +08:00 has passed" in captured.err
    )
    assert "expired.yaml: ok" in captured.out

    too_long = tmp_path / "long.yaml"
    too_long.write_text(head + "max_hold: 1d\n" + hold % "2099-01-01T00:00:00+08:00")
    assert main(["validate", str(too_long)]) == 2
    captured = capsys.readouterr()
    assert "error: holds[0].until:" in captured.err
    assert "beyond the longest allowed hold (24h)" in captured.err
    assert "ok" not in captured.out


def test_schema_is_json_schema_for_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert {"projects", "schedules", "idle_rules", "calendars", "pricing"} <= set(
        schema["properties"]
    )


def test_emulator_help_documents_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["emulator", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--port",
        "--project-id",
        "--graphs",
        "--ak",
        "--sk",
        "--throttle-rps",
        "--error-rate",
    ):
        assert option in out


PLAN_CONFIG = """
projects:
  - {name: lab, region: cn-north-4, project_id: 0123456789abcdef0123456789abcdef, credentials: lab, endpoints: {ges: "URL"}}
calendars:
  everyday-off: {dates: [DATES]}
schedules:
  - {name: night-stop, action: stop, cron: "0 20 * * *", timezone: Asia/Shanghai, targets: {names: ["dev-*"]}, exclude: {names: ["*-keep"]}}
  - {name: morning-start, action: start, cron: "0 8 * * *", timezone: Asia/Shanghai, targets: {tags: {env: dev}}, skip_on: everyday-off}
"""


def test_plan_lists_the_coming_actions_in_local_and_utc_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    days = ", ".join((today + timedelta(days=i)).isoformat() for i in range(-1, 4))
    config = tmp_path / "c.yaml"
    config.write_text(PLAN_CONFIG.replace("URL", "http://127.0.0.1:1").replace("DATES", days))
    assert main(["plan", str(config), "--hours", "48"]) == 0
    out = capsys.readouterr().out
    stops = [line for line in out.splitlines() if line.startswith("night-stop")]
    starts = [line for line in out.splitlines() if line.startswith("morning-start")]
    assert len(stops) == 2
    assert all("20:00 CST" in line and "12:00 UTC" in line for line in stops)
    assert "names=dev-* minus names=*-keep" in stops[0]
    assert len(starts) == 2
    assert all("skipped: holiday" in line for line in starts)


async def _run_cli(
    *args: str, env: dict[str, str], python: tuple[str, ...] = ()
) -> tuple[int, str, str]:
    import asyncio
    import os
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *python,
        "-m",
        "daemon",
        *args,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("GRAPHNAP_")}, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_once_fires_follows_jobs_and_prints_the_outcome_per_graph(tmp_path: Path) -> None:
    from daemon.emulator import Cloud, EmulatorServer, Timing
    from daemon.emulator.cloud import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK

    cloud = Cloud(
        [DEMO_PROJECT_ID],
        timing=Timing(pending_s=0.1, stop_s=0.3, start_s=0.3),
        access_keys={DEMO_AK: DEMO_SK},
    )
    cloud.add_graph(DEMO_PROJECT_ID, "dev-a")
    cloud.add_graph(DEMO_PROJECT_ID, "dev-b")
    cloud.add_graph(DEMO_PROJECT_ID, "dev-db-keep")
    cloud.add_graph(DEMO_PROJECT_ID, "dev-busy", status=202)
    async with EmulatorServer(cloud) as server:
        config = tmp_path / "c.yaml"
        config.write_text(PLAN_CONFIG.replace("URL", server.url).replace("DATES", "2000-01-01"))
        env = {
            "GRAPHNAP_CREDENTIALS__LAB__AK": DEMO_AK,
            "GRAPHNAP_CREDENTIALS__LAB__SK": DEMO_SK,
            "GRAPHNAP_POLL_INITIAL_S": "0.2",
            "GRAPHNAP_POLL_MAX_S": "0.2",
        }

        code, out, err = await _run_cli(
            "plan", "--config", str(config), "--hours", "1", "--live", env=env
        )
        assert code == 0, err
        assert "night-stop  lab      dev-busy     skip      busy (importing)" in out

        listed = cloud.count("list_graphs")
        code, out, err = await _run_cli(
            "once", "night-stop", "--config", str(config), "--dry-run", env=env
        )
        assert code == 0, err
        assert out.count("dry_run") == 2
        assert cloud.count("graph_action") == 0
        assert cloud.count("list_graphs") == listed + 1  # the firing's listing, no other

        cloud.faults.failing_jobs = 1
        code, out, err = await _run_cli("once", "night-stop", "--config", str(config), env=env)
        lines = {line.split()[1]: line for line in out.splitlines()[1:]}
        assert code == 1, out + err  # one job failed
        assert "succeeded" in lines["dev-b"] or "succeeded" in lines["dev-a"]
        assert any(
            "failed" in lines[g] and "job failed: emulated failure" in lines[g]
            for g in ("dev-a", "dev-b")
        )
        assert "excluded by the rule's exclude" in lines["dev-db-keep"]
        assert "busy (importing)" in lines["dev-busy"]

        code, out, err = await _run_cli("once", "nope", "--config", str(config), env=env)
        assert code == 2
        assert "unknown schedule 'nope'; known: night-stop, morning-start" in err


def test_bad_settings_name_the_variable_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRAPHNAP_LISTEN_PORT", "nine")
    monkeypatch.setenv("GRAPHNAP_CREDENTIALS__LAB__AK", "AKONLY")
    assert main(["run", "--config", str(ROOT / "config/demo.yaml")]) == 2
    err = capsys.readouterr().err
    assert "GRAPHNAP_LISTEN_PORT: Input should be a valid integer" in err
    assert "GRAPHNAP_CREDENTIALS__LAB: an AK needs its SK" in err
    assert "AKONLY" not in err


def test_a_busy_port_is_a_clear_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["emulator", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"('127.0.0.1', {port})" in err
    assert "another process holds this address" in err
    assert "Traceback" not in err


async def test_plan_live_applies_holidays_like_a_firing_does(tmp_path: Path) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from daemon.emulator import Cloud, EmulatorServer
    from daemon.emulator.cloud import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK

    cloud = Cloud([DEMO_PROJECT_ID], access_keys={DEMO_AK: DEMO_SK})
    cloud.add_graph(DEMO_PROJECT_ID, "dev-sleeper", status=900, tags={"env": "dev"})
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the schedule's local date
    days = ", ".join((today + timedelta(days=i)).isoformat() for i in (-1, 0, 1))
    async with EmulatorServer(cloud) as server:
        config = tmp_path / "c.yaml"
        config.write_text(PLAN_CONFIG.replace("URL", server.url).replace("DATES", days))
        env = {"GRAPHNAP_CREDENTIALS__LAB__AK": DEMO_AK, "GRAPHNAP_CREDENTIALS__LAB__SK": DEMO_SK}
        code, out, err = await _run_cli("plan", "--config", str(config), "--live", env=env)
    assert code == 0, err
    live = out.split("If each schedule fired now:")[1]
    starts = [line for line in live.splitlines() if line.startswith("morning-start")]
    # the stopped dev graph would be started on a working day; today is a holiday
    assert len(starts) == 1
    assert "skip" in starts[0]
    assert f"holiday {today.isoformat()} in calendar everyday-off" in starts[0]
    assert cloud.count("graph_action") == 0


def idle_config(url: str) -> str:
    """PLAN_CONFIG on the emulator at `url` (GES and Cloud Eye) with an idle rule, idle-dev."""
    return (
        PLAN_CONFIG.replace("URL", url)
        .replace("DATES", "2000-01-01")
        .replace(f'ges: "{url}"', f'ges: "{url}", ces: "{url}"')
        + "idle_rules:\n  - {name: idle-dev, targets: {names: ['dev-*']}, idle_for: 2h}\n"
    )


async def test_backtest_prints_what_an_idle_rule_would_have_saved(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from daemon.emulator import Cloud, EmulatorServer
    from daemon.emulator.cloud import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK
    from daemon.emulator.cloudeye import DailyTraffic

    week_ago = datetime.now(UTC) - timedelta(days=7)
    cloud = Cloud([DEMO_PROJECT_ID], access_keys={DEMO_AK: DEMO_SK})
    # Queried 01:00-11:00 UTC (09:00-19:00 in Shanghai), idle every night.
    office = DailyTraffic(1, 11, 5.0)
    cloud.add_graph(DEMO_PROJECT_ID, "dev-nightly", created=week_ago, traffic=office)
    cloud.add_graph(DEMO_PROJECT_ID, "dev-always", created=week_ago, traffic=2.0)
    async with EmulatorServer(cloud) as server:
        config = tmp_path / "c.yaml"
        config.write_text(
            idle_config(server.url) + 'pricing: {currency: USD, hourly: {"1": 1.25}}\n'
        )
        env = {"GRAPHNAP_CREDENTIALS__LAB__AK": DEMO_AK, "GRAPHNAP_CREDENTIALS__LAB__SK": DEMO_SK}
        code, out, err = await _run_cli(
            "backtest", "idle-dev", "--days", "3", "--config", str(config), env=env
        )
        unknown, _, unknown_err = await _run_cli(
            "backtest", "nope", "--config", str(config), env=env
        )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("backtest idle-dev: 3 days of Cloud Eye history")
    nightly = next(line for line in lines if "dev-nightly" in line).split()
    always = next(line for line in lines if "dev-always" in line).split()
    assert int(nightly[2]) >= 2  # stopped on (at least) two of the three nights
    assert float(nightly[3]) > 20  # hours stopped
    assert always[2:4] == ["0", "0.0"]
    assert lines[-1].startswith("total")
    assert (unknown, "unknown idle rule 'nope'; known: idle-dev") == (2, unknown_err.strip())


def test_run_logs_a_readable_secret_file_warning_as_a_json_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "lab.ak").write_text("AKEXAMPLE")
    (secrets / "lab.sk").write_text("very-secret-sk")
    (secrets / "lab.sk").chmod(0o644)
    monkeypatch.setenv("GRAPHNAP_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("GRAPHNAP_LOG_FORMAT", "json")
    missing = tmp_path / "missing.yaml"  # the run stops at once: exit 2
    assert main(["run", "--config", str(missing)]) == 2
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    warnings = [r for r in lines if "secret file" in r["message"]]
    assert {r["level"] for r in warnings} == {"WARNING"}
    assert any("lab.sk is readable by group or others" in r["message"] for r in warnings)
    assert "very-secret-sk" not in json.dumps(lines)


@pytest.mark.parametrize("argv", [["--help"], ["validate", "--help"], ["plan", "--help"]])
def test_help_imports_neither_the_daemon_nor_the_emulator(argv: list[str]) -> None:
    """What `graphnap --help` loads, read from the interpreter's own import log."""
    import subprocess
    import sys

    result = subprocess.run(  # noqa: S603 (our own interpreter on our own module)
        [sys.executable, "-X", "importtime", "-m", "daemon", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "usage: graphnap" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "daemon.cli.main" in imported  # the log is read right
    heavy = ("daemon.app", "daemon.runtime", "daemon.emulator", "apscheduler", "aiohttp", "httpx")
    assert sorted(m for m in imported if m.startswith(heavy)) == []


async def test_one_shot_commands_load_no_web_server_even_where_run_would_serve(
    tmp_path: Path,
) -> None:
    """`once`, `plan --live` and `backtest` serve nothing: they load neither aiohttp (a quarter
    of a second of their start) nor the ops server, control API or postpone page, even with
    the settings under which `run` serves all of those. Read from the import log of real runs
    against the emulator, so a module-level import anywhere on their path fails this."""
    from daemon.emulator import Cloud, EmulatorServer, Timing
    from daemon.emulator.cloud import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK
    from tests.test_control import write_tokens

    timing = Timing(pending_s=0.05, stop_s=0.1, start_s=0.1)
    cloud = Cloud([DEMO_PROJECT_ID], timing=timing, access_keys={DEMO_AK: DEMO_SK})
    cloud.add_graph(DEMO_PROJECT_ID, "dev-a")
    async with EmulatorServer(cloud) as server:
        config = tmp_path / "c.yaml"
        config.write_text(idle_config(server.url))
        env = {
            "GRAPHNAP_CREDENTIALS__LAB__AK": DEMO_AK,
            "GRAPHNAP_CREDENTIALS__LAB__SK": DEMO_SK,
            "GRAPHNAP_CONTROL_TOKENS_DIR": str(write_tokens(tmp_path / "tokens")),
            "GRAPHNAP_CONTROL_PUBLIC_URL": "https://graphnap.example.com",
            "GRAPHNAP_LISTEN_PORT": "0",
            "GRAPHNAP_CONTROL_PORT": "0",
            "GRAPHNAP_POLL_INITIAL_S": "0.1",
            "GRAPHNAP_POLL_MAX_S": "0.1",
        }
        loaded = {}
        for command in (
            ["once", "night-stop"],  # stops dev-a and follows its job to the end
            ["plan", "--hours", "1", "--live"],
            ["backtest", "idle-dev", "--days", "1"],
        ):
            code, out, err = await _run_cli(
                *command, "--config", str(config), env=env, python=("-X", "importtime")
            )
            assert code == 0, out + err
            log = [line.rsplit("|", 1)[-1].strip() for line in err.splitlines()]
            loaded[command[0]] = {m for m in log if m.startswith(("aiohttp", "daemon.ops"))}
    assert cloud.count("graph_action") == 1  # once stopped dev-a
    assert cloud.count("list_graphs") >= 3  # and each command listed the graphs
    web = ("aiohttp", "daemon.ops.server", "daemon.ops.control", "daemon.ops.postpone")
    for command, modules in loaded.items():
        assert "daemon.ops.links" in modules, command  # the log is read right
        assert sorted(m for m in modules if m.startswith(web)) == [], command


def test_the_daemon_loads_lightkube_and_holidays_only_when_its_config_needs_them(
    tmp_path: Path,
) -> None:
    """`graphnap run` imports the daemon and reads its config before the first GES request
    leaves: without leader election or a ConfigMap store it needs no Kubernetes client
    (lightkube, 160 ms of imports), and without a country calendar none of the holidays
    package's ~280 country modules (a quarter of a second at the first config check)."""
    import subprocess
    import sys

    config = tmp_path / "c.yaml"
    config.write_text(
        "projects:\n  - {name: lab, region: cn-north-4, project_id: "
        '"0123456789abcdef0123456789abcdef", credentials: lab}\n'
        "calendars:\n  office: {dates: [2026-12-24]}\n"
        "schedules:\n  - {name: night, action: stop, cron: '0 20 * * *', timezone: UTC,"
        " targets: {tags: {env: dev}}, skip_on: [office]}\n"
    )
    code = (
        "import sys; from pathlib import Path; import daemon.cli.run; "
        "from daemon.config.loader import load_config; "
        f"load_config(Path({str(config)!r})); "
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run(  # noqa: S603 (our own interpreter on our own module)
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    top = set(eval(result.stdout))  # noqa: S307 (our own process's printed list)
    assert {"daemon", "apscheduler", "httpx"} <= top  # the daemon is really loaded
    assert top.isdisjoint({"lightkube", "holidays"})


async def test_plan_live_shows_a_held_graph_with_its_reason_and_the_holds(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from daemon.emulator import Cloud, EmulatorServer
    from daemon.emulator.cloud import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK

    cloud = Cloud([DEMO_PROJECT_ID], access_keys={DEMO_AK: DEMO_SK})
    cloud.add_graph(DEMO_PROJECT_ID, "dev-a")
    cloud.add_graph(DEMO_PROJECT_ID, "dev-b")
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    hold = (
        "holds:\n  - {graphs: {project: lab, names: [dev-a]}, keep: running, "
        f"until: '{until.isoformat()}', reason: release test, by: alice}}\n"
    )
    async with EmulatorServer(cloud) as server:
        config = tmp_path / "c.yaml"
        config.write_text(
            PLAN_CONFIG.replace("URL", server.url).replace("DATES", "2000-01-01") + hold
        )
        env = {"GRAPHNAP_CREDENTIALS__LAB__AK": DEMO_AK, "GRAPHNAP_CREDENTIALS__LAB__SK": DEMO_SK}
        code, out, err = await _run_cli("plan", "--config", str(config), "--live", env=env)
    assert code == 0, err
    live = out.split("If each schedule fired now:")[1]
    (held,) = [
        line for line in live.splitlines() if line.startswith("night-stop") and "dev-a" in line
    ]
    assert "skip" in held
    assert "held running until" in held
    assert "by alice: release test" in held
    assert "Holds in force (1):" in out
    assert cloud.count("graph_action") == 0
