"""Cross-reference checks pydantic cannot express: names that must exist, be unique, or
fit the action they go with.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import holidays

from daemon.config.models import Config, IdleRule, Schedule, named
from daemon.config.problems import MAX_PROBLEMS_SHOWN, Loc, Problem, format_loc


def check_references(config: Config) -> list[Problem]:
    """Cross-checks pydantic cannot express: names that must exist, be unique, or fit the action."""
    problems: list[Problem] = []
    project_names = {p.name for p in config.projects}
    first_named: dict[str, int] = {}
    first_pair: dict[tuple[str, str], int] = {}
    for i, project in enumerate(config.projects):
        if first_named.setdefault(project.name, i) != i:
            problems.append(
                Problem(
                    ("projects", i, "name"),
                    f"project name {named(project.name)} is used twice",
                    "give each project its own name",
                )
            )
        pair = first_pair.setdefault((project.region, project.project_id), i)
        if pair != i:
            problems.append(
                Problem(
                    ("projects", i, "project_id"),
                    f"same region and project id as projects[{pair}]",
                    "list each project once",
                )
            )
    rule_names: dict[str, Loc] = {}
    rules: list[tuple[str, int, Schedule | IdleRule]] = [
        *(("schedules", i, s) for i, s in enumerate(config.schedules)),
        *(("idle_rules", i, r) for i, r in enumerate(config.idle_rules)),
    ]
    for section, i, rule in rules:
        here: Loc = (section, i)
        if rule.name in rule_names:
            problems.append(
                Problem(
                    (*here, "name"),
                    f"rule name {named(rule.name)} is already used at {format_loc(rule_names[rule.name])}",
                    "rule names are metric labels: make them unique",
                )
            )
        rule_names.setdefault(rule.name, here)
        if rule.targets.is_empty():
            problems.append(
                Problem(
                    (*here, "targets"),
                    "targets selects nothing in particular",
                    "name projects, ids, names or tags; to mean every graph of a project, say 'projects: [name]'",
                )
            )
        for part in ("targets", "exclude"):
            selector = getattr(rule, part)
            for j, name in enumerate(selector.projects if selector else []):
                if name not in project_names:
                    problems.append(
                        Problem(
                            (*here, part, "projects", j),
                            f"unknown project {named(name)}",
                            _known("projects", [p.name for p in config.projects]),
                        )
                    )
        if isinstance(rule, Schedule):
            for j, name in enumerate(rule.skip_on):
                if name not in config.calendars:
                    problems.append(
                        Problem(
                            (*here, "skip_on", j),
                            f"unknown calendar {named(name)}",
                            _known("calendars", list(config.calendars)),
                        )
                    )
            if rule.keep_stopped_until and rule.action != "stop":
                problems.append(
                    Problem(
                        (*here, "keep_stopped_until"),
                        "only a stop schedule keeps graphs stopped",
                        "remove it, or make the action 'stop'",
                    )
                )
            if rule.defer_while_in_use and rule.action != "stop":
                problems.append(
                    Problem(
                        (*here, "defer_while_in_use"),
                        "only a stop schedule defers graphs in use",
                        "remove it, or make the action 'stop'",
                    )
                )
            if rule.backup_id and rule.action != "start":
                problems.append(
                    Problem(
                        (*here, "backup_id"),
                        "only a start schedule starts from a backup",
                        "remove it, or make the action 'start'",
                    )
                )
    supported = holidays.list_supported_countries()
    for name, calendar in config.calendars.items():
        here = ("calendars", name)
        if calendar.country is None and not calendar.dates:
            problems.append(
                Problem(
                    here,
                    "a calendar needs a country, dates, or both",
                    "e.g. {country: CN} or {dates: [2026-12-24]}",
                )
            )
        elif calendar.country is not None and calendar.country not in supported:
            close = (
                difflib.get_close_matches(calendar.country, list(supported), n=1)
                if len(problems) < MAX_PROBLEMS_SHOWN and len(calendar.country) <= 64
                else []
            )
            problems.append(
                Problem(
                    (*here, "country"),
                    f"{named(calendar.country)} is not a country the holidays package knows",
                    f"did you mean {close[0]!r}?"
                    if close
                    else "use an ISO 3166-1 alpha-2 code such as CN or DE",
                )
            )
        elif (
            calendar.country is not None
            and calendar.subdivision is not None
            and calendar.subdivision not in supported[calendar.country]
        ):
            problems.append(
                Problem(
                    (*here, "subdivision"),
                    f"{calendar.country} has no subdivision {named(calendar.subdivision)}",
                    f"known: {', '.join(supported[calendar.country][:12])}",
                )
            )
    return problems


def _known(what: str, names: Sequence[str]) -> str:
    if not names:
        return f"no {what} are defined"
    more = f", ... ({len(names)} in all)" if len(names) > 12 else ""
    return f"known {what}: {', '.join(names[:12])}{more}"
