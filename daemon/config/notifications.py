"""The config's `notifications:` (channels, routes from graphs to channels, the daily digest's
time) and a rule's `notify:` lead time. Receiver URLs and signing secrets are never here: they are files
`notify.<channel>.url` / `notify.<channel>.secret` in GRAPHNAP_SECRETS_DIR (daemon.config.settings).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import time, timedelta
from typing import Annotated, Literal, NamedTuple

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

# A config's names (daemon.config.models.Name; that module includes this one).
ChannelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
RefName = ChannelName

MessageKind = Literal[
    "warning",  # before a stop: the graphs that would stop, each with its postpone link
    "summary",  # after a firing: stopped, already stopped, skipped by reason, failed
    "failure",  # an action failed, as soon as it is known
    "deferral",  # a deferred stop given up: the graph stayed in use until `max`
    "idle_stop",  # an idle rule's stops
    "hold",  # a hold made or expired
    "digest",  # once a day: yesterday's savings, stops and failed stops per project
    "test",  # `graphnap notify test`
]
MESSAGE_KINDS: tuple[MessageKind, ...] = (
    "warning",
    "summary",
    "failure",
    "deferral",
    "idle_stop",
    "hold",
    "digest",
    "test",
)

MIN_LEAD = timedelta(minutes=1)
MAX_LEAD = timedelta(hours=24)


def _lead_time(value: object) -> timedelta:
    # daemon.config.models includes this module, so its duration parser is looked up when
    # a value is parsed (by then both modules are loaded), not when this one is imported.
    from daemon.config.models import parse_duration

    lead = parse_duration(value)
    if not MIN_LEAD <= lead <= MAX_LEAD:
        raise ValueError(
            "a warning's lead time is between 1m and 24h: less cannot reach anyone in time, "
            "more is a different firing"
        )
    return lead


LeadTime = Annotated[
    timedelta,
    BeforeValidator(_lead_time),
    WithJsonSchema(
        {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$", "examples": ["15m"]}
    ),
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleNotify(_Frozen):
    """A rule's `notify:`: warn `before` its stops (routes pick the channels)."""

    before: LeadTime | None = Field(
        default=None,
        description="Warn this long before each stop, with a postpone link per graph (1m to 24h).",
    )


# --- channels ------------------------------------------------------------------------------


class _ChannelBase(_Frozen):
    timeout: Annotated[float, Field(gt=0, le=60)] = Field(
        default=10.0, description="Seconds one delivery attempt may take."
    )


class WebhookChannel(_ChannelBase):
    """JSON to any HTTP receiver, as a CloudEvent (structured mode) signed the Standard
    Webhooks way: files notify.<name>.url and notify.<name>.secret (whsec_...)."""

    type: Literal["webhook"]
    cloudevents: bool = Field(
        default=True,
        description="application/cloudevents+json (CloudEvents 1.0); false: the bare event JSON.",
    )
    signed: bool = Field(default=True, description="Require notify.<name>.secret and sign.")


TopicUrn = Annotated[
    str,
    StringConstraints(pattern=r"^urn:smn:[a-z0-9-]+:[0-9a-f]{32}:[A-Za-z0-9_-]{1,255}$"),
    Field(description="urn:smn:<region>:<project id>:<topic name>"),
]


class SmnChannel(_ChannelBase):
    """Huawei Cloud SMN: publish to a topic, signed with a config project's own credentials."""

    type: Literal["smn"]
    project: RefName = Field(description="The config project whose credentials sign the publish.")
    topic_urn: TopicUrn
    endpoint: HttpUrl | None = Field(
        default=None, description="Default https://smn.<region>.myhuaweicloud.com."
    )


class SlackChannel(_ChannelBase):
    """A Slack incoming webhook: file notify.<name>.url (https://hooks.slack.com/services/...)."""

    type: Literal["slack"]


class WecomChannel(_ChannelBase):
    """A WeCom group robot (markdown): file notify.<name>.url (.../webhook/send?key=...)."""

    type: Literal["wecom"]


class DingtalkChannel(_ChannelBase):
    """A DingTalk custom robot with 加签: files notify.<name>.url and notify.<name>.secret (SEC...)."""

    type: Literal["dingtalk"]
    signed: bool = Field(default=True, description="Require notify.<name>.secret and sign.")


class FeishuChannel(_ChannelBase):
    """A Feishu / Lark custom bot with signature verification: files notify.<name>.url and
    notify.<name>.secret."""

    type: Literal["feishu"]
    signed: bool = Field(default=True, description="Require notify.<name>.secret and sign.")


Channel = Annotated[
    WebhookChannel | SmnChannel | SlackChannel | WecomChannel | DingtalkChannel | FeishuChannel,
    Field(discriminator="type"),
]
SIGNED_TYPES = ("webhook", "dingtalk", "feishu")


def needs_secret(channel: Channel) -> bool:
    return isinstance(channel, WebhookChannel | DingtalkChannel | FeishuChannel) and channel.signed


def needs_url(channel: Channel) -> bool:
    return not isinstance(channel, SmnChannel)


# --- routes --------------------------------------------------------------------------------


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


Refs = Annotated[list[RefName], BeforeValidator(_as_list)]
Kinds = Annotated[list[MessageKind], BeforeValidator(_as_list)]


class RouteMatch(_Frozen):
    """Which messages a route takes; every criterion given must match, none given: all."""

    projects: Refs = []
    rules: Refs = []
    tags: dict[str, str] = Field(
        default={}, description="Graph tag -> value ('*': any value), e.g. {team: search}."
    )
    kinds: Kinds = []

    def is_kind(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds

    def is_graph(self, project: str, rule: str, tags: Mapping[str, str] | None) -> bool:
        """A graph of `project` acted on by `rule`, with `tags` (None: not known)."""
        if self.projects and project not in self.projects:
            return False
        if self.rules and rule not in self.rules:
            return False
        if not self.tags:
            return True
        if tags is None:
            return False
        return all(
            key in tags and (want == "*" or tags[key] == want) for key, want in self.tags.items()
        )


class Route(_Frozen):
    match: RouteMatch = RouteMatch()
    channels: Annotated[Refs, Field(min_length=1)] = Field(
        description="Channel names (from notifications.channels) that get these messages."
    )


# --- the daily digest ----------------------------------------------------------------------

_CLOCK_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def _clock_time(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 9:30 as the base-60 number 570.
        shown = f"{value // 60:02d}:{value % 60:02d}"
        raise ValueError(f'a time of day is text: write it in quotes, e.g. at: "{shown}"')
    match = _CLOCK_TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"not a time of day: {str(value)[:40]!r}; give hours and minutes on a 24-hour "
            'clock, e.g. "09:00"'
        )
    return time(int(match[1]), int(match[2]))


def _zone(name: str) -> str:
    # Looked up when a value is parsed, as _lead_time does (models includes this module).
    from daemon.config.models import _check_timezone  # its error type gets "did you mean"

    return _check_timezone(name)


ClockTime = Annotated[
    time,
    BeforeValidator(_clock_time),
    WithJsonSchema({"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$"}),
]
ZoneName = Annotated[str, AfterValidator(_zone)]


class DigestSchedule(_Frozen):
    """`notifications.digest`: once a day at `at` in `timezone`, yesterday's figures (that
    zone's previous calendar day) to the routes that take the kind `digest`."""

    at: ClockTime = Field(description='When it is sent, "HH:MM" on a 24-hour clock.')
    timezone: ZoneName = Field(
        default="UTC", description="The zone of `at` and of the days counted, e.g. Europe/Berlin."
    )


class Delivery(_Frozen):
    """How hard the outbox tries, per channel: data, not code."""

    queue: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=1000, description="Messages waiting per channel; beyond it the oldest is dropped."
    )
    attempts: Annotated[int, Field(ge=1, le=20)] = 5
    backoff_initial_s: Annotated[float, Field(ge=0)] = 2.0
    backoff_max_s: Annotated[float, Field(ge=0)] = 120.0
    retry_after_max_s: Annotated[float, Field(ge=0)] = Field(
        default=600.0, description="A receiver's Retry-After is honoured up to this."
    )


class Notifications(_Frozen):
    """Where graphnap tells people what it is about to do and what it did."""

    channels: dict[ChannelName, Channel] = {}
    routes: list[Route] = []
    max_items: Annotated[int, Field(ge=1, le=200)] = Field(
        default=20, description="Graphs listed per message; the rest are 'and N more'."
    )
    settle: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0,
        description="Seconds without news of a firing before its summary goes out "
        "(it also waits for the firing's jobs, up to `summary_max_wait`).",
    )
    summary_max_wait: Annotated[float, Field(gt=0, le=86400)] = 1800.0
    digest: DigestSchedule | None = Field(
        default=None,
        description="A daily digest of yesterday's savings per project; off when absent.",
    )
    delivery: Delivery = Delivery()

    def problems(self, *, projects: Collection[str], rules: Collection[str]) -> list[NotifyProblem]:
        """What pydantic cannot check alone: names that must exist, routes that lead
        nowhere. Locations start at the config's top (`notifications.routes[0]...`)."""
        found: list[NotifyProblem] = []
        here = ("notifications",)
        for name, channel in self.channels.items():
            if isinstance(channel, SmnChannel) and channel.project not in projects:
                found.append(
                    NotifyProblem(
                        (*here, "channels", name, "project"),
                        f"unknown project {channel.project!r}",
                        "SMN publishes with a config project's credentials: name one of projects",
                    )
                )
        used: set[str] = set()
        for i, route in enumerate(self.routes):
            at = (*here, "routes", i)
            for j, channel_name in enumerate(route.channels):
                used.add(channel_name)
                if channel_name not in self.channels:
                    found.append(
                        NotifyProblem(
                            (*at, "channels", j),
                            f"unknown channel {channel_name!r}",
                            _known("channels", list(self.channels)),
                        )
                    )
            for j, project in enumerate(route.match.projects):
                if project not in projects:
                    found.append(
                        NotifyProblem(
                            (*at, "match", "projects", j),
                            f"unknown project {project!r}: this route matches nothing",
                            _known("projects", sorted(projects)),
                        )
                    )
            for j, rule in enumerate(route.match.rules):
                if rule not in rules:
                    found.append(
                        NotifyProblem(
                            (*at, "match", "rules", j),
                            f"unknown rule {rule!r}: this route matches nothing",
                            _known("rules", sorted(rules)),
                        )
                    )
        found += self._digest_problems()
        for name in self.channels:
            if name not in used:
                found.append(
                    NotifyProblem(
                        (*here, "channels", name),
                        "no route leads to this channel: it would never get a message",
                        "add it to a route's channels, or remove it",
                    )
                )
        if self.channels and not self.routes:
            found.append(
                NotifyProblem(
                    (*here, "routes"),
                    "channels are defined but no route sends them anything",
                    "add a route, e.g. {channels: [team-chat]} for every message",
                )
            )
        return found

    def _digest_problems(self) -> list[NotifyProblem]:
        """Routes that ask for the digest by kind but can never get it."""
        found: list[NotifyProblem] = []
        for i, route in enumerate(self.routes):
            if "digest" not in route.match.kinds:
                continue
            at = ("notifications", "routes", i, "match", "kinds")
            if self.digest is None:
                found.append(
                    NotifyProblem(
                        at,
                        "this route takes the digest, but no digest is sent",
                        'add notifications.digest, e.g. {at: "09:00", timezone: Europe/Berlin}',
                    )
                )
            elif route.match.rules or route.match.tags:
                found.append(
                    NotifyProblem(
                        at,
                        "the digest belongs to no rule and lists no graphs: a route matching "
                        "rules or tags never gets it",
                        "give the digest a route of its own, matched by projects and kinds only",
                    )
                )
        return found


class NotifyProblem(NamedTuple):
    """A problem as daemon.config.loader.Problem takes it: Problem(*problem)."""

    loc: tuple[str | int, ...]
    message: str
    hint: str


def _known(what: str, names: list[str]) -> str:
    if not names:
        return f"no {what} are defined"
    more = f", ... ({len(names)} in all)" if len(names) > 12 else ""
    return f"known {what}: {', '.join(names[:12])}{more}"
