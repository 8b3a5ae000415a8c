"""The emulated fleet's lifecycle without HTTP: transitions end in end order on the clock,
the Task Center's indexes filter as a scan would, and the cached listing order learns of
new graphs."""

from __future__ import annotations

from daemon.emulator import Cloud, ManualClock
from tests.conftest import PROJECT


def test_transitions_end_in_order_and_the_task_center_filters_by_index(
    cloud: Cloud, clock: ManualClock
) -> None:
    graphs = [cloud.add_graph(PROJECT, f"dev-{i}") for i in range(4)]
    jobs = []
    for graph in graphs:  # each a second after the other: ends 12 s later each
        jobs.append(cloud.act(PROJECT, graph.id, "stop"))
        clock.advance(1)

    def listed(status: str | None = None, name: str | None = None) -> list[str]:
        found = cloud.list_jobs(PROJECT, status=status, graph_name=name, since=None, until=None)
        return [j.id for j in found]

    assert listed() == [j.id for j in reversed(jobs)]
    assert listed("waiting") == [jobs[3].id]  # pending 2 s: only the last has not begun
    clock.advance(12 - 4 + 1.5)  # the first two have ended, the others not
    assert [g.status for g in cloud.list_graphs(PROJECT)] == [900, 900, 901, 901]
    assert listed("running") == [jobs[3].id, jobs[2].id]
    assert listed("success") == [jobs[1].id, jobs[0].id]
    assert listed(name="dev-2") == [jobs[2].id]
    restart = cloud.act(PROJECT, graphs[0].id, "start")
    assert listed(name="dev-0") == [restart.id, jobs[0].id]
    clock.advance(60)
    assert [g.status for g in cloud.list_graphs(PROJECT)] == [200, 900, 900, 900]
    assert listed("running") == []

    late = cloud.add_graph(PROJECT, "dev-late")  # the cached listing order learns of it
    assert cloud.list_graphs(PROJECT)[-1] is late
