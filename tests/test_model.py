"""The domain's one status classification: what the dashboard counts, what planning skips
as busy or faulty, and what the idle verdict never judges idle all read it from here."""

from __future__ import annotations

import pytest

from daemon.domain.model import GraphStatus, StatusClass, describe_status


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        pytest.param(200, "running", id="running"),
        pytest.param(900, "stopped", id="stopped"),
        pytest.param(901, "transitional", id="stopping"),
        pytest.param(920, "transitional", id="starting"),
        pytest.param(100, "transitional", id="preparing"),
        pytest.param(202, "busy", id="importing"),
        pytest.param(211, "busy", id="adding replicas"),
        pytest.param(209, "busy", id="a busy code GES adds later"),
        pytest.param(903, "busy", id="backing up"),
        pytest.param(300, "faulty", id="faulty"),
        pytest.param(303, "faulty", id="creation failed"),
        pytest.param(800, "frozen", id="frozen for arrears"),
        pytest.param(400, "other", id="deleted"),
        pytest.param(-1, "other", id="not a number on the wire"),
        pytest.param(1234, "other", id="a code nobody knows"),
    ],
)
def test_each_status_falls_into_one_class(code: int, cls: StatusClass) -> None:
    assert GraphStatus.classify(code) == cls


def test_a_status_is_described_in_words_or_by_its_number() -> None:
    assert describe_status(202) == "importing"
    assert describe_status(1234) == "status 1234"
