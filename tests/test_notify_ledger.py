"""The digest's ledger: savings accrue per calendar day of the digest's zone from the very
increments of graphnap_estimated_savings_total (inventory passes on a controlled clock that
cross midnight in Berlin), stops done and failed come from outcomes, a restart mid-day loses
nothing, a new active term does not count twice, only the last KEEP_DAYS days and the config's
projects are kept, and the Store is written at most once a WRITE_EVERY_S."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from daemon.domain.hold import Section, StoreError
from daemon.notify.ledger import KEEP_DAYS, SECTION, WRITE_EVERY_S, Ledger, split_by_day
from daemon.runtime.store import FileStore
from daemon.telemetry.metrics import Metrics
from tests.conftest import sample

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=BERLIN)


@dataclass(frozen=True)
class Done:
    at: datetime
    project: str
    action: str
    outcome: str
    graph_id: str = "g1"
    graph: str = "dev-a"
    rule: str = "night"
    reason: str = ""
    failure: str = ""


def metered(ledger: Ledger) -> Metrics:
    metrics = Metrics(CollectorRegistry())
    metrics.on_savings(ledger.savings)
    return metrics


def stopped(price: float) -> list[tuple[str, str, int, float | None]]:
    return [("g1", "dev-a", 900, price), ("g2", "prod", 200, price), ("g3", "free", 900, None)]


def test_savings_accrue_per_day_of_the_digest_zone_as_the_counter_grows() -> None:
    ledger = Ledger(None, zone=lambda: BERLIN, monotonic=lambda: 0.0)
    metrics = metered(ledger)
    # Inventory passes at 22:00, 23:00, 00:30 and 01:00 Berlin time, one graph of 2.00/h stopped.
    for at in (berlin(27, 22), berlin(27, 23), berlin(28, 0, 30), berlin(28, 1)):
        metrics.observe_inventory("lab", stopped(2.0), at.astimezone(UTC), "EUR")
    counter = sample(
        metrics.registry, "graphnap_estimated_savings_total", project="lab", currency="EUR"
    )
    assert counter == pytest.approx(6.0)
    day27, day28 = (
        ledger.report(date(2026, 11, 27), ["lab"], "EUR"),
        ledger.report(date(2026, 11, 28), ["lab"], "EUR"),
    )
    # 22-23 on the 27th, and of 23:00-00:30 one hour before midnight, half an hour after.
    assert day27[0].saved["EUR"] == pytest.approx(4.0)
    assert day28[0].saved["EUR"] == pytest.approx(2.0)
    assert day27[0].saved["EUR"] + day28[0].saved["EUR"] == pytest.approx(counter)
    assert day27[0].total["EUR"] == pytest.approx(4.0)  # through the 27th, not later
    assert day28[0].total["EUR"] == pytest.approx(counter)


def test_a_day_is_the_zones_calendar_day_not_utcs() -> None:
    # 23:30 to 00:30 UTC is 00:30 to 01:30 in Berlin: all of it the 28th there.
    shares = split_by_day(
        3.0,
        datetime(2026, 11, 27, 23, 30, tzinfo=UTC),
        datetime(2026, 11, 28, 0, 30, tzinfo=UTC),
        BERLIN,
    )
    assert shares == [(date(2026, 11, 28), 3.0)]
    # Across the spring DST change (a 23-hour day) and two midnights.
    start, end = datetime(2026, 3, 28, 12, tzinfo=BERLIN), datetime(2026, 3, 30, 12, tzinfo=BERLIN)
    hours = (end - start).total_seconds() / 3600
    parts = dict(split_by_day(hours, start, end, BERLIN))
    assert parts == pytest.approx(
        {date(2026, 3, 28): 12.0, date(2026, 3, 29): 23.0, date(2026, 3, 30): 12.0}
    )


def test_stops_done_and_failed_are_counted_by_the_day_they_ended() -> None:
    ledger = Ledger(None, zone=lambda: BERLIN, monotonic=lambda: 0.0)
    for outcome in ("succeeded", "succeeded", "failed", "requested", "skipped", "dry_run"):
        ledger.outcome(Done(berlin(27, 23, 59), "lab", "stop", outcome))
    ledger.outcome(Done(berlin(28, 0, 1), "lab", "stop", "succeeded"))
    ledger.outcome(Done(berlin(27, 8), "lab", "start", "succeeded"))  # a start is no stop
    [day] = ledger.report(date(2026, 11, 27), ["lab"], "EUR")
    assert (day.stopped, day.failed) == (2, 1)
    [next_day] = ledger.report(date(2026, 11, 28), ["lab"], "EUR")
    assert (next_day.stopped, next_day.failed) == (1, 0)
    [quiet] = ledger.report(date(2026, 11, 27), ["other"], "EUR")
    assert (quiet.saved, quiet.stopped, quiet.total) == ({"EUR": 0.0}, 0, {"EUR": 0.0})


async def test_a_restart_mid_day_loses_nothing_and_a_new_term_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "state.json")
    first = Ledger(store, zone=lambda: BERLIN, monotonic=lambda: 0.0)
    await first.load(date(2026, 11, 27))
    metrics = metered(first)
    for at in (berlin(27, 10), berlin(27, 12)):
        metrics.observe_inventory("lab", stopped(1.5), at.astimezone(UTC), "EUR")
    first.outcome(Done(berlin(27, 10), "lab", "stop", "succeeded"))
    await first.saved()  # written as it was noted, not only at a clean shutdown

    restarted = Ledger(
        store, zone=lambda: BERLIN, monotonic=lambda: 0.0
    )  # the process was killed: no close()
    await restarted.load(date(2026, 11, 27))
    [day] = restarted.report(date(2026, 11, 27), ["lab"], "EUR")
    assert (day.saved, day.stopped, restarted.since) == ({"EUR": 3.0}, 1, date(2026, 11, 27))

    await restarted.close()  # leadership lost; then won again
    restarted.outcome(Done(berlin(27, 13), "lab", "stop", "failed"))  # noted between terms
    await restarted.load(date(2026, 11, 27))
    [again] = restarted.report(date(2026, 11, 27), ["lab"], "EUR")
    assert (again.saved, again.stopped, again.failed) == ({"EUR": 3.0}, 1, 1)


async def test_only_the_last_days_are_kept(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state.json")
    ledger = Ledger(store, zone=lambda: UTC, monotonic=lambda: 0.0)
    start = datetime(2026, 10, 1, 12, tzinfo=UTC)
    await ledger.load(start.date())
    for n in range(KEEP_DAYS + 10):
        at = start + timedelta(days=n)
        ledger.savings("lab", "EUR", 1.0, at - timedelta(hours=1), at)
    await ledger.close()
    kept = (await store.read_all())[SECTION].value
    assert isinstance(kept, dict)
    assert len(kept["days"]) == KEEP_DAYS
    assert kept["totals"] == {"lab": {"EUR": float(KEEP_DAYS + 10)}}  # the total forgets nothing
    assert kept["since"] == "2026-10-01"


async def test_a_follower_writes_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state.json")
    ledger = Ledger(
        store, zone=lambda: UTC, monotonic=lambda: 0.0
    )  # never loaded: not the active instance
    ledger.savings("lab", "EUR", 1.0, datetime(2026, 11, 27, 9, tzinfo=UTC), berlin(27, 11))
    await ledger.saved()
    assert await store.read_all() == {}


class CountingStore(FileStore):
    """A file store that counts its writes and can refuse them (a lost lease's fence)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes = 0
        self.refuse = False

    async def write(self, name: str, value: object) -> Section:  # type: ignore[override]
        if self.refuse:
            raise StoreError("the fence is closed")
        self.writes += 1
        return await super().write(name, value)  # type: ignore[arg-type]


async def test_the_store_is_written_at_most_once_a_minute_and_the_last_notes_at_the_tick(
    tmp_path: Path,
) -> None:
    store = CountingStore(tmp_path / "state.json")
    now = [0.0]
    ledger = Ledger(store, zone=lambda: UTC, monotonic=lambda: now[0])
    await ledger.load(date(2026, 11, 27))
    await ledger.saved()
    assert store.writes == 1  # counting began: said at once
    for n in range(2000):  # a 2,000-graph firing's stops ending within the minute
        ledger.outcome(
            Done(
                datetime(2026, 11, 27, 20, tzinfo=UTC), "lab", "stop", "succeeded", graph_id=f"g{n}"
            )
        )
        now[0] += 0.01
    ledger.keep()
    assert ledger._writer is None  # no write started within the minute
    assert store.writes == 1
    now[0] = WRITE_EVERY_S + 1
    ledger.keep()  # the notifier's tick, a minute on: the write starts
    assert ledger._writer is not None
    await ledger.saved()
    assert store.writes == 2
    kept = (await store.read_all())[SECTION].value
    assert isinstance(kept, dict)
    assert kept["days"]["2026-11-27"]["lab"]["stopped"] == 2000


async def test_a_last_write_refused_loses_only_its_minute_and_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    store = CountingStore(tmp_path / "state.json")
    ledger = Ledger(store, zone=lambda: UTC, monotonic=lambda: 0.0)
    await ledger.load(date(2026, 11, 27))
    nine, ten, eleven = (datetime(2026, 11, 27, h, tzinfo=UTC) for h in (9, 10, 11))
    ledger.savings("lab", "EUR", 2.0, nine, ten)
    await ledger.saved()  # in the Store
    ledger.savings("lab", "EUR", 1.0, ten, eleven)  # noted, not yet written
    store.refuse = True
    await ledger.close()  # the lease was lost: the last write is fenced off
    store.refuse = False
    await ledger.load(date(2026, 11, 27))  # leading again
    [day] = ledger.report(date(2026, 11, 27), ["lab"], "EUR")
    assert day.saved == {"EUR": 2.0}  # what the Store had, once; not 2 + 2 + 1


async def test_a_project_that_left_the_config_leaves_the_store(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state.json")
    projects = ["lab", "old"]
    ledger = Ledger(store, zone=lambda: UTC, monotonic=lambda: 0.0, projects=lambda: projects)
    await ledger.load(date(2026, 11, 27))
    for project in ("lab", "old"):
        ledger.savings(
            project,
            "EUR",
            1.0 / 3,
            datetime(2026, 11, 27, 9, tzinfo=UTC),
            datetime(2026, 11, 27, 10, tzinfo=UTC),
        )
    projects.remove("old")
    await ledger.saved()
    kept = (await store.read_all())[SECTION].value
    assert isinstance(kept, dict)
    assert kept["totals"] == {"lab": {"EUR": 0.3333}}  # to 1/100 of a cent
    assert list(kept["days"]["2026-11-27"]) == ["lab"]
