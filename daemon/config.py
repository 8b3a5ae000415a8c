"""The config's models: frozen, parsed once at the edge, then trusted by the daemon.

Cron expressions, time zones and durations are checked as they are parsed; reading the
file, cross-references and error rendering are daemon.loader's.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import date, timedelta
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    WithJsonSchema,
)

from daemon.cron import cron_trigger

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
    """Where a list of names is asked for, one name alone means a list of one."""
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

    projects: Annotated[list[Name], BeforeValidator(_as_list)] = []
    ids: Annotated[list[GraphId], BeforeValidator(_as_list)] = []
    names: Annotated[list[str], BeforeValidator(_as_list)] = Field(
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


def config_json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "graphnap config"
    return schema
