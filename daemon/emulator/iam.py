"""IAM's password tokens: the accounts, the project-scoped tokens given out and their expiry
(the gateway checks a request's X-Auth-Token here)."""

from __future__ import annotations

import secrets
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.emulator.clock import Clock
from daemon.emulator.faults import CloudFault, Faults


@dataclass
class Token:
    value: str
    user: str
    project_id: str
    expires_at: datetime


class Iam:
    """The accounts and their tokens; a token lives `faults.token_ttl_s`, read when issued."""

    def __init__(
        self,
        users: dict[tuple[str, str], str],
        *,
        projects: Container[str],
        clock: Clock,
        faults: Faults,
    ) -> None:
        self.users = users  # (domain, user) -> password
        self.projects = projects
        self.clock = clock
        self.faults = faults
        self.tokens: dict[str, Token] = {}

    def issue_token(self, domain: str, user: str, password: str, project_id: str) -> Token:
        if self.users.get((domain, user)) is None or not secrets.compare_digest(
            self.users[(domain, user)], password
        ):
            raise CloudFault(401, "IAM.0004", "The username or password is wrong.", source="iam")
        if project_id not in self.projects:
            raise CloudFault(
                400, "IAM.0011", "Request parameter error: unknown project.", source="iam"
            )
        token = Token(
            value="MII" + secrets.token_urlsafe(48),
            user=user,
            project_id=project_id,
            expires_at=self.clock() + timedelta(seconds=self.faults.token_ttl_s),
        )
        self.tokens[token.value] = token
        return token

    def check_token(self, value: str) -> Token:
        token = self.tokens.get(value)
        if token is None:
            raise CloudFault(
                401,
                "APIG.0301",
                "Incorrect IAM authentication information: token invalid",
                source="gateway",
            )
        if self.clock() >= token.expires_at:
            raise CloudFault(
                401,
                "APIG.0301",
                "Incorrect IAM authentication information: the token expires",
                source="gateway",
            )
        return token

    def expire_tokens(self) -> None:
        now = self.clock()
        for token in self.tokens.values():
            token.expires_at = min(token.expires_at, now)
