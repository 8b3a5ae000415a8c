"""The config's models: frozen, parsed once at the edge, then trusted by the daemon.

Cron expressions, time zones and durations are checked as they are parsed; reading the
file is daemon.config.loader's, cross-references and located errors are
daemon.config.references' and daemon.config.problems'.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Mapping
from datetime import date, timedelta
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from pydantic_core import PydanticCustomError

from daemon.config.holds import HoldSpec
from daemon.config.notifications import Notifications, RuleNotify
from daemon.domain.cron import cron_trigger
from daemon.domain.ids import PROJECT_ID_PATTERN, RESOURCE_ID_PATTERN

# --- values in error messages --------------------------------------------------------------

_KEY_LIKE_RE = re.compile(r"[A-Za-z0-9+/=]{20,}")


def looks_like_secret(text: str) -> bool:
    """20+ letters and digits without a separator (an AK is 20, an SK 40): the shape of a
    credential pasted in the wrong place, not of a name people type (those have '-' or '_')."""
    return (
        _KEY_LIKE_RE.fullmatch(text) is not None
        and any(c.isdigit() for c in text)
        and any(c.isalpha() for c in text)
    )


def shown(value: object) -> str:
    """A refused value as an error message may show it: never in full, since a secret pasted
    under the wrong key would otherwise reach `validate`, the log and /status. At most the
    first 4 characters, and never more than a quarter of the value."""
    text = value if isinstance(value, str) else repr(value)
    head = text[: min(4, len(text) // 4)]
    return f"'{head}…' ({len(text)} characters)"


def named(value: str) -> str:
    """A name looked up in a list (a time zone, a country, a project), quoted in full unless
    it looks like a secret; a value that failed a pattern goes through shown() instead."""
    return shown(value) if looks_like_secret(value) or len(value) > 64 else repr(value)


# --- scalar types --------------------------------------------------------------------------

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"),
    Field(description="A name: letters, digits, '-', '_' and '.', at most 63 characters."),
]
# GES ids go into URL paths: nothing but letters, digits and '-' may get through.
ProjectId = Annotated[str, StringConstraints(pattern=PROJECT_ID_PATTERN)]
GraphId = Annotated[str, StringConstraints(pattern=RESOURCE_ID_PATTERN)]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[a-z0-9]+)+$")]

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# No setting means more than a year; the cap also keeps `99999999999999999999999w` from
# overflowing timedelta.
MAX_DURATION = timedelta(days=366)


def parse_duration(value: object) -> timedelta:
    """'90s', '5m', '1h30m', '2d' -> timedelta. Bare numbers are refused: the unit is the point."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and len(repr(value)) <= 12:
        raise ValueError(
            f"{value!r} is not a duration; add a unit (ms, s, m, h, d, w), e.g. '{value}s' or '{value}m'"
        )
    if not isinstance(value, str):
        raise ValueError("not a duration; write a number and a unit, e.g. '90s', '5m', '1h30m'")
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            f"{shown(value)} is not a duration; write a number and a unit (ms, s, m, h, d, w), "
            "e.g. '90s', '5m', '1h30m'"
        )
    if not math.isfinite(total) or total > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration longer than {MAX_DURATION.days}d is not accepted")
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
        # The parser's message quotes the expression and its fields: cut the long ones.
        message = str(exc).replace(repr(expr), shown(expr))
        for part in sorted(set(expr.split()), key=len, reverse=True):
            if len(part) > 8:
                message = message.replace(part, shown(part))
        raise ValueError(f"invalid cron expression: {message}") from None
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
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
        # A type of its own, so the loader can add "did you mean" where it shows the problem
        # (difflib costs a millisecond a name: not for every one of thousands of bad lines).
        raise PydanticCustomError(
            "unknown_timezone",
            "unknown time zone {shown}; use an IANA name such as 'Asia/Shanghai'",
            {"shown": named(name), "name": name},
        ) from None
    return name


def close_timezone(name: str) -> str | None:
    """The known time zone name closest to `name`, if one is close."""
    if len(name) > 64:  # no zone name is that long, and difflib's time grows with it
        return None
    close = difflib.get_close_matches(name, _all_timezones(), n=1)
    return close[0] if close else None


@cache
def _all_timezones() -> list[str]:
    import zoneinfo

    return sorted(zoneinfo.available_timezones())


TimeZone = Annotated[str, AfterValidator(_check_timezone)]


def _as_list(value: object) -> object:
    """Where a list of names is asked for, one name alone means a list of one."""
    return [value] if isinstance(value, str) else value


def _one_or_many(items: dict[str, Any]) -> WithJsonSchema:
    """The JSON Schema of a list that also takes one item alone (what _as_list accepts)."""
    return WithJsonSchema({"anyOf": [items, {"type": "array", "items": items}]})


_NAME_SCHEMA = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"}
Names = Annotated[list[Name], BeforeValidator(_as_list), _one_or_many(_NAME_SCHEMA)]


# --- models --------------------------------------------------------------------------------


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Never a GES, IAM or Cloud Eye endpoint, and where a request signed with the project's
# keys (or the IAM password) must not go: link-local and cloud metadata services.
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)
_METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_metadata_host(host: str) -> bool:
    """A link-local or cloud metadata address (URL parsing already turned 2852039166 and
    0xA9FEA9FE into 169.254.169.254)."""
    host = host.rstrip(".").lower()
    address = _ip(host)
    if address is None:
        return host in _METADATA_NAMES
    return address in _METADATA_ADDRESSES or any(address in net for net in _LINK_LOCAL)


def is_loopback_host(host: str) -> bool:
    host = host.rstrip(".").lower()
    address = _ip(host)
    if address is None:
        return host == "localhost" or host.endswith(".localhost")
    return address.is_loopback


def _check_endpoint(url: HttpUrl) -> HttpUrl:
    # The messages never quote the URL: a user:password in it is the reason to refuse.
    if url.username or url.password:
        raise ValueError(
            "a user name or password in an endpoint URL is refused; credentials are given "
            "as GRAPHNAP_CREDENTIALS__<SET>__* or files in GRAPHNAP_SECRETS_DIR"
        )
    if url.query or url.fragment:
        raise ValueError("an endpoint is scheme://host[:port][/path], without '?' or '#'")
    if is_metadata_host(url.host or ""):
        raise ValueError(
            "a link-local or cloud metadata address is never a GES, IAM or Cloud Eye endpoint; "
            "refused so that signed requests and the IAM password cannot be sent there"
        )
    return url


Endpoint = Annotated[HttpUrl, AfterValidator(_check_endpoint)]


class Endpoints(FrozenModel):
    """Endpoint overrides, for the emulator and private endpoints: http(s) only, no
    user:password@, no link-local or metadata address; plain http to a host that is not
    loopback is allowed but warned about at every load."""

    ges: Endpoint | None = None
    iam: Endpoint | None = None
    ces: Endpoint | None = None

    def plain_http(self) -> list[tuple[str, str]]:
        """(service, url) of each override that sends requests unencrypted off this host."""
        return [
            (service, str(url))
            for service, url in (("ges", self.ges), ("iam", self.iam), ("ces", self.ces))
            if url is not None and url.scheme == "http" and not is_loopback_host(url.host or "")
        ]


def _not_a_secret(name: str) -> str:
    if looks_like_secret(name):
        raise ValueError(
            f"{shown(name)} looks like a secret key, not the name of a credential set; secrets "
            "never go in the config: give them as GRAPHNAP_CREDENTIALS__<SET>__* or files in "
            "GRAPHNAP_SECRETS_DIR, and rotate this one if the file was shared"
        )
    return name


class Project(FrozenModel):
    name: Name
    region: Region
    project_id: ProjectId
    credentials: Annotated[
        str,
        StringConstraints(pattern=r"^[A-Za-z0-9_]{1,63}$"),
        AfterValidator(_not_a_secret),
        Field(
            description="Names a credential set given by GRAPHNAP_CREDENTIALS__<NAME>__* or secret files."
        ),
    ]
    endpoints: Endpoints = Endpoints()
    ges_api: Literal["v1", "v2"] = Field(
        default="v1",
        description="The GES management API spoken to this project: v1 (/v1.0, the default) or "
        "v2 (/v2, for regions and accounts that have only it; it also names the database "
        "edition, which graphnap then leaves alone).",
    )

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
    import holidays  # 70 ms of imports, for configs with a country calendar only

    found: Mapping[date, str] = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return found


class Selector(FrozenModel):
    """Which graphs a rule applies to; every criterion given must match."""

    projects: Names = []
    ids: Annotated[
        list[GraphId],
        BeforeValidator(_as_list),
        _one_or_many({"type": "string", "pattern": RESOURCE_ID_PATTERN}),
    ] = []
    names: Annotated[list[str], BeforeValidator(_as_list), _one_or_many({"type": "string"})] = (
        Field(default=[], description="Shell-style globs on graph names, e.g. 'dev-*'.")
    )
    tags: dict[str, str] = Field(default={}, description="Tag key -> value; '*' matches any value.")

    def is_empty(self) -> bool:
        return not (self.projects or self.ids or self.names or self.tags)


class DeferWhileInUse(FrozenModel):
    """A stop schedule never stops a graph someone is using: graphs with requests in the last
    `within` are re-checked every `check_every` and stopped once quiet, or reported not
    stopped when `max` runs out."""

    within: Duration = timedelta(minutes=15)
    max: Duration = timedelta(hours=3)
    check_every: Duration = timedelta(minutes=5)
    threshold: Annotated[int, Field(ge=0)] = 0


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
    manual_start_hold: Duration = Field(
        default=timedelta(hours=2),
        description="With keep_stopped_until: a graph started by hand inside the window is "
        "held running this long from its start; 0 re-stops it as before.",
    )
    skip_on: Names = Field(
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
    defer_while_in_use: DeferWhileInUse | None = Field(
        default=None,
        description="Stop schedules only: graphs queried lately are stopped once quiet, not at the firing.",
    )
    notify: RuleNotify | None = Field(
        default=None, description="Stop schedules: warn the routes this long before each stop."
    )
    dry_run: bool = False


class ActiveHours(FrozenModel):
    """Judge only inside these hours: from the `from` cron time until the `until` one."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    start: CronExpr = Field(alias="from", examples=["0 19 * * *"])
    until: CronExpr = Field(examples=["0 7 * * *"])
    timezone: TimeZone


# Cloud Eye periods an idle rule may read (its window caps allow up to a day at 300 s).
CES_PERIODS = (60, 300, 1200, 3600)


def _check_period(period: timedelta) -> timedelta:
    if period.total_seconds() not in CES_PERIODS:
        raise ValueError(
            f"Cloud Eye aggregates over 1m, 5m, 20m or 1h, not {period.total_seconds():g}s"
        )
    return period


class IdleRule(FrozenModel):
    name: Name
    targets: Selector
    exclude: Selector | None = None
    idle_for: Duration
    threshold: Annotated[int, Field(ge=0)] = 0
    check_every: Duration = timedelta(minutes=5)
    min_uptime: Duration = timedelta(minutes=30)
    metric: Annotated[str, StringConstraints(pattern=r"^ges\d{3}_[a-z0-9_]+$")] = Field(
        default="ges004_request_count", description="A SYS.GES Cloud Eye metric."
    )
    aggregation: Literal["sum", "max", "min", "average"] = "sum"
    period: Annotated[Duration, AfterValidator(_check_period)] | None = Field(
        default=None,
        description="Cloud Eye period to read: 1m, 5m, 20m or 1h. Default: the finest that "
        "answers for 500 graphs in one request.",
    )
    lag: Duration = Field(
        default=timedelta(minutes=10),
        description="Cloud Eye publishes data this late; the judged window ends this long ago.",
    )
    active_hours: ActiveHours | None = Field(
        default=None, description="Judge only inside these hours, e.g. from 19:00 until 07:00."
    )
    notify: RuleNotify | None = Field(
        default=None, description="Warn the routes this long before an idle stop."
    )
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
    holds: list[HoldSpec] = Field(
        default=[], description="Keep graphs running or stopped until a time, whatever rules say."
    )
    max_hold: Duration = Field(
        default=timedelta(days=7), description="The longest a hold may last when it is made."
    )
    notifications: Notifications = Notifications()

    def project(self, name: str) -> Project:
        return next(p for p in self.projects if p.name == name)

    def schedule(self, name: str) -> Schedule:
        return next(s for s in self.schedules if s.name == name)


def config_json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "graphnap config"
    return schema
