"""One set of API clients per project: its auth (AK/SK signer or IAM token), its rate gate,
its endpoints. A project's clients are rebuilt when its definition changes on reload and
closed at shutdown. It holds no schedules. The keys of each credential set are held once
(daemon.cloud.credentials), whichever projects use it, built from the set's source.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import httpx

from daemon import __version__
from daemon.cloud.auth import KeyAuth, TokenAuth, TokenProvider
from daemon.cloud.ces import CesClient
from daemon.cloud.credentials import KeyHolder, RefreshPolicy, Source
from daemon.cloud.errors import FencedError
from daemon.cloud.gate import Learned, Monotonic, RateMemory, RequestGate
from daemon.cloud.ges import GesClient
from daemon.cloud.ges_service import GesService
from daemon.cloud.ges_v2 import GesV2Client
from daemon.cloud.key_sources import (
    MetadataSource,
    OidcSource,
    PodIdentitySource,
    StaticSource,
)
from daemon.cloud.pools import Shards
from daemon.cloud.redaction import RedactingTransport
from daemon.config.models import Config, Project
from daemon.config.problems import Problem
from daemon.config.settings import Settings
from daemon.domain.fence import Fence
from daemon.domain.model import Clock, GraphApi, MetricApi, Sleep
from daemon.telemetry.metrics import Metrics


def missing_credentials(config: Config, settings: Settings) -> list[Problem]:
    """Every project whose credential set is not given, with where to give it."""
    return [
        Problem(
            ("projects", i, "credentials"),
            f"credential set {p.credentials!r} is not given",
            f"set GRAPHNAP_CREDENTIALS__{p.credentials.upper()}__AK and __SK (or __USER, __PASSWORD, "
            f"__DOMAIN), or files {p.credentials}.ak / {p.credentials}.sk in GRAPHNAP_SECRETS_DIR, "
            f"or GRAPHNAP_CREDENTIALS__{p.credentials.upper()}__SOURCE=pod_identity|oidc|metadata",
        )
        for i, p in enumerate(config.projects)
        if settings.credential_set(p.credentials) is None
    ]


class Clients:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        clock: Clock,
        monotonic: Monotonic,
        sleep: Sleep,
        fence: Fence | None = None,
        rates: RateMemory | None = None,
    ) -> None:
        self._settings = settings
        self._fence = fence  # the leader's: no request leaves a replica that does not lead
        self._rates = rates  # what each project's gate last learned, for its next gate
        self._monotonic = monotonic
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._ges: dict[str, GesService] = {}
        self._ces: dict[str, CesClient] = {}
        self._defs: dict[str, Project] = {}  # what each project's clients were built from
        self._gates: dict[str, RequestGate] = {}
        self._pools: dict[str, tuple[Shards, Shards]] = {}  # GES, Cloud Eye
        self._auths: dict[str, httpx.Auth] = {}  # what each project's requests are signed with
        self._http: list[httpx.AsyncClient] = []
        self._holders: dict[tuple[str, str], KeyHolder] = {}  # (set, IAM endpoint for oidc)
        self._tls: ssl.SSLContext | None = None
        # Requests in flight, every project together (each gate takes a place at its turn).
        self._in_flight = asyncio.Semaphore(settings.max_concurrency)

    def update(self, config: Config) -> None:
        """Build clients for new or changed projects; forget removed ones. The clients
        replaced or forgotten stay open until close(): a pass that started with them
        finishes with them (it took its own copy of the mappings below), and a job being
        followed may still use them."""
        for project in config.projects:
            if self._defs.get(project.name) != project:
                self._ges[project.name], self._ces[project.name] = self._build(project)
                self._defs[project.name] = project
        for name in set(self._ges) - {p.name for p in config.projects}:
            del self._ges[name]
            del self._ces[name]
            del self._defs[name]
            del self._gates[name]
            del self._pools[name]
            del self._auths[name]

    def graph_apis(self) -> Mapping[str, GraphApi]:
        """The clients as the config stands now: a live mapping, changed by update()."""
        return self._ges

    def metric_apis(self) -> Mapping[str, MetricApi]:
        return self._ces

    def project_auth(self, project: Project) -> httpx.Auth | None:
        """The auth `project`'s GES and Cloud Eye requests go with (AK/SK from any source,
        keyless ones included, or its IAM token), for another Huawei API of the same
        project such as SMN; None for a project these clients were not built for."""
        return self._auths.get(project.name) if self._defs.get(project.name) == project else None

    def gate(self, project: str) -> RequestGate:
        """The project's request gate as the config stands (its rate, for tests and the bench)."""
        return self._gates[project]

    def pools(self, project: str) -> tuple[Shards, Shards]:
        """The project's connection pools, GES and Cloud Eye (for tests and the bench)."""
        return self._pools[project]

    async def close(self) -> None:
        for http in self._http:
            await http.aclose()
        self._http.clear()

    def _build(self, project: Project) -> tuple[GesService, CesClient]:
        """The project's GES and Cloud Eye clients: one auth, one gate (its rate is the
        project's, whichever service a request goes to)."""
        creds = self._settings.credential_set(project.credentials)
        if creds is None:  # checked at load: a config without them is never activated
            raise RuntimeError(f"credential set {project.credentials!r} is not given")
        timeout = httpx.Timeout(self._settings.request_timeout_s)
        auth: httpx.Auth
        if creds.kind == "password":
            assert creds.user is not None
            assert creds.password is not None
            assert creds.domain is not None
            iam_http = self._open(httpx.AsyncClient(timeout=timeout, transport=self._transport()))
            provider = TokenProvider(
                iam_http,
                iam_endpoint=project.iam_endpoint,
                user=creds.user,
                password=creds.password,
                domain=creds.domain,
                project_id=project.project_id,
                clock=self._clock,
                refresh_margin=timedelta(seconds=self._settings.token_refresh_margin_s),
            )
            auth = TokenAuth(provider, project.project_id)
        else:
            auth = self.auth_for(project)
        self._auths[project.name] = auth
        # The pools hold as many connections as the gate lets requests through, in small
        # shards (daemon.cloud.pools): requests wait in the gate's queue, which is cheap,
        # never in httpcore's, and no request walks 64 connections.
        in_flight = self._settings.project_concurrency
        pools = (Shards.build(in_flight, self._pooled), Shards.build(in_flight, self._pooled))
        self._pools[project.name] = pools
        http, ces_http = (
            self._open(
                httpx.AsyncClient(
                    base_url=endpoint,
                    auth=auth,
                    timeout=timeout,
                    transport=pool,
                    event_hooks=self._hooks(),
                    headers={
                        "Content-Type": "application/json",
                        "User-Agent": f"graphnap/{__version__}",
                    },
                )
            )
            for endpoint, pool in zip(
                (project.ges_endpoint, project.ces_endpoint), pools, strict=True
            )
        )
        gate = RequestGate(
            in_flight,
            initial_rate_per_s=self._settings.project_rate_initial_per_s,
            ceiling_per_s=self._settings.project_rate_per_s,
            monotonic=self._monotonic,
            sleep=asyncio.sleep,  # pacing is real time, as `monotonic` is: not the retries' sleep
            shared=self._in_flight,
            **self._learning(project.project_id),
        )
        self._gates[project.name] = gate
        # The project's GES API version: both map into the same domain model.
        ges = (GesV2Client if project.ges_api == "v2" else GesClient)(
            http,
            project.project_id,
            retry=self._settings.retry,
            sleep=self._sleep,
            observe=self._metrics.observe_request,
            page_size=self._settings.page_size,
            limiter=gate,
        )
        ces = CesClient(
            ces_http,
            project.project_id,
            retry=self._settings.retry,
            sleep=self._sleep,
            observe=self._metrics.observe_request,
            limiter=gate,
        )
        return ges, ces

    def _learning(self, key: str) -> dict[str, Any]:
        """The gate starts from what the project's last gate learned, and hands on what
        it learns (the limit is the project's: keyed by its id, not its name)."""
        rates = self._rates
        if rates is None:
            return {}

        def learn(learned: Learned) -> None:
            rates.learn(key, learned)

        return {"learned": rates.get(key), "on_learned": learn}

    def holder(self, project: Project) -> KeyHolder:
        """The keys of the project's credential set (AK/SK or a temporary source), one
        holder per set: its refreshes are shared by every project using it."""
        name = project.credentials.lower()
        creds = self._settings.credential_set(name)
        if creds is None or creds.kind == "password":
            raise RuntimeError(f"credential set {name!r} has no AK/SK source")
        key = (name, project.iam_endpoint if creds.source == "oidc" else "")
        if key not in self._holders:
            policy = RefreshPolicy(
                margin_s=self._settings.credential_refresh_margin_s,
                jitter=self._settings.credential_refresh_jitter,
                retry_s=self._settings.credential_retry_s,
                check_s=self._settings.secret_check_s,
            )
            self._holders[key] = KeyHolder(
                name,
                self._source(name, project),
                clock=self._clock,
                metrics=self._metrics,
                policy=policy,
            )
        return self._holders[key]

    def auth_for(self, project: Project) -> httpx.Auth:
        """A signer with the project's keys, for any Huawei API (SMN too)."""
        return KeyAuth(self.holder(project), project_id=project.project_id, clock=self._clock)

    def _source(self, name: str, project: Project) -> Source:
        creds = self._settings.credential_set(name)
        assert creds is not None
        if creds.source == "static":
            files = self._settings.secret_files(name)
            return StaticSource(creds, (files.fingerprint, files.read) if files else None)
        # Identity calls are short: a pod waits seconds for its keys, not the API timeout.
        timeout = httpx.Timeout(min(self._settings.request_timeout_s, 10.0))
        http = self._open(httpx.AsyncClient(timeout=timeout, transport=self._transport()))
        if creds.source == "pod_identity":
            assert creds.credentials_uri is not None
            assert creds.token_file is not None
            return PodIdentitySource(http, creds.credentials_uri, creds.token_file)
        if creds.source == "oidc":
            assert creds.idp_id is not None
            assert creds.token_file is not None
            return OidcSource(
                http, project.iam_endpoint, creds.idp_id, creds.token_file, creds.duration_s
            )
        return MetadataSource(http, creds.metadata_url, clock=self._clock)

    def _transport(self, limits: httpx.Limits | None = None) -> RedactingTransport:
        """Every client's transport: error answers lose the credentials' values before any
        error text is built from them (a gateway may echo the request). The secrets pass
        from the settings to the transport here; no module keeps them."""
        inner = httpx.AsyncClient(
            limits=limits or httpx.Limits(), event_hooks=self._hooks(), verify=self._tls_context()
        )
        return RedactingTransport(self._settings.secret_values(), inner)

    def _pooled(self, limits: httpx.Limits) -> RedactingTransport:
        """One shard of a project's pools (its client carries the fence hook). Where the
        environment names no proxy, the transport a plain client would use, without the
        client around it: a client layer costs ~10 % of a request's CPU (request copies,
        cookie extraction, hooks) and does nothing here. Otherwise a plain client, which
        reads the proxies from the environment as httpx does."""
        proxies = urllib.request.getproxies()
        if any(scheme in proxies for scheme in ("http", "https", "all")):
            inner: httpx.AsyncClient | httpx.AsyncBaseTransport = httpx.AsyncClient(
                limits=limits, verify=self._tls_context()
            )
        else:
            inner = httpx.AsyncHTTPTransport(limits=limits, verify=self._tls_context())
        return RedactingTransport(self._settings.secret_values(), inner)

    def _hooks(self) -> dict[str, list[Callable[[httpx.Request], Awaitable[None]]]]:
        return {"request": [fenced(self._fence)]} if self._fence is not None else {}

    def _tls_context(self) -> ssl.SSLContext:
        """One TLS context for every client, as httpx would make it (certifi's roots, or
        SSL_CERT_FILE / SSL_CERT_DIR): each new one reads the CA bundle again, 30-70 ms,
        and a project has a pool of several shards per API."""
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        return self._tls

    def _open(self, http: httpx.AsyncClient) -> httpx.AsyncClient:
        self._http.append(http)
        return http


def fenced(fence: Fence) -> Callable[[httpx.Request], Awaitable[None]]:
    """An httpx request hook: the last moment before a request leaves (after the rate gate
    and any retry's wait), refused on a replica that does not, or no longer surely, lead."""

    async def check(request: httpx.Request) -> None:
        if not fence.is_open():
            raise FencedError(
                "not the leader: request not sent",
                service=request.url.host,
                operation=request.method,
                code="fenced",
            )

    return check
