"""Runtime settings from GRAPHNAP_* environment variables, and the credential sets.

The YAML config says *what* to do; these settings say *how* this process runs (ports, limits,
retry policy) and hold the secrets, which never come from the YAML file.
Credentials: `GRAPHNAP_CREDENTIALS__<SET>__AK` / `__SK` (or `__USER`, `__PASSWORD`, `__DOMAIN`),
or files `<SET>.<field>` in `GRAPHNAP_SECRETS_DIR` (one Kubernetes Secret mounted as a volume).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

_CREDENTIAL_FIELDS = ("ak", "sk", "security_token", "user", "password", "domain")
_NOTIFY_PREFIX = "notify."
_NOTIFY_FIELDS = ("url", "secret")


def _read_secret(file: Path) -> str:
    """One secret file's value; a warning when it is readable by more than need be."""
    info = file.stat()  # of the file a Kubernetes `..data` symlink points to
    # Others: always too many. The group: too many when the file is this process's own;
    # a Kubernetes Secret volume is root's, and its group (fsGroup) is how we read it.
    exposed = stat.S_IRWXO | (stat.S_IRWXG if info.st_uid == os.geteuid() else 0)
    if info.st_mode & exposed:
        log.warning(
            "secret file %s is readable by group or others (mode %04o); make it 0400 or "
            "0600 (for a Kubernetes Secret volume, defaultMode: 0400, or 0440 with fsGroup)",
            file,
            stat.S_IMODE(info.st_mode),
        )
    try:
        return file.read_bytes().decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        # Never the bytes themselves: they are the secret.
        raise ValueError(
            f"secret file {file} is not UTF-8 text (a bad byte at offset {exc.start}); "
            "write the value as plain text, without an editor's encoding or a binary copy"
        ) from None


class CredentialSet(BaseModel):
    """Either an AK/SK pair (optionally a temporary one with a security token) or an IAM user."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ak: SecretStr | None = None
    sk: SecretStr | None = None
    security_token: SecretStr | None = None
    user: str | None = None
    password: SecretStr | None = None
    domain: str | None = None

    @model_validator(mode="after")
    def _one_complete_kind(self) -> Self:
        has_aksk = self.ak is not None or self.sk is not None
        has_user = self.user is not None or self.password is not None or self.domain is not None
        if has_aksk and has_user:
            raise ValueError("give either AK/SK or user/password/domain, not both")
        if has_aksk and (self.ak is None or self.sk is None):
            raise ValueError("an AK needs its SK and an SK its AK")
        if has_user and None in (self.user, self.password, self.domain):
            raise ValueError("an IAM user needs user, password and domain (the account name)")
        if not (has_aksk or has_user):
            raise ValueError("empty: give AK and SK, or user, password and domain")
        return self

    @property
    def kind(self) -> Literal["aksk", "password"]:
        return "aksk" if self.ak is not None else "password"


class NotifySecret(BaseModel):
    """A notification channel's secrets: the receiver's URL (a webhook URL is a bearer
    credential) and its signing secret. Files notify.<channel>.url / .secret in
    GRAPHNAP_SECRETS_DIR, or GRAPHNAP_NOTIFY__<CHANNEL>__URL / __SECRET."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: SecretStr | None = None
    secret: SecretStr | None = None


class RetrySettings(BaseModel):
    """Retry policy for retryable API errors: exponential backoff with jitter, as data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(default=5, ge=1, le=20)
    backoff_initial_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    backoff_jitter_s: float = Field(default=1.0, ge=0)


SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class LeaderSettings(BaseModel):
    """Leader election on a Kubernetes Lease, and where the state is kept
    (`GRAPHNAP_LEADER__*`). Times as client-go's: the leader steps down when it has not
    renewed for `renew_deadline_s`, others may take the lease `lease_duration_s` after its
    last renewal they saw, and every replica tries each `retry_period_s`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    lease_name: str = "graphnap"
    lease_duration_s: float = Field(default=15.0, gt=0)
    renew_deadline_s: float = Field(default=10.0, gt=0)
    retry_period_s: float = Field(default=2.0, gt=0)
    identity: str | None = None  # default: POD_NAME, else the host name
    namespace: str | None = None  # default: the service account's namespace
    # The API server: default in-cluster (KUBERNETES_SERVICE_HOST/PORT, the service
    # account's token and CA); tests point it at a fake on loopback (http:// needs no CA).
    api_url: str | None = None
    token_file: Path = SERVICE_ACCOUNT_DIR / "token"
    ca_file: Path | None = SERVICE_ACCOUNT_DIR / "ca.crt"
    request_timeout_s: float = Field(default=5.0, gt=0)
    # Where what outlives the pod is kept: the state file, or one ConfigMap.
    store: Literal["file", "configmap"] = "file"
    configmap_name: str = "graphnap-state"

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError(
                "leader timings must be retry_period_s < renew_deadline_s < lease_duration_s "
                "(the leader must stop acting before another may take the lease)"
            )
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRAPHNAP_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    config: Path = Path("/etc/graphnap/config.yaml")
    listen_host: str = "0.0.0.0"  # noqa: S104 - a pod's metrics port must be reachable
    listen_port: int = Field(default=9464, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text", "auto"] = "auto"
    dry_run: bool = False

    misfire_grace_s: float = Field(default=3600.0, gt=0)
    max_concurrency: int = Field(default=64, ge=1)  # actions in flight, all projects together
    # Requests in flight per project, and the adaptive rate's ceiling: bounds against a
    # runaway, not a guess at the API's limit, which the gate finds (cloud/gate.py).
    project_concurrency: int = Field(default=64, ge=1, le=100)
    project_rate_per_s: float = Field(default=1000.0, gt=0)
    project_rate_initial_per_s: float = Field(default=10.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)
    retry: RetrySettings = RetrySettings()
    job_timeout_s: float = Field(default=1200.0, gt=0)
    poll_initial_s: float = Field(default=10.0, gt=0)
    poll_max_s: float = Field(default=60.0, gt=0)
    reconcile_interval_s: float = Field(default=300.0, gt=0)
    inventory_interval_s: float = Field(default=60.0, gt=0)
    reload_check_s: float = Field(default=1.0, gt=0)
    per_graph_metrics: bool = True  # graphnap_graph_stopped / _hourly_price, one series a graph
    shutdown_grace_s: float = Field(default=25.0, ge=0)
    token_refresh_margin_s: float = Field(default=3600.0, ge=0)
    page_size: int = Field(default=100, ge=1, le=1000)

    state_file: Path | None = None  # last fire times, to count firings missed while down
    leader: LeaderSettings = LeaderSettings()

    # The control API (holds, wakes, its page): a listener of its own, off unless a tokens
    # directory is given (one `<name>.json` per token: daemon/ops/tokens.py).
    control_host: str = "0.0.0.0"  # noqa: S104 - reached through the Service or a port-forward
    control_port: int = Field(default=9465, ge=0, le=65535)
    control_tokens_dir: Path | None = None
    control_rate_per_s: float = Field(default=1.0, gt=0)  # requests per token, refilled
    control_burst: int = Field(default=30, ge=1)  # requests per token at once
    control_max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    # Postpone links in warnings (daemon/ops/postpone.py): the address people reach the
    # control listener at (an ingress, e.g. https://graphnap.example.com), and the file of
    # their signing key (else a key generated into the state file).
    control_public_url: HttpUrl | None = None
    control_link_key_file: Path | None = None

    credentials: dict[str, CredentialSet] = {}
    notify: dict[str, NotifySecret] = {}  # by channel name
    secrets_dir: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _merge_secret_files(cls, data: object) -> object:
        """Fold `<set>.<field>` files from secrets_dir under the env-given credentials."""
        if not isinstance(data, dict):
            return data
        directory = data.get("secrets_dir")
        if not directory:
            return data
        path = Path(str(directory))
        if not path.is_dir():
            raise ValueError(f"GRAPHNAP_SECRETS_DIR={path} is not a directory")
        from_files: dict[str, dict[str, str]] = {}
        notify_files: dict[str, dict[str, str]] = {}
        for file in sorted(path.iterdir()):
            name, _, field = file.name.rpartition(".")
            if name.startswith(_NOTIFY_PREFIX) and field in _NOTIFY_FIELDS and file.is_file():
                channel = name.removeprefix(_NOTIFY_PREFIX).lower()
                notify_files.setdefault(channel, {})[field] = _read_secret(file)
            elif name and field in _CREDENTIAL_FIELDS and file.is_file():
                from_files.setdefault(name.lower(), {})[field] = _read_secret(file)
        notify = {str(k).lower(): dict(v) for k, v in (data.get("notify") or {}).items()}
        for channel, fields in notify_files.items():
            notify[channel] = {**fields, **notify.get(channel, {})}  # the environment wins
        given = {str(k).lower(): dict(v) for k, v in (data.get("credentials") or {}).items()}
        for name, fields in from_files.items():
            given[name] = {**fields, **given.get(name, {})}  # the environment wins over files
        return {**data, "credentials": given, "notify": notify}

    def secret_values(self) -> list[str]:
        """Every credential value given (keys, tokens, passwords): what error texts from
        the cloud are cleaned of before they are logged or shown."""
        values = {
            secret.get_secret_value()
            for creds in self.credentials.values()
            for secret in (creds.ak, creds.sk, creds.security_token, creds.password)
            if secret is not None
        }
        values |= {
            secret.get_secret_value()
            for channel in self.notify.values()
            for secret in (channel.url, channel.secret)
            if secret is not None
        }
        return sorted(values, key=len, reverse=True)

    def notify_secret(self, channel: str) -> NotifySecret:
        """A channel's secrets; an environment variable cannot hold '-', so `team-chat`
        is also found as GRAPHNAP_NOTIFY__TEAM_CHAT__URL."""
        key = channel.lower()
        return self.notify.get(key) or self.notify.get(key.replace("-", "_")) or NotifySecret()

    def credential_set(self, name: str) -> CredentialSet | None:
        return self.credentials.get(name.lower()) or self.credentials.get(name)
