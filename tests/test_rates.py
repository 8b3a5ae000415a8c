"""Learned request rates: what a project's gate learned outlives the process (the Store's
`rates` section) and every new gate of the project starts from it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from daemon.app import App
from daemon.cloud.gate import Learned, RequestGate
from daemon.config.settings import Settings
from daemon.domain.hold import Section, SectionName, StoreError
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from daemon.runtime.rates import LearnedRates
from daemon.runtime.store import FileStore
from tests.conftest import PROJECT

CONFIG = """
projects:
  - {{name: lab, region: cn-north-4, project_id: {project}, credentials: lab,
      endpoints: {{ges: "{url}", iam: "{url}", ces: "{url}"}}}}
"""


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


def make_app(tmp_path: Path, emulator: str, time: FakeTime, project: str = PROJECT) -> App:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(project=project, url=emulator))
    settings = Settings(
        config=config,
        listen_host="127.0.0.1",
        listen_port=0,
        credentials={"lab": {"ak": DEMO_AK, "sk": DEMO_SK}},
        project_rate_initial_per_s=10,
        state_file=tmp_path / "state.json",
    )
    return App(settings, monotonic=time.monotonic)


def meet_a_limit_of_20(gate: RequestGate, time: FakeTime) -> None:
    """Answers as an API admitting 20 a second gives them, then its 429."""
    for _ in range(30):
        time.now += 0.05
        gate.observe(200, None)
    gate.observe(429, None)


async def test_the_learned_limit_is_read_back_after_a_restart(
    tmp_path: Path, emulator: str
) -> None:
    time = FakeTime()
    first = make_app(tmp_path, emulator, time)
    await first.start(serve=False, schedule=False, watch=False)
    meet_a_limit_of_20(first.clients.gate("lab"), time)
    await first.shutdown()

    second = make_app(tmp_path, emulator, time)
    await second.start(serve=False, schedule=False, watch=False)
    try:
        learned = second.rates.get(PROJECT)
        assert learned is not None
        assert learned.limit_per_s == pytest.approx(20, abs=1)  # what the API admitted
        # The new process's first request goes just under the limit, not at the initial 10/s.
        assert second.clients.gate("lab").rate.rate == 0.95 * learned.limit_per_s
    finally:
        await second.shutdown()


async def test_an_api_that_never_refused_starts_at_the_rate_it_last_ran_clean(
    tmp_path: Path, emulator: str
) -> None:
    time = FakeTime()
    first = make_app(tmp_path, emulator, time)
    await first.start(serve=False, schedule=False, watch=False)
    gate = first.clients.gate("lab")
    for _ in range(400):  # busy answers: slow start doubles each tenth of a second
        time.now += 1 / gate.rate.rate
        gate.observe(200, None)
    ran = gate.rate.clean
    assert ran > 100
    await first.shutdown()

    second = make_app(tmp_path, emulator, time)
    await second.start(serve=False, schedule=False, watch=False)
    try:
        assert second.clients.gate("lab").rate.rate == ran
        assert second.clients.gate("lab").rate.limit is None  # still probing upward
    finally:
        await second.shutdown()


async def test_rates_are_kept_by_project_id_so_a_renamed_project_keeps_its_rate(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "state.json")
    rates = LearnedRates(store)
    rates.learn(PROJECT, Learned(40.0, 50.0))
    await rates.save()
    again = LearnedRates(store)
    await again.load()
    assert again.get(PROJECT) == Learned(40.0, 50.0)
    assert again.get("another") is None


class CountingStore:
    def __init__(self) -> None:
        self.writes = 0
        self.value: object = None

    @property
    def where(self) -> str:
        return "test store"

    async def read_all(self) -> dict[SectionName, Section]:
        return {} if self.value is None else {"rates": Section(self.value, self.writes)}

    async def write(self, name: SectionName, value: object, *, revision: int | None = None) -> int:
        self.writes += 1
        self.value = value
        return self.writes


async def test_only_a_change_is_written() -> None:
    store = CountingStore()
    rates = LearnedRates(store)
    await rates.save()
    assert store.writes == 0  # nothing learned: nothing written
    rates.learn(PROJECT, Learned(19.0, 20.0))
    await rates.save()
    await rates.save()
    rates.learn(PROJECT, Learned(19.0, 20.0))
    await rates.save()
    assert store.writes == 1


async def test_unreadable_entries_are_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileStore(tmp_path / "rates.json")
    await store.write(
        "rates",
        {
            "good": {"clean_per_s": 5, "limit_per_s": None},
            "bad": {"clean_per_s": "fast", "limit_per_s": None},
            "worse": [1, 2],
            "no-bool": {"clean_per_s": True, "limit_per_s": None},
        },
    )
    rates = LearnedRates(store)
    with caplog.at_level(logging.WARNING):
        await rates.load()
    assert rates.get("good") == Learned(5.0)
    assert rates.get("bad") is None
    assert rates.get("worse") is None
    assert rates.get("no-bool") is None
    assert caplog.text.count("unreadable; ignored") == 3


class BrokenStore(CountingStore):
    async def read_all(self) -> dict[SectionName, Section]:
        raise StoreError("state file /x is damaged (not JSON); repair it")

    async def write(self, name: SectionName, value: object, *, revision: int | None = None) -> int:
        raise StoreError("state file /x cannot be written (No space left on device)")


async def test_a_store_that_fails_costs_the_learning_only(caplog: pytest.LogCaptureFixture) -> None:
    rates = LearnedRates(BrokenStore())
    with caplog.at_level(logging.WARNING):
        await rates.load()
        rates.learn(PROJECT, Learned(19.0, 20.0))
        await rates.save()
    assert rates.get(PROJECT) == Learned(19.0, 20.0)
    assert "starting from the settings" in caplog.text
    assert "not saved" in caplog.text


async def test_the_file_is_json_a_person_can_read(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state.json")  # the daemon's one state file
    rates = LearnedRates(store)
    rates.learn(PROJECT, Learned(19.04321, 20.0))
    await rates.save()
    stored = json.loads((tmp_path / "state.json").read_text())
    assert stored["sections"]["rates"]["value"] == {
        PROJECT: {"clean_per_s": 19.043, "limit_per_s": 20.0}
    }
