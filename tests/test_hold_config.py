"""The config's `holds:`: parsed with located errors, and the holds they become."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from daemon.config.holds import config_holds
from daemon.config.loader import parse_config
from daemon.config.problems import ConfigError
from daemon.rules.holds import config_hold_problems, held_reason

PROJECT = """
projects:
  - name: prod
    region: cn-north-4
    project_id: 0123456789abcdef0123456789abcdef
    credentials: prod
"""


def with_holds(holds: str, extra: str = "") -> str:
    return f"{PROJECT}{extra}holds:\n{holds}"


HOLD = """  - graphs: {project: prod, names: ["search-*"], ids: [g-1]}
    keep: stopped
    until: 2026-03-16T08:00:00+08:00
    reason: on leave
    by: alice
"""


def problems(text: str) -> list[tuple[str, str, int | None]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.yaml")
    return [(p.where, p.message, p.line) for p in caught.value.problems]


def test_a_config_hold_becomes_a_domain_hold_with_its_offset() -> None:
    config = parse_config(with_holds(HOLD))
    [hold] = config_holds(config.holds)
    assert hold.graphs.project == "prod"
    assert hold.graphs.names == ("search-*",)
    assert hold.graphs.ids == ("g-1",)
    assert hold.keep == "stopped"
    assert hold.until == datetime(2026, 3, 16, 0, 0, tzinfo=UTC)
    assert hold.until.utcoffset() == timedelta(hours=8)
    assert hold.source == "config"
    assert hold.made_at is None
    assert config.max_hold == timedelta(days=7)
    now = datetime(2026, 3, 15, 17, 0, tzinfo=UTC)  # 01:00 on the 16th in +08:00
    assert held_reason(hold, now) == "held stopped until 08:00 +08:00 by alice: on leave"


def test_a_config_hold_keeps_its_id_across_reloads_and_a_change_makes_a_new_one() -> None:
    [first] = config_holds(parse_config(with_holds(HOLD)).holds)
    [again] = config_holds(parse_config(with_holds(HOLD)).holds)
    [changed] = config_holds(parse_config(with_holds(HOLD.replace("on leave", "away"))).holds)
    assert first.id == again.id
    assert first.id.startswith("config-")
    assert changed.id != first.id


def test_by_defaults_to_config_and_max_hold_is_configurable() -> None:
    text = with_holds(HOLD.replace("    by: alice\n", ""), extra="max_hold: 2d\n")
    config = parse_config(text)
    assert config.holds[0].by == "config"
    assert config.max_hold == timedelta(days=2)


def test_a_hold_without_until_is_refused_where_it_is() -> None:
    text = with_holds(HOLD.replace("    until: 2026-03-16T08:00:00+08:00\n", ""))
    assert problems(text) == [("holds[0].until", "required key is missing", 8)]


@pytest.mark.parametrize(
    ("old", "new", "where", "words"),
    [
        ("2026-03-16T08:00:00+08:00", "2026-03-16T08:00:00", "holds[0].until", "timezone"),
        ("2026-03-16T08:00:00+08:00", "tomorrow", "holds[0].until", "datetime"),
        ('["search-*"]', '["search-[ab"]', "holds[0].graphs.names[0]", "never closed"),
        ('["search-*"]', '[""]', "holds[0].graphs.names[0]", "empty glob"),
        ('names: ["search-*"], ids: [g-1]', "names: []", "holds[0].graphs", "names no graph"),
        ("keep: stopped", "keep: paused", "holds[0].keep", "'running' or 'stopped'"),
        ("reason: on leave", 'reason: ""', "holds[0].reason", "at least 1 character"),
        ("project: prod", "project: prod, tags: {a: b}", "holds[0].graphs.tags", "unknown key"),
        ("ids: [g-1]", "ids: [../x]", "holds[0].graphs.ids[0]", "not allowed"),
    ],
)
def test_a_bad_config_hold_is_refused_where_it_is(
    old: str, new: str, where: str, words: str
) -> None:
    found = problems(with_holds(HOLD.replace(old, new)))
    assert [w for w, _, _ in found] == [where]
    assert words in found[0][1]


def test_validate_lists_an_expired_config_hold_as_a_warning() -> None:
    config = parse_config(with_holds(HOLD))
    holds = config_holds(config.holds)
    later = datetime(2026, 3, 20, tzinfo=UTC)
    [warning] = config_hold_problems(holds, now=later, max_hold=config.max_hold)
    assert warning.severity == "warning"
    assert warning.loc == ("holds", 0, "until")
    assert warning.message == "expired: until 2026-03-16 08:00 +08:00 has passed"
    before = datetime(2026, 3, 14, tzinfo=timezone(timedelta(hours=8)))
    assert config_hold_problems(holds, now=before, max_hold=config.max_hold) == []
