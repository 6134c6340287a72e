"""The store on both backends (messages, vectors per space, channel pointers, BM25), and SQLite's own
schema upgrades, WAL and locking."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qwen3_memory.backends.postgres.schema import PG_SCHEMA_VERSION
from qwen3_memory.backends.protocol import DiskFootprint
from qwen3_memory.backends.sqlite import store as store_module
from qwen3_memory.backends.sqlite.schema import SCHEMA_MIGRATIONS, SCHEMA_VERSION
from qwen3_memory.backends.sqlite.store import BUSY_TIMEOUT_MS, SQLiteStore
from qwen3_memory.errors import DimensionMismatch, StoreError, StoreLocked
from qwen3_memory.models.profiles import PROFILES
from qwen3_memory.space import EmbeddingSpace
from tests.factories import message

SPACE_A = EmbeddingSpace(model="test/space-a", dimension=8)
SPACE_B = EmbeddingSpace(model="test/space-b", dimension=4)

TABLES = {
    "schema_version",
    "messages",
    "messages_fts",
    "spaces",
    "embeddings",
    "vector_generations",
    "channels",
    "channel_write_spaces",
    "migrations",
    "migration_channels",
    "migration_events",
    "migration_artifacts",
    "opted_out_users",
}


def vectors(n: int, dimension: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dimension)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "memory" / "memory.db"


@pytest.fixture
async def sqlite_store(db_path):
    s = await SQLiteStore.open(db_path)
    yield s
    await s.close()


@pytest.fixture
def store(any_store):
    """The backend-generic store: every test using it runs on SQLite and on Postgres."""
    return any_store


@pytest.fixture
async def spaces(store):
    return await store.ensure_space(SPACE_A), await store.ensure_space(SPACE_B)


def tables_of(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}


# ----------------------------------------------------------------------------------------------- schema


async def test_a_new_database_gets_the_current_schema_version(store):
    current = SCHEMA_VERSION if isinstance(store, SQLiteStore) else PG_SCHEMA_VERSION  # each backend its own
    assert await store.schema_version() == current
    rows = await store.fetchall("SELECT version FROM schema_version ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, current + 1))  # every migration recorded once


async def test_a_new_database_has_every_table(sqlite_store, db_path):
    assert tables_of(db_path) >= TABLES


async def test_the_database_runs_in_wal_mode_with_a_busy_timeout(sqlite_store, db_path):
    store = sqlite_store
    assert (await store.fetchone("PRAGMA journal_mode"))[0] == "wal"
    assert (await store.fetchone("PRAGMA busy_timeout"))[0] == BUSY_TIMEOUT_MS
    assert (await store.fetchone("PRAGMA foreign_keys"))[0] == 1
    with sqlite3.connect(db_path) as other:  # WAL is a property of the file, seen by every connection
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_opening_twice_is_harmless(db_path):
    first = await SQLiteStore.open(db_path)
    await first.close()
    second = await SQLiteStore.open(db_path)
    try:
        assert await second.schema_version() == SCHEMA_VERSION
        assert await second.integrity_check() == "ok"
    finally:
        await second.close()


def make_version_1_database(path: Path) -> None:
    """A database as the first release left it: schema version 1 only, with a message and its vector."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.executescript(SCHEMA_MIGRATIONS[1])
        conn.execute("INSERT INTO schema_version(version) VALUES (1)")
        conn.execute(
            "INSERT INTO spaces(id, key, model, dimension, pooling, spec, created_at) VALUES (1,?,?,?,?,?,0)",
            (SPACE_A.key, SPACE_A.model, SPACE_A.dimension, SPACE_A.pooling, SPACE_A.to_json()),
        )
        conn.execute(
            "INSERT INTO messages(id, guild_id, channel_id, author_id, author_name, content, created_at) "
            "VALUES (7, 1, 10, 100, 'alice', 'kept across the upgrade', 0)"
        )
        conn.execute(
            "INSERT INTO embeddings(space_id, message_id, guild_id, channel_id, vector) VALUES (1, 7, 1, 10, ?)",
            (vectors(1, 8)[0].tobytes(),),
        )
        conn.execute("INSERT INTO messages_fts(rowid, terms) VALUES (7, 'kept across the upgrade')")
        conn.execute("INSERT INTO channels(guild_id, channel_id, read_space_id) VALUES (1, 10, 1)")
    conn.close()


async def test_an_older_database_is_upgraded_and_keeps_its_data(db_path):
    make_version_1_database(db_path)
    assert "migrations" not in tables_of(db_path)

    store = await SQLiteStore.open(db_path)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        assert tables_of(db_path) >= TABLES
        assert (await store.get_messages([7]))[7].content == "kept across the upgrade"
        assert await store.count_vectors(1, 1, 10) == 1
        assert (await store.get_space(1)).spec == SPACE_A
        assert (await store.get_channel(1, 10)).read_space_id == 1
        assert [i for i, _ in await store.search_text(1, 10, "upgrade", 5)] == [7]
    finally:
        await store.close()


async def test_a_database_from_a_newer_version_is_refused_and_left_untouched(db_path):
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version(version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.close()

    with pytest.raises(StoreError) as info:
        await SQLiteStore.open(db_path)

    message = str(info.value)
    assert str(db_path) in message
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this code ({SCHEMA_VERSION})" in message
    assert "upgrade qwen3-memory" in message
    assert tables_of(db_path) == {"schema_version"}  # nothing applied on top of a future schema


async def test_a_file_that_is_not_a_database_is_a_store_error(db_path):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not an sqlite database, just some text that fills a page. " * 100)

    threads_before = set(threading.enumerate())

    with pytest.raises(StoreError, match="restore a backup"):
        await SQLiteStore.open(db_path)

    await asyncio.sleep(0.05)
    leftover = [t for t in set(threading.enumerate()) - threads_before if t.is_alive() and not t.daemon]
    assert leftover == [], "the refused connection must be closed, or its thread keeps the process from exiting"


def assert_one_line_naming(message: str, path: Path) -> None:
    assert "\n" not in message and str(path) in message
    assert "python -m qwen3_memory.migration restore --backup-path" in message and "backups" in message


async def test_an_empty_database_file_is_refused_not_started_as_an_empty_memory(db_path):
    db_path.parent.mkdir(parents=True)
    db_path.touch()

    with pytest.raises(StoreError, match=r"is empty \(0 bytes\)") as info:
        await SQLiteStore.open(db_path)

    assert_one_line_naming(str(info.value), db_path)
    assert db_path.stat().st_size == 0 and sorted(db_path.parent.iterdir()) == [db_path]


async def test_a_missing_database_file_starts_a_new_memory(db_path):
    store = await SQLiteStore.open(db_path)
    await store.close()
    assert tables_of(db_path) >= TABLES


async def test_a_database_with_scrambled_pages_is_refused_at_open(db_path):
    store = await SQLiteStore.open(db_path)
    await store.add_messages([message(i, f"message {i} about topic {i % 17} and more words") for i in range(1, 401)])
    await store.close()
    with sqlite3.connect(db_path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    assert pages > 20
    data = bytearray(db_path.read_bytes())
    start = (pages // 2) * page_size
    data[start : start + 4 * page_size] = np.random.default_rng(7).bytes(4 * page_size)
    db_path.write_bytes(bytes(data))

    with pytest.raises(StoreError, match="cannot open the memory database") as info:
        await SQLiteStore.open(db_path)

    assert_one_line_naming(str(info.value), db_path)


# ----------------------------------------------------------------------------------------------- disk footprint


async def test_a_sqlite_footprint_is_the_database_with_its_log_and_the_index_files(tmp_path, db_path):
    vectors_dir = tmp_path / "vectors"
    s = await SQLiteStore.open(db_path, vectors_dir)
    try:
        space = await s.ensure_space(SPACE_A)
        batch = await s.add_messages([message(i, f"text {i}") for i in range(1, 6)])
        await s.put_vectors(space, batch, vectors(5, SPACE_A.dimension))
        await s.flush()

        footprint = await s.disk_footprint()

        database = sum(p.stat().st_size for p in (db_path, db_path.with_name(db_path.name + "-wal")) if p.exists())
    finally:
        await s.close()
    index_files = sum(p.stat().st_size for p in vectors_dir.rglob("*") if p.is_file())
    assert footprint.directory == db_path.parent
    assert footprint.database_bytes == database > 0
    assert footprint.index_bytes == index_files > 0
    assert footprint.total_bytes == database + index_files


@pytest.mark.postgres_only
async def test_a_server_store_has_no_footprint_on_this_machine(store):
    await store.add_messages([message(1, "text")])

    assert await store.disk_footprint() == DiskFootprint()


# ----------------------------------------------------------------------------------------------- messages


async def test_new_messages_are_stored_and_returned_for_embedding(store):
    batch = [message(1, "hello there"), message(2, "general kenobi")]

    assert await store.add_messages(batch) == batch
    assert await store.get_messages([1, 2]) == {1: batch[0], 2: batch[1]}
    assert await store.count_messages(1, 10) == 2


async def test_adding_the_same_messages_again_needs_no_embedding(store):
    batch = [message(1, "hello there"), message(2, "general kenobi")]
    await store.add_messages(batch)

    assert await store.add_messages(batch) == []
    assert await store.count_messages(1, 10) == 2


async def test_an_edit_returns_the_changed_message_and_drops_its_vectors_in_every_space(store, spaces):
    a, b = spaces
    original = [message(1, "the meeting is on monday"), message(2, "bring snacks")]
    await store.add_messages(original)
    await store.put_vectors(a, original, vectors(2, a.dimension))
    await store.put_vectors(b, original, vectors(2, b.dimension))

    edited = replace(original[0], content="the meeting moved to tuesday", edited_at=1_800_000_000.0)
    changed = await store.add_messages([edited, original[1]])

    assert changed == [edited]
    assert (await store.get_messages([1]))[1] == edited
    for space in (a, b):
        assert set(await store.get_vectors(space.id, [1, 2])) == {2}  # only the edited one lost its vector
    assert [m.id for m in await store.messages_missing_vectors(a.id, 1, 10)] == [1]


async def test_an_edit_replaces_the_words_bm25_finds(store):
    await store.add_messages([message(1, "the meeting is on monday")])
    await store.add_messages([replace(message(1, "the meeting moved to tuesday"), edited_at=1.0)])

    assert await store.search_text(1, 10, "monday", 5) == []
    assert [i for i, _ in await store.search_text(1, 10, "tuesday", 5)] == [1]


async def test_deleting_a_message_cascades_to_its_vectors_in_every_space_and_to_bm25(store, spaces):
    a, b = spaces
    batch = [message(1, "delete me please"), message(2, "keep me please")]
    await store.add_messages(batch)
    await store.put_vectors(a, batch, vectors(2, a.dimension))
    await store.put_vectors(b, batch, vectors(2, b.dimension))

    deleted = await store.delete_messages([1, 999])  # an unknown id is ignored

    assert deleted == [batch[0]]
    assert await store.get_messages([1, 2]) == {2: batch[1]}
    assert await store.vector_counts(1, 10) == {a.id: 1, b.id: 1}
    assert await store.get_vectors(a.id, [1]) == {} and await store.get_vectors(b.id, [1]) == {}
    assert [i for i, _ in await store.search_text(1, 10, "please", 5)] == [2]
    if isinstance(store, SQLiteStore):  # FTS5 is a table of its own there (Postgres keeps a tsvector column)
        assert (await store.fetchone("SELECT COUNT(*) FROM messages_fts"))[0] == 1


async def test_scrolling_a_channel_follows_message_ids(store):
    await store.add_messages([message(i, f"m{i}") for i in (5, 1, 3)] + [message(4, "other", channel_id=11)])

    assert [m.id for m in await store.scroll_messages(1, 10)] == [1, 3, 5]
    assert [m.id for m in await store.scroll_messages(1, 10, after_id=1, limit=1)] == [3]


# ----------------------------------------------------------------------------------------------- vectors


async def test_vectors_round_trip_bit_for_bit(store, spaces):
    a, _ = spaces
    batch = [message(1, "one"), message(2, "two")]
    await store.add_messages(batch)
    v = vectors(2, a.dimension)

    assert await store.put_vectors(a, batch, v) == batch

    ids, loaded, _ = await store.load_vectors(a, 1, 10)
    assert ids.tolist() == [1, 2] and ids.dtype == np.int64
    assert loaded.dtype == np.float32 and loaded.shape == (2, a.dimension)
    np.testing.assert_array_equal(loaded, v)


async def test_put_vectors_refuses_a_wrong_dimension_and_writes_nothing(store, spaces):
    a, _ = spaces
    batch = [message(1, "one")]
    await store.add_messages(batch)

    with pytest.raises(DimensionMismatch, match=f"holds {a.dimension}-d vectors, got 5-d"):
        await store.put_vectors(a, batch, vectors(1, 5))

    assert await store.count_vectors(a.id, 1, 10) == 0


async def test_putting_vectors_again_is_idempotent(store, spaces):
    a, _ = spaces
    batch = [message(1, "one")]
    await store.add_messages(batch)
    await store.put_vectors(a, batch, vectors(1, a.dimension, seed=1))
    newer = vectors(1, a.dimension, seed=2)

    await store.put_vectors(a, batch, newer)

    assert await store.count_vectors(a.id, 1, 10) == 1
    np.testing.assert_array_equal((await store.get_vectors(a.id, [1]))[1], newer[0])


async def test_put_vectors_skips_messages_edited_since_they_were_embedded(store, spaces):
    a, _ = spaces
    before = [message(1, "old words"), message(2, "unchanged")]
    await store.add_messages(before)
    await store.add_messages([replace(before[0], content="new words", edited_at=1.0)])  # edited meanwhile

    written = await store.put_vectors(a, before, vectors(2, a.dimension))

    assert written == [before[1]]
    assert set(await store.get_vectors(a.id, [1, 2])) == {2}


async def test_put_vectors_skips_messages_deleted_since_they_were_embedded(store, spaces):
    a, _ = spaces
    batch = [message(1, "gone soon"), message(2, "stays")]
    await store.add_messages(batch)
    await store.delete_messages([1])

    assert await store.put_vectors(a, batch, vectors(2, a.dimension)) == [batch[1]]
    assert await store.count_vectors(a.id, 1, 10) == 1


async def test_every_vector_change_bumps_the_channels_generation(store, spaces):
    a, b = spaces
    batch = [message(1, "one"), message(2, "two")]
    await store.add_messages(batch + [message(3, "elsewhere", channel_id=11)])
    generations = [await store.vector_generation(a.id, 1, 10)]

    await store.put_vectors(a, batch, vectors(2, a.dimension))  # insert
    generations.append(await store.vector_generation(a.id, 1, 10))
    await store.put_vectors(a, batch[:1], vectors(1, a.dimension, seed=5))  # update
    generations.append(await store.vector_generation(a.id, 1, 10))
    await store.delete_messages([2])  # delete (cascade)
    generations.append(await store.vector_generation(a.id, 1, 10))

    assert generations[0] == 0
    assert generations == sorted(set(generations)), f"strictly increasing: {generations}"
    assert await store.vector_generation(b.id, 1, 10) == 0  # another space: untouched
    assert await store.vector_generation(a.id, 1, 11) == 0  # another channel: untouched


async def test_deleting_a_spaces_vectors_in_a_channel_leaves_other_spaces_alone(store, spaces):
    a, b = spaces
    batch = [message(1, "one"), message(2, "two")]
    await store.add_messages(batch)
    await store.put_vectors(a, batch, vectors(2, a.dimension))
    await store.put_vectors(b, batch, vectors(2, b.dimension))

    assert await store.delete_space_vectors(a.id, 1, 10) == 2
    assert await store.vector_counts(1, 10) == {b.id: 2}


# ----------------------------------------------------------------------------------------------- spaces


async def test_a_space_is_registered_once_by_its_key(store):
    first = await store.ensure_space(SPACE_A)
    again = await store.ensure_space(SPACE_A)
    moved = await store.ensure_space(replace(SPACE_A, source="/models/a"))  # same vectors, new location

    assert first.id == again.id == moved.id
    assert (await store.get_space(first.id)).spec.load_source == "/models/a"
    assert [s.id for s in await store.list_spaces()] == [first.id]


async def test_a_different_dimension_is_a_different_space(store):
    qwen3 = PROFILES["qwen3_medium_performance"].embedding
    native = await store.ensure_space(qwen3)
    cut = await store.ensure_space(qwen3.with_dimension(256))

    assert native.id != cut.id
    assert (native.dimension, cut.dimension) == (1024, 256)


async def test_an_unknown_space_id_is_a_store_error(store):
    with pytest.raises(StoreError, match="space 42 does not exist"):
        await store.get_space(42)


# ----------------------------------------------------------------------------------------------- channel pointers


async def test_a_new_channel_reads_from_and_writes_to_the_default_space(store, spaces):
    a, _ = spaces

    state = await store.ensure_channel(1, 10, a.id)

    assert (state.read_space_id, state.write_space_ids, state.enabled) == (a.id, (a.id,), True)
    assert (await store.ensure_channel(1, 10, 999)).read_space_id == a.id  # existing state is kept


async def test_the_read_pointer_refuses_a_space_the_channel_does_not_write_to(store, spaces):
    a, b = spaces
    await store.ensure_channel(1, 10, a.id)

    with pytest.raises(StoreError, match=f"does not write to space {b.id}"):
        await store.set_read_space(1, 10, b.id)

    assert (await store.get_channel(1, 10)).read_space_id == a.id


async def test_the_read_pointer_moves_to_a_write_space_and_back(store, spaces):
    a, b = spaces
    await store.ensure_channel(1, 10, a.id)
    await store.add_write_space(1, 10, b.id)

    await store.set_read_space(1, 10, b.id)
    swapped = await store.get_channel(1, 10)
    await store.set_read_space(1, 10, a.id)
    rolled_back = await store.get_channel(1, 10)

    assert swapped.read_space_id == b.id and swapped.write_space_ids == (a.id, b.id)
    assert rolled_back.read_space_id == a.id


async def test_removing_a_write_space_stops_dual_writes(store, spaces):
    a, b = spaces
    await store.ensure_channel(1, 10, a.id)
    await store.add_write_space(1, 10, b.id)

    await store.remove_write_space(1, 10, a.id)

    assert (await store.get_channel(1, 10)).write_space_ids == (b.id,)


async def test_channels_are_listed_per_guild_and_can_be_disabled(store, spaces):
    a, _ = spaces
    for guild, channel in ((1, 10), (1, 11), (2, 10)):
        await store.ensure_channel(guild, channel, a.id)
    await store.set_channel_enabled(1, 11, False)

    assert [(c.channel_id, c.enabled) for c in await store.list_channels(1)] == [(10, True), (11, False)]
    assert len(await store.list_channels()) == 3


async def test_checksums_hash_ids_contents_and_float32_vectors_in_id_order(store, spaces):
    """One definition on both backends: move-store compares SQLite's digests with Postgres'."""
    a, _ = spaces
    batch = [message(3, "third"), message(1, "first, with ünïcode"), message(2, "second", channel_id=11)]
    await store.add_messages(batch)
    v = vectors(3, a.dimension)
    await store.put_vectors(a, batch, v)

    sums = await store.checksums(1, 10, a.id)

    expected_messages = hashlib.sha256(b"1\tfirst, with \xc3\xbcn\xc3\xafcode\n3\tthird\n").hexdigest()
    expected_vectors = hashlib.sha256(
        (1).to_bytes(8, "little", signed=True) + v[1].astype("<f4").tobytes()
        + (3).to_bytes(8, "little", signed=True) + v[0].astype("<f4").tobytes()
    ).hexdigest()  # fmt: skip
    assert sums == {"messages": 2, "messages_sha": expected_messages, "vectors": 2, "vectors_sha": expected_vectors}
    assert (await store.checksums(1, 10))["vectors"] == 0


# ----------------------------------------------------------------------------------------------- locking


async def test_a_database_locked_by_another_process_is_a_clear_store_locked(db_path, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    store = await SQLiteStore.open(db_path)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a second writer (another bot, a migration command) holds the lock

        with pytest.raises(StoreLocked) as info:
            await store.add_messages([message(1, "blocked")])

        text = str(info.value)
        assert str(db_path) in text and "locked" in text
        assert "stop the other writer" in text
        other.execute("ROLLBACK")
        assert await store.add_messages([message(1, "after the lock")]) != []  # usable again
    finally:
        other.close()
        await store.close()


async def test_reads_are_not_blocked_by_another_writer(sqlite_store, db_path):
    store = sqlite_store
    await store.add_messages([message(1, "readable while locked")])
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        assert (await store.get_messages([1]))[1].content == "readable while locked"
    finally:
        other.execute("ROLLBACK")
        other.close()


# ----------------------------------------------------------------------------------------------- BM25


async def test_bm25_finds_english_words_in_the_queried_channel_only(store):
    text = "the deployment pipeline broke after the kubernetes upgrade"
    await store.add_messages(
        [
            message(1, text, guild_id=1, channel_id=10),
            message(2, "lunch at noon", guild_id=1, channel_id=10),
            message(3, text, guild_id=1, channel_id=11),  # same guild, other channel
            message(4, text, guild_id=2, channel_id=10),  # other guild, same channel id
            message(5, "kubernetes is fine", guild_id=1, channel_id=10),
        ]
    )

    hits = await store.search_text(1, 10, "Kubernetes upgrade", 10)

    assert [i for i, _ in hits] == [1, 5]  # both words beat one word; nothing from elsewhere
    assert hits[0][1] > hits[1][1] > 0  # higher is better


async def test_bm25_finds_chinese_words_inside_a_sentence(store):
    await store.add_messages(
        [
            message(1, "我们明天去北京吃烤鸭"),
            message(2, "今天上海下雨了"),
            message(3, "我们明天去北京吃烤鸭", channel_id=11),
            message(4, "北京的天气很好"),
        ]
    )

    roast_duck = await store.search_text(1, 10, "烤鸭", 10)
    beijing = await store.search_text(1, 10, "北京", 10)

    assert [i for i, _ in roast_duck] == [1]  # a word inside a run of characters (bigrams), not the whole run
    assert sorted(i for i, _ in beijing) == [1, 4]
    assert await store.search_text(1, 10, "广州", 10) == []


async def test_bm25_of_a_query_without_words_is_empty(store):
    await store.add_messages([message(1, "something")])

    assert await store.search_text(1, 10, "?! ...", 10) == []


async def test_the_store_implements_the_one_backend_protocol(any_store):
    from qwen3_memory.backends import Store

    assert isinstance(any_store, Store)
    protocol = [n for n in vars(Store) if not n.startswith("_")] + list(Store.__annotations__)
    assert [n for n in protocol if not hasattr(any_store, n)] == []
    assert any_store.kind in ("sqlite", "postgres") and any_store.where


async def test_one_put_vectors_call_makes_vectors_searchable_and_one_delete_forgets_them(any_store):
    space = await any_store.ensure_space(EmbeddingSpace(model="test/one-call", dimension=4))
    batch = [message(i, f"line {i}") for i in (1, 2, 3)]
    await any_store.add_messages(batch)
    vectors = np.eye(4, dtype=np.float32)[:3]

    assert [m.id for m in await any_store.put_vectors(space, batch, vectors)] == [1, 2, 3]
    assert [i for i, _ in await any_store.search(space, 1, 10, vectors[1], 1)] == [2]
    assert len(await any_store.index_info(space, 1, 10)) == 3

    await any_store.delete_messages([2])
    assert 2 not in [i for i, _ in await any_store.search(space, 1, 10, vectors[1], 3)]
    assert len(await any_store.index_info(space, 1, 10)) == 2


async def test_writes_wait_out_another_writer_while_this_process_reads(sqlite_store, db_path):
    """Another process committing all the time while this one reads and writes: every write waits its turn
    (SQLite can answer busy at once when a commit lands while a write lock is taken; that is retried until
    the busy timeout), and reads go on beside the writes."""
    store = sqlite_store
    await store.add_messages([message(i, f"line {i} of a long channel") for i in range(1, 3001)])
    stop = threading.Event()

    def other_process_writes() -> None:
        conn = sqlite3.connect(db_path, isolation_level=None, timeout=5)
        try:
            n = 0
            while not stop.is_set():
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("UPDATE messages SET author_name = ? WHERE id = 1", (f"other {n}",))
                conn.execute("COMMIT")
                n += 1
                time.sleep(0.0005)
        finally:
            conn.close()

    async def read() -> None:
        for _ in range(40):
            assert len(await store.fetchall("SELECT id, content FROM messages")) >= 3000

    async def write() -> None:
        for i in range(40):
            await store.add_messages([message(10_000 + i, f"new line {i}")])

    writer = threading.Thread(target=other_process_writes)
    writer.start()
    try:
        await asyncio.gather(read(), read(), write())
    finally:
        stop.set()
        writer.join()
    assert await store.count_messages(1, 10) == 3040


async def test_a_closed_memory_is_one_file_without_a_write_ahead_log(db_path):
    store = await SQLiteStore.open(db_path)
    await store.add_messages([message(i, f"line {i}") for i in range(1, 50)])
    assert db_path.with_name(db_path.name + "-wal").exists()

    await store.close()

    assert not db_path.with_name(db_path.name + "-wal").exists()  # folded in: a copy of the file is complete
    with sqlite3.connect(f"file:{db_path}?immutable=1", uri=True) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 49


async def test_a_write_is_read_back_at_once_while_other_reads_are_under_way(sqlite_store):
    """Reads share one read-only connection; each must start its own snapshot, so that what was just
    committed is seen even while other reads run (a job created and read back at once, under capture)."""
    store = sqlite_store
    await store.add_messages([message(i, f"line {i} of a long channel") for i in range(1, 2001)])
    stop = asyncio.Event()

    async def keep_reading() -> None:
        while not stop.is_set():
            await store.fetchall("SELECT id, content FROM messages")

    readers = [asyncio.create_task(keep_reading()) for _ in range(3)]
    try:
        for i in range(300):
            async with store.transaction() as db:
                await db.execute(
                    "INSERT INTO opted_out_users(guild_id, user_id, created_at) VALUES (?,?,?)", (1, i, 0.0)
                )
            assert await store.fetchone("SELECT user_id FROM opted_out_users WHERE user_id = ?", (i,)) is not None
    finally:
        stop.set()
        await asyncio.gather(*readers)
