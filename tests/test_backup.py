"""Backups: consistent while the bot writes, verified by checksums, restored atomically or not at all."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qwen3_memory.backends.sqlite.store import SQLiteStore
from qwen3_memory.memory import Memory
from qwen3_memory.migration import backup as backup_module
from qwen3_memory.migration.backup import (
    MANIFEST_NAME,
    BackupDamaged,
    BackupError,
    clean_incomplete_backups,
    create_backup,
    list_backups,
    restore_backup,
    verify_backup,
)
from qwen3_memory.migration.cli import main as cli_main
from qwen3_memory.settings import Settings, load_settings
from tests.factories import message

pytestmark = pytest.mark.slow

TEXTS = [
    "how do I bake sourdough bread at home",
    "the cat sat on the warm windowsill all afternoon",
    "python asyncio event loops and worker threads",
    "our raid starts at nine tonight, bring potions",
    "the train to Lyon was delayed by two hours",
    "my tomato plants finally have ripe fruit",
]


async def _fill(memory: Memory, texts: list[str], start: int = 1, channel_id: int = 10) -> None:
    for offset, text in enumerate(texts):
        await memory.capture.submit(message(start + offset, text, channel_id=channel_id))
    await memory.capture.drain()
    await memory.store.flush()


def _db_state(db: Path) -> tuple[list, list]:
    """Every message row and every vector row, in a stable order."""
    conn = sqlite3.connect(db)
    try:
        messages = conn.execute("SELECT * FROM messages ORDER BY id").fetchall()
        vectors = conn.execute("SELECT space_id, message_id, vector FROM embeddings ORDER BY 1, 2").fetchall()
    finally:
        conn.close()
    return messages, vectors


def _db_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    finally:
        conn.close()


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


async def _backed_up_memory(settings: Settings) -> tuple[Path, tuple[list, list]]:
    """A closed memory with messages, a backup of it and the state the backup holds."""
    memory = await Memory.open(settings)
    try:
        await _fill(memory, TEXTS)
        backup = await create_backup(settings)
    finally:
        await memory.close()
    return backup, _db_state(settings.database_path)


async def test_round_trip_restores_identical_messages_and_vectors(settings: Settings) -> None:
    backup, before = await _backed_up_memory(settings)
    assert verify_backup(backup) == []

    memory = await Memory.open(settings)
    try:  # changed after the backup; a deletion would stay deleted (the ledger, tests/test_forgetting.py)
        await _fill(memory, ["an edited second message"], start=2)
        await _fill(memory, ["a brand new message written after the backup"], start=100)
    finally:
        await memory.close()
    assert _db_state(settings.database_path) != before

    aside = await restore_backup(backup, settings)

    assert aside is not None and (aside / settings.database_path.name).is_file()
    assert verify_backup(aside) == []  # the replaced data is itself a restorable backup
    assert _db_state(settings.database_path) == before
    memory = await Memory.open(settings)
    try:
        hits = await memory.recaller.recall(1, 10, "baking bread", memory.recall_options(hybrid=False))
        assert hits and hits[0].message.id == 1
        assert "sourdough" in hits[0].message.content
    finally:
        await memory.close()


async def test_backup_layout_and_manifest(make_settings, tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"memory_system": {"paths": {"data_dir": str(tmp_path / "data")}}}))
    from qwen3_memory.settings import load_settings

    settings = load_settings(settings_file)
    backup, _ = await _backed_up_memory(settings)

    assert backup.parent == settings.backups_dir / "qwen3_migration"
    assert backup.name.startswith("qwen3_migration_backup_")
    manifest = json.loads((backup / MANIFEST_NAME).read_text())
    paths = {entry["path"] for entry in manifest["files"]}
    assert {"memory.db", "settings/settings.json"} <= paths
    assert any(p.startswith("vectors/") and p.endswith(".idx") for p in paths)
    assert manifest["schema_version"] >= 1 and manifest["database_check"] == "ok"
    assert manifest["sources"]["settings"] == str(settings_file.resolve())
    assert all(len(entry["sha256"]) == 64 and entry["size"] > 0 for entry in manifest["files"])


async def test_two_backups_in_the_same_second_get_distinct_directories(settings: Settings) -> None:
    backup, _ = await _backed_up_memory(settings)
    second = await create_backup(settings)
    assert second != backup and second.parent == backup.parent


async def test_backup_while_the_bot_writes_is_a_consistent_database(settings: Settings, tmp_path: Path) -> None:
    memory = await Memory.open(settings)
    stop = asyncio.Event()

    async def keep_writing() -> None:
        next_id = 1000
        while not stop.is_set():
            await memory.capture.submit(message(next_id, f"message number {next_id} about the weather"))
            next_id += 1
            while memory.capture.pending > 8 and not stop.is_set():  # a steady stream, not a flood
                await asyncio.sleep(0.002)

    try:
        await _fill(memory, TEXTS)
        writer = asyncio.create_task(keep_writing())
        backups, counts = [], set()
        while len(counts) < 3 and len(backups) < 50:  # until backups saw the memory at 3 different sizes
            backups.append(await create_backup(settings))
            counts.add(_db_count(backups[-1] / "memory.db"))
            await asyncio.sleep(0.05)
        stop.set()
        await writer
        await memory.capture.drain()
    finally:
        await memory.close()

    assert len(counts) >= 3, "the writer did not write while backups were taken"
    for backup in backups:
        db = backup / "memory.db"
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            fts = conn.execute("SELECT COUNT(*) FROM messages_fts").fetchone()[0]
            assert fts == conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]  # one transaction, not half
        finally:
            conn.close()
        copy = tmp_path / f"open-{backup.name}.db"
        copy.write_bytes(db.read_bytes())
        store = await SQLiteStore.open(copy)
        try:
            assert await store.integrity_check() == "ok"
            assert await store.count_messages(1, 10) >= len(TEXTS)
        finally:
            await store.close()


async def test_flipped_byte_is_refused_and_live_data_untouched(settings: Settings) -> None:
    backup, _ = await _backed_up_memory(settings)
    db = backup / "memory.db"
    data = bytearray(db.read_bytes())
    data[len(data) // 2] ^= 0xFF
    db.write_bytes(bytes(data))
    live = _tree_digest(settings.data_dir / "memory")

    assert any("memory.db" in problem for problem in verify_backup(backup))
    with pytest.raises(BackupDamaged, match=r"memory\.db.*pick another backup"):
        await restore_backup(backup, settings)

    assert _tree_digest(settings.data_dir / "memory") == live
    assert not any(p.name.startswith("pre_restore_") for p in settings.backups_dir.iterdir())


async def test_missing_manifest_is_refused(settings: Settings) -> None:
    backup, _ = await _backed_up_memory(settings)
    (backup / MANIFEST_NAME).unlink()
    live = _tree_digest(settings.data_dir / "memory")

    with pytest.raises(BackupDamaged, match="manifest.json is missing"):
        await restore_backup(backup, settings)
    assert _tree_digest(settings.data_dir / "memory") == live


async def test_restore_refuses_while_the_database_is_open(settings: Settings) -> None:
    backup, before = await _backed_up_memory(settings)
    memory = await Memory.open(settings)  # an idle running bot holds the database open
    try:
        with pytest.raises(BackupError, match="in use by another process"):
            await restore_backup(backup, settings)
        assert await memory.store.count_messages(1, 10) == len(TEXTS)
    finally:
        await memory.close()


async def test_restore_without_keeping_current_data(settings: Settings) -> None:
    backup, before = await _backed_up_memory(settings)
    assert await restore_backup(backup, settings, keep_current=False) is None
    assert _db_state(settings.database_path) == before
    assert not any(p.name.startswith("pre_restore_") for p in settings.backups_dir.iterdir())


async def test_list_backups_marks_damaged_ones(settings: Settings) -> None:
    good, _ = await _backed_up_memory(settings)
    bad = await create_backup(settings)
    (bad / MANIFEST_NAME).unlink()

    infos = {info.path: info for info in list_backups(settings)}

    assert infos[good].ok and infos[good].size > 0 and infos[good].label == "qwen3_migration"
    assert not infos[bad].ok and infos[bad].status == "damaged"
    json.dumps([info.to_dict() for info in infos.values()])


async def test_backup_without_a_database_is_refused(settings: Settings) -> None:
    with pytest.raises(BackupError, match="no memory database"):
        await create_backup(settings)


# ---------------------------------------------------------------------------------------------- restore safety
def _live(settings: Settings) -> dict[str, str]:
    return _tree_digest(settings.data_dir / "memory")


def _assert_untouched(settings: Settings, live: dict[str, str]) -> None:
    assert _live(settings) == live
    assert not any(p.name.startswith("pre_restore_") for p in settings.backups_dir.iterdir())
    assert not [p for p in settings.database_path.parent.iterdir() if "restore-tmp" in p.name]


def _edit_manifest(backup: Path, **changes) -> None:
    manifest = json.loads((backup / MANIFEST_NAME).read_text())
    manifest.update(changes)
    (backup / MANIFEST_NAME).write_text(json.dumps(manifest))


async def test_a_file_the_manifest_does_not_list_is_refused_and_never_installed(settings: Settings) -> None:
    backup, _ = await _backed_up_memory(settings)
    (backup / "vectors" / "planted.idx").write_bytes(b"planted by someone else")
    live = _live(settings)

    with pytest.raises(BackupDamaged, match=r"vectors/planted\.idx is not listed in manifest\.json.*remove it"):
        await restore_backup(backup, settings)

    _assert_untouched(settings, live)
    assert not list(settings.vectors_dir.rglob("planted.idx"))


@pytest.mark.parametrize("where", ["relative", "absolute"])
async def test_a_manifest_path_leading_outside_the_backup_is_refused(settings: Settings, where: str) -> None:
    backup, _ = await _backed_up_memory(settings)
    outside = backup.parent / "outside"
    (outside / "1").mkdir(parents=True)
    (outside / "1" / "planted.idx").write_bytes(b"planted outside the backup")
    _edit_manifest(backup, vectors="../outside" if where == "relative" else str(outside))
    live = _live(settings)

    with pytest.raises(BackupDamaged, match="outside the backup directory.*Nothing was changed"):
        await restore_backup(backup, settings)

    _assert_untouched(settings, live)
    assert not list(settings.vectors_dir.rglob("planted.idx"))


async def test_a_listed_file_outside_the_backup_is_refused(settings: Settings) -> None:
    backup, _ = await _backed_up_memory(settings)
    manifest = json.loads((backup / MANIFEST_NAME).read_text())
    manifest["files"].append({"path": "../outside.db", "size": 1, "sha256": "0" * 64})
    (backup / MANIFEST_NAME).write_text(json.dumps(manifest))
    live = _live(settings)

    with pytest.raises(BackupDamaged, match="outside the backup"):
        await restore_backup(backup, settings)
    _assert_untouched(settings, live)


async def test_a_link_leading_out_of_the_backup_is_refused(settings: Settings, tmp_path: Path) -> None:
    backup, _ = await _backed_up_memory(settings)
    elsewhere = tmp_path / "elsewhere"
    (backup / "vectors").rename(elsewhere)  # the same files, checksums and all, but outside the backup
    (backup / "vectors").symlink_to(elsewhere, target_is_directory=True)
    live = _live(settings)

    with pytest.raises(BackupDamaged, match="vectors is a link"):
        await restore_backup(backup, settings)
    _assert_untouched(settings, live)


async def test_a_damaged_index_file_is_refused_before_anything_is_replaced(settings: Settings) -> None:
    backup, _ = await _backed_up_memory(settings)
    index = next((backup / "vectors").rglob("*.idx"))
    data = bytearray(index.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index.write_bytes(bytes(data))
    live = _live(settings)

    with pytest.raises(BackupDamaged, match=r"vectors/.*\.idx is damaged \(its sha256 differs"):
        await restore_backup(backup, settings)
    _assert_untouched(settings, live)


async def test_what_is_installed_is_what_was_checked(settings: Settings, monkeypatch) -> None:
    """A file changed after its checksum was checked (here: while restore waits for the database) is not
    what gets installed: the checked copy is."""
    backup, before = await _backed_up_memory(settings)
    claim = backup_module._claim_database

    def tamper_then_claim(db: Path) -> None:
        (backup / "memory.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 4080)
        claim(db)

    monkeypatch.setattr(backup_module, "_claim_database", tamper_then_claim)
    await restore_backup(backup, settings)

    listed = {e["path"]: e["sha256"] for e in json.loads((backup / MANIFEST_NAME).read_text())["files"]}
    assert hashlib.sha256(settings.database_path.read_bytes()).hexdigest() == listed["memory.db"]
    assert _db_state(settings.database_path) == before


def _settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"memory_system": {"paths": {"data_dir": str(tmp_path / "data")}}}))
    return path


KILLED_BACKUP = """
import asyncio, os, sys
from qwen3_memory.migration import backup
from qwen3_memory.settings import load_settings

def killed(*args, **kwargs):
    os._exit(9)  # like kill -9 while the files are copied: no cleanup runs

backup._copy_tree = killed
asyncio.run(backup.create_backup(load_settings(sys.argv[1])))
"""


def _killed_backup(settings_file: Path) -> None:
    """Run a backup in another process that dies midway."""
    result = subprocess.run([sys.executable, "-c", KILLED_BACKUP, str(settings_file)], capture_output=True)
    assert result.returncode == 9, result.stderr


async def test_a_backup_killed_midway_is_listed_incomplete_and_cleaned_by_the_command(tmp_path: Path, capsys) -> None:
    settings_file = _settings_file(tmp_path)
    settings = load_settings(settings_file)
    good, _ = await _backed_up_memory(settings)
    _killed_backup(settings_file)
    (half,) = [p for p in good.parent.iterdir() if p.name.endswith(".partial")]
    old_style = good.parent / "qwen3_migration_backup_20200101_000000"  # what older versions left when killed
    (old_style / "vectors").mkdir(parents=True)
    (old_style / "memory.db").write_bytes(b"half a database")

    infos = {info.path: info for info in list_backups(settings)}
    assert infos[good].complete and infos[good].status == "ok"
    assert not infos[half].complete and infos[half].status == "incomplete" and "never finished" in infos[half].why
    assert not infos[old_style].complete and "manifest.json is missing" in infos[old_style].why
    with pytest.raises(BackupDamaged, match="half-written"):
        await restore_backup(half, settings)

    assert await asyncio.to_thread(cli_main, ["--settings", str(settings_file), "backups", "--clean-incomplete"]) == 0
    out = capsys.readouterr().out
    assert f"removed {half}" in out and f"removed {old_style}" in out
    assert [info.path for info in list_backups(settings)] == [good]
    assert verify_backup(good) == []


async def test_a_new_backup_removes_its_own_half_written_one(tmp_path: Path) -> None:
    settings_file = _settings_file(tmp_path)
    settings = load_settings(settings_file)
    first, _ = await _backed_up_memory(settings)
    _killed_backup(settings_file)
    assert any(p.name.endswith(".partial") for p in first.parent.iterdir())

    second = await create_backup(settings)

    assert sorted(first.parent.iterdir()) == sorted([first, second])
    assert all(info.complete and info.ok for info in list_backups(settings))


async def test_a_backup_being_written_is_listed_in_progress_and_kept(settings: Settings) -> None:
    good, _ = await _backed_up_memory(settings)
    writing = good.parent / "qwen3_migration_backup_20990101_000000.partial"
    writing.mkdir()
    (writing / ".writer").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))

    info = next(info for info in list_backups(settings) if info.path == writing)

    assert info.status == "in progress" and not info.complete
    assert clean_incomplete_backups(settings) == []
    assert writing.is_dir()
