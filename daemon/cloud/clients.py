"""One set of API clients per project: its auth (AK/SK signer or IAM token), its rate gate,
its endpoints. A project's clients are rebuilt when its definition changes on reload and
closed at shutdown. It holds no schedules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta

import httpx

from daemon import __version__
from daemon.cloud.auth import AkSkAuth, TokenAuth, TokenProvider
from daemon.cloud.ces import CesClient
from daemon.cloud.gate import Monotonic, RequestGate
from daemon.cloud.ges import GesClient
from daemon.cloud.ges_service import GesService
from daemon.cloud.ges_v2 import GesV2Client
from daemon.cloud.redaction import RedactingTransport
from daemon.config.models import Config, Project
from daemon.config.problems import Problem
from daemon.config.settings import Settings
from daemon.domain.model import Clock, GraphApi, MetricApi, Sleep
from daemon.telemetry.metrics import Metrics


def missing_credentials(config: Config, settings: Settings) -> list[Problem]:
    """Every project whose credential set is not given, with where to give it."""
    return [
        Problem(
            ("projects", i, "credentials"),
            f"credential set {p.credentials!r} is not given",
            f"set GRAPHNAP_CREDENTIALS__{p.credentials.upper()}__AK and __SK (or __USER, __PASSWORD, "
            f"__DOMAIN), or files {p.credentials}.ak / {p.credentials}.sk in GRAPHNAP_SECRETS_DIR",
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
    ) -> None:
        self._settings = settings
        self._monotonic = monotonic
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._ges: dict[str, GesService] = {}
        self._ces: dict[str, CesClient] = {}
        self._defs: dict[str, Project] = {}  # what each project's clients were built from
        self._http: list[httpx.AsyncClient] = []

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

    def graph_apis(self) -> Mapping[str, GraphApi]:
        """The clients as the config stands now: a live mapping, changed by update()."""
        return self._ges

    def metric_apis(self) -> Mapping[str, MetricApi]:
        return self._ces

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
        if creds.kind == "aksk":
            assert creds.ak is not None
            assert creds.sk is not None
            auth = AkSkAuth(
                creds.ak,
                creds.sk,
                project_id=project.project_id,
                security_token=creds.security_token,
                clock=self._clock,
            )
        else:
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
        # The pool holds as many connections as the gate lets requests through: requests
        # wait in the gate's queue, which is cheap, not in httpcore's, which is not.
        in_flight = self._settings.project_concurrency
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        http, ces_http = (
            self._open(
                httpx.AsyncClient(
                    base_url=endpoint,
                    auth=auth,
                    timeout=timeout,
                    transport=self._transport(limits),
                    headers={
                        "Content-Type": "application/json",
                        "User-Agent": f"graphnap/{__version__}",
                    },
                )
            )
            for endpoint in (project.ges_endpoint, project.ces_endpoint)
        )
        gate = RequestGate(
            in_flight,
            initial_rate_per_s=self._settings.project_rate_initial_per_s,
            ceiling_per_s=self._settings.project_rate_per_s,
            monotonic=self._monotonic,
            sleep=asyncio.sleep,  # pacing is real time, as `monotonic` is: not the retries' sleep
        )
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

    def _transport(self, limits: httpx.Limits | None = None) -> RedactingTransport:
        """Every client's transport: error answers lose the credentials' values before any
        error text is built from them (a gateway may echo the request). The secrets pass
        from the settings to the transport here; no module keeps them."""
        inner = httpx.AsyncClient(limits=limits) if limits else httpx.AsyncClient()
        return RedactingTransport(self._settings.secret_values(), inner)

    def _open(self, http: httpx.AsyncClient) -> httpx.AsyncClient:
        self._http.append(http)
        return http
