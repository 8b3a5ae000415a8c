"""The real daemon's life against the emulator: start, reload, state file, ops endpoints."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from daemon.app import App
from daemon.config.models import Config
from daemon.config.problems import ConfigError
from daemon.config.settings import Settings
from daemon.emulator import Cloud, ManualClock
from daemon.emulator.cloud import DEMO_AK, DEMO_SK
from daemon.emulator.graphs import EmuGraph
from tests.app.conftest import MakeApp, never, sample, start


async def test_an_invalid_config_on_reload_keeps_the_old_schedules(
    make_app: MakeApp, config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    await app.start(serve=False, schedule=True, watch=False)
    before = app.scheduler.next_fire_times()
    assert set(before) == {"night-stop", "morning-start"}
    good = config_file.read_text()

    config_file.write_text(good.replace('cron: "0 20 * * *"', 'cron: "0 25 * * *"'))
    with caplog.at_level(logging.ERROR):
        assert await app.source.reload() is False
    assert app.scheduler.next_fire_times() == before
    assert sample(app, "graphnap_config_last_reload_successful") == 0
    assert sample(app, "graphnap_config_reloads_total", result="failure") == 1
    assert "schedules[0].cron" in caplog.text
    assert "schedules[0].cron" in app.status.status()["config"]["last_reload_error"]

    config_file.write_text(
        good.replace("name: morning-start", "name: early-start").replace(
            '"0 8 * * *"\n    timezone', '"0 7 * * *"\n    timezone'
        )
    )
    assert await app.source.reload() is True
    assert set(app.scheduler.next_fire_times()) == {"night-stop", "early-start"}
    assert sample(app, "graphnap_config_last_reload_successful") == 1
    assert sample(app, "graphnap_config_reloads_total", result="success") == 1


async def test_missing_credentials_stop_the_start_with_a_clear_error(
    config_file: Path, clock: ManualClock
) -> None:
    app = App(Settings(config=config_file, credentials={}), clock=clock)
    with pytest.raises(ConfigError) as caught:
        await app.start(serve=False, schedule=False, watch=False)
    assert "projects[0].credentials" in caught.value.render()
    assert "GRAPHNAP_CREDENTIALS__LAB__AK" in caught.value.render()
    await app.shutdown()


async def test_ops_endpoints_answer_and_never_show_a_secret(
    make_app: MakeApp, cloud: Cloud, lab: dict[str, EmuGraph]
) -> None:
    app = make_app(sleep=never)
    await app.start(serve=True, schedule=True, watch=False)
    await app.fire("night-stop")
    assert app.server is not None
    async with httpx.AsyncClient(base_url=app.server.url) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).text == "ready\n"
        metrics_text = (await http.get("/metrics")).text
        status_response = await http.get("/status")
    assert 'graphnap_build_info{version="' in metrics_text
    assert "graphnap_jobs_in_flight" in metrics_text
    body = status_response.json()
    assert {s["name"] for s in body["schedules"]} == {"night-stop", "morning-start"}
    assert all(s["next_fire"] for s in body["schedules"])
    assert len(body["jobs_in_flight"]) == 3
    assert any(d["reason"] == "busy (importing)" for d in body["last_decisions"])
    for text in (metrics_text, status_response.text):
        assert DEMO_SK not in text
        assert DEMO_AK not in text


async def test_a_configmap_symlink_swap_is_picked_up(
    tmp_path: Path, make_app: MakeApp, config_file: Path
) -> None:
    # Kubernetes mounts a ConfigMap as config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>/
    # and changes it by pointing ..data at a new directory.
    mount = tmp_path / "mount"
    first, second = mount / "..2026_11_27_1", mount / "..2026_11_27_2"
    first.mkdir(parents=True)
    second.mkdir()
    good = config_file.read_text()
    (first / "config.yaml").write_text(good)
    (second / "config.yaml").write_text(good.replace("name: morning-start", "name: later-start"))
    (mount / "..data").symlink_to(first.name)
    (mount / "config.yaml").symlink_to("..data/config.yaml")

    app = make_app(config=mount / "config.yaml")
    await app.start(serve=False, schedule=True, watch=False)
    assert await app.source.check() is False  # nothing changed
    (mount / "..data_tmp").symlink_to(second.name)
    (mount / "..data_tmp").replace(mount / "..data")  # the atomic swap
    assert await app.source.check() is True
    assert set(app.scheduler.next_fire_times()) == {"night-stop", "later-start"}


async def test_with_a_state_file_firings_missed_while_down_are_counted(
    make_app: MakeApp, cloud: Cloud, clock: ManualClock, lab: dict[str, EmuGraph], tmp_path: Path
) -> None:
    state = tmp_path / "state" / "graphnap.json"
    state.parent.mkdir()
    state.write_text('{"last_fire": {"night-stop": "2026-11-26T20:00:00+08:00"}}')
    clock.advance(3 * 86400 + 2 * 3600 + 600)  # Monday 20:10: Fri, Sat and Sun were missed
    app = make_app(state_file=state)
    await app.start(serve=False, schedule=True, watch=False)
    await app.settle()
    assert sample(app, "graphnap_schedule_misfires_total", rule="night-stop") == 3
    assert cloud.count("graph_action") == 3  # Monday's firing ran, 10 minutes late
    recorded = json.loads(state.read_text())["sections"]["last_fire"]["value"]
    assert recorded["night-stop"] == "2026-11-30T20:00:00+08:00"


async def test_a_broken_state_file_is_said_and_never_overwritten(
    make_app: MakeApp, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "graphnap.json"
    state.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        app = await start(make_app(state_file=state), schedule=True)  # the scheduler reads it
    assert f"state file {state} is damaged" in caplog.text
    assert "running with the config's holds only" in caplog.text
    assert "last fire times unreadable" in caplog.text
    assert app.status.status()["holds"]["store_problem"].startswith(f"state file {state}")
    assert state.read_text() == "{not json"


async def test_a_reload_removes_the_series_of_rules_that_left_the_config(
    make_app: MakeApp, config_file: Path, lab: dict[str, EmuGraph]
) -> None:
    app = make_app()
    await app.start(serve=False, schedule=True, watch=False)
    get = app.registry.get_sample_value
    assert get("graphnap_schedule_misfires_total", {"rule": "morning-start"}) == 0
    config_file.write_text(config_file.read_text().replace("name: morning-start", "name: later"))
    assert await app.source.reload() is True
    assert get("graphnap_schedule_misfires_total", {"rule": "morning-start"}) is None
    assert get("graphnap_schedule_next_fire_timestamp_seconds", {"rule": "morning-start"}) is None
    assert get("graphnap_schedule_misfires_total", {"rule": "later"}) == 0
    assert get("graphnap_inventory_last_success_timestamp_seconds", {"project": "lab"}) is not None


async def test_a_reload_while_the_first_inventory_waits_is_what_gets_scheduled(
    make_app: MakeApp, config_file: Path
) -> None:
    app = make_app()
    first_inventory = app.inventory.refresh

    async def slow(config: Config) -> None:
        config_file.write_text(
            config_file.read_text().replace("name: morning-start", "name: later")
        )
        await app.source.reload()
        await first_inventory(config)

    app.inventory.refresh = slow  # type: ignore[method-assign]
    await app.start(serve=False, schedule=True, watch=False)
    assert set(app.scheduler.next_fire_times()) == {"night-stop", "later"}
