"""The inventory pass of the real daemon against the emulator: savings, graph gauges, readiness
and the Task Center resume."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from daemon.emulator import Cloud, ManualClock
from daemon.emulator.graphs import EmuGraph
from tests.app.conftest import MakeApp, actions, never, sample, start


async def test_savings_accrue_for_managed_graphs_while_stopped(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    app = await start(make_app())
    await app.fire("night-stop")
    await app.settle()
    await app.inventory.refresh(app.config)
    clock.advance(2 * 3600)
    await app.inventory.refresh(app.config)
    # dev-a 1.25 + dev-b 12 x 2 replicas + test-c 1.25 + dev-stopped 1.25 (managed, already stopped), for 2 h
    assert sample(
        app, "graphnap_estimated_savings_total", project="lab", currency="USD"
    ) == pytest.approx(2 * (1.25 + 24 + 1.25 + 1.25), rel=1e-3)
    assert (
        sample(
            app,
            "graphnap_graph_hourly_price",
            project="lab",
            graph=lab["dev-b"].id,
            name="dev-b",
            currency="USD",
        )
        == 24
    )
    assert (
        sample(app, "graphnap_graph_stopped", project="lab", graph=lab["dev-a"].id, name="dev-a")
        == 1
    )
    assert sample(app, "graphnap_graphs", project="lab", status="stopped") == 4
    assert sample(app, "graphnap_graphs", project="lab", status="busy") == 1


async def test_a_replica_that_leads_again_counts_no_savings_for_the_time_it_did_not_lead(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    app = await start(make_app())
    await app.fire("night-stop")
    await app.settle()
    await app.inventory.refresh(app.config)
    before = sample(app, "graphnap_estimated_savings_total", project="lab", currency="USD")
    await app.stop_active()  # the lease went to another replica, which counts from here
    clock.advance(4 * 3600)
    await app.start_active(schedule=False)  # back as leader: its first listing only looks
    after = sample(app, "graphnap_estimated_savings_total", project="lab", currency="USD")
    assert after == before
    clock.advance(3600)
    await app.inventory.refresh(app.config)  # an hour of its own term is counted
    assert sample(
        app, "graphnap_estimated_savings_total", project="lab", currency="USD"
    ) - before == pytest.approx(1.25 + 24 + 1.25 + 1.25, rel=1e-3)


async def test_readiness_waits_for_a_first_inventory(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    cloud.inject("list_graphs", 403, "GES.7041", "Insufficient permission.", times=1)
    app = await start(make_app())
    (waiting,) = app.status.readiness()  # the request id GES gave follows the message
    assert waiting.startswith(
        "project lab: no inventory yet (ges list_graphs: GES.7041 (HTTP 403): Insufficient permission."
    )
    await app.inventory.refresh(app.config)
    assert app.status.readiness() == []


async def test_jobs_are_resumed_once_ges_answers_even_if_it_was_down_at_start_up(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    first = await start(make_app(sleep=never))
    await first.fire("night-stop")
    await first.tracker.stop()  # killed with three jobs in flight

    cloud.inject("list_graphs", 503, "APIG.1009", "Service unavailable.", times=4)  # every attempt
    second = await start(make_app())
    assert second.tracker.jobs() == []
    assert second.status.readiness()[0].startswith(
        "project lab: no inventory yet (ges list_graphs: APIG.1009 (HTTP 503)"
    )

    await second.inventory.refresh(second.config)  # the periodic inventory, once GES answers again
    assert len(second.tracker.jobs()) == 3
    await second.settle()
    assert second.status.readiness() == []
    assert cloud.count("graph_action") == 3
    assert actions(second, "succeeded", rule="resumed") == 3


async def test_per_graph_series_can_be_turned_off_and_savings_still_accrue(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    app = await start(make_app(per_graph_metrics=False))
    await app.fire("night-stop")
    await app.settle()
    await app.inventory.refresh(app.config)
    clock.advance(3600)
    await app.inventory.refresh(app.config)
    text = generate_latest(app.registry).decode()
    assert "graphnap_graph_stopped{" not in text
    assert "graphnap_graph_hourly_price{" not in text
    saved = sample(app, "graphnap_estimated_savings_total", project="lab", currency="USD")
    assert saved == pytest.approx(1.25 + 24 + 1.25 + 1.25, rel=1e-3)
    assert sample(app, "graphnap_graphs", project="lab", status="stopped") == 4


async def test_a_new_active_term_resumes_the_jobs_the_last_one_left(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph]
) -> None:
    app = make_app(sleep=never)
    await app.start(serve=False, schedule=False, watch=False)
    await app.fire("night-stop")
    followed = len(app.tracker.jobs())
    await app.stop_active()  # leadership lost: the jobs go on in GES
    assert app.tracker.jobs() == []
    await app.start_active(schedule=False)  # and regained
    assert len(app.tracker.jobs()) == followed == 3
