"""A full disk loses nothing: capture keeps and retries what it could not write, the migration pauses itself
with a message that names the disk, and ``resume`` finishes it as if nothing had happened.

The full disk is injected where the backend meets it (SQLite's "database or disk is full", PostgreSQL's
``DiskFull``, ``OSError`` 28 from an index file), and once for real on a tiny tmpfs when mounting is allowed.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from qwen3_memory.capture import Capture
from qwen3_memory.errors import DiskFull, disk_full
from qwen3_memory.memory import Memory
from qwen3_memory.migration import jobs as J
from qwen3_memory.migration.advice import COMMAND_LINE, SLASH_COMMANDS, advise
from qwen3_memory.migration.engine import MigrationEngine
from tests.factories import message, populate, qwen3_target, write_settings
from tests.test_migration_engine import fill

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on SQLite + FAISS and on Postgres

REPO = Path(__file__).resolve().parent.parent
WRITES = ("ensure_channel", "add_messages", "put_vectors", "delete_messages")


def no_space(store) -> Exception:
    """The error the store's backend raises when its disk is full."""
    if store.kind == "sqlite":
        return sqlite3.OperationalError("database or disk is full")
    import psycopg.errors

    return psycopg.errors.DiskFull("could not extend file: No space left on device")


class FullDisk:
    """Makes the store's writes fail as its backend fails on a full disk, while ``full`` is set."""

    def __init__(self, store, monkeypatch: pytest.MonkeyPatch, methods=WRITES) -> None:
        self.store, self.full, self.refused = store, False, 0
        for name in methods:
            monkeypatch.setattr(store, name, self._failing(getattr(store, name)))

    def _failing(self, method):
        async def write(*args, **kwargs):
            if self.full:
                self.refused += 1
                raise no_space(self.store)
            return await method(*args, **kwargs)

        return write


async def until(condition, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def channel_state(memory: Memory, guild: int = 1, channel: int = 10) -> tuple[dict[int, str], int, int]:
    """(id -> text of the stored messages, their vectors in the read space, messages lacking one)."""
    stored = {m.id: m.content for m in await memory.store.scroll_messages(guild, channel, limit=10_000)}
    space = memory.default_space.id
    missing = await memory.store.messages_missing_vectors(space, guild, channel, limit=10_000)
    return stored, await memory.store.count_vectors(space, guild, channel), len(missing)


# ------------------------------------------------------------------------------------------------- capture
async def test_messages_posted_while_the_disk_is_full_are_stored_and_embedded_once_it_clears(memory, monkeypatch):
    capture = memory.capture
    capture.retry_seconds = 0.01
    for i in range(1, 6):
        await capture.submit(message(i, f"before the disk filled up {i}"))
    await capture.drain()
    disk = FullDisk(memory.store, monkeypatch)
    disk.full = True

    expected = {i: f"before the disk filled up {i}" for i in range(1, 6)}
    for i in range(100, 130):
        await capture.submit(message(i, f"posted during the full disk {i}"))
        expected[i] = f"posted during the full disk {i}"
    await capture.submit(message(101, "edited during the full disk"))  # an edit wins over its message
    expected[101] = "edited during the full disk"
    await capture.delete([102, 3])  # deletions, after their messages
    del expected[102], expected[3]
    await capture.submit(message(140, "posted, then deleted"))
    await capture.delete([140])
    await capture.delete([141])  # a deletion, then a later upsert of the same message: the upsert stays
    await capture.submit(message(141, "deleted, then posted again"))
    expected[141] = "deleted, then posted again"
    await until(lambda: disk.refused >= 3)  # it keeps trying
    assert set((await channel_state(memory))[0]) == set(range(1, 6))  # nothing got through meanwhile
    assert capture.retained > 0

    disk.full = False
    await capture.drain()

    stored, vectors, missing = await channel_state(memory)
    assert stored == expected
    assert (vectors, missing) == (len(expected), 0)  # every message has its vector, deleted ones none
    hits = await memory.recall(1, 10, "edited during the full disk", k=3)
    assert hits[0].message.id == 101
    assert capture.retained == 0


async def test_a_batch_stored_but_not_embedded_is_embedded_on_retry(memory, monkeypatch):
    memory.capture.retry_seconds = 0.01
    disk = FullDisk(memory.store, monkeypatch, methods=("put_vectors",))  # the vectors' write fails
    disk.full = True
    for i in range(1, 11):
        await memory.capture.submit(message(i, f"a message whose vector waits {i}"))
    await until(lambda: disk.refused >= 2)
    assert len((await channel_state(memory))[0]) == 10  # stored, not embedded yet

    disk.full = False
    await memory.capture.drain()
    assert (await channel_state(memory))[1:] == (10, 0)


async def test_a_full_queue_behind_a_full_disk_makes_listeners_wait_and_says_so(memory, monkeypatch, caplog):
    capture = Capture(memory.store, memory.services, memory.default_space.id, batch_size=2, queue_size=4)
    capture.retry_seconds = 0.01
    capture.start()
    try:
        disk = FullDisk(memory.store, monkeypatch)
        disk.full = True

        async def post_many():
            for i in range(1, 21):
                await capture.submit(message(i, f"a burst during the full disk {i}"))

        with caplog.at_level(logging.ERROR, logger="qwen3_memory.capture"):
            posting = asyncio.create_task(post_many())
            await until(lambda: "queue is full" in caplog.text)
            assert not posting.done()  # back-pressure: the listener waits, nothing is dropped
            assert "disk is full" in caplog.text
        disk.full = False
        await posting
        await capture.drain()
        stored, vectors, missing = await channel_state(memory)
        assert sorted(stored) == list(range(1, 21)) and (vectors, missing) == (20, 0)
    finally:
        await capture.stop()


@pytest.mark.sqlite_only  # the same store file, opened again by the next process
async def test_messages_stored_without_vectors_at_a_shutdown_are_embedded_after_the_restart(make_settings, monkeypatch):
    settings = make_settings()
    memory = await Memory.open(settings)
    disk = FullDisk(memory.store, monkeypatch, methods=("put_vectors",))
    disk.full = True
    memory.capture.retry_seconds = 0.01
    for i in range(1, 8):
        await memory.capture.submit(message(i, f"stored just before the shutdown {i}"))
    await until(lambda: disk.refused >= 2)
    await memory.capture.stop(give_up_after=0.1)  # the disk is still full when the bot stops
    await memory.close()

    memory = await Memory.open(settings)
    try:
        assert (await channel_state(memory))[1:] == (0, 7)
        await memory.capture.submit(message(50, "the first message after the restart"))
        await memory.capture.drain(repairs=True)  # the first write to the channel checks it
        assert (await channel_state(memory))[1:] == (8, 0)
    finally:
        await memory.close()


@pytest.mark.sqlite_only  # FAISS index files
async def test_a_full_disk_at_close_is_one_warning_not_a_traceback(memory, monkeypatch, caplog):
    from qwen3_memory.backends.sqlite import indexes

    await memory.capture.submit(message(1, "an index to save at close"))
    await memory.capture.drain()

    def no_space(items):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(indexes, "save_many", no_space)  # how a flush writes its index files
    with caplog.at_level(logging.WARNING):
        await memory.capture.stop()
    assert "index files not saved (no space left)" in caplog.text and "Traceback" not in caplog.text


# ------------------------------------------------------------------------------------------------ migration
@pytest.fixture
async def filled(memory) -> Memory:
    await fill(memory, {(1, 10): 24, (1, 11): 16})
    return memory


async def test_the_migration_pauses_itself_on_a_full_disk_and_resume_completes_it(filled, tiny_qwen3_dir, monkeypatch):
    engine = MigrationEngine(filled)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False, batch_size=4)
    disk = FullDisk(filled.store, monkeypatch, methods=("put_vectors",))
    real_put = filled.store.put_vectors
    writes = 0

    async def put_vectors(space, messages, vectors):  # the disk fills up after two writes (of four batches each)
        nonlocal writes
        writes += 1
        disk.full = disk.full or writes == 3
        return await real_put(space, messages, vectors)

    monkeypatch.setattr(filled.store, "put_vectors", put_vectors)
    job = await engine.run(job.id)

    assert job.status == J.PAUSED
    assert "disk is full" in job.error and "then resume" in job.error and "continues where it stopped" in job.error
    assert filled.store.where in job.error  # names the database (and the disk it is on, for SQLite)
    assert (await engine.jobs.get(job.id)).status == J.PAUSED  # recorded: every face shows it
    assert not engine.is_running(job.id)

    disk.full = False
    job = await engine.resume(job.id, background=False)
    assert job.status == J.COMPLETED and job.error is None

    target = await filled.store.get_space(job.target_space_id)
    service = filled.services.get(target.spec)
    for guild, channel in [(1, 10), (1, 11)]:
        messages = await filled.store.scroll_messages(guild, channel, limit=1000)
        stored = await filled.store.get_vectors(target.id, [m.id for m in messages])
        uninterrupted = await service.aencode_documents([m.content for m in messages])  # what a clean run stores
        assert len(stored) == len(messages)
        np.testing.assert_allclose(np.stack([stored[m.id] for m in messages]), uninterrupted, atol=1e-4)


async def test_a_command_on_a_full_disk_raises_disk_full_naming_the_database(filled, tiny_qwen3_dir, monkeypatch):
    engine = MigrationEngine(filled)
    job = await engine.start(qwen3_target(tiny_qwen3_dir), backup=False)

    async def no_room(*args, **kwargs):
        raise no_space(filled.store)

    monkeypatch.setattr(engine.jobs, "set_status", no_room)
    with pytest.raises(DiskFull) as raised:
        await engine.pause(job.id)
    assert filled.store.where in str(raised.value)
    advice = advise(raised.value, SLASH_COMMANDS)
    assert advice.disk_full and advice.next_step == ""


# ------------------------------------------------------------------------------------------------ the faces
@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device", "/data/vectors/1/10.idx.tmp"),
        sqlite3.OperationalError("database or disk is full"),
    ],
)
def test_both_raw_forms_of_a_full_disk_become_one_message_naming_the_disk(error):
    full = disk_full(error, "/data/memory.db")
    expected_path = "/data/vectors/1/10.idx.tmp" if isinstance(error, OSError) else "/data/memory.db"
    assert full.path == expected_path and full.mount == "/"
    for face in (SLASH_COMMANDS, COMMAND_LINE):
        advice = advise(error, face)
        assert advice.disk_full and advice.next_step == ""
        assert "the disk mounted at /" in advice.message and "Free space on that disk" in advice.message
    assert disk_full(sqlite3.OperationalError("database is locked")) is None


def _run_cli(settings: Path, *argv: str, inject: str = "") -> subprocess.CompletedProcess:
    code = (
        textwrap.dedent(inject)
        + "\nimport sys\nfrom qwen3_memory.migration.cli import main\nsys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code, "--settings", str(settings), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


FILL_THE_DISK_AFTER_TWO_BATCHES = """
    import errno, sqlite3
    from qwen3_memory.backends.sqlite import indexes
    from qwen3_memory.backends.sqlite.index import VectorIndex
    from qwen3_memory.backends.sqlite.store import SQLiteStore

    real_put, full = SQLiteStore.put_vectors, [0]

    async def put_vectors(self, space, messages, vectors):
        full[0] += space.dimension == 64  # the migration's target
        if full[0] > 1:
            raise sqlite3.OperationalError("database or disk is full")
        return await real_put(self, space, messages, vectors)

    def save(self, path):
        if full[0] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")

    def save_many(items):
        if full[0] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")

    SQLiteStore.put_vectors, VectorIndex.save, indexes.save_many = put_vectors, save, save_many
"""


@pytest.mark.sqlite_only
def test_the_command_line_prints_one_line_naming_the_disk_and_resume_finishes(tmp_path, tiny_qwen3_dir):
    settings = write_settings(tmp_path / "bot", tiny_qwen3_dir)
    asyncio.run(populate(settings, {(1, 10): 30, (1, 11): 20}))

    paused = _run_cli(settings, "migrate", "--batch-size", "8", inject=FILL_THE_DISK_AFTER_TWO_BATCHES)
    output = paused.stdout + paused.stderr
    assert "Traceback" not in output and "Logging error" not in output, output
    naming = [line for line in output.splitlines() if "the disk mounted at" in line]
    assert len(naming) == 1, output  # the job's error; the log lines only say that it paused itself
    assert "the disk is full: " in naming[0] and "memory.db" in naming[0] and "Free space on that disk" in naming[0]
    assert "then resume" in naming[0]
    assert "[paused]" in paused.stdout and paused.returncode == 1  # a job that paused itself fails the command

    resumed = _run_cli(settings, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "[completed]" in resumed.stdout and "50/50" in resumed.stdout


# ------------------------------------------------------------------------------------------------ a real disk
TINY_DISK_SCRIPT = """
import asyncio, json, os, sys
from pathlib import Path
from qwen3_memory.memory import Memory
from qwen3_memory.settings import default_settings
from tests.factories import message

async def main(root):
    memory = await Memory.open(default_settings(paths={"data_dir": str(root / "data")}))
    memory.capture.retry_seconds = 0.05
    ballast = os.open(root / "ballast", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(ballast, b"\\0" * 65536)
    except OSError:
        os.close(ballast)
    for i in range(1, 61):
        await memory.capture.submit(message(i, f"posted on a full disk, number {i}: " + "words " * 400))
    await memory.capture.delete([7])
    for _ in range(400):
        if memory.capture.failures:
            break
        await asyncio.sleep(0.05)
    failures = memory.capture.failures
    os.unlink(root / "ballast")
    await memory.capture.drain()
    ids = [m.id for m in await memory.store.scroll_messages(1, 10, limit=1000)]
    missing = await memory.store.messages_missing_vectors(memory.default_space.id, 1, 10)
    vectors = await memory.store.count_vectors(memory.default_space.id, 1, 10)
    await memory.close()
    print(json.dumps({"failures": failures, "ids": ids, "missing": len(missing), "vectors": vectors}))

asyncio.run(main(Path(sys.argv[1])))
"""


@pytest.mark.sqlite_only
def test_on_a_real_tiny_disk_every_message_is_stored_after_space_is_freed(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    prefix = [] if os.geteuid() == 0 else ["-r"]
    probe = subprocess.run(
        ["unshare", *prefix, "-m", "sh", "-c", f"mount -t tmpfs -o size=4m tmpfs {disk} && umount {disk}"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {probe.stderr.strip() or probe.returncode}")
    script = tmp_path / "tiny_disk.py"
    script.write_text(TINY_DISK_SCRIPT)
    run = subprocess.run(
        [
            "unshare",
            *prefix,
            "-m",
            "sh",
            "-c",
            f'mount -t tmpfs -o size=4m tmpfs {disk} && exec "{sys.executable}" {script} {disk}',
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
        cwd=REPO,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["failures"] > 0, "the disk never filled up"
    assert "capture could not write" in run.stderr and f"the disk is full: {disk}" in run.stderr
    assert result["ids"] == [i for i in range(1, 61) if i != 7]
    assert (result["vectors"], result["missing"]) == (59, 0)


# ------------------------------------------------------------------------------------------------ the backup
class _FullBackupTarget:
    """A source connection whose backup into the copy finds the copy's disk full (SQLite's own words)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def backup(self, target, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    def __getattr__(self, name):
        return getattr(self._conn, name)


@pytest.mark.sqlite_only
def test_a_full_backup_disk_is_a_full_disk_not_an_unreadable_database(tmp_path, monkeypatch):
    from qwen3_memory.migration import backup as backup_module

    source, copy = tmp_path / "memory.db", tmp_path / "backups" / "memory.db"
    copy.parent.mkdir()
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t(x)")
    real_connect = sqlite3.connect
    monkeypatch.setattr(
        backup_module.sqlite3,
        "connect",
        lambda path, *a, **k: _FullBackupTarget(real_connect(path, *a, **k)) if path == source else real_connect(path),
    )
    with pytest.raises(OSError) as raised:
        backup_module._snapshot_database(source, copy)
    monkeypatch.undo()
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(copy)
    assert "cannot read the database" not in str(raised.value)


@pytest.mark.sqlite_only
async def test_a_full_backup_disk_starts_nothing_and_names_the_disk(filled, tiny_qwen3_dir, monkeypatch):
    from qwen3_memory.migration import backup as backup_module
    from qwen3_memory.migration.engine import BackupDiskFull

    def copy_on_a_full_disk(source, target):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(backup_module, "_snapshot_database", copy_on_a_full_disk)
    engine = MigrationEngine(filled)
    with pytest.raises(BackupDiskFull) as raised:
        await engine.start(qwen3_target(tiny_qwen3_dir))
    message = str(raised.value)
    assert "the backup could not be written to" in message and "the disk mounted at /" in message
    assert "Nothing was started" in message and "then start again" in message
    assert advise(raised.value, COMMAND_LINE).disk_full and await engine.jobs.latest() is None
