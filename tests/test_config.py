"""The config as people write it: typed values, each mistake named at its place, hostile
values, secrets never echoed, endpoint overrides, and hot reload surviving any of it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from daemon.cli.main import main
from daemon.config.loader import parse_config
from daemon.config.models import Config, parse_duration
from daemon.config.problems import ConfigError, Problem
from daemon.ops.reload import ConfigSource
from daemon.telemetry.metrics import Metrics
from tests.conftest import sample as registry_sample
from tests.test_yaml_reader import billion_laughs

ROOT = Path(__file__).parents[1]
PROJECT = """
projects:
  - name: analytics
    region: cn-north-4
    project_id: 0123456789abcdef0123456789abcdef
    credentials: analytics
"""


def schedule(extra: str = "", **fields: str) -> str:
    values = {
        "name": "night",
        "action": "stop",
        "cron": '"0 20 * * mon-fri"',
        "timezone": "Asia/Shanghai",
        "targets": "{projects: [analytics]}",
        **fields,
    }
    body = "\n".join(f"    {k}: {v}" for k, v in values.items())
    return f"{PROJECT}\nschedules:\n  - {body.lstrip()}\n{extra}"


def problems(text: str) -> list[tuple[str, str, int | None]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.yaml")
    return [(p.where, p.message, p.line) for p in caught.value.problems]


def test_a_good_schedule_is_parsed_into_typed_values() -> None:
    config = parse_config(schedule(misfire_grace="90s", timeout="1h30m"))
    night = config.schedule("night")
    assert night.misfire_grace == timedelta(seconds=90)
    assert night.timeout == timedelta(hours=1, minutes=30)
    assert config.project("analytics").ges_endpoint == "https://ges.cn-north-4.myhuaweicloud.com"


@pytest.mark.parametrize(
    ("fields", "where", "words"),
    [
        ({"cron": '"0 25 * * *"'}, "schedules[0].cron", "higher than the maximum"),
        ({"cron": '"0 20 * *"'}, "schedules[0].cron", "has 4 fields"),
        ({"cron": '"0 8 1 * mon"'}, "schedules[0].cron", "split it into two schedules"),
        ({"timezone": "Asia/Shanghia"}, "schedules[0].timezone", "did you mean 'Asia/Shanghai'"),
        ({"action": "pause"}, "schedules[0].action", "'stop' or 'start'"),
        ({"misfire_grace": "5"}, "schedules[0].misfire_grace", "is not a duration"),
        ({"misfire_grace": "soon"}, "schedules[0].misfire_grace", "is not a duration"),
        ({"name": '"bad name!"'}, "schedules[0].name", "not allowed"),
        (
            {"targets": "{projects: [analytics], tagz: {a: b}}"},
            "schedules[0].targets.tagz",
            "did you mean 'tags'",
        ),
        (
            {"targets": "{projects: [nope]}"},
            "schedules[0].targets.projects[0]",
            "unknown project 'nope'",
        ),
        ({"targets": "{}"}, "schedules[0].targets", "selects nothing"),
        ({"skip_on": "missing-cal"}, "schedules[0].skip_on[0]", "unknown calendar"),
        ({"backup_id": "b1"}, "schedules[0].backup_id", "only a start schedule"),
        (
            {"action": "start", "keep_stopped_until": '"0 8 * * *"'},
            "schedules[0].keep_stopped_until",
            "only a stop schedule",
        ),
    ],
)
def test_each_schedule_error_names_its_location(
    fields: dict[str, str], where: str, words: str
) -> None:
    found = problems(schedule(**fields))
    assert any(w == where and words in m for w, m, _ in found), found


def test_errors_carry_the_line_number_of_the_offending_key() -> None:
    found = problems(schedule(cron='"0 25 * * *"'))
    assert (
        found[0][2]
        == schedule(cron='"0 25 * * *"').splitlines().index('    cron: "0 25 * * *"') + 1
    )


def test_unknown_top_level_key_lists_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(PROJECT + "schedule: []\n")
    problem = caught.value.problems[0]
    assert problem.where == "schedule"
    assert "did you mean 'schedules'" in problem.message
    assert "idle_rules" in problem.hint


def test_yaml_booleans_get_a_quoting_hint_and_numeric_keys_stay_names() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(PROJECT + "calendars:\n  no: {country: NO}\npricing: {hourly: {1: 1.25}}\n")
    (problem,) = caught.value.problems
    assert problem.where == "calendars.no.country"
    assert "quote" in problem.hint


def test_calendars_know_countries_and_inline_dates() -> None:
    config = parse_config(
        PROJECT + "calendars:\n  cn: {country: CN}\n  own: {dates: [2026-12-24]}\n"
    )
    assert config.calendars["cn"].is_holiday(date(2026, 10, 1))  # National Day
    assert not config.calendars["cn"].is_holiday(date(2026, 11, 26))
    assert config.calendars["own"].is_holiday(date(2026, 12, 24))
    with pytest.raises(ConfigError, match="not a country"):
        parse_config(PROJECT + "calendars:\n  x: {country: XX}\n")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_a_single_name_is_accepted_where_a_list_of_names_is_asked_for() -> None:
    text = schedule(
        "calendars:\n  cn-holidays: {country: CN}\n",
        targets='{projects: analytics, names: "dev-*"}',
        exclude='{names: "*-keep"}',
        skip_on="cn-holidays",
    )
    (rule,) = parse_config(text).schedules
    assert rule.targets.projects == ["analytics"]
    assert rule.targets.names == ["dev-*"]
    assert rule.exclude is not None
    assert rule.exclude.names == ["*-keep"]
    assert rule.skip_on == ["cn-holidays"]


# --- hostile input in a config: every failure is a located ConfigError (the reader's own
# refusals and bounds: test_yaml_reader.py) ---

EXAMPLE = (ROOT / "config" / "example.yaml").read_text()


def example_line(text: str) -> int:
    """The line of config/example.yaml where `text` first appears."""
    return next(i for i, line in enumerate(EXAMPLE.splitlines(), 1) if text in line)


@pytest.mark.parametrize(
    ("text", "where", "line", "words"),
    [
        (
            EXAMPLE.replace("2026-12-24", "2026-02-30"),
            "calendars.sg-office.dates[0]",
            30,
            "'2026-02-30' is not a valid date: day is out of range for month",
        ),
        (
            EXAMPLE.replace("idle_for: 2h", "idle_for: 2026-13-01T10:00:00"),
            "idle_rules[0].idle_for",
            example_line("idle_for: 2h"),
            "is not a valid date: month must be in 1..12",
        ),
        (
            EXAMPLE.replace("idle_for: 2h", "idle_for: 99999999999999999999999w"),
            "idle_rules[0].idle_for",
            example_line("idle_for: 2h"),
            "longer than 366d",
        ),
        (
            EXAMPLE.replace("threshold: 0", "threshold: 1" + "0" * 5000),
            "idle_rules[0].threshold",
            example_line("threshold: 0"),
            "5001 characters",
        ),
        (
            EXAMPLE.replace("USD", "US\x00D"),
            "(top level)",
            example_line("currency: USD"),
            "control character U+0000",
        ),
        (billion_laughs(12, 10), "a5", 6, "alias bomb"),
        (
            EXAMPLE.replace("currency: USD", "currency: !!python/object/apply:os.system [id]"),
            "pricing.currency",
            example_line("currency: USD"),
            "!!python/object/apply:os.system is not allowed",
        ),
    ],
    ids=[
        "impossible-date",
        "impossible-timestamp",
        "overflowing-duration",
        "5000-digit-int",
        "nul-byte",
        "billion-laughs",
        "python-tag",
    ],
)
def test_hostile_input_is_a_located_config_error(
    text: str, where: str, line: int, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "hostile.yaml")
    (problem,) = caught.value.problems
    assert problem.where.startswith(where), str(problem)
    assert problem.line == line, str(problem)
    assert words in problem.message, str(problem)


def test_aliases_and_merge_keys_still_work_and_explicit_keys_win() -> None:
    text = """
projects:
  - &base {name: analytics, region: cn-north-4, project_id: abc123, credentials: analytics}
  - {<<: *base, name: lab, project_id: def456}
schedules:
  - {name: a, action: stop, cron: "@daily", timezone: UTC, targets: &dev {projects: [lab]}}
  - {name: b, action: stop, cron: "@weekly", timezone: UTC, targets: *dev}
"""
    config = parse_config(text)
    assert [(p.name, p.project_id, p.region) for p in config.projects] == [
        ("analytics", "abc123", "cn-north-4"),
        ("lab", "def456", "cn-north-4"),
    ]
    assert config.schedule("b").targets.projects == ["lab"]


# --- hot reload survives anything -----------------------------------------------------------


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry_sample(registry, name, **labels)


def source_for(path: Path, registry: CollectorRegistry, **kwargs: Any) -> ConfigSource:
    return ConfigSource(
        path,
        Metrics(registry),
        check=kwargs.pop("check", lambda config: []),
        clock=lambda: datetime(2026, 11, 27, tzinfo=UTC),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("calendars:\n  own: {dates: [2026-02-30]}\n", "calendars.own.dates[0]: '2026-02-30'"),
        ("calendars: &c\n  own: *c\n", "recursive alias"),
        (billion_laughs(12, 10), "alias bomb"),
    ],
    ids=["impossible-date", "recursive-alias", "alias-bomb"],
)
async def test_a_reload_that_fails_in_any_way_is_counted_and_the_watcher_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: str, words: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(PROJECT)
    registry = CollectorRegistry()
    source = source_for(path, registry)
    source.load()
    path.write_text(PROJECT + bad)
    assert await source.check() is False
    assert sample(registry, "graphnap_config_reloads_total", result="failure") == 1
    assert sample(registry, "graphnap_config_last_reload_successful") == 0
    assert words in source.last_error
    assert words in caplog.text
    assert "Traceback" not in caplog.text
    path.write_text(PROJECT + "schedules: []\n")
    assert await source.check() is True
    assert sample(registry, "graphnap_config_reloads_total", result="success") == 1
    assert sample(registry, "graphnap_config_last_reload_successful") == 1


async def test_the_watch_loop_survives_an_unexpected_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(PROJECT)
    registry = CollectorRegistry()
    edits = iter([PROJECT + "schedules: []\n", PROJECT + "idle_rules: []\n"])
    polls = 0

    def check(config: Config) -> list[Problem]:
        if config.schedules == [] and "schedules" in path.read_text():
            raise RuntimeError("a bug in a check")
        return []

    async def sleep(seconds: float) -> None:
        nonlocal polls
        polls += 1
        edit = next(edits, None)
        if edit is None:
            raise asyncio.CancelledError
        path.write_text(edit)

    source = source_for(path, registry, check=check, sleep=sleep)
    source.load()
    with pytest.raises(asyncio.CancelledError):
        await source.watch(5)
    assert polls == 3  # the loop went on after the exception
    assert sample(registry, "graphnap_config_reloads_total", result="failure") == 1
    assert sample(registry, "graphnap_config_reloads_total", result="success") == 1
    assert sample(registry, "graphnap_config_last_reload_successful") == 1
    assert "could not be checked: RuntimeError" in caplog.text


async def test_a_listener_that_fails_on_reload_is_reported_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(PROJECT)
    registry = CollectorRegistry()
    source = source_for(path, registry)
    seen: list[Config] = []

    def fragile(config: Config) -> None:
        if seen:
            raise ValueError("cannot apply")
        seen.append(config)

    source.on_change(fragile)
    source.load()
    path.write_text(PROJECT + "schedules: []\n")
    assert await source.check() is False
    assert "fragile failed to apply the new config" in caplog.text
    assert "in force, but" in source.last_error
    assert sample(registry, "graphnap_config_last_reload_successful") == 0


# --- secrets pasted into the config are never echoed in full --------------------------------

SK = "Qm9vZ2llV29vZ2llMTIzNDU2Nzg5MGFiY2RlZmdo"  # 40 characters, the shape of a Huawei SK


@pytest.mark.parametrize(
    ("old", "new", "where", "words"),
    [
        (
            "credentials: analytics",
            f"credentials: {SK}",
            "projects[0].credentials",
            "looks like a secret",
        ),
        ("region: cn-north-4", f"region: {SK}", "projects[0].region", "is not allowed here"),
        ("name: weeknight-stop", f"name: {SK}/x", "schedules[0].name", "is not allowed here"),
        (
            "misfire_grace: 2h",
            f"misfire_grace: {SK}",
            "schedules[0].misfire_grace",
            "not a duration",
        ),
        ('cron: "0 20 * * mon-fri"', f'cron: "0 20 * * {SK}"', "schedules[0].cron", "invalid cron"),
        ("currency: USD", f"currency: {SK}", "pricing.currency", "is not allowed here"),
        (
            "projects: [analytics]\n      names",
            f"projects: [{SK}]\n      names",
            "schedules[0].targets.projects[0]",
            "unknown project",
        ),
        ("skip: graphnap-skip", f"{SK}: x", "opt_out_tags", "unknown key"),
        ("  cn-holidays:\n", f"  '{SK}!':\n", "calendars.'Qm9v…'", "this key is not allowed"),
    ],
    ids=[
        "credentials",
        "region",
        "name",
        "duration",
        "cron",
        "currency",
        "reference",
        "key",
        "key-pattern",
    ],
)
def test_a_secret_pasted_under_any_key_is_not_echoed_by_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, where: str, words: str
) -> None:
    assert old in EXAMPLE
    path = tmp_path / "leaky.yaml"
    path.write_text(EXAMPLE.replace(old, new, 1))
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert where in err, err
    assert words in err, err
    assert SK not in out + err
    assert SK[:8] not in out + err  # at most a few characters of it


async def test_a_secret_in_a_reloaded_config_stays_out_of_the_log_and_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(PROJECT)
    source = source_for(path, CollectorRegistry())
    source.load()
    path.write_text(PROJECT.replace("credentials: analytics", f"credentials: {SK}"))
    assert await source.check() is False
    assert "projects[0].credentials" in source.last_error  # what /status shows
    assert SK[:8] not in source.last_error
    assert SK[:8] not in caplog.text


# --- endpoint overrides ---------------------------------------------------------------------


def with_endpoint(url: str, service: str = "iam") -> str:
    return PROJECT + f"    endpoints: {{{service}: '{url}'}}\n"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://graphnap:Hunter2-pass@iam.example.com", "user name or password"),
        ("https://graphnap@iam.example.com", "user name or password"),
        ("ftp://iam.example.com", "URL scheme should be 'http' or 'https'"),
        ("file:///etc/passwd", "URL scheme should be 'http' or 'https'"),
        ("https://iam.example.com/?redirect=evil", "without '?' or '#'"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://2852039166/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://[fe80::1]/", "metadata"),
        ("http://metadata.google.internal/", "metadata"),
        ("http://100.100.100.200/", "metadata"),
    ],
)
def test_unsafe_endpoint_overrides_are_refused_where_they_are(url: str, words: str) -> None:
    found = problems(with_endpoint(url))
    assert [(w, line) for w, _, line in found] == [("projects[0].endpoints.iam", 7)]
    assert words in found[0][1]
    assert "Hunter2" not in found[0][1]


def test_plain_http_off_loopback_is_warned_about_at_every_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        PROJECT
        + "    endpoints: {ges: 'http://10.1.2.3:8080', iam: 'http://127.0.0.1:8900',"
        + " ces: 'http://localhost:8900'}\n"
    )
    source_for(path, CollectorRegistry()).load()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "project analytics" in warnings[0].getMessage()
    assert "ges endpoint http://10.1.2.3:8080/ is plain http" in warnings[0].getMessage()
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert "projects[0].endpoints.ges: plain http to http://10.1.2.3:8080/" in err
    assert "127.0.0.1" not in err
    assert "localhost" not in err


def test_emulator_and_https_overrides_load_quietly(caplog: pytest.LogCaptureFixture) -> None:
    config = parse_config(with_endpoint("http://127.0.0.1:8900", "ges"))
    assert config.project("analytics").ges_endpoint == "http://127.0.0.1:8900"
    assert config.project("analytics").endpoints.plain_http() == []
    config = parse_config(with_endpoint("https://iam.private.example.com/gw", "iam"))
    assert config.project("analytics").iam_endpoint == "https://iam.private.example.com/gw"


def test_idle_rule_cloud_eye_settings_and_active_hours_are_checked() -> None:
    base = f"""{PROJECT}
idle_rules:
  - name: idle
    targets: {{projects: [analytics]}}
    idle_for: 2h
"""
    (rule,) = parse_config(
        base + '    active_hours: {from: "0 19 * * *", until: "0 7 * * *", timezone: UTC}\n'
    ).idle_rules
    assert rule.active_hours is not None
    assert (rule.active_hours.start, rule.active_hours.until) == ("0 19 * * *", "0 7 * * *")
    assert (rule.metric, rule.aggregation, rule.period) == ("ges004_request_count", "sum", None)
    assert problems(base + "    period: 10m\n") == [
        ("idle_rules[0].period", "Cloud Eye aggregates over 1m, 5m, 20m or 1h, not 600s", 12)
    ]
    assert problems(base + "    aggregation: median\n")[0][0] == "idle_rules[0].aggregation"


def test_only_a_stop_schedule_defers_graphs_in_use() -> None:
    text = schedule(action="start", defer_while_in_use="{within: 15m, max: 3h}")
    assert problems(text) == [
        ("schedules[0].defer_while_in_use", "only a stop schedule defers graphs in use", 14)
    ]
    (rule,) = parse_config(schedule(defer_while_in_use="{within: 10m}")).schedules
    assert rule.defer_while_in_use is not None
    assert rule.defer_while_in_use.max == timedelta(hours=3)
