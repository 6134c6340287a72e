"""Backups: consistent while the bot writes, verified by checksums, restored atomically or not at all."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from qwen3_memory.backends.sqlite.store import SQLiteStore
from qwen3_memory.memory import Memory
from qwen3_memory.migration.backup import (
    MANIFEST_NAME,
    BackupDamaged,
    BackupError,
    create_backup,
    list_backups,
    restore_backup,
    verify_backup,
)
from qwen3_memory.settings import Settings
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
