"""A fake Huawei Cloud SMN publish endpoint over real HTTP: checks the AK/SK signature like
the gateway (with a `cloud` and its `identity`: also IAM tokens, and temporary keys only with
their security token, signed, until they expire), the project and the topic, keeps what was
published, answers as SMN documents
(support.huaweicloud.com/api-smn/PublishMessage.html: {"request_id", "message_id"}).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from daemon.emulator.cloud import Cloud
from daemon.emulator.faults import CloudFault
from daemon.emulator.gateway import verify_signature
from daemon.emulator.identity import AccessKeys, Identity

SUBJECT_LIMIT = 512
MESSAGE_LIMIT = 256 * 1024


@dataclass
class Published:
    project_id: str
    topic_urn: str
    subject: str
    message: str
    ak: str  # the access key that signed it; "" for an IAM token


@dataclass
class SmnEmulator:
    topics: set[str]  # topic URNs that exist
    access_keys: Mapping[str, str]
    clock: Callable[[], datetime]
    published: list[Published] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # statuses to answer first (429, 500)
    cloud: Cloud | None = None  # its IAM tokens are taken too
    identity: Identity | None = None  # its temporary keys are taken too, as the gateway does

    def _authenticate(self, request: web.Request, body: bytes) -> str:
        """The access key that signed the request ("" for a token); CloudFault if refused."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "x-auth-token" in headers and self.cloud is not None:
            token = self.cloud.iam.check_token(headers["x-auth-token"])
            if token.project_id != request.match_info["project_id"]:
                raise CloudFault(403, "SMN.00010006", "the token's project does not match")
            return ""
        keys = self.access_keys
        if self.identity is not None:
            keys = AccessKeys(self.access_keys, self.identity)
        ak = verify_signature(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=headers,
            body=body,
            access_keys=keys,
            now=self.clock(),
        )
        if self.identity is not None:
            self.identity.check_temporary(ak, headers)
        return ak

    async def publish(self, request: web.Request) -> web.Response:
        request_id = uuid.uuid4().hex
        body = await request.read()
        if self.answers:
            status = self.answers.pop(0)
            return _answer(
                status, {"request_id": request_id, "code": "SMN.0000", "message": "injected"}
            )
        try:
            ak = self._authenticate(request, body)
        except CloudFault as fault:
            return _answer(
                fault.status,
                {"request_id": request_id, "code": fault.code, "message": fault.message},
            )
        project_id = request.match_info["project_id"]
        urn = request.match_info["topic_urn"]
        if request.headers.get("X-Project-Id", project_id) != project_id:
            return _answer(
                403,
                {"request_id": request_id, "code": "SMN.00010006", "message": "project mismatch"},
            )
        if urn not in self.topics or f":{project_id}:" not in urn:
            return _answer(
                404,
                {"request_id": request_id, "code": "SMN.00010011", "message": "topic not found"},
            )
        try:
            data: Any = json.loads(body)
        except ValueError:
            return _answer(
                400, {"request_id": request_id, "code": "SMN.00010001", "message": "bad JSON"}
            )
        message, subject = data.get("message"), data.get("subject", "")
        if not isinstance(message, str) or not message or len(message.encode()) > MESSAGE_LIMIT:
            return _answer(
                400, {"request_id": request_id, "code": "SMN.00010002", "message": "message"}
            )
        if not isinstance(subject, str) or len(subject.encode()) > SUBJECT_LIMIT:
            return _answer(
                400, {"request_id": request_id, "code": "SMN.00010003", "message": "subject"}
            )
        self.published.append(Published(project_id, urn, subject, message, ak))
        return _answer(200, {"request_id": request_id, "message_id": uuid.uuid4().hex})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(
            "/v2/{project_id}/notifications/topics/{topic_urn}/publish", self.publish
        )
        return app


def _answer(status: int, body: dict[str, str]) -> web.Response:
    return web.json_response(body, status=status)
