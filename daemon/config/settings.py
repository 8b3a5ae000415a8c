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
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from daemon.config.models import is_loopback_host

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


METADATA_URL = "http://169.254.169.254"  # the ECS metadata service: for `metadata` only
_POD_IDENTITY_ENV = {
    "credentials_uri": "HC_CONTAINER_CREDENTIALS_FULL_URI",
    "token_file": "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE",
}
_STATIC_FIELDS = ("ak", "sk", "security_token", "user", "password", "domain")
_SOURCE_FIELDS = {
    "static": (),
    "pod_identity": ("credentials_uri", "token_file"),
    "oidc": ("idp_id", "token_file", "duration_s"),
    "metadata": ("metadata_url",),
}
Source = Literal["static", "pod_identity", "oidc", "metadata"]


def _check_metadata_url(url: str) -> str:
    """The real metadata address, or loopback (the emulator in tests); nothing else, so
    that a setting cannot send the node's keys request anywhere else."""
    parsed = urlsplit(url)
    if url.rstrip("/") == METADATA_URL:
        return METADATA_URL
    if parsed.scheme in ("http", "https") and is_loopback_host(parsed.hostname or ""):
        return url.rstrip("/")
    raise ValueError(
        f"metadata_url must be {METADATA_URL} (the default) or a loopback URL for tests"
    )


class CredentialSet(BaseModel):
    """Where one set's keys come from, chosen explicitly by `source` (never by a chain):
    static (an AK/SK, optionally with a fixed security token, or an IAM user), pod_identity
    (CCE Pod Identity), oidc (the projected ServiceAccount token federated at IAM) or
    metadata (the node's agency)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Source = "static"
    ak: SecretStr | None = None
    sk: SecretStr | None = None
    security_token: SecretStr | None = None
    user: str | None = None
    password: SecretStr | None = None
    domain: str | None = None
    credentials_uri: str | None = None  # pod_identity; default $HC_CONTAINER_CREDENTIALS_FULL_URI
    token_file: Path | None = None  # pod_identity (default from env) and oidc: re-read each time
    idp_id: str | None = None  # oidc: the IAM identity provider
    duration_s: int = Field(default=21600, ge=900, le=86400)  # oidc: the temporary keys' life
    metadata_url: Annotated[str, AfterValidator(_check_metadata_url)] = METADATA_URL

    @model_validator(mode="before")
    @classmethod
    def _pod_identity_env(cls, data: object) -> object:
        """pod_identity takes the URI and the token file from the variables CCE sets."""
        if isinstance(data, dict) and data.get("source") == "pod_identity":
            for field, env in _POD_IDENTITY_ENV.items():
                if not data.get(field) and os.environ.get(env):
                    data = {**data, field: os.environ[env]}
        return data

    @model_validator(mode="after")
    def _one_complete_kind(self) -> Self:
        given = self.model_fields_set - {"source"}
        if self.source != "static":
            extra = sorted(given - set(_SOURCE_FIELDS[self.source]))
            if extra:
                raise ValueError(
                    f"source {self.source} takes no {', '.join(extra)} (its fields: "
                    f"{', '.join(_SOURCE_FIELDS[self.source]) or 'none'})"
                )
            needed = {
                "pod_identity": ("credentials_uri", "token_file"),
                "oidc": ("idp_id", "token_file"),
            }
            missing = [f for f in needed.get(self.source, ()) if getattr(self, f) is None]
            if missing and self.source == "pod_identity":
                raise ValueError(
                    "source pod_identity needs HC_CONTAINER_CREDENTIALS_FULL_URI and "
                    "HC_CONTAINER_AUTHORIZATION_TOKEN_FILE (CCE sets them in a pod whose "
                    "ServiceAccount has a Pod Identity association), or __CREDENTIALS_URI "
                    "and __TOKEN_FILE"
                )
            if missing:
                raise ValueError(
                    f"source oidc needs {' and '.join('__' + m.upper() for m in missing)}"
                )
            return self
        extra = sorted(given - set(_STATIC_FIELDS))
        if extra:
            raise ValueError(
                f"{', '.join(extra)} belong to another source: set __SOURCE to pod_identity, "
                "oidc or metadata"
            )
        has_aksk = self.ak is not None or self.sk is not None
        has_user = self.user is not None or self.password is not None or self.domain is not None
        if has_aksk and has_user:
            raise ValueError("give either AK/SK or user/password/domain, not both")
        if has_aksk and (self.ak is None or self.sk is None):
            raise ValueError("an AK needs its SK and an SK its AK")
        if has_user and None in (self.user, self.password, self.domain):
            raise ValueError("an IAM user needs user, password and domain (the account name)")
        if not (has_aksk or has_user):
            raise ValueError(
                "empty: give AK and SK, or user, password and domain, or a __SOURCE "
                "(pod_identity, oidc, metadata)"
            )
        for name in ("ak", "sk", "security_token"):
            value = getattr(self, name)
            if value is not None and (
                not value.get_secret_value() or any(c.isspace() for c in value.get_secret_value())
            ):
                raise ValueError(f"{name} is empty or has white space inside")
        return self

    @property
    def kind(self) -> Literal["aksk", "password", "temporary"]:
        if self.source != "static":
            return "temporary"
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
    max_concurrency: int = Field(default=64, ge=1)  # requests in flight, all projects together
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
    # Postpone links in warnings (daemon/ops/links.py): the address people reach the
    # control listener at (an ingress, e.g. https://graphnap.example.com), and the file of
    # their signing key (else a key generated into the state file).
    control_public_url: HttpUrl | None = None
    control_link_key_file: Path | None = None

    credentials: dict[str, CredentialSet] = {}
    notify: dict[str, NotifySecret] = {}  # by channel name
    secrets_dir: Path | None = None
    credential_env_fields: dict[str, tuple[str, ...]] = {}  # per set: fields from the env
    # Credential sources (daemon/cloud/credentials.py): refresh temporary keys this long
    # before expiry (at most half their life), earlier by up to `jitter` of that; retry a
    # failed refresh after `retry_s`; look at the secret files every `check_s`.
    credential_refresh_margin_s: float = Field(default=2400.0, ge=0)
    credential_refresh_jitter: float = Field(default=0.1, ge=0, le=0.5)
    credential_retry_s: float = Field(default=30.0, gt=0)
    secret_check_s: float = Field(default=10.0, gt=0)

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
        from_env = {name: tuple(sorted(fields)) for name, fields in given.items()}
        for name, fields in from_files.items():
            given[name] = {**fields, **given.get(name, {})}  # the environment wins over files
        return {**data, "credentials": given, "notify": notify, "credential_env_fields": from_env}

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

    def secret_files(self, name: str) -> SecretFiles | None:
        """The secret files of credential set `name`, to re-read when the kubelet swaps
        them; None when none of its values came from files."""
        key = name.lower()
        creds = self.credentials.get(key)
        env = set(self.credential_env_fields.get(key, ()))
        if self.secrets_dir is None or creds is None or creds.source != "static":
            return None
        if not (creds.model_fields_set - env - {"source"}):
            return None
        return SecretFiles(self.secrets_dir, key, {f: getattr(creds, f) for f in env})


class SecretFiles:
    """One credential set's files in GRAPHNAP_SECRETS_DIR, read again when they change.

    A Kubernetes Secret volume holds `<key> -> ..data/<key>` links and swaps the `..data`
    link atomically on an update: the fingerprint (the files' real paths, sizes and
    modification times) changes with it, and with an edit in place too."""

    def __init__(self, directory: Path, name: str, from_env: dict[str, object]) -> None:
        self._dir, self._name, self._from_env = directory, name, from_env

    def _files(self) -> list[Path]:
        return [
            file
            for file in sorted(self._dir.iterdir())
            if file.name.rpartition(".")[0].lower() == self._name
            and file.name.rpartition(".")[2] in _CREDENTIAL_FIELDS
            and file.is_file()
        ]

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        try:
            found = []
            for file in self._files():
                info = file.stat()
                found.append((os.path.realpath(file), info.st_size, info.st_mtime_ns))
            return tuple(found)
        except OSError:  # caught mid-swap: the next look sees the new files
            return ()

    def read(self) -> CredentialSet:
        """The set as the files say now (the environment's values still win); ValueError
        naming the set and the fix when the files do not make a complete set."""
        where = f"credential set {self._name} in {self._dir}"
        try:
            fields: dict[str, object] = {
                file.name.rpartition(".")[2]: _read_secret(file) for file in self._files()
            }
        except OSError as exc:
            raise ValueError(f"{where}: a file cannot be read ({exc.strerror})") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        fields.update({k: v for k, v in self._from_env.items() if v is not None})
        try:
            return CredentialSet.model_validate(fields)
        except ValidationError as exc:
            reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ValueError(f"{where}: {reasons}") from None
