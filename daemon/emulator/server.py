"""The emulator's HTTP face assembled: the gateway in front of GES v1 and v2, Cloud Eye, the
identity services and the `/_emulator/*` control plane, and the server that runs it on loopback.
"""

from __future__ import annotations

from aiohttp import web

from daemon.emulator.ces import add_ces_routes
from daemon.emulator.cloud import Cloud
from daemon.emulator.control import add_control_routes
from daemon.emulator.gateway import gateway
from daemon.emulator.ges_v1 import add_ges_v1_routes
from daemon.emulator.ges_v2 import build_v2
from daemon.emulator.identity import Identity, add_identity_routes
from daemon.emulator.wire import CLOUD


def build_app(cloud: Cloud, identity: Identity | None = None) -> web.Application:
    app = web.Application(middlewares=[gateway])
    app[CLOUD] = cloud
    add_identity_routes(app, identity or Identity(cloud))  # IAM, pod identity, federation
    add_ges_v1_routes(app)
    app.add_subapp("/v2", build_v2(cloud))
    add_ces_routes(app)
    add_control_routes(app)
    return app


class EmulatorServer:
    """Runs the emulator on the current event loop; port 0 picks a free port."""

    def __init__(
        self,
        cloud: Cloud,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        identity: Identity | None = None,
    ) -> None:
        self.cloud = cloud
        self.identity = identity or Identity(cloud)
        self._host = host
        self._port = port
        self._runner = web.AppRunner(build_app(cloud, self.identity), access_log=None)
        self.url = ""

    async def start(self) -> str:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
