"""Control API tokens: the file format, what a bad file is told, scopes and globs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.ops.tokens import Scope, TokenBook, TokenError, is_within, read_token

SECRET = "f" * 32


def token_file(directory: Path, name: str, body: object) -> Path:
    file = directory / f"{name}.json"
    file.write_text(body if isinstance(body, str) else json.dumps(body))
    return file


def test_a_token_file_gives_its_name_secret_and_scope(tmp_path: Path) -> None:
    file = token_file(tmp_path, "search-team", {"secret": SECRET, "projects": ["analytics"],
                                                 "names": ["search-*"]})  # fmt: skip
    token = read_token(file)
    assert token.name == "search-team"
    assert token.secret.get_secret_value() == SECRET
    assert token.scope == Scope(frozenset({"analytics"}), ("search-*",))
    assert read_token(
        token_file(tmp_path, "all", {"secret": "e" * 32, "projects": ["*"]})
    ).scope.names == ("*",)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"secret": "' + SECRET + '", ', "not JSON"),
        ({"secret": "short-but-secret", "projects": ["a"]}, "at least 24"),
        ({"secret": SECRET}, "projects"),
        ({"secret": SECRET, "projects": []}, "projects"),
        ({"secret": SECRET, "projects": ["a"], "names": ["dev-[x"]}, "not a graph name or glob"),
        ({"secret": SECRET, "projects": ["a"], "scope": "all"}, "scope"),
    ],
)
def test_a_bad_token_file_names_the_file_never_the_secret(
    tmp_path: Path, body: object, words: str
) -> None:
    file = token_file(tmp_path, "team", body)
    with pytest.raises(TokenError) as caught:
        TokenBook.from_dir(tmp_path)
    message = str(caught.value)
    assert str(file) in message
    assert words in message
    assert SECRET not in message
    assert "short-but-secret" not in message


def test_only_token_files_count_and_secrets_are_not_shared(tmp_path: Path) -> None:
    (tmp_path / "..data").mkdir()  # what a Kubernetes Secret volume holds beside the keys
    (tmp_path / "README").write_text("not a token")
    token_file(tmp_path, "a", {"secret": SECRET, "projects": ["p"]})
    assert TokenBook.from_dir(tmp_path).names == ["a"]
    token_file(tmp_path, "b", {"secret": SECRET, "projects": ["q"]})
    with pytest.raises(TokenError, match="same secret"):
        TokenBook.from_dir(tmp_path)
    with pytest.raises(TokenError, match="not a directory"):
        TokenBook.from_dir(tmp_path / "missing")


def test_authenticate_finds_the_token_whose_secret_it_is(tmp_path: Path) -> None:
    token_file(tmp_path, "a", {"secret": SECRET, "projects": ["p"]})
    token_file(tmp_path, "b", {"secret": "g" * 32, "projects": ["q"]})
    book = TokenBook.from_dir(tmp_path)
    found = book.authenticate("g" * 32)
    assert found is not None
    assert found.name == "b"
    assert book.authenticate(SECRET[:-1]) is None
    assert book.authenticate(SECRET + "f") is None
    assert book.authenticate("") is None
    assert book.authenticate("ünïcode") is None


@pytest.mark.parametrize(
    ("pattern", "scope", "inside"),
    [
        ("search-dev", "search-*", True),
        ("search-d*", "search-*", True),
        ("search-*", "search-*", True),
        ("*", "search-*", False),
        ("*-dev", "search-*", False),
        ("billing", "search-*", False),
        ("dev-1", "dev-?", True),
        ("dev-?", "dev-?", True),
        ("dev-*", "dev-?", False),  # `dev-*` matches `dev-12`, which `dev-?` does not
        ("anything*", "*", True),
    ],
)
def test_a_glob_is_inside_a_scope_only_when_all_it_matches_is(
    pattern: str, scope: str, inside: bool
) -> None:
    assert is_within(pattern, scope) is inside


def test_a_scope_joins_projects_and_names() -> None:
    scope = Scope(frozenset({"analytics"}), ("search-*", "ml-*"))
    assert scope.allows("analytics", "ml-train")
    assert not scope.allows("finance", "ml-train")
    assert not scope.allows("analytics", "billing")
    assert Scope(frozenset({"*"}), ("*",)).allows("any", "thing")
