"""Cross-reference checks pydantic cannot express: names that must exist, be unique, or
fit the action they go with.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from daemon.config.models import Config, IdleRule, Schedule, named
from daemon.config.problems import MAX_PROBLEMS_SHOWN, Loc, Problem, format_loc


def check_references(config: Config) -> list[Problem]:
    """Cross-checks pydantic cannot express: names that must exist, be unique, or fit the action."""
    problems = [*_projects(config), *_rules(config), *_holds(config), *_notifications(config)]
    return problems + _calendars(config, already=len(problems))


def _notifications(config: Config) -> list[Problem]:
    rules = [s.name for s in config.schedules] + [r.name for r in config.idle_rules]
    found = config.notifications.problems(projects=[p.name for p in config.projects], rules=rules)
    return [Problem(*problem) for problem in found]


def _projects(config: Config) -> list[Problem]:
    problems: list[Problem] = []
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
    return problems


def _holds(config: Config) -> list[Problem]:
    """A hold of a project the config does not have would hold nothing, silently."""
    known = [p.name for p in config.projects]
    return [
        Problem(
            ("holds", i, "graphs", "project"),
            f"unknown project {named(hold.graphs.project)}",
            _known("projects", known),
        )
        for i, hold in enumerate(config.holds)
        if hold.graphs.project not in known
    ]


def _rules(config: Config) -> list[Problem]:
    problems: list[Problem] = []
    project_names = {p.name for p in config.projects}
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
            problems += _fits_action(here, rule)
    return problems


# Options only one action has: (option, the action, what the option does).
_ACTION_OPTIONS = (
    ("keep_stopped_until", "stop", "keeps graphs stopped"),
    ("defer_while_in_use", "stop", "defers graphs in use"),
    ("backup_id", "start", "starts from a backup"),
)


def _fits_action(here: Loc, rule: Schedule) -> list[Problem]:
    return [
        Problem(
            (*here, option),
            f"only a {action} schedule {does}",
            f"remove it, or make the action '{action}'",
        )
        for option, action, does in _ACTION_OPTIONS
        if getattr(rule, option) and rule.action != action
    ]


def _calendars(config: Config, *, already: int) -> list[Problem]:
    """`already`: problems found before; "did you mean" costs difflib time, so it is only
    offered while the problems are fewer than those shown."""
    problems: list[Problem] = []
    if all(c.country is None for c in config.calendars.values()):
        supported: dict[str, list[str]] = {}  # nothing to look up: no country loaded
    else:
        # Listing the supported countries imports every one of holidays' ~280 country
        # modules (a quarter of a second): only for a config that names a country.
        import holidays

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
                if already + len(problems) < MAX_PROBLEMS_SHOWN and len(calendar.country) <= 64
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
