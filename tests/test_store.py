"""The JSON-file store: sections survive a new process, one write leaves the others alone,
a stale revision is refused, and a damaged file is a clear error that nothing overwrites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.domain.hold import Section, Store, StoreConflict, StoreDamaged, StoreError
from daemon.runtime.store import FileStore


def test_the_file_store_is_a_store(tmp_path: Path) -> None:
    store: Store = FileStore(tmp_path / "state.json")
    assert store.where == f"state file {tmp_path / 'state.json'}"


async def test_no_file_is_an_empty_store_and_a_write_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    store = FileStore(path)
    assert await store.read_all() == {}
    assert await store.write("holds", [{"id": "h1"}]) == 1
    assert await FileStore(path).read_all() == {"holds": Section([{"id": "h1"}], 1)}


async def test_writing_one_section_keeps_the_others(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state.json")
    await store.write("last_fire", {"night": "2026-03-10T20:00:00+08:00"})
    await store.write("holds", [])
    assert await store.write("holds", [{"id": "h2"}]) == 2
    again = await FileStore(tmp_path / "state.json").read_all()
    assert again == {
        "last_fire": Section({"night": "2026-03-10T20:00:00+08:00"}, 1),
        "holds": Section([{"id": "h2"}], 2),
    }


async def test_a_write_with_a_stale_revision_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    mine, theirs = FileStore(path), FileStore(path)
    read = (await mine.read_all()).get("holds", Section(None, 0)).revision
    await theirs.write("holds", ["theirs"], revision=read)
    with pytest.raises(StoreConflict, match="section 'holds' is at revision 1, not 0"):
        await mine.write("holds", ["mine"], revision=read)
    assert (await mine.read_all())["holds"] == Section(["theirs"], 1)
    assert await mine.write("holds", ["mine"], revision=1) == 2


async def test_a_replace_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state.json")
    for n in range(3):
        await store.write("rates", {"prod": n})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert json.loads((tmp_path / "state.json").read_text())["format"] == "graphnap-store/1"


async def test_a_value_that_is_not_json_is_refused_and_the_file_is_untouched(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "state.json")
    await store.write("holds", ["kept"])
    before = (tmp_path / "state.json").read_bytes()
    with pytest.raises(StoreError, match="cannot be stored as JSON"):
        await store.write("holds", [object()])
    assert (tmp_path / "state.json").read_bytes() == before


async def test_the_file_written_before_the_store_is_read_as_last_fire(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"last_fire": {"night": "2026-03-10T12:00:00+00:00"}}))
    store = FileStore(path)
    assert await store.read_all() == {
        "last_fire": Section({"night": "2026-03-10T12:00:00+00:00"}, 0)
    }
    await store.write("holds", [])
    assert set(await store.read_all()) == {"last_fire", "holds"}


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ('{"format": "graphnap-store/1", "sections": {', "not JSON: Expecting property name"),
        ("", "not JSON"),
        ("[1, 2]", "not a graphnap store"),
        ('{"format": "graphnap-store/9", "sections": {}}', "not a graphnap store"),
        ('{"format": "graphnap-store/1", "sections": []}', '"sections" is not an object'),
        ('{"format": "graphnap-store/1", "sections": {"holdz": {}}}', "unknown section 'holdz'"),
        (
            '{"format": "graphnap-store/1", "sections": {"holds": {"value": 1, "revision": "2"}}}',
            "section 'holds' is not",
        ),
    ],
)
async def test_a_damaged_file_names_itself_and_the_fix_and_is_never_overwritten(
    tmp_path: Path, text: str, what: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    store = FileStore(path)
    with pytest.raises(StoreDamaged) as caught:
        await store.read_all()
    message = str(caught.value)
    assert f"state file {path} is damaged" in message
    assert what in message
    assert "move it aside and restart" in message
    with pytest.raises(StoreDamaged):
        await store.write("holds", [])
    assert path.read_text() == text


async def test_the_damage_message_never_quotes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"sections": {"holds": "token=s3cr3t-value-here"} oops')
    with pytest.raises(StoreDamaged) as caught:
        await FileStore(path).read_all()
    assert "s3cr3t" not in str(caught.value)
    assert "line 1 column" in str(caught.value)


async def test_bytes_that_are_not_text_are_damage_too(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(StoreDamaged, match="not UTF-8"):
        await FileStore(path).read_all()


async def test_a_path_that_cannot_be_read_is_a_store_error_naming_the_fix(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    path.mkdir()  # what a mis-mounted volume looks like, and unreadable even for root
    with pytest.raises(StoreError, match=r"cannot be read .*make it readable") as caught:
        await FileStore(path).read_all()
    assert not isinstance(caught.value, StoreDamaged)


async def test_a_place_it_cannot_use_is_a_store_error_when_writing_too(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(StoreError, match=r"state file .*not-a-dir/state.json cannot be"):
        await FileStore(tmp_path / "not-a-dir" / "state.json").write("holds", [])
