"""What only the PostgreSQL backend does: a vector table per space with its HNSW index, halfvec for
wide spaces, filtered search with iterative scans, the read-pointer check, retries, concurrent schema
upgrades, bulk COPY loads, checksums, and DSNs that never show their password."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import numpy as np
import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from qwen3_memory.backends.postgres.dsn import redact_dsn
from qwen3_memory.backends.postgres.schema import PG_SCHEMA_VERSION
from qwen3_memory.backends.postgres.store import BULK_ROWS, PostgresStore
from qwen3_memory.errors import DimensionMismatch, ReadSpaceMoved, StoreError, StoreLocked
from qwen3_memory.records import StoredMessage
from qwen3_memory.space import EmbeddingSpace
from tests.factories import message

pytestmark = pytest.mark.postgres

SPACE_A = EmbeddingSpace(model="test/space-a", dimension=8)
SPACE_B = EmbeddingSpace(model="test/space-b", dimension=4)
WIDE = EmbeddingSpace(model="test/wide", dimension=2048)


def vectors(n: int, dimension: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dimension)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def with_password(dsn: str, password: str) -> str:
    return make_conninfo(dsn, password=password)


@pytest.fixture
async def store(pg_dsn):
    s = await PostgresStore.open(pg_dsn)
    yield s
    await s.close()


async def sql(dsn: str, query: str, params: tuple = ()) -> list[tuple]:
    """A query on a connection of its own (another process, as far as the store can tell)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall() if cur.description else []


def channel_messages(n: int, channels: int) -> list[StoredMessage]:
    return [message(i + 1, f"message {i}", channel_id=100 + i % channels) for i in range(n)]


# ----------------------------------------------------------------------------------------------- vector tables


async def test_each_space_gets_a_vector_table_with_an_hnsw_cosine_index(store, pg_dsn):
    space = await store.ensure_space(SPACE_A)
    table = f"space_vectors_{space.id}"

    column = await sql(
        pg_dsn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attname = 'embedding'", (table,)
    )  # fmt: skip
    indexes = [r[0] for r in await sql(pg_dsn, "SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,))]

    assert column == [("vector(8)",)]
    assert any("USING hnsw (embedding vector_cosine_ops)" in d for d in indexes), indexes
    assert any("(guild_id, channel_id, message_id)" in d for d in indexes), indexes
    assert await store.integrity_check() == "ok"


async def test_registering_a_space_again_keeps_its_table_and_vectors(store):
    first = await store.ensure_space(SPACE_A)
    batch = [message(1, "one")]
    await store.add_messages(batch)
    await store.put_vectors(first, batch, vectors(1, 8))

    again = await store.ensure_space(replace(SPACE_A, source="/models/a"))

    assert again.id == first.id and await store.count_vectors(first.id, 1, 10) == 1


async def test_hnsw_parameters_come_from_open(pg_dsn):
    store = await PostgresStore.open(pg_dsn, hnsw_m=8, hnsw_ef_construction=40)
    try:
        space = await store.ensure_space(SPACE_A)
        rows = await sql(
            pg_dsn, "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (f"space_vectors_{space.id}_hnsw",)
        )
    finally:
        await store.close()

    assert "m='8'" in rows[0][0] and "ef_construction='40'" in rows[0][0]


async def test_a_space_over_2000_dimensions_is_stored_as_halfvec(store, pg_dsn):
    wide = await store.ensure_space(WIDE)
    batch = [message(1, "wide one"), message(2, "wide two")]
    await store.add_messages(batch)
    v = vectors(2, WIDE.dimension)

    await store.put_vectors(wide, batch, v)
    ids, loaded, _ = await store.load_vectors(wide, 1, 10)
    indexes = await sql(pg_dsn, "SELECT indexdef FROM pg_indexes WHERE tablename = %s", (f"space_vectors_{wide.id}",))

    assert any("halfvec_cosine_ops" in r[0] for r in indexes)
    assert ids.tolist() == [1, 2] and loaded.dtype == np.float32 and loaded.shape == (2, WIDE.dimension)
    np.testing.assert_allclose(loaded, v, atol=1e-3)  # float16 storage
    hits = await store.search_vectors(wide, 1, 10, v[:1], 2)
    assert hits[0][0][0] == 1 and hits[0][0][1] == pytest.approx(1.0, abs=1e-3)
    assert (await store.checksums(1, 10, wide.id))["vectors_sha"] is None  # float16 never matches a float32 source


async def test_vectors_round_trip_bit_for_bit_through_both_write_paths(store):
    a = await store.ensure_space(SPACE_A)
    batch = channel_messages(BULK_ROWS + 6, channels=1)
    await store.add_messages(batch)
    v = vectors(len(batch), a.dimension)

    await store.put_vectors(a, batch[:5], v[:5])  # executemany
    await store.put_vectors(a, batch[5:], v[5:])  # binary COPY

    ids, loaded, _ = await store.load_vectors(a, 1, 100)
    assert ids.tolist() == [m.id for m in batch]
    np.testing.assert_array_equal(loaded, v)
    np.testing.assert_array_equal((await store.get_vectors(a.id, [3]))[3], v[2])


# ----------------------------------------------------------------------------------------------- bulk loads


async def test_bulk_put_vectors_is_idempotent_and_replaces_vectors(store):
    a = await store.ensure_space(SPACE_A)
    batch = channel_messages(300, channels=1)
    await store.add_messages(batch)

    assert await store.put_vectors(a, batch, vectors(300, 8, seed=1)) == batch
    generation = await store.vector_generation(a.id, 1, 100)
    newer = vectors(300, 8, seed=2)
    assert await store.put_vectors(a, batch, newer) == batch

    ids, loaded, after = await store.load_vectors(a, 1, 100)
    assert len(ids) == 300 and await store.count_vectors(a.id, 1, 100) == 300
    np.testing.assert_array_equal(loaded, newer)
    assert after > generation


async def test_bulk_put_vectors_skips_edited_and_deleted_messages(store):
    a = await store.ensure_space(SPACE_A)
    batch = channel_messages(200, channels=1)
    await store.add_messages(batch)
    await store.add_messages([replace(batch[0], content="edited meanwhile", edited_at=1.0)])
    await store.delete_messages([batch[1].id])

    written = await store.put_vectors(a, batch, vectors(200, 8))

    assert written == batch[2:]
    assert [m.id for m in await store.messages_missing_vectors(a.id, 1, 100)] == [batch[0].id]


async def test_put_vectors_refuses_a_wrong_dimension_and_non_finite_vectors(store):
    a = await store.ensure_space(SPACE_A)
    batch = [message(1, "one")]
    await store.add_messages(batch)
    broken = vectors(1, 8)
    broken[0, 3] = np.nan

    with pytest.raises(DimensionMismatch, match="holds 8-d vectors, got 5-d"):
        await store.put_vectors(a, batch, vectors(1, 5))
    with pytest.raises(StoreError, match="NaN or infinity"):
        await store.put_vectors(a, batch, broken)
    assert await store.count_vectors(a.id, 1, 10) == 0


async def test_copying_messages_and_vectors_twice_adds_nothing_the_second_time(store):
    a = await store.ensure_space(SPACE_A)
    batch = channel_messages(150, channels=2) + [message(999, "北京的天气很好", channel_id=100)]
    ids = np.array([m.id for m in batch], dtype=np.int64)
    guilds = np.array([m.guild_id for m in batch], dtype=np.int64)
    channels = np.array([m.channel_id for m in batch], dtype=np.int64)
    v = vectors(len(batch), 8)

    assert await store.copy_messages(batch) == len(batch)
    assert await store.copy_messages(batch) == 0
    assert await store.copy_vectors(a, ids, guilds, channels, v) == len(batch)
    assert await store.copy_vectors(a, ids, guilds, channels, vectors(len(batch), 8, seed=9)) == 0

    assert (await store.get_messages([5]))[5] == batch[4]
    assert await store.vector_counts(1, 100) == {a.id: 76}
    np.testing.assert_array_equal((await store.get_vectors(a.id, [5]))[5], v[4])  # the first copy is kept
    assert [i for i, _ in await store.search_text(1, 100, "北京", 5)] == [999]  # terms computed on copy


# ----------------------------------------------------------------------------------------------- search


async def test_a_filtered_hnsw_search_keeps_its_recall_with_iterative_scans(pg_dsn):
    """3000 vectors in 30 channels: the HNSW graph alone would return about k/30 hits per channel."""
    await sql(pg_dsn, f"ALTER DATABASE {conninfo_to_dict(pg_dsn)['dbname']} SET enable_seqscan = off")
    store = await PostgresStore.open(pg_dsn)
    try:
        space = await store.ensure_space(EmbeddingSpace(model="test/recall", dimension=32))
        await sql(pg_dsn, f"DROP INDEX space_vectors_{space.id}_by_channel")  # leave the planner only HNSW
        batch = channel_messages(3000, channels=30)
        v = vectors(3000, 32, seed=3)
        await store.add_messages(batch)
        await store.put_vectors(space, batch, v)
        plan = await sql(
            pg_dsn, f"EXPLAIN SELECT message_id FROM space_vectors_{space.id} WHERE guild_id = 1 AND channel_id = 107 "
            f"ORDER BY embedding <=> '{np.array2string(v[0], separator=',', max_line_width=10**6)}' LIMIT 10"
        )  # fmt: skip
        assert "hnsw" in " ".join(r[0] for r in plan)

        channel = np.array([m.channel_id for m in batch])
        recalls = []
        for channel_id in (100, 107, 129):
            rows = np.flatnonzero(channel == channel_id)
            queries = vectors(10, 32, seed=channel_id)
            hits = await store.search_vectors(space, 1, channel_id, queries, 10, ef_search=40)
            for q, found in zip(queries, hits):
                exact = {batch[r].id for r in rows[np.argsort(-(v[rows] @ q))[:10]]}
                assert len(found) == 10
                assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
                recalls.append(len(exact & {i for i, _ in found}) / 10)
        assert np.mean(recalls) >= 0.9, recalls
    finally:
        await store.close()


async def test_scores_are_cosine_similarities_like_faiss_inner_products(store):
    a = await store.ensure_space(SPACE_A)
    batch = [message(i, f"m{i}") for i in range(1, 21)]
    v = vectors(20, 8)
    await store.add_messages(batch)
    await store.put_vectors(a, batch, v)
    scores, ids = await store.search_many(a, 1, 10, v[:2], 25)
    index = await store.index_info(a, 1, 10)

    assert ids.shape == (2, 25) and ids.dtype == np.int64 and scores.dtype == np.float32
    assert ids[:, 0].tolist() == [1, 2] and (ids[:, 20:] == -1).all() and np.isneginf(scores[:, 20:]).all()
    np.testing.assert_allclose(scores[0, :20], np.sort(v @ v[0])[::-1], atol=1e-5)
    assert (len(index), index.kind, index.dimension) == (20, "pgvector-hnsw", 8)
    assert (await store.search_many(a, 1, 10, v[2:3], 1))[1].tolist() == [[3]]


async def test_a_search_that_expects_the_read_space_fails_once_the_pointer_moved(store):
    a, b = await store.ensure_space(SPACE_A), await store.ensure_space(SPACE_B)
    batch = [message(1, "one")]
    await store.add_messages(batch)
    await store.put_vectors(a, batch, vectors(1, 8))
    await store.put_vectors(b, batch, vectors(1, 4))
    await store.ensure_channel(1, 10, a.id)
    await store.add_write_space(1, 10, b.id)
    assert await store.search(a, 1, 10, vectors(1, 8)[0], 5, expect_read_space=True) != []
    await store.set_read_space(1, 10, b.id)  # another process swaps the channel

    with pytest.raises(ReadSpaceMoved, match=f"now reads space {b.id}, not space {a.id}"):
        await store.search(a, 1, 10, vectors(1, 8)[0], 5, expect_read_space=True)
    assert await store.search(b, 1, 10, vectors(1, 4)[0], 5, expect_read_space=True) != []
    assert await store.search(a, 1, 10, vectors(1, 8)[0], 5) != []  # without the check: old space still there


# ----------------------------------------------------------------------------------------------- concurrency


async def test_several_processes_opening_a_new_database_apply_the_schema_once(pg_dsn):
    stores = await asyncio.gather(*(PostgresStore.open(pg_dsn) for _ in range(4)))
    try:
        versions = await stores[0].fetchall("SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in versions] == list(range(1, PG_SCHEMA_VERSION + 1))
        spaces = await asyncio.gather(*(s.ensure_space(SPACE_A) for s in stores))
        assert len({s.id for s in spaces}) == 1
    finally:
        for s in stores:
            await s.close()


async def test_a_serialization_failure_is_retried_from_the_start(store, pg_dsn):
    a = await store.ensure_space(SPACE_A)
    await store.ensure_channel(1, 10, a.id)
    attempts = []

    async def toggle(conn: psycopg.AsyncConnection) -> int:
        attempts.append(1)
        enabled = (await (await conn.execute("SELECT enabled FROM channels WHERE channel_id = 10")).fetchone())[0]
        if len(attempts) == 1:  # another process changes the row after our snapshot was taken
            await sql(pg_dsn, "UPDATE channels SET enabled = enabled + 10 WHERE channel_id = 10")
        await conn.execute("UPDATE channels SET enabled = %s WHERE channel_id = 10", (enabled + 1,))
        return enabled

    seen = await store.run_in_transaction(toggle, isolation="SERIALIZABLE")

    assert len(attempts) == 2 and seen == 11
    assert (await store.fetchone("SELECT enabled FROM channels WHERE channel_id = ?", (10,)))[0] == 12


async def test_a_conflict_that_keeps_recurring_becomes_store_locked(pg_dsn):
    store = await PostgresStore.open(pg_dsn, retry_attempts=2)
    try:

        async def always_conflicts(conn: psycopg.AsyncConnection) -> None:
            raise pg_errors.SerializationFailure("could not serialize access")

        with pytest.raises(StoreLocked, match="kept conflicting"):
            await store.run_in_transaction(always_conflicts)
    finally:
        await store.close()


async def test_concurrent_writers_of_one_channel_all_land(store):
    a = await store.ensure_space(SPACE_A)
    batches = [channel_messages(400, channels=1)[i::4] for i in range(4)]
    for batch in batches:
        await store.add_messages(batch)

    await asyncio.gather(*(store.put_vectors(a, b, vectors(len(b), 8, seed=i)) for i, b in enumerate(batches)))

    assert await store.count_vectors(a.id, 1, 100) == 400


async def test_connections_the_server_dropped_are_replaced_without_an_error(store, pg_dsn):
    await store.count_messages(1, 10)
    dbname = conninfo_to_dict(pg_dsn)["dbname"]

    killed = await sql(
        pg_dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (dbname,),
    )  # fmt: skip

    assert killed and await store.count_messages(1, 10) == 0


# ----------------------------------------------------------------------------------------------- portable SQL


async def test_the_transaction_adapter_runs_the_job_tables_portable_sql(store):
    from qwen3_memory.migration.jobs import JobStore

    a, b = await store.ensure_space(SPACE_A), await store.ensure_space(SPACE_B)
    jobs = JobStore(store)

    job = await jobs.create(a.id, b.id, "regenerate", 1, {"note": "50% done?"}, [(1, 10, 5), (1, 11, 7)])
    changed = await jobs.set_status(job.id, "running", unless=("cancelled",))
    await jobs.put_artifact(job.id, "map", b"\x00\x01")
    await jobs.put_artifact(job.id, "map", b"\x02")

    assert (await jobs.get(job.id)).options == {"note": "50% done?"}
    assert changed and (await jobs.get(job.id)).status == "running"
    assert await jobs.set_status(job.id, "paused", unless=("running",)) is False
    assert [c.channel_id for c in await jobs.channels(job.id)] == [10, 11]
    assert await jobs.artifact(job.id, "map") == b"\x02"


async def test_question_marks_inside_quotes_are_not_placeholders(store):
    async with store.transaction() as db:
        cur = await db.execute("SELECT ?::int + 1, 'why?', '100%'", (41,))
        row = await cur.fetchone()
        nothing = await (await db.execute("SELECT 1 WHERE false")).fetchall()
        update = await db.execute("UPDATE spaces SET model = model WHERE id = ?", (-1,))

    assert row == (42, "why?", "100%") and nothing == [] and update.rowcount == 0
    assert await update.fetchone() is None


# ----------------------------------------------------------------------------------------------- secrets


def test_redacted_dsns_name_the_server_but_not_the_password():
    assert (
        redact_dsn("postgresql://bot:hunter2@db.example:6543/memory") == "postgresql://bot:***@db.example:6543/memory"
    )
    assert "hunter2" not in redact_dsn("host=db.example user=bot password='hunter2' dbname=memory")
    assert "hunter2" not in redact_dsn("postgresql://bot@db.example/memory?password=hunter2")
    assert "hunter2" not in redact_dsn("postgresql://bot:hunter2@db.example:notaport/memory")


async def test_the_password_is_never_in_the_repr(pg_dsn):
    store = await PostgresStore.open(with_password(pg_dsn, "s3cret-pw"))  # trust auth ignores it
    try:
        assert "s3cret-pw" not in repr(store) and "s3cret-pw" not in store.dsn_for_logs
        assert conninfo_to_dict(pg_dsn)["dbname"] in repr(store)
    finally:
        await store.close()


async def test_an_unreachable_server_is_a_store_error_naming_it_without_the_password():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed

    with pytest.raises(StoreError) as info:
        await PostgresStore.open(f"postgresql://bot:s3cret-pw@127.0.0.1:{port}/memory", connect_timeout_s=2)

    text = str(info.value)
    assert f"127.0.0.1:{port}/memory" in text and "s3cret-pw" not in text
    assert "check that the server" in text
