"""move-store: a SQLite + FAISS memory copied to PostgreSQL + pgvector without re-embedding, resumably and verified."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from qwen3_memory.backends.claims import AdvisoryClaims
from qwen3_memory.backends.postgres.store import PostgresStore
from qwen3_memory.backends.sqlite.store import SQLiteStore
from qwen3_memory.history.cursors import PAUSED, ImportCursors
from qwen3_memory.history.source import ChannelRef
from qwen3_memory.memory import Memory
from qwen3_memory.migration.cli import main
from qwen3_memory.migration.engine import MigrationEngine
from qwen3_memory.migration.move_store import NEXT_STEP, StoreMove
from qwen3_memory.recall.floors import SpaceFloor, get_floor, save_floor
from qwen3_memory.settings import load_settings
from qwen3_memory.space import EmbeddingSpace
from tests.factories import TOPICS, message, qwen3_target
from tests.factories import migration_cli as cli

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[1]
CHANNELS = {(1, 10): 40, (1, 11): 30, (2, 20): 20}
PASSWORD = "hunter2-not-for-logs"
QUERIES = ["when does the raid start", "python KeyError", "what is for dinner", "chess tonight?"]


def write_settings(directory: Path, **memory_fields) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "settings.json"
    path.write_text(json.dumps({"memory_system": {"paths": {"data_dir": "data"}, **memory_fields}}))
    return path


async def build_memory(settings_path: Path, tiny_dir: Path) -> None:
    """Three channels on the packaged model; 10 and 11 also in a tiny Qwen3 space, 10 reading it (swapped),
    11 still reading the old one; 20 disabled; one member opted out."""
    memory = await Memory.open(load_settings(settings_path), start_capture=False)
    try:
        next_id = 1_000
        for (guild, channel), n in CHANNELS.items():
            batch = [message(next_id + i, f"{TOPICS[i % len(TOPICS)]} (note {i})", guild, channel) for i in range(n)]
            await memory.capture.write(batch)
            next_id += n
        await memory.store.set_opted_out(1, 555, True)
        await memory.store.set_channel_enabled(2, 20, False)
        cursors = ImportCursors(memory.store)  # an import of channel 11 stopped halfway, to resume after the move
        await cursors.queue(1, [ChannelRef(11)], 0)
        await cursors.advance(1, 11, 1_100, 120, 100, 20)
        await cursors.set_status(1, 11, PAUSED)
        await save_floor(memory.store, SpaceFloor(memory.default_space.id, 0.31, "label-free", {"samples": 40}, 1.0))
        engine = MigrationEngine(memory)
        job = await engine.start(qwen3_target(tiny_dir), channel_ids=[10, 11], auto_swap=False, backup=False)
        await engine.run(job.id)
        assert await engine.swap(job.id, 10) == [10]
        await memory.store.flush()
    finally:
        await memory.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory, tiny_qwen3_dir) -> Path:
    settings = write_settings(tmp_path_factory.mktemp("move-store-template"))
    asyncio.run(build_memory(settings, tiny_qwen3_dir))
    return settings.parent


@pytest.fixture
def bot(template, tmp_path) -> Path:
    """The settings file of a fresh copy of the SQLite memory (each test may change its copy)."""
    shutil.copytree(template, tmp_path / "bot")
    return tmp_path / "bot" / "settings.json"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """The command line in this process (main runs its own event loop: call it from synchronous tests)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def snapshot(settings: Path, dsn: str) -> tuple[dict, dict]:
    """Everything a move must carry, per store, in backend-neutral terms (space keys instead of ids)."""
    source = await SQLiteStore.open(load_settings(settings).database_path)
    dest = await PostgresStore.open(dsn)
    try:
        return await describe(source), await describe(dest)
    finally:
        await source.close()
        await dest.close()


async def describe(store) -> dict:
    spaces = {s.id: s for s in await store.list_spaces()}
    channels = {}
    for state in await store.list_channels():
        g, c = state.guild_id, state.channel_id
        counts = await store.vector_counts(g, c)
        channels[(g, c)] = {
            "read": spaces[state.read_space_id].spec.key,
            "writes": sorted(spaces[s].spec.key for s in state.write_space_ids),
            "enabled": state.enabled,
            "sums": {spaces[s].spec.key: await store.checksums(g, c, s) for s in counts},
        }
    return {
        "spaces": {s.spec.key: s.spec for s in spaces.values()},
        "channels": channels,
        "opted_out": {g: await store.opted_out_users(g) for g in (1, 2)},
        "floors": {s.spec.key: getattr(await get_floor(store, s.id), "floor", None) for s in spaces.values()},
        "imports": [
            (r.channel_id, r.status, r.cursor, r.read, r.stored) for r in await ImportCursors(store).channels()
        ],
    }


async def progress(dsn: str) -> dict[str, int]:
    """Per phase, how many rows have a cursor past 0 (empty while the table does not exist yet)."""
    try:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            rows = await conn.execute("SELECT phase, count(*) FROM move_store_progress WHERE cursor > 0 GROUP BY 1")
            return dict(await rows.fetchall())
    except psycopg.errors.UndefinedTable:
        return {}


def kill_when(proc: subprocess.Popen, dsn: str, phase: str, timeout: float = 60) -> bool:
    """SIGKILL ``proc`` once ``phase`` has made progress; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if asyncio.run(progress(dsn)).get(phase):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    raise AssertionError(f"move-store made no progress in {phase}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- moving


def test_a_full_move_copies_everything_and_recall_finds_the_same_hits(bot, pg_dsn, make_settings, capsys):
    code, out, err = run(capsys, "--settings", str(bot), "move-store", "--to", make_conninfo(pg_dsn, password=PASSWORD))

    assert code == 0, err
    assert NEXT_STEP in out and "migration job history not moved (1 job(s))" in out
    assert PASSWORD not in out + err and ":***@" in out
    source, dest = asyncio.run(snapshot(bot, pg_dsn))
    assert dest == source
    assert [len(source["channels"][(1, c)]["sums"]) for c in (10, 11)] == [2, 2]  # two spaces were moved there
    assert source["channels"][(1, 10)]["read"] != source["channels"][(1, 11)]["read"]
    assert source["opted_out"][1] == {555} and not source["channels"][(2, 20)]["enabled"]
    assert source["imports"] == [(11, PAUSED, 1_100, 120, 100)] and 0.31 in source["floors"].values()
    asyncio.run(same_recall(load_settings(bot), make_settings(backend="postgres", database_url=pg_dsn)))


async def same_recall(sqlite_settings, pg_settings) -> None:
    """Dense recall (the moved vectors, not BM25, which differs by backend) finds the same top hits."""
    sqlite_memory = await Memory.open(sqlite_settings, start_capture=False)
    pg_memory = await Memory.open(pg_settings, start_capture=False, services=sqlite_memory.services)
    try:
        options = sqlite_memory.recall_options(hybrid=False, min_score=-1.0, k=3)
        for guild, channel in CHANNELS:
            for query in QUERIES:
                expected = await sqlite_memory.recaller.recall(guild, channel, query, options)
                found = await pg_memory.recaller.recall(guild, channel, query, options)
                assert [h.message.id for h in found] == [h.message.id for h in expected], (channel, query)
                assert len(found) == 3
    finally:
        await pg_memory.close()
        await sqlite_memory.close()


def test_killed_twice_then_run_again_ends_with_an_identical_copy(bot, pg_dsn):
    proc = cli(bot, "move-store", "--to", pg_dsn, "--batch-size", "1")
    assert kill_when(proc, pg_dsn, "messages"), "move-store finished before it could be killed; make it longer"
    proc = cli(bot, "move-store", "--to", pg_dsn, "--batch-size", "1")
    assert kill_when(proc, pg_dsn, "vectors"), "move-store finished before it could be killed; make it longer"

    proc = cli(bot, "move-store", "--to", pg_dsn, "--batch-size", "1")
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 0, err
    assert "resuming an earlier move" in err and "moved" in out
    source, dest = asyncio.run(snapshot(bot, pg_dsn))
    assert dest == source


def test_a_second_run_copies_nothing_and_still_verifies(bot, pg_dsn, capsys):
    assert run(capsys, "--settings", str(bot), "move-store", "--to", pg_dsn)[0] == 0

    code, out, err = run(capsys, "--settings", str(bot), "--json", "move-store", "--to", pg_dsn)

    report = json.loads(out)
    assert code == 0 and report["passed"] and report["next"] == NEXT_STEP
    assert report["messages_copied"] == 0 and set(report["vectors_copied"].values()) <= {0}
    assert report["messages"] == sum(CHANNELS.values()) and report["channels"] == len(CHANNELS)
    assert sorted(report["vectors"].values()) == [sum(CHANNELS.values()) - 20, sum(CHANNELS.values())]
    assert report["resumed"] and "resuming an earlier move" in err


def test_what_changed_on_the_source_since_a_move_is_caught_up_by_running_it_again(bot, pg_dsn, capsys):
    assert run(capsys, "--settings", str(bot), "move-store", "--to", pg_dsn)[0] == 0
    asyncio.run(keep_the_bot_running(bot))

    code, out, err = run(capsys, "--settings", str(bot), "move-store", "--to", pg_dsn)

    assert code == 0, out + err
    assert "repaired: channel 10 of guild 1: messages differ" in out
    source, dest = asyncio.run(snapshot(bot, pg_dsn))
    assert dest == source


async def keep_the_bot_running(settings: Path) -> None:
    """The bot kept running on SQLite: an edit, a deletion, a new message and an old one captured late."""
    memory = await Memory.open(load_settings(settings))
    try:
        edit = replace(message(1_000, "edited: the raid moved to ten", 1, 10), edited_at=1_800_000_000.0)
        await memory.capture.write([edit, message(5_000, "brand new", 1, 11), message(500, "backfilled late", 1, 10)])
        await memory.capture.delete([1_001], wait=True)
    finally:
        await memory.close()


def test_a_copy_that_differs_fails_naming_the_channel_and_the_next_run_repairs_it(bot, pg_dsn, capsys, monkeypatch):
    assert run(capsys, "--settings", str(bot), "move-store", "--to", pg_dsn)[0] == 0
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # a vector lost on the destination
        space_id, key = conn.execute("SELECT id, key FROM spaces WHERE key LIKE 'Qwen3%'").fetchone()
        conn.execute(f"DELETE FROM space_vectors_{space_id} WHERE message_id = (SELECT min(message_id) FROM "
                     f"space_vectors_{space_id} WHERE channel_id = 11)")  # fmt: skip

    async def source_keeps_changing(self, check, state):
        return check

    with monkeypatch.context() as patch:
        patch.setattr(StoreMove, "_repair", source_keeps_changing)
        code, out, err = run(capsys, "--settings", str(bot), "move-store", "--to", pg_dsn)

    assert code == 1 and NEXT_STEP not in out
    assert f"MISMATCH: channel 11 of guild 1: vectors of space {key} differ (source 30, destination 29)" in out
    assert "run move-store again" in out
    code, out, err = run(capsys, "--settings", str(bot), "move-store", "--to", pg_dsn)
    assert code == 0 and "repaired: channel 11 of guild 1: vectors" in out
    source, dest = asyncio.run(snapshot(bot, pg_dsn))
    assert dest == source


def test_a_halfvec_space_moves_verified_by_count_to_the_dsn_of_the_environment(tmp_path, pg_dsn, capsys, monkeypatch):
    settings = write_settings(tmp_path / "wide")
    asyncio.run(wide_memory(load_settings(settings).database_path))
    monkeypatch.setenv("MEMORY_DATABASE_URL", pg_dsn)

    code, out, err = run(capsys, "--settings", str(settings), "move-store")

    assert code == 0, err
    assert "stored as halfvec (float16)" in out and "compared by count" in out
    source, dest = asyncio.run(snapshot(settings, pg_dsn))
    (wide_key,) = dest["spaces"]
    assert dest["channels"][(1, 10)]["sums"][wide_key]["vectors"] == 5
    assert dest["channels"][(1, 10)]["sums"][wide_key]["vectors_sha"] is None  # float16: no bitwise digest


async def wide_memory(path: Path) -> None:
    """A SQLite memory of one channel in a 2048-d space (wider than pgvector's float32 HNSW limit)."""
    store = await SQLiteStore.open(path)
    try:
        space = await store.ensure_space(EmbeddingSpace(model="test/wide", dimension=2048))
        await store.ensure_channel(1, 10, space.id)
        batch = [message(i, f"wide {i}") for i in range(1, 6)]
        await store.add_messages(batch)
        await store.put_vectors(space, batch, np.random.default_rng(1).standard_normal((5, 2048)))
    finally:
        await store.close()


# ---------------------------------------------------------------------------------------------- refusals


def test_an_unreachable_destination_is_refused_in_one_line_without_its_password(bot, capsys):
    dsn = f"postgresql://bot:{PASSWORD}@127.0.0.1:{free_port()}/memory"

    code, out, err = run(capsys, "--settings", str(bot), "move-store", "--to", dsn)

    assert code == 1 and out == "" and err.count("\n") == 1
    assert "cannot connect" in err and "127.0.0.1" in err and PASSWORD not in err


def test_a_destination_holding_another_memory_is_refused_and_left_untouched(bot, pg_dsn, capsys):
    other_space = asyncio.run(another_memory_in_channel_10(pg_dsn))

    code, out, err = run(capsys, "--settings", str(bot), "move-store", "--to", pg_dsn)

    assert code == 1 and err.count("\n") == 1
    assert "another memory" in err and "channel 10 of guild 1" in err and "Nothing was written" in err
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT key FROM spaces").fetchall() == [(other_space,)]
        assert conn.execute("SELECT channel_id FROM channels").fetchall() == [(10,)]
        assert conn.execute("SELECT to_regclass('move_store_progress')").fetchone() == (None,)


async def another_memory_in_channel_10(dsn: str) -> str:
    store = await PostgresStore.open(dsn)
    try:
        space = await store.ensure_space(EmbeddingSpace(model="someone/else", dimension=16))
        await store.ensure_channel(1, 10, space.id)
        return space.spec.key
    finally:
        await store.close()


def test_a_second_move_store_into_the_same_destination_waits_its_turn(bot, pg_dsn, capsys):
    running = AdvisoryClaims(pg_dsn)
    assert asyncio.run(running.try_claim("move-store"))  # what a running move-store holds

    code, out, err = run(capsys, "--settings", str(bot), "move-store", "--to", pg_dsn)

    assert code == 1 and "another move-store into" in err and "is running" in err
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)


def test_a_memory_already_on_postgres_or_missing_is_refused(tmp_path, pg_dsn, capsys):
    on_postgres = write_settings(tmp_path / "pg", backend="postgres", database_url=pg_dsn)
    code, _, err = run(capsys, "--settings", str(on_postgres), "move-store", "--to", pg_dsn)
    assert code == 1 and "already on postgres" in err

    nothing = write_settings(tmp_path / "empty")
    code, _, err = run(capsys, "--settings", str(nothing), "move-store", "--to", pg_dsn)
    assert code == 1 and "no SQLite memory at" in err
    assert not (tmp_path / "empty" / "data").exists()  # looking did not create an empty memory


def test_no_destination_is_a_usage_error(bot, capsys, monkeypatch):
    monkeypatch.delenv("MEMORY_DATABASE_URL", raising=False)

    code, _, err = run(capsys, "--settings", str(bot), "move-store")

    assert code == 2 and "--to postgresql://" in err and err.count("\n") == 1
