"""A contract fake of the Kubernetes API server, over real HTTP on loopback (aiohttp), for
Leases and ConfigMaps in namespaces: what the daemon's lightkube code relies on, shaped as
kube-apiserver shapes it (deploy-tooling.md §3).

- one resourceVersion counter for all objects (as etcd's revision), bumped by every write;
- PUT with a stale resourceVersion: 409 Conflict; POST of an existing name: 409 AlreadyExists;
  GET/PUT/DELETE of a missing object: 404 (but a Lease PUT to a missing name creates it);
- a Lease PUT without resourceVersion: 422; a ConfigMap PUT without one overwrites;
- a Lease MicroTime without exactly six fractional digits: 400; a ConfigMap over 1 MiB: 422;
- a bearer token checked on every request (401), and changeable, as the kubelet rotates it.
Errors carry `Status` bodies. No watch, RBAC, admission or field managers.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

MAX_OBJECT_BYTES = 1_048_576
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True)
class Kind:
    plural: str
    kind: str
    group: str  # "" for the core group
    version: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


LEASES = Kind("leases", "Lease", "coordination.k8s.io", "v1")
CONFIGMAPS = Kind("configmaps", "ConfigMap", "", "v1")


def status_body(code: int, reason: str, message: str, kind: Kind | None, name: str) -> Any:
    details: dict[str, Any] = {}
    if kind is not None:
        details = {"name": name, "kind": kind.plural}
        if kind.group:
            details["group"] = kind.group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


def _json(body: Any, *, status: int) -> web.Response:
    # Exactly "application/json", as kube-apiserver sends it (lightkube compares it whole).
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"}
    )


class Refusal(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


@dataclass
class FakeApiServer:
    token: str = "sa-token-1"
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    conflicts: int = 0  # 409 Conflicts answered
    _revision: int = 100
    _runner: web.AppRunner | None = None
    url: str = ""

    # --- as a server ---

    async def __aenter__(self) -> FakeApiServer:
        app = web.Application()
        for kind, prefix in (
            (LEASES, "/apis/coordination.k8s.io/v1"),
            (CONFIGMAPS, "/api/v1"),
        ):
            base = f"{prefix}/namespaces/{{ns}}/{kind.plural}"
            app.router.add_post(base, self._handler(kind, "create"))
            app.router.add_get(base + "/{name}", self._handler(kind, "get"))
            app.router.add_put(base + "/{name}", self._handler(kind, "replace"))
            app.router.add_delete(base + "/{name}", self._handler(kind, "delete"))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _handler(self, kind: Kind, verb: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            ns, name = request.match_info["ns"], request.match_info.get("name", "")
            self.requests.append((request.method, request.path))
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return _json(status_body(401, "Unauthorized", "Unauthorized", None, ""), status=401)
            try:
                body = await request.json() if request.can_read_body else None
                obj, code = getattr(self, f"_{verb}")(kind, ns, name, body)
            except Refusal as refusal:
                if refusal.code == 409 and refusal.reason == "Conflict":
                    self.conflicts += 1
                return _json(
                    status_body(refusal.code, refusal.reason, refusal.message, kind, name or "?"),
                    status=refusal.code,
                )
            return _json(obj, status=code)

        return handle

    # --- the verbs ---

    def _get(self, kind: Kind, ns: str, name: str, body: Any) -> tuple[Any, int]:
        return self._existing(kind, ns, name), 200

    def _create(self, kind: Kind, ns: str, name: str, body: Any) -> tuple[Any, int]:
        name = str(((body or {}).get("metadata") or {}).get("name", ""))
        if (kind.plural, ns, name) in self.objects:
            raise Refusal(409, "AlreadyExists", f'{kind.qualified} "{name}" already exists')
        return self._store(kind, ns, name, body, created=True), 201

    def _replace(self, kind: Kind, ns: str, name: str, body: Any) -> tuple[Any, int]:
        key = (kind.plural, ns, name)
        version = ((body or {}).get("metadata") or {}).get("resourceVersion")
        if key not in self.objects:
            if kind is LEASES:  # an update of a missing Lease creates it
                return self._store(kind, ns, name, body, created=True), 201
            raise Refusal(404, "NotFound", f'{kind.qualified} "{name}" not found')
        if version is None and kind is LEASES:
            raise Refusal(
                422,
                "Invalid",
                f'{kind.kind}.{kind.group} "{name}" is invalid: metadata.resourceVersion: '
                "Invalid value: 0x0: must be specified for an update",
            )
        if version is not None and version != self.objects[key]["metadata"]["resourceVersion"]:
            raise Refusal(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        return self._store(kind, ns, name, body, created=False), 200

    def _delete(self, kind: Kind, ns: str, name: str, body: Any) -> tuple[Any, int]:
        self._existing(kind, ns, name)
        del self.objects[(kind.plural, ns, name)]
        return status_body(200, "", "", kind, name) | {"status": "Success"}, 200

    def _existing(self, kind: Kind, ns: str, name: str) -> dict[str, Any]:
        found = self.objects.get((kind.plural, ns, name))
        if found is None:
            raise Refusal(404, "NotFound", f'{kind.qualified} "{name}" not found')
        return found

    def _store(self, kind: Kind, ns: str, name: str, body: Any, *, created: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Refusal(400, "BadRequest", "the body of the request was not an object")
        self._validate(kind, name, body)
        key = (kind.plural, ns, name)
        old = self.objects.get(key, {}).get("metadata", {})
        self._revision += 1
        metadata = {
            **(body.get("metadata") or {}),
            "name": name,
            "namespace": ns,
            "resourceVersion": str(self._revision),
            "uid": old.get("uid") or str(uuid.uuid4()),
            "creationTimestamp": old.get("creationTimestamp")
            or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        stored = {**body, "apiVersion": kind.api_version, "kind": kind.kind, "metadata": metadata}
        self.objects[key] = stored
        return stored

    def _validate(self, kind: Kind, name: str, body: dict[str, Any]) -> None:
        if kind is LEASES:
            for key in ("acquireTime", "renewTime"):
                value = (body.get("spec") or {}).get(key)
                if value is not None and not MICRO_TIME.match(str(value)):
                    raise Refusal(
                        400,
                        "BadRequest",
                        f'Lease in version "v1" cannot be handled as a Lease: '
                        f'parsing time "{value}" as "2006-01-02T15:04:05.000000Z07:00": '
                        "cannot parse",
                    )
        if kind is CONFIGMAPS:
            size = sum(len(k) + len(str(v).encode()) for k, v in (body.get("data") or {}).items())
            if size > MAX_OBJECT_BYTES:
                raise Refusal(
                    422,
                    "Invalid",
                    f'ConfigMap "{name}" is invalid: []: Too long: must have at most '
                    f"{MAX_OBJECT_BYTES} bytes",
                )

    # --- for tests ---

    def lease(self, ns: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(("leases", ns, name))

    def configmap(self, ns: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(("configmaps", ns, name))

    def dump(self) -> str:
        return json.dumps(self.objects, indent=1)
