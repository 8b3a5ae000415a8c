"""Ids: the config, its JSON Schema and the cloud clients accept exactly the same ones, so an
id the config lets through never fails later in a client, and none reaches a URL path that
could change the path."""

from __future__ import annotations

import re

import pytest

from daemon.cloud.errors import InvalidIdError
from daemon.cloud.transport import check_project_id, check_resource_id
from daemon.config.loader import ConfigError, parse_config
from daemon.config.models import config_json_schema
from daemon.domain.ids import is_project_id, is_resource_id

PROJECT_IDS = {
    "0123456789abcdef0123456789abcdef": True,
    "abc123": True,
    "A" * 64: True,
    "A" * 65: False,
    "": False,
    "abc-123": False,
    "../etc": False,
    "abc%2F": False,
}
GRAPH_IDS = {
    "aabbccdd-0000-1111-2222-333344445555": True,
    "g1": True,
    "a" * 64: True,
    "a" * 65: False,
    "-leading-dash": False,
    "a/b": False,
    "..": False,
    "a_b": False,
}


def config_accepts(project_id: str = "abc123", graph_id: str = "g1") -> bool:
    text = (
        f"projects:\n  - {{name: lab, region: cn-north-4, project_id: '{project_id}',"
        " credentials: lab}\n"
        "schedules:\n  - {name: s, action: stop, cron: '0 20 * * *', timezone: UTC,"
        f" targets: {{projects: [lab], ids: ['{graph_id}']}}}}\n"
    )
    try:
        parse_config(text)
    except ConfigError:
        return False
    return True


def client_accepts(check: object, *args: str) -> bool:
    try:
        check(*args)  # type: ignore[operator]
    except InvalidIdError:
        return False
    return True


@pytest.mark.parametrize(("value", "valid"), PROJECT_IDS.items())
def test_config_and_clients_agree_on_project_ids(value: str, valid: bool) -> None:
    assert is_project_id(value) is valid
    assert client_accepts(check_project_id, value) is valid
    assert config_accepts(project_id=value) is valid


@pytest.mark.parametrize(("value", "valid"), GRAPH_IDS.items())
def test_config_and_clients_agree_on_graph_ids(value: str, valid: bool) -> None:
    assert is_resource_id(value) is valid
    assert client_accepts(check_resource_id, "graph", value) is valid
    assert config_accepts(graph_id=value) is valid


def patterns(schema: object) -> list[str]:
    if isinstance(schema, dict):
        own = [schema["pattern"]] if isinstance(schema.get("pattern"), str) else []
        return own + [p for value in schema.values() for p in patterns(value)]
    if isinstance(schema, list):
        return [p for item in schema for p in patterns(item)]
    return []


def test_the_json_schema_checks_project_and_graph_ids_as_the_config_does() -> None:
    found = set(patterns(config_json_schema()))
    for ids in (PROJECT_IDS, GRAPH_IDS):
        # every schema pattern that tells the valid ids apart tells them apart exactly so
        exact = [
            p for p in found if all((re.fullmatch(p, v) is not None) is ok for v, ok in ids.items())
        ]
        assert exact, f"no pattern in the schema checks {sorted(ids)[:2]}... as the config does"
