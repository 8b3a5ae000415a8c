"""The YAML config: frozen models, parsed once at the edge, with every error placed.

A config that loads is trusted by the rest of the daemon: cron expressions, time zones,
durations and every cross-reference have been checked here, and each problem names its
location (`schedules[1].cron`) and its line in the file, with a hint at the fix.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

# --- scalar types --------------------------------------------------------------------------

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"),
    Field(description="A name: letters, digits, '-', '_' and '.', at most 63 characters."),
]
# GES ids go into URL paths: nothing but letters, digits and '-' may get through.
ProjectId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,64}$")]
GraphId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[a-z0-9]+)+$")]

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """'90s', '5m', '1h30m', '2d' -> timedelta. Bare numbers are refused: the unit is the point."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"{value!r} is not a duration; add a unit (ms, s, m, h, d, w), e.g. '{value}s' or '{value}m'"
        )
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            f"{value!r} is not a duration; write a number and a unit (ms, s, m, h, d, w), "
            "e.g. '90s', '5m', '1h30m'"
        )
    return timedelta(seconds=total)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$",
            "examples": ["90s", "5m", "2h", "1h30m"],
        }
    ),
]

_CRON_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * sun",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday_names(part: str) -> list[str]:
    """One comma part of a crontab day-of-week field (0 or 7 = Sunday) as APScheduler names."""
    match = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
    if not match:
        if re.fullmatch(r"[a-zA-Z]{3}(-[a-zA-Z]{3})?", part):
            return [part.lower()]
        raise ValueError(f"day-of-week {part!r} mixes names and numbers; use one or the other")
    span, step = match.group(1), int(match.group(2) or 1)
    if span == "*":
        first, last = 0, 6
    else:
        bounds = [int(x) for x in span.split("-")]
        first, last = bounds[0], bounds[-1]
    if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last and step > 0):
        raise ValueError(f"day-of-week {part!r} is out of range; use 0-7 (0 and 7 are Sunday)")
    return [_WEEKDAYS[day % 7] for day in range(first, last + 1, step)]


def to_apscheduler_crontab(expr: str) -> str:
    """Standard crontab semantics -> APScheduler 3 semantics.

    APScheduler numbers weekdays from Monday = 0, so a plain `1-5` would mean Tue-Sat there;
    numeric weekdays are rewritten as names. Cron ORs a restricted day-of-month with a
    restricted day-of-week while APScheduler ANDs them; that case is refused, not guessed.
    """
    text = _CRON_MACROS.get(expr.strip().lower(), expr.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expr!r} has {len(fields)} fields; a cron expression has 5: "
            "minute hour day-of-month month day-of-week (e.g. '0 20 * * mon-fri')"
        )
    minute, hour, day, month, dow = fields
    if day != "*" and dow != "*":
        raise ValueError(
            f"{expr!r} restricts both day-of-month and day-of-week, which cron treats as "
            "'either' and APScheduler as 'both'; split it into two schedules"
        )
    if dow != "*":
        names: list[str] = []
        for part in dow.split(","):
            names.extend(n for n in _weekday_names(part) if n not in names)
        dow = ",".join(names)
    return f"{minute} {hour} {day} {month} {dow}"


def cron_trigger(expr: str, timezone: str) -> CronTrigger:
    """The APScheduler trigger for a validated crontab expression in a time zone."""
    return CronTrigger.from_crontab(to_apscheduler_crontab(expr), timezone=ZoneInfo(timezone))


def _check_cron(expr: str) -> str:
    try:
        cron_trigger(expr, "UTC")
    except ValueError as exc:
        raise ValueError(f"invalid cron expression: {exc}") from None
    return expr


CronExpr = Annotated[
    str,
    AfterValidator(_check_cron),
    WithJsonSchema(
        {
            "type": "string",
            "description": "5-field crontab: minute hour day-of-month month day-of-week",
            "examples": ["0 20 * * mon-fri", "*/2 * * * *", "@daily"],
        }
    ),
]


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, _all_timezones(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown time zone {name!r}{hint}; use an IANA name such as 'Asia/Shanghai'"
        ) from None
    return name


@cache
def _all_timezones() -> list[str]:
    import zoneinfo

    return sorted(zoneinfo.available_timezones())


TimeZone = Annotated[str, AfterValidator(_check_timezone)]


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


# --- models --------------------------------------------------------------------------------


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Endpoints(FrozenModel):
    """Endpoint overrides, e.g. to point a project at the emulator."""

    ges: HttpUrl | None = None
    iam: HttpUrl | None = None
    ces: HttpUrl | None = None


class Project(FrozenModel):
    name: Name
    region: Region
    project_id: ProjectId
    credentials: Annotated[
        str,
        StringConstraints(pattern=r"^[A-Za-z0-9_]{1,63}$"),
        Field(
            description="Names a credential set given by GRAPHNAP_CREDENTIALS__<NAME>__* or secret files."
        ),
    ]
    endpoints: Endpoints = Endpoints()

    def _default(self, service: str) -> str:
        domain = (
            "myhuaweicloud.eu"
            if service == "ges" and self.region == "eu-west-101"
            else "myhuaweicloud.com"
        )
        return f"https://{service}.{self.region}.{domain}"

    @property
    def ges_endpoint(self) -> str:
        return str(self.endpoints.ges or self._default("ges")).rstrip("/")

    @property
    def iam_endpoint(self) -> str:
        return str(self.endpoints.iam or self._default("iam")).rstrip("/")

    @property
    def ces_endpoint(self) -> str:
        return str(self.endpoints.ces or self._default("ces")).rstrip("/")


class Calendar(FrozenModel):
    """Days on which schedules that name this calendar in `skip_on` do not fire."""

    country: str | None = Field(
        default=None, description="ISO 3166 code known to the holidays package"
    )
    subdivision: str | None = None
    dates: list[date] = []

    def is_holiday(self, day: date) -> bool:
        if day in self.dates:
            return True
        return self.country is not None and day in _country_holidays(
            self.country, self.subdivision, day.year
        )

    def holiday_name(self, day: date) -> str:
        if day in self.dates:
            return "listed date"
        if self.country is None:
            return ""
        return str(_country_holidays(self.country, self.subdivision, day.year).get(day) or "")


@cache
def _country_holidays(country: str, subdivision: str | None, year: int) -> Mapping[date, str]:
    found: Mapping[date, str] = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return found


class Selector(FrozenModel):
    """Which graphs a rule applies to; every criterion given must match."""

    projects: list[Name] = []
    ids: list[GraphId] = []
    names: list[str] = Field(
        default=[], description="Shell-style globs on graph names, e.g. 'dev-*'."
    )
    tags: dict[str, str] = Field(default={}, description="Tag key -> value; '*' matches any value.")

    def is_empty(self) -> bool:
        return not (self.projects or self.ids or self.names or self.tags)


class Schedule(FrozenModel):
    name: Name
    action: Literal["stop", "start"]
    cron: CronExpr
    timezone: TimeZone
    targets: Selector
    exclude: Selector | None = None
    keep_stopped_until: CronExpr | None = Field(
        default=None,
        description="Stop schedules only: until this cron time, graphs that come back running are re-stopped.",
    )
    skip_on: Annotated[list[Name], BeforeValidator(_as_list)] = Field(
        default=[], description="Calendar names; a firing on one of their days is skipped."
    )
    misfire_grace: Duration | None = Field(
        default=None,
        description="A firing missed by less than this runs late; default from settings (1h).",
    )
    timeout: Duration | None = Field(
        default=None, description="How long a job may take; default 20m."
    )
    backup_id: str | None = Field(
        default=None, description="Start schedules only: start from this backup."
    )
    dry_run: bool = False


class IdleRule(FrozenModel):
    name: Name
    targets: Selector
    exclude: Selector | None = None
    idle_for: Duration
    threshold: Annotated[int, Field(ge=0)] = 0
    check_every: Duration = timedelta(minutes=5)
    min_uptime: Duration = timedelta(minutes=30)
    dry_run: bool = False


class Pricing(FrozenModel):
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    hourly: dict[
        Annotated[str, StringConstraints(pattern=r"^\d{1,3}$")], Annotated[float, Field(ge=0)]
    ] = Field(default={}, description="Hourly price of one replica, by graphSizeTypeIndex.")

    def hourly_price(self, size_index: str, replication: int) -> float | None:
        """Pay-per-use price of a graph per hour, or None when its size has no price."""
        price = self.hourly.get(size_index)
        return None if price is None else price * max(replication, 1)


class OptOutTags(FrozenModel):
    skip: str = "graphnap-skip"
    snooze_until: str = "graphnap-snooze-until"


class Config(FrozenModel):
    """graphnap's configuration file."""

    projects: Annotated[list[Project], Field(min_length=1)]
    calendars: dict[Name, Calendar] = {}
    schedules: list[Schedule] = []
    idle_rules: list[IdleRule] = []
    pricing: Pricing = Pricing()
    opt_out_tags: OptOutTags = OptOutTags()

    def project(self, name: str) -> Project:
        return next(p for p in self.projects if p.name == name)

    def schedule(self, name: str) -> Schedule:
        return next(s for s in self.schedules if s.name == name)


# --- loading and errors --------------------------------------------------------------------

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str
    hint: str = ""
    line: int | None = None

    @property
    def where(self) -> str:
        return format_loc(self.loc) or "(top level)"

    def __str__(self) -> str:
        line = f"line {self.line}: " if self.line else ""
        hint = f"\n    hint: {self.hint}" if self.hint else ""
        return f"{line}{self.where}: {self.message}{hint}"


class ConfigError(Exception):
    """A config that cannot be used; `problems` says every place that is wrong."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def format_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += (
            f"[{part}]"
            if isinstance(part, int) and not isinstance(part, bool)
            else (f".{part}" if out else str(part))
        )
    return out


def load_config(path: Path | str) -> Config:
    """Read, parse and check one config file; raise ConfigError naming every problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            source, [Problem((), "file not found", "check the path, or set GRAPHNAP_CONFIG")]
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            source, [Problem((), "is a directory, not a file", "name the YAML file itself")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            source,
            [Problem((), f"cannot be read: {exc}", "check permissions and encoding (UTF-8)")],
        ) from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<config>") -> Config:
    data, lines = _load_yaml(text, source)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            source, [_problem_from_pydantic(err, lines) for err in exc.errors()]
        ) from None
    problems = [
        Problem(p.loc, p.message, p.hint, _line_of(p.loc, lines)) for p in check_references(config)
    ]
    if problems:
        raise ConfigError(source, problems)
    return config


def _load_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """YAML -> plain data, plus the line of every node; duplicated keys are refused."""
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise ConfigError(
            source, [Problem((), "the file is empty", "start from config/example.yaml")]
        )
    loader = yaml.SafeLoader(text)
    lines: dict[Loc, int] = {}
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(
                source, [Problem((), "the file is empty", "start from config/example.yaml")]
            )

        def build(node: yaml.Node, loc: Loc) -> Any:
            lines[loc] = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                loader.flatten_mapping(node)
                out: dict[Any, Any] = {}
                for key_node, value_node in node.value:
                    # Keys are names: keep their text, so `no:` or `1:` stay "no" and "1".
                    if not isinstance(key_node, yaml.ScalarNode):
                        raise ConfigError(
                            source,
                            [
                                Problem(
                                    loc,
                                    "a key must be a plain word",
                                    "write key: value",
                                    key_node.start_mark.line + 1,
                                )
                            ],
                        )
                    key = str(key_node.value)
                    if key in out:
                        first = lines.get((*loc, key))
                        raise ConfigError(
                            source,
                            [
                                Problem(
                                    (*loc, key),
                                    f"duplicated key {key!r} (first at line {first})",
                                    "YAML would silently keep only the last one; remove or merge them",
                                    key_node.start_mark.line + 1,
                                )
                            ],
                        )
                    lines[(*loc, key)] = key_node.start_mark.line + 1
                    out[key] = build(value_node, (*loc, key))
                    lines[(*loc, key)] = key_node.start_mark.line + 1
                return out
            if isinstance(node, yaml.SequenceNode):
                return [build(item, (*loc, i)) for i, item in enumerate(node.value)]
            return loader.construct_object(node, deep=True)

        data = build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = f"{exc.context + ', ' if exc.context else ''}{exc.problem or ''}"
        raise ConfigError(
            source,
            [
                Problem(
                    (),
                    f"invalid YAML: {what}",
                    "check indentation and quoting around that line",
                    line,
                )
            ],
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            source, [Problem((), f"invalid YAML: {exc}", "check the file's syntax")]
        ) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(
            source,
            [
                Problem(
                    (),
                    f"the top level is a {type(data).__name__}, not a mapping",
                    "start with 'projects:'",
                    1,
                )
            ],
        )
    return data, lines


def _line_of(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _problem_from_pydantic(err: Mapping[str, Any], lines: Mapping[Loc, int]) -> Problem:
    loc: Loc = tuple(part for part in err["loc"] if not _is_pydantic_tag(part))
    kind, message = err["type"], str(err["msg"])
    message = message.removeprefix("Value error, ")
    hint = ""
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        message = f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
        hint = f"allowed here: {', '.join(allowed)}" if allowed else "remove it"
    elif kind == "missing":
        message = "required key is missing"
        hint = f"add '{loc[-1]}:'"
    elif kind == "string_type" and isinstance(err.get("input"), bool):
        hint = "YAML reads yes/no/on/off/true/false as booleans; quote the value"
    elif kind == "string_pattern_mismatch":
        message = f"{err.get('input')!r} is not allowed here ({message})"
    return Problem(loc, message, hint, _line_of(loc, lines))


def _is_pydantic_tag(part: object) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys a mapping at `loc` accepts, by walking the model types."""
    tp: Any = Config
    for part in loc:
        tp = _strip_optional(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        else:
            return []
    tp = _strip_optional(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _strip_optional(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    return tp


def check_references(config: Config) -> list[Problem]:
    """Cross-checks pydantic cannot express: names that must exist, be unique, or fit the action."""
    problems: list[Problem] = []
    project_names = [p.name for p in config.projects]
    for i, project in enumerate(config.projects):
        if project_names.index(project.name) != i:
            problems.append(
                Problem(
                    ("projects", i, "name"),
                    f"project name {project.name!r} is used twice",
                    "give each project its own name",
                )
            )
        pair = [(p.region, p.project_id) for p in config.projects].index(
            (project.region, project.project_id)
        )
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
                    f"rule name {rule.name!r} is already used at {format_loc(rule_names[rule.name])}",
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
                            f"unknown project {name!r}",
                            _known("projects", project_names),
                        )
                    )
        if isinstance(rule, Schedule):
            for j, name in enumerate(rule.skip_on):
                if name not in config.calendars:
                    problems.append(
                        Problem(
                            (*here, "skip_on", j),
                            f"unknown calendar {name!r}",
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
            close = difflib.get_close_matches(calendar.country, list(supported), n=1)
            problems.append(
                Problem(
                    (*here, "country"),
                    f"{calendar.country!r} is not a country the holidays package knows",
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
                    f"{calendar.country} has no subdivision {calendar.subdivision!r}",
                    f"known: {', '.join(supported[calendar.country][:12])}",
                )
            )
    return problems


def _known(what: str, names: Sequence[str]) -> str:
    return f"known {what}: {', '.join(names)}" if names else f"no {what} are defined"


def config_json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "graphnap config"
    return schema
