"""People told, before and after: the notifier built from the config (its channels kept across
reloads), fed by the outcomes seam, and the warning before each stop (a schedule's, and an idle
rule's) with its postpone links; the page they open is built only when the control listener
mounts it (it loads aiohttp, which a one-shot command never needs). Built and started by the
App; nothing here acts on a graph.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from daemon.cloud.clients import Clients
from daemon.cloud.gate import Monotonic
from daemon.config.models import Config, IdleRule, Schedule
from daemon.config.notifications import SmnChannel
from daemon.config.settings import Settings
from daemon.domain.hold import Hold, Store
from daemon.domain.model import Clock, Graph, Sleep
from daemon.notify.catalog import build_channels, secret_problems
from daemon.notify.channels import Channel
from daemon.notify.digest import DailyDigest, digest_zone
from daemon.notify.ledger import Ledger
from daemon.notify.message import WarnedGraph
from daemon.notify.notifier import Notifier
from daemon.notify.sent import MemorySentKeys, SentKeys, StoreSentKeys
from daemon.ops.links import Link, LinkSigner, link_key
from daemon.runtime.deferrals import Deferrals
from daemon.runtime.executor import Executor
from daemon.runtime.firing import PassSettings, Report
from daemon.runtime.holds import HoldBook
from daemon.runtime.idle_warnings import IdleWarnings, Warned
from daemon.runtime.inventory import Inventory
from daemon.runtime.outcomes import Outcome, Outcomes
from daemon.runtime.passes import Passes
from daemon.runtime.tracker import Tracker
from daemon.runtime.warnings import PreviewOutcomes, Warnings
from daemon.telemetry.metrics import Metrics

if TYPE_CHECKING:  # the page module loads aiohttp: imported where a listener mounts it
    from daemon.ops.postpone import Postpone

log = logging.getLogger(__name__)


class Notices:
    def __init__(
        self,
        settings: Settings,
        config: Callable[[], Config],
        *,
        clients: Clients,
        inventory: Inventory,
        deferrals: Deferrals,
        tracker: Tracker,
        holds: HoldBook,
        outcomes: Outcomes,
        metrics: Metrics,
        store: Store | None,
        clock: Clock,
        sleep: Sleep,
        notify_sleep: Sleep,
        monotonic: Monotonic,
        job_timeout: timedelta,
        idle_warnings: IdleWarnings | None = None,
    ) -> None:
        self._settings, self._config, self._inventory = settings, config, inventory
        self._metrics, self._store, self._clock = metrics, store, clock
        self._clients = clients
        self._idle_warnings = idle_warnings
        self._sleep, self._monotonic = notify_sleep, monotonic
        # The warning's dry run is the firing's own code path, recording into nothing.
        preview = PreviewOutcomes(metrics)
        self.preview = Passes(
            clients.graph_apis, clients.metric_apis, inventory, deferrals,
            Executor(tracker, preview), tracker, preview, metrics,
            PassSettings(settings.dry_run, job_timeout), holds=holds, clock=clock, sleep=sleep,
        )  # fmt: skip
        self.notifier: Notifier | None = None
        self.signer: LinkSigner | None = None  # with a public URL: warnings carry links
        self._page: Postpone | None = None
        self._http: httpx.AsyncClient | None = None
        self._built: dict[str, tuple[object, Channel]] = {}
        outcomes.subscribe(self._outcome)
        holds.subscribe(self._hold_event)  # holds made, released and ended, told as they come
        # The daily digest's figures grow where the savings counter does, and from outcomes.
        self.ledger = Ledger(
            store,
            zone=lambda: digest_zone(self._config().notifications),
            monotonic=monotonic,
            projects=self._project_names,
        )
        metrics.on_savings(self.ledger.savings)
        outcomes.subscribe(self.ledger.outcome)

    async def start_links(self) -> None:
        """Postpone links need the address people reach the control listener at."""
        url = self._settings.control_public_url
        if url is not None and self.signer is None:
            key = await link_key(self._settings.control_link_key_file, self._store)
            self.signer = LinkSigner(key, str(url))

    @property
    def postpone(self) -> Postpone | None:
        """The links' page, for the control listener to mount (None without links)."""
        if self._page is None and self.signer is not None:
            from daemon.ops.postpone import Postpone

            self._page = Postpone(self.signer, monotonic=self._monotonic)
        return self._page

    def _project_names(self) -> list[str]:
        """The config's projects, in its order (the digest's rows; the ledger keeps these)."""
        return [p.name for p in self._config().projects]

    async def start(self, *, digest: bool = True) -> None:
        """Deliver from here (the active term). A one-shot command (`digest=False`) keeps
        no digest figures and sends no digest: the daemon's are the Store's."""
        if self.notifier is not None:
            return
        sent: SentKeys = MemorySentKeys()
        if self._store is not None:
            sent = StoreSentKeys(self._store, "notify_sent")
            await sent.load()
        self._http = httpx.AsyncClient(follow_redirects=False)
        config = self._config()
        daily = None
        if digest:
            today = self._clock().astimezone(digest_zone(config.notifications)).date()
            await self.ledger.load(today)
            daily = DailyDigest(
                self.ledger,
                projects=self._project_names,
                currency=lambda: self._config().pricing.currency,
            )
        self.notifier = Notifier(
            config.notifications, self._channels(config), metrics=self._metrics, sent=sent,
            clock=self._clock, monotonic=self._monotonic, sleep=self._sleep,
            idle_rules=_idle_names(config), tags=self._graph_tags, names=self._graph_name,
            daily=daily,
        )  # fmt: skip
        self.notifier.start()
        if self._idle_warnings is not None:
            self._idle_warnings.attach(self._warn_idle)

    async def stop(self) -> None:
        if self._idle_warnings is not None:
            self._idle_warnings.attach(None)
        notifier, self.notifier = self.notifier, None
        if notifier is not None:
            await notifier.close(self._settings.shutdown_grace_s / 5)
        await self.ledger.close()  # also after a start that failed once it was loaded
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._built = {}

    def reload(self, config: Config) -> None:
        if self.notifier is not None:
            channels = self._channels(config)
            self.notifier.update(config.notifications, channels, idle_rules=_idle_names(config))

    def _channels(self, config: Config) -> dict[str, Channel]:
        """The channels as configured; one whose config did not change is kept as it was,
        so a reload does not drop what its outbox still holds. SMN publishes go with the
        auth of their project's own clients (static or keyless keys, or its token): an SMN
        channel is built anew when its project's definition changes."""
        assert self._http is not None
        notifications = config.notifications
        projects = {p.name: p for p in config.projects}
        for problem in secret_problems(notifications, self._settings):
            log.warning("notification channel left out: %s", problem)  # names files, no value
        fresh = build_channels(
            notifications, self._settings, projects, http=self._http, clock=self._clock,
            auth_for=self._clients.project_auth,
        )  # fmt: skip
        built: dict[str, tuple[object, Channel]] = {}
        for name, given in notifications.channels.items():
            if name not in fresh:
                if isinstance(given, SmnChannel):
                    log.warning(
                        "notification channel left out: notifications.channels.%s: project %s "
                        "has no API clients to sign its publishes with",
                        name,
                        given.project,
                    )
                continue
            made_of = (
                (given, projects.get(given.project)) if isinstance(given, SmnChannel) else given
            )
            kept = self._built.get(name)
            built[name] = (
                kept if kept is not None and kept[0] == made_of else (made_of, fresh[name])
            )
        self._built = built
        return {name: channel for name, (_, channel) in built.items()}

    def _outcome(self, outcome: Outcome) -> None:
        if self.notifier is not None:
            self.notifier.on_outcome(outcome)

    def _hold_event(self, event: str, hold: Hold) -> None:
        if self.notifier is not None:
            self.notifier.hold_event(event, hold)

    def _graph(self, project: str, graph_id: str) -> Graph | None:
        state = self._inventory.projects.get(project)
        return next((g for g in state.graphs if g.id == graph_id), None) if state else None

    def _graph_tags(self, project: str, graph_id: str) -> Mapping[str, str] | None:
        graph = self._graph(project, graph_id)
        return graph.tags if graph is not None else None

    def _graph_name(self, project: str, graph_id: str) -> str | None:
        graph = self._graph(project, graph_id)
        return graph.name if graph is not None else None

    async def warn_before_stop(self, config: Config, schedule: Schedule, at: datetime) -> int:
        if self.notifier is None:
            return 0
        signer = self.signer

        def link_for(project: str, graph_id: str, name: str, rule: str, fire_at: datetime) -> str:
            assert signer is not None
            return signer.url(Link(project, graph_id, name, rule, fire_at, expires=fire_at))

        async def dry_run(config: Config, schedule: Schedule, fire_at: datetime) -> Report:
            return await self.preview.fire(config, schedule, fire_at, dry_run=True)

        warnings = Warnings(dry_run, self.notifier, link_for=link_for if signer else None)
        return await warnings.warn(config, schedule, at)

    def _warn_idle(self, rule: IdleRule, stop_at: datetime, graphs: Sequence[Warned]) -> None:
        """An idle rule's warning: the graphs it will stop at `stop_at`, each with a link
        that holds it. The link lasts until the check that would stop it."""
        if self.notifier is None:
            return
        signer = self.signer
        warned = []
        for g in graphs:
            url = ""
            if signer is not None:
                link = Link(g.project, g.graph_id, g.graph, g.rule, g.stop_at,
                            expires=g.stop_at + rule.check_every)  # fmt: skip
                try:
                    url = signer.url(link)
                except Exception:  # a warning without a link still says what is coming
                    log.exception("postpone link not made", extra={"rule": rule.name})
            warned.append(WarnedGraph(g.project, g.graph_id, g.graph, url))
        self.notifier.warn(rule.name, "stop", stop_at, warned)


def _idle_names(config: Config) -> list[str]:
    return [rule.name for rule in config.idle_rules]
