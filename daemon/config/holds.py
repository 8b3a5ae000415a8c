"""The config's `holds:` (reviewed in git): their shape, checked as they are parsed, and the
domain Holds they become. The checks that need `now` are daemon.rules.holds'."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from daemon.domain.hold import MAX_REASON_LENGTH, Hold, HoldGraphs, glob_problem


def _check_glob(pattern: str) -> str:
    problem = glob_problem(pattern)
    if problem:
        raise ValueError(problem)
    return pattern


# A config's project names (daemon.config.models.Name; that module includes this one).
ProjectName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
GraphIdText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")]
Glob = Annotated[str, AfterValidator(_check_glob)]


class HoldGraphsSpec(BaseModel):
    """Graphs of one project: those whose id is listed or whose name matches a glob."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: ProjectName
    ids: list[GraphIdText] = []
    names: list[Glob] = Field(default=[], description="Shell-style globs, e.g. 'search-*'.")

    @model_validator(mode="after")
    def _names_a_graph(self) -> HoldGraphsSpec:
        if not (self.ids or self.names):
            raise ValueError("the hold names no graph: give ids, names (globs), or both")
        return self


class HoldSpec(BaseModel):
    """Keep some graphs running or stopped until a time, whatever the rules say."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    graphs: HoldGraphsSpec
    keep: Literal["running", "stopped"]
    until: AwareDatetime = Field(
        description="When the hold ends, with its offset (2026-03-10T23:00:00+08:00): "
        "a hold always ends."
    )
    reason: Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON_LENGTH)]
    by: Annotated[str, StringConstraints(min_length=1, max_length=63)] = "config"

    def to_hold(self) -> Hold:
        """The domain hold; its id comes from its content, so it is the same across reloads
        and restarts while the hold is unchanged."""
        return Hold(
            id=f"config-{hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:10]}",
            graphs=HoldGraphs(
                project=self.graphs.project,
                ids=tuple(self.graphs.ids),
                names=tuple(self.graphs.names),
            ),
            keep=self.keep,
            until=self.until,
            reason=self.reason,
            by=self.by,
            source="config",
            made_at=None,
        )


def config_holds(specs: list[HoldSpec]) -> list[Hold]:
    """The config's holds as domain holds, in the config's order (config_hold_problems
    locates its problems by that order)."""
    return [spec.to_hold() for spec in specs]
