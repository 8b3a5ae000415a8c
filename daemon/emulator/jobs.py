"""The Task Center: stop/start jobs, their progress computed from the clock when read
(pending -> running -> success or failed), indexed by project, by graph and by the
unfinished ones, so a lookup looks only at the jobs that can match."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from daemon.emulator.faults import CloudFault

Kind = Literal["stop", "start"]

JOB_NAMES: dict[Kind, str] = {"stop": "StopGraph", "start": "StartGraph"}  # [UNVERIFIED] real names


@dataclass
class EmuJob:
    id: str
    project_id: str
    graph_id: str
    graph_name: str
    kind: Kind
    created: datetime
    begin_at: datetime
    end_at: datetime
    fails: bool
    fail_reason: str = ""

    def status(self, now: datetime) -> str:
        if now < self.begin_at:
            return "pending"
        if now < self.end_at:
            return "running"
        return "failed" if self.fails else "success"


class TaskCenter:
    """Every project's jobs, oldest first, with the indexes that keep lookups off the rest."""

    def __init__(self, project_ids: list[str]) -> None:
        self.jobs: dict[str, EmuJob] = {}
        self._project_jobs: dict[str, list[EmuJob]] = {pid: [] for pid in project_ids}
        self._graph_jobs: dict[tuple[str, str], list[EmuJob]] = {}  # (project, graph name)
        self._active_jobs: dict[str, dict[str, EmuJob]] = {pid: {} for pid in project_ids}

    def add(self, job: EmuJob) -> None:
        self.jobs[job.id] = job
        self._project_jobs[job.project_id].append(job)
        self._graph_jobs.setdefault((job.project_id, job.graph_name), []).append(job)
        self._active_jobs[job.project_id][job.id] = job

    def end(self, job: EmuJob) -> None:
        """The job is over: it leaves the index of unfinished ones."""
        self._active_jobs[job.project_id].pop(job.id, None)

    def job(self, project_id: str, graph_id: str, job_id: str) -> EmuJob:
        job = self.jobs.get(job_id)
        if job is None or job.project_id != project_id or job.graph_id != graph_id:
            raise CloudFault(400, "GES.7007", "The job does not exist.")
        return job

    def list_jobs(
        self,
        project_id: str,
        *,
        status: str | None,
        graph_name: str | None,
        since: date | None,
        until: date | None,
        now: datetime,
    ) -> list[EmuJob]:
        """Newest first. Only the jobs that can match are looked at: a graph's own with
        `graph_name`, the unfinished ones for running/waiting, else the project's."""
        wanted = {"waiting": "pending"}.get(status or "", status)
        if graph_name is not None:
            pool: list[EmuJob] = self._graph_jobs.get((project_id, graph_name), [])
        elif wanted in ("pending", "running"):
            pool = list(self._active_jobs[project_id].values())
        else:
            pool = self._project_jobs[project_id]
        jobs = [
            job
            for job in pool
            if job.project_id == project_id
            and (wanted is None or job.status(now) == wanted)
            and (graph_name is None or job.graph_name == graph_name)
            and (since is None or job.created.date() >= since)
            and (until is None or job.created.date() <= until)
        ]
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    def clear(self) -> None:
        self.jobs.clear()
        for jobs in self._project_jobs.values():
            jobs.clear()
        for active in self._active_jobs.values():
            active.clear()
        self._graph_jobs.clear()
