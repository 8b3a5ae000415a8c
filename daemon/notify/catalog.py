"""The configured channels, built from `notifications.channels` and their secrets
(GRAPHNAP_SECRETS_DIR files notify.<channel>.url / .secret), with located problems for
what is missing; the secrets themselves are never in a problem's text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import httpx

from daemon.config import notifications as cfg
from daemon.config.models import Project
from daemon.config.settings import Settings
from daemon.domain.model import Clock
from daemon.notify import channels as ch
from daemon.notify.signatures import BadSecret, webhook_key

AuthFor = Callable[[Project], httpx.Auth | None]
"""The auth a project's own API requests go with, for its SMN publishes: the project's
client set's (daemon.cloud.clients.Clients.project_auth), whatever the credential set's
source (static keys, pod identity, OIDC, node metadata, or an IAM user's token); None when
the project has no clients."""


def smn_endpoint(channel: cfg.SmnChannel, project: Project) -> str:
    if channel.endpoint is not None:
        return str(channel.endpoint).rstrip("/")
    return f"https://smn.{project.region}.myhuaweicloud.com"


class SecretProblem(NamedTuple):
    channel: str
    message: str  # names the config place and the file; never a secret's value

    def __str__(self) -> str:
        return f"notifications.channels.{self.channel}: {self.message}"


def secret_problems(notifications: cfg.Notifications, settings: Settings) -> list[SecretProblem]:
    """Missing or malformed channel secrets (for start-up and `notify test`)."""
    found: list[SecretProblem] = []
    for name, channel in notifications.channels.items():
        secrets = settings.notify_secret(name)
        if cfg.needs_url(channel) and secrets.url is None:
            found.append(SecretProblem(name, f"no URL: give the secret file notify.{name}.url"))
        if cfg.needs_secret(channel) and secrets.secret is None:
            found.append(
                SecretProblem(
                    name,
                    f"signed, but no secret: give the secret file notify.{name}.secret "
                    "(or set signed: false)",
                )
            )
        if (
            isinstance(channel, cfg.WebhookChannel)
            and channel.signed
            and secrets.secret is not None
        ):
            try:
                webhook_key(secrets.secret.get_secret_value())
            except BadSecret as exc:
                found.append(SecretProblem(name, f"notify.{name}.secret: {exc}"))
        if secrets.url is not None and cfg.needs_url(channel):
            try:
                url = httpx.URL(secrets.url.get_secret_value())
            except httpx.InvalidURL:
                url = httpx.URL("")
            if url.scheme not in ("http", "https") or not url.host:
                found.append(SecretProblem(name, f"notify.{name}.url is not an http(s) URL"))
    return found


def build_channels(
    notifications: cfg.Notifications,
    settings: Settings,
    projects: Mapping[str, Project],
    *,
    http: httpx.AsyncClient,
    clock: Clock,
    auth_for: AuthFor,
) -> dict[str, ch.Channel]:
    """Every channel that can work; those with problems (secret_problems) are left out."""
    built: dict[str, ch.Channel] = {}
    broken = {p.channel for p in secret_problems(notifications, settings)}
    for name, channel in notifications.channels.items():
        if name in broken:
            continue
        secrets = settings.notify_secret(name)
        secret = secrets.secret if cfg.needs_secret(channel) else None
        kinds: dict[str, type[ch.HttpChannel]] = {
            "slack": ch.SlackChannel,
            "wecom": ch.WecomChannel,
            "dingtalk": ch.DingtalkChannel,
            "feishu": ch.FeishuChannel,
        }
        if isinstance(channel, cfg.WebhookChannel):
            built[name] = ch.WebhookChannel(
                name,
                http,
                url=secrets.url,
                secret=secret,
                timeout_s=channel.timeout,
                clock=clock,
                cloudevents=channel.cloudevents,
            )
        elif channel.type in kinds:
            built[name] = kinds[channel.type](
                name, http, url=secrets.url, secret=secret, timeout_s=channel.timeout, clock=clock
            )
        elif isinstance(channel, cfg.SmnChannel):
            project = projects.get(channel.project)
            auth = auth_for(project) if project is not None else None
            if project is None or auth is None:
                continue
            built[name] = ch.SmnChannel(
                name,
                http,
                endpoint=smn_endpoint(channel, project),
                project_id=project.project_id,
                topic_urn=channel.topic_urn,
                auth=auth,
                timeout_s=channel.timeout,
                clock=clock,
            )
    return built
