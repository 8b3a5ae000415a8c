"""Bearer tokens of the control API: read from mounted secret files, each with a scope.

One file per token in GRAPHNAP_CONTROL_TOKENS_DIR, named `<token name>.json` (a Kubernetes
Secret key), holding `{"secret": "...", "projects": ["analytics"], "names": ["dev-*"]}`.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

MIN_SECRET_CHARS = 24  # a guessable token is no lock: `openssl rand -hex 24` gives 48
TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# Graph names in GES are letters, digits, `_` and `-`; a glob adds `*` and `?` only. No `[`
# classes: they are where a malformed glob hides, and no team needs them to name its graphs.
GLOB = re.compile(r"^[A-Za-z0-9_*?.-]{1,64}$")


class TokenError(Exception):
    """A token file that cannot be used; the message names the file, never its secret."""


def check_glob(pattern: str) -> str:
    if not GLOB.fullmatch(pattern):
        raise ValueError(
            f"{pattern[:64]!r} is not a graph name or glob: use letters, digits, '_', '-', "
            "'.', and '*' or '?' as wildcards (at most 64 characters)"
        )
    return pattern


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def is_within(pattern: str, scope_glob: str) -> bool:
    """Whether every name `pattern` matches is matched by `scope_glob` too.

    When the scope glob has no `?`, a pattern that matches it *as a literal string* can only
    fill the scope's `*`s with more text, so all it matches is inside. A `?` in the scope
    would let `dev-*` through `dev-?`; such a scope admits only patterns it matches exactly.
    """
    if "?" in scope_glob:
        return pattern == scope_glob or (
            not has_wildcard(pattern) and fnmatchcase(pattern, scope_glob)
        )
    return fnmatchcase(pattern, scope_glob)


@dataclass(frozen=True)
class Scope:
    """What a token may touch: graphs of these projects whose names match one of the globs."""

    projects: frozenset[str]
    names: tuple[str, ...]

    def allows_project(self, project: str) -> bool:
        return "*" in self.projects or project in self.projects

    def allows(self, project: str, name: str) -> bool:
        """A graph (by its real name) or a name glob, inside this scope."""
        return self.allows_project(project) and any(is_within(name, g) for g in self.names)

    def describe(self) -> str:
        projects = ", ".join(sorted(self.projects))
        return f"projects {projects}; names {', '.join(self.names)}"


@dataclass(frozen=True)
class Token:
    name: str
    secret: SecretStr
    scope: Scope


class _TokenFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    secret: SecretStr
    projects: list[str] = Field(min_length=1)
    names: list[str] = Field(default=["*"], min_length=1)

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if len(secret) < MIN_SECRET_CHARS or not secret.isprintable() or " " in secret:
            raise ValueError(
                f"must be at least {MIN_SECRET_CHARS} printable characters without spaces "
                "(make one with `openssl rand -hex 24`)"
            )
        return value

    @field_validator("names")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        return [check_glob(v) for v in value]


def read_token(file: Path) -> Token:
    name = file.name.removesuffix(".json")
    if not TOKEN_NAME.fullmatch(name):
        raise TokenError(f"{file}: a token's name (the file name) must be letters, digits, '_-.'")
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        # Not the parser's message: it quotes the text around the error, the secret perhaps.
        raise TokenError(
            f'{file}: not JSON text; write {{"secret": "...", "projects": [...], "names": [...]}}'
        ) from None
    try:
        parsed = _TokenFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_input=False)
        )
        raise TokenError(f"{file}: {problems}") from None
    return Token(name, parsed.secret, Scope(frozenset(parsed.projects), tuple(parsed.names)))


class TokenBook:
    """The tokens the control API accepts."""

    def __init__(self, tokens: Iterable[Token]) -> None:
        self._tokens = tuple(tokens)
        secrets = [t.secret.get_secret_value() for t in self._tokens]
        if len(set(secrets)) != len(secrets):
            raise TokenError("two token files hold the same secret: give each team its own")

    @classmethod
    def from_dir(cls, directory: Path) -> TokenBook:
        if not directory.is_dir():
            raise TokenError(f"GRAPHNAP_CONTROL_TOKENS_DIR={directory} is not a directory")
        # Kubernetes Secret volumes hold `..data` and timestamped folders: only top-level files.
        files = sorted(f for f in directory.iterdir() if f.suffix == ".json" and f.is_file())
        return cls(read_token(f) for f in files)

    @property
    def names(self) -> Sequence[str]:
        return [t.name for t in self._tokens]

    def __len__(self) -> int:
        return len(self._tokens)

    def authenticate(self, presented: str) -> Token | None:
        """The token whose secret this is, or None. Every secret is compared, in constant
        time, so how long it takes tells nothing of which (or how much of one) matched."""
        given = presented.encode("utf-8", "surrogateescape")
        found = None
        for token in self._tokens:
            if hmac.compare_digest(given, token.secret.get_secret_value().encode("utf-8")):
                found = token
        return found
