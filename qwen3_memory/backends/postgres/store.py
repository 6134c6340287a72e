"""PostgreSQL store (psycopg 3 async pool + pgvector): the backend shared by several bot processes.

Same coroutines and return types as :class:`qwen3_memory.backends.sqlite.store.SQLiteStore`, so capture, recall,
the migration engine and the cogs run unchanged on either. What differs underneath:

- vectors live in one table per space (``space_vectors_<id>``) with an HNSW index: those tables
  *are* the indexes, there are no FAISS files to rebuild;
- every method runs in its own transaction on a pooled connection; serialization failures and
  deadlocks (several processes writing at once) are retried with jittered backoff, and server
  or pool failures become :class:`StoreError` / :class:`StoreLocked` naming the server (never its
  password: see :mod:`~qwen3_memory.backends.postgres.dsn`);
- bulk vector writes and reads go through binary ``COPY`` built and parsed with numpy (see
  :mod:`~qwen3_memory.backends.postgres.binary_copy`), so a migration backfill or an index load
  does not decode vectors one Python object at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from qwen3_memory.backends.checksums import vectors_digest
from qwen3_memory.backends.claims import AdvisoryClaims
from qwen3_memory.backends.lexical import fts_document
from qwen3_memory.backends.portable_reads import MESSAGE_COLUMNS, PortableReads, message_of
from qwen3_memory.backends.postgres.binary_copy import copy_row_dtype, decode_copy_vectors, encode_copy_vectors
from qwen3_memory.backends.postgres.dialect import portable_sql, tsquery_of
from qwen3_memory.backends.postgres.dsn import redact_dsn, scrub
from qwen3_memory.backends.postgres.schema import (
    PG_SCHEMA_MIGRATIONS,
    PG_SCHEMA_VERSION,
    SCHEMA_LOCK,
    space_table,
    space_table_script,
    vector_type,
)
from qwen3_memory.backends.postgres.transaction import PgTransaction
from qwen3_memory.backends.protocol import DiskFootprint, IndexInfo
from qwen3_memory.errors import DimensionMismatch, ReadSpaceMoved, StoreError, StoreLocked
from qwen3_memory.filters import NO_FILTERS, RecallFilters
from qwen3_memory.records import ChannelState, SpaceRecord, StoredMessage
from qwen3_memory.space import EmbeddingSpace

T = TypeVar("T")

RETRY_ATTEMPTS = 5
BULK_ROWS = 64  # from this many vectors on, put_vectors goes through COPY instead of executemany
THREAD_ROWS = 4096  # numpy packing of more rows than this runs in a worker thread
PGVECTOR_HNSW = "pgvector-hnsw"  # the index kind: every space's table carries one
HNSW_EF_SEARCH_MAX = 1000  # pgvector's upper bound for hnsw.ef_search
_NOT_A_WRITE_SPACE = (
    "channel {channel_id} does not write to space {space_id}; a read pointer may only move to a "
    "space that receives new messages"
)


# ---------------------------------------------------------------------------------------------- helpers of the store
def channel_search_sql(
    space: SpaceRecord, guild_id: int, channel_id: int, k: int, filters: RecallFilters
) -> tuple[sql.Composable, Callable[[np.ndarray], tuple]]:
    """The nearest-vectors query of one channel, and the parameters it takes for one query vector.

    Without filters the HNSW index answers (ORDER BY distance); with filters the passing messages are
    scored in a materialised step first, so Postgres cannot hand the ORDER BY to the graph walk and every
    one of them is compared: an exact search of the filtered subset.
    """
    kind, table = sql.SQL(vector_type(space.dimension)), sql.Identifier(space_table(space.id))
    if not filters.restricts:
        query = sql.SQL(
            "SELECT message_id, 1 - (embedding <=> %s::{kind}) FROM {table} WHERE guild_id = %s AND channel_id = %s "
            "ORDER BY embedding <=> %s::{kind} LIMIT %s"
        ).format(kind=kind, table=table)
        return query, lambda q: (q, guild_id, channel_id, q, k)
    condition, params = filters.sql("m")
    query = sql.SQL(
        "WITH scored AS MATERIALIZED (SELECT v.message_id, v.embedding <=> %s::{kind} AS distance "
        "FROM {table} v JOIN messages m ON m.id = v.message_id WHERE v.guild_id = %s AND v.channel_id = %s{condition}) "
        "SELECT message_id, 1 - distance FROM scored ORDER BY distance LIMIT %s"
    ).format(kind=kind, table=table, condition=sql.SQL(portable_sql(condition)))
    return query, lambda q: (q, guild_id, channel_id, *params, k)


def as_arrays(hits: Sequence[Sequence[tuple[int, float]]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query hit lists as FAISS-style (scores, ids) of shape (n, k): id -1 and score -inf past the hits."""
    scores = np.full((len(hits), k), -np.inf, dtype=np.float32)
    ids = np.full((len(hits), k), -1, dtype=np.int64)
    for row, found in enumerate(hits):
        found = found[:k]
        if found:
            ids[row, : len(found)] = [i for i, _ in found]
            scores[row, : len(found)] = [s for _, s in found]
    return scores, ids


def checked_vectors(space: SpaceRecord, count: int, vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as contiguous float32 (count, space dimension), or the error the caller should see."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != count:
        raise ValueError(f"expected {count} vectors, got shape {vectors.shape}")
    if vectors.shape[1] != space.dimension:
        raise DimensionMismatch(
            f"space {space.spec.key} holds {space.dimension}-d vectors, got {vectors.shape[1]}-d; "
            "the model's output dimension does not match the space (check model_overrides.embedding_dimension)"
        )
    if count and not np.isfinite(vectors).all():
        bad = int((~np.isfinite(vectors).all(axis=1)).sum())
        raise StoreError(
            f"{bad} of {count} vectors for space {space.spec.key} contain NaN or infinity, which pgvector "
            "refuses; the model's output is broken (check the device and the model files)"
        )
    return vectors


async def _off_loop(rows: int, fn: Callable[..., T], *args: Any) -> T:
    """Run numpy work of many rows in a worker thread; small batches are cheaper inline."""
    if rows > THREAD_ROWS:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


def _message_row(m: StoredMessage) -> tuple:
    """The values of :data:`MESSAGE_COLUMNS`, in order."""
    return (m.id, m.guild_id, m.channel_id, m.author_id, m.author_name, m.content, m.created_at, m.edited_at)


def _ids(messages: Sequence[StoredMessage]) -> list[int]:
    return [m.id for m in messages]


# ---------------------------------------------------------------------------------------------- the store


class PostgresStore(PortableReads):
    """The shared backend. Open with :meth:`open`; every method is a coroutine safe to call concurrently,
    from any number of processes."""

    kind = "postgres"
    shared_by_processes = True  # shard processes on several hosts share one memory
    file_backups = False  # the server's own backups (pg_dump, point-in-time recovery) cover it

    def __init__(
        self,
        pool: AsyncConnectionPool,
        dsn: str,
        hnsw_m: int,
        hnsw_ef_construction: int,
        retry_attempts: int,
        ef_search: int = 64,
    ) -> None:
        self._pool = pool
        self.ef_search = ef_search
        self._dsn = dsn
        self.dsn_for_logs = self.where = redact_dsn(dsn)  # ``where``: as SQLiteStore names its file
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.retry_attempts = retry_attempts

    def __repr__(self) -> str:
        return f"PostgresStore({self.dsn_for_logs})"

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        statement_timeout_ms: int = 30000,
        connect_timeout_s: float = 10.0,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        hnsw_ef_search: int = 64,
        retry_attempts: int = RETRY_ATTEMPTS,
    ) -> PostgresStore:
        """Connect, upgrade the schema (under an advisory lock), then open the connection pool.

        ``hnsw_m`` / ``hnsw_ef_construction`` apply to the HNSW indexes of spaces created from now on;
        ``hnsw_ef_search`` to every search.
        """
        server = redact_dsn(dsn)
        try:
            conn = await psycopg.AsyncConnection.connect(
                dsn, autocommit=True, connect_timeout=max(2, int(connect_timeout_s))
            )
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the memory database at {server} ({scrub(exc, dsn)}); check that the server "
                "is running and reachable and that memory_system.database_url / MEMORY_DATABASE_URL is right"
            ) from None
        try:
            await _upgrade_schema(conn, server)
        except psycopg.Error as exc:
            raise StoreError(
                f"{server}: cannot prepare the memory schema ({scrub(exc, dsn)}); the role needs CREATE on the "
                "database, and a superuser must have run CREATE EXTENSION vector if the role may not"
            ) from None
        finally:
            await conn.close()

        async def configure(conn: psycopg.AsyncConnection) -> None:
            await register_vector_async(conn)
            await conn.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")

        pool = AsyncConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            configure=configure,
            check=AsyncConnectionPool.check_connection,  # a server restart costs no failed request
            timeout=connect_timeout_s,
            name="qwen3-memory",
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout:
            await pool.close()
            raise StoreError(
                f"cannot open {min_size} connection(s) to the memory database at {server} within "
                f"{connect_timeout_s:.0f}s; check the server's max_connections and that it is reachable"
            ) from None
        return cls(pool, dsn, hnsw_m, hnsw_ef_construction, retry_attempts, hnsw_ef_search)

    async def close(self) -> None:
        await self._pool.close()

    def make_claims(self) -> AdvisoryClaims:
        """Job claims as session advisory locks, shared by every process on this server."""
        return AdvisoryClaims(self._dsn)

    async def flush(self) -> int:
        """Nothing to persist: committed rows are durable, and the server maintains their HNSW indexes."""
        return 0

    async def scrub(self) -> None:
        """Reclaim the dead rows a forget left (they stay in the table files until vacuumed): VACUUM the
        messages and every space's vector table. The server's backups and WAL archive are its own."""
        async with self._connection() as conn:
            tables = [sql.Identifier("messages")] + [
                sql.Identifier(space_table(space_id)) for space_id in await self._space_ids(conn)
            ]
            for table in tables:
                await conn.execute(sql.SQL("VACUUM {}").format(table))

    async def disk_footprint(self) -> DiskFootprint:
        """Nothing on this machine's disk: the server's disk is not ours, and its own backups cover it."""
        return DiskFootprint()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection; failures of the server or the pool become the errors users see."""
        try:
            async with self._pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise StoreLocked(
                f"every connection to {self.dsn_for_logs} stayed busy for {self._pool.timeout:.0f}s; "
                "raise the pool size or the server's max_connections, or retry later"
            ) from None
        except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
            raise  # run_in_transaction retries these
        except (pg_errors.QueryCanceled, pg_errors.LockNotAvailable) as exc:
            raise StoreLocked(
                f"{self.dsn_for_logs}: a statement waited or ran too long ({scrub(exc, self._dsn)}); "
                "another process may hold a lock (a migration or a backup); retry later"
            ) from None
        except psycopg.OperationalError as exc:
            raise StoreError(
                f"lost the memory database at {self.dsn_for_logs} ({scrub(exc, self._dsn)}); "
                "check that the server is up and reachable, then retry"
            ) from None

    async def run_in_transaction(
        self, work: Callable[[psycopg.AsyncConnection], Awaitable[T]], *, isolation: str | None = None
    ) -> T:
        """Run ``work(conn)`` in one transaction, rerunning it on serialization failures and deadlocks.

        ``work`` must be safe to rerun from the start (it is: everything it did was rolled back).
        ``isolation`` is e.g. ``"REPEATABLE READ, READ ONLY"`` or ``"SERIALIZABLE"``.
        """
        for attempt in range(1, self.retry_attempts + 1):
            try:
                async with self._connection() as conn, conn.transaction():
                    if isolation:
                        await conn.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
                    return await work(conn)
            except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected) as exc:
                if attempt == self.retry_attempts:
                    raise StoreLocked(
                        f"{self.dsn_for_logs}: a change kept conflicting with other processes' changes "
                        f"({attempt} attempts, last: {scrub(exc, self._dsn)}); retry later"
                    ) from None
                await asyncio.sleep(random.uniform(0.5, 1.5) * 0.01 * 2**attempt)
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgTransaction]:
        """One transaction with aiosqlite's surface (see :class:`PgTransaction`); rolled back on any error.

        A body cannot be replayed, so a serialization failure or deadlock here is :class:`StoreLocked`.
        """
        try:
            async with self._connection() as conn, conn.transaction():
                yield PgTransaction(conn)
        except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected) as exc:
            raise StoreLocked(
                f"{self.dsn_for_logs}: the change conflicted with another process ({scrub(exc, self._dsn)}); retry"
            ) from None

    async def fetchall(self, query: str, params: Sequence = ()) -> list[tuple]:
        """Rows of portable SQL (``?`` placeholders) as tuples."""
        return await self._fetchall(portable_sql(query), params)

    async def fetchone(self, query: str, params: Sequence = ()) -> tuple | None:
        return await self._fetchone(portable_sql(query), params)

    async def _fetchall(self, query: str | sql.Composable, params: Sequence = ()) -> list[tuple]:
        async with self._connection() as conn:
            return await (await conn.execute(query, params)).fetchall()

    async def _fetchone(self, query: str | sql.Composable, params: Sequence = ()) -> tuple | None:
        async with self._connection() as conn:
            return await (await conn.execute(query, params)).fetchone()

    async def schema_version(self) -> int:
        row = await self._fetchone("SELECT MAX(version) FROM schema_version")
        return int(row[0])

    async def integrity_check(self) -> str:
        """'ok' when pgvector is installed and every space has its vector table (page-level checks are
        the server's business: amcheck, checksums)."""
        missing = await self._fetchall(
            "SELECT id FROM spaces WHERE to_regclass('space_vectors_' || id) IS NULL ORDER BY id"
        )
        extension = await self._fetchone("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        if extension is None:
            return "the pgvector extension is not installed"
        if missing:
            return f"spaces without a vector table: {', '.join(str(r[0]) for r in missing)}"
        return "ok"

    # ------------------------------------------------------------------ spaces
    async def ensure_space(self, spec: EmbeddingSpace) -> SpaceRecord:
        """The space's record, registering it and creating its vector table on first use."""
        query = "SELECT id, spec, to_regclass('space_vectors_' || id) IS NOT NULL FROM spaces WHERE key = %s"
        row = await self._fetchone(query, (spec.key,))
        if row is None or not row[2]:

            async def register(conn: psycopg.AsyncConnection) -> tuple:
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                await conn.execute(
                    "INSERT INTO spaces(key, model, dimension, pooling, spec, created_at) VALUES (%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (key) DO NOTHING",
                    (spec.key, spec.model, spec.dimension, spec.pooling, spec.to_json(), time.time()),
                )
                found = await (await conn.execute(query, (spec.key,))).fetchone()
                script = space_table_script(
                    found[0], spec.dimension, self.hnsw_m, self.hnsw_ef_construction
                )  # idempotent
                await conn.execute(script)
                return found

            row = await self.run_in_transaction(register)
        elif EmbeddingSpace.from_json(row[1]).load_source != spec.load_source:
            # same vectors' meaning, new place to load the model from
            await self._execute("UPDATE spaces SET spec = %s WHERE id = %s", (spec.to_json(), row[0]))
            return SpaceRecord(row[0], spec)
        return SpaceRecord(row[0], EmbeddingSpace.from_json(row[1]))

    async def _execute(self, query: str | sql.Composable, params: Sequence = ()) -> int:
        """One statement in its own transaction; returns its row count."""

        async def run(conn: psycopg.AsyncConnection) -> int:
            return (await conn.execute(query, params)).rowcount

        return await self.run_in_transaction(run)

    # ------------------------------------------------------------------ channels
    async def get_channel(self, guild_id: int, channel_id: int) -> ChannelState | None:
        states = await self._channels("WHERE c.guild_id = %s AND c.channel_id = %s", (guild_id, channel_id))
        return states[0] if states else None

    async def ensure_channel(self, guild_id: int, channel_id: int, space_id: int, enabled: bool = True) -> ChannelState:
        """The channel's state; a new channel reads from and writes to ``space_id``."""
        state = await self.get_channel(guild_id, channel_id)
        if state is not None:
            return state

        async def create(conn: psycopg.AsyncConnection) -> None:
            inserted = await conn.execute(
                "INSERT INTO channels(guild_id, channel_id, read_space_id, enabled) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT DO NOTHING",
                (guild_id, channel_id, space_id, int(enabled)),
            )
            if inserted.rowcount:  # another process may have created it with its own default space
                await conn.execute(
                    "INSERT INTO channel_write_spaces(guild_id, channel_id, space_id) VALUES (%s,%s,%s) "
                    "ON CONFLICT DO NOTHING",
                    (guild_id, channel_id, space_id),
                )

        await self.run_in_transaction(create)
        state = await self.get_channel(guild_id, channel_id)
        assert state is not None
        return state

    async def list_channels(self, guild_id: int | None = None) -> list[ChannelState]:
        """Every channel's pointers (of one guild, or all), in one query whatever the number of channels."""
        if guild_id is None:
            return await self._channels("", ())
        return await self._channels("WHERE c.guild_id = %s", (guild_id,))

    async def _channels(self, where: str, params: Sequence) -> list[ChannelState]:
        rows = await self._fetchall(
            "SELECT c.guild_id, c.channel_id, c.read_space_id, c.enabled, ARRAY(SELECT w.space_id FROM "
            "channel_write_spaces w WHERE w.guild_id = c.guild_id AND w.channel_id = c.channel_id ORDER BY w.space_id) "
            f"FROM channels c {where} "
            "ORDER BY c.guild_id, c.channel_id",
            params,
        )
        return [ChannelState(g, c, read, tuple(writes), bool(enabled)) for g, c, read, enabled, writes in rows]

    async def set_channel_enabled(self, guild_id: int, channel_id: int, enabled: bool) -> None:
        await self._execute(
            "UPDATE channels SET enabled = %s WHERE guild_id = %s AND channel_id = %s",
            (int(enabled), guild_id, channel_id),
        )

    async def add_write_space(self, guild_id: int, channel_id: int, space_id: int) -> None:
        await self._execute(
            "INSERT INTO channel_write_spaces(guild_id, channel_id, space_id) VALUES (%s,%s,%s) ON CONFLICT DO NOTHING",
            (guild_id, channel_id, space_id),
        )

    async def remove_write_space(self, guild_id: int, channel_id: int, space_id: int) -> None:
        await self._execute(
            "DELETE FROM channel_write_spaces WHERE guild_id = %s AND channel_id = %s AND space_id = %s",
            (guild_id, channel_id, space_id),
        )

    async def set_read_space(self, guild_id: int, channel_id: int, space_id: int) -> None:
        """Move the channel's read pointer (the alias) in one transaction; the space must be written to."""

        async def move(conn: psycopg.AsyncConnection) -> None:
            writes = await conn.execute(  # FOR SHARE: the write space cannot be removed until we commit
                "SELECT 1 FROM channel_write_spaces WHERE guild_id = %s AND channel_id = %s AND space_id = %s "
                "FOR SHARE",
                (guild_id, channel_id, space_id),
            )
            if await writes.fetchone() is None:
                raise StoreError(_NOT_A_WRITE_SPACE.format(channel_id=channel_id, space_id=space_id))
            await conn.execute(
                "UPDATE channels SET read_space_id = %s WHERE guild_id = %s AND channel_id = %s",
                (space_id, guild_id, channel_id),
            )

        await self.run_in_transaction(move)

    # ------------------------------------------------------------------ messages
    async def _space_ids(self, conn: psycopg.AsyncConnection) -> list[int]:
        """Ids of the spaces whose vector table exists (all of them, unless a creation failed)."""
        rows = await (
            await conn.execute(
                "SELECT id FROM spaces WHERE to_regclass('space_vectors_' || id) IS NOT NULL ORDER BY id"
            )
        ).fetchall()
        return [r[0] for r in rows]

    async def add_messages(self, messages: Iterable[StoredMessage]) -> list[StoredMessage]:
        """Insert new messages, or update changed ones (dropping their now-stale vectors in every space).

        Returns the messages whose text is new or changed: those need embedding.
        """
        messages = list(messages)
        if not messages:
            return []
        terms = await _off_loop(len(messages), lambda: [fts_document(m.content) for m in messages])

        async def add(conn: psycopg.AsyncConnection) -> list[StoredMessage]:
            rows = await conn.execute(  # locked in id order: an edit waits for an in-flight put_vectors
                "SELECT id, content FROM messages WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (_ids(messages),)
            )
            existing = dict(await rows.fetchall())
            ledger = await conn.execute(
                "SELECT message_id FROM forgotten_messages WHERE message_id = ANY(%s)", (_ids(messages),)
            )
            forgotten = {r[0] for r in await ledger.fetchall()}  # deleted for good: never stored again
            changed = [i for i, m in enumerate(messages) if existing.get(m.id) != m.content and m.id not in forgotten]
            stale = [messages[i].id for i in changed if messages[i].id in existing]
            if stale:
                for space_id in await self._space_ids(conn):
                    await conn.execute(
                        sql.SQL("DELETE FROM {} WHERE message_id = ANY(%s)").format(
                            sql.Identifier(space_table(space_id))
                        ),
                        (stale,),
                    )
            rows = [(*_message_row(messages[i]), terms[i]) for i in sorted(changed, key=lambda i: messages[i].id)]
            async with conn.cursor() as cur:
                await cur.executemany(
                    f"INSERT INTO messages({MESSAGE_COLUMNS}, terms) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (id) DO UPDATE SET content = excluded.content, edited_at = excluded.edited_at, "
                    "author_name = excluded.author_name, terms = excluded.terms",
                    rows,
                )
            return [messages[i] for i in changed]

        return await self.run_in_transaction(add)

    async def delete_messages(self, message_ids: Iterable[int]) -> list[StoredMessage]:
        """Delete messages with their vectors in every space (FK cascade); returns what was deleted."""
        ids = list(message_ids)
        deleted: list[StoredMessage] = []
        for start in range(0, len(ids), 1000):
            rows = await self._returning(
                f"DELETE FROM messages WHERE id = ANY(%s) RETURNING {MESSAGE_COLUMNS}", (ids[start : start + 1000],)
            )
            deleted.extend(message_of(r) for r in sorted(rows))
        return deleted

    async def _returning(self, query: str, params: Sequence) -> list[tuple]:
        async def run(conn: psycopg.AsyncConnection) -> list[tuple]:
            return await (await conn.execute(query, params)).fetchall()

        return await self.run_in_transaction(run)

    async def set_opted_out(self, guild_id: int, user_id: int, opted_out: bool) -> None:
        """Stop (or resume) capturing a member's messages in a guild (/memory forget-me, remember-me)."""
        if opted_out:
            await self._execute(
                "INSERT INTO opted_out_users(guild_id, user_id, created_at) VALUES (%s,%s,%s) ON CONFLICT DO NOTHING",
                (guild_id, user_id, time.time()),
            )
        else:
            await self._execute("DELETE FROM opted_out_users WHERE guild_id = %s AND user_id = %s", (guild_id, user_id))

    async def get_messages(self, message_ids: Iterable[int]) -> dict[int, StoredMessage]:
        rows = await self._fetchall(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY(%s)", (list(message_ids),))
        return {r[0]: message_of(r) for r in rows}

    async def search_text(
        self, guild_id: int, channel_id: int, query: str, limit: int, filters: RecallFilters = NO_FILTERS
    ) -> list[tuple[int, float]]:
        """Full-text candidates of one channel that pass ``filters``: (message id, ts_rank), best first."""
        expression = tsquery_of(query)
        if not expression:
            return []
        condition, params = filters.sql("m")
        rows = await self.fetchall(
            "SELECT m.id, ts_rank(m.tsv, q) AS score FROM messages m, to_tsquery('simple', ?) q "
            f"WHERE m.tsv @@ q AND m.guild_id = ? AND m.channel_id = ?{condition} ORDER BY score DESC, m.id LIMIT ?",
            (expression, guild_id, channel_id, *params, limit),
        )
        return [(r[0], float(r[1])) for r in rows]

    # ------------------------------------------------------------------ vectors
    async def put_vectors(
        self, space: SpaceRecord, messages: Sequence[StoredMessage], vectors: np.ndarray
    ) -> list[StoredMessage]:
        """Upsert vectors of ``messages`` into ``space``, idempotently.

        A message deleted or edited since it was embedded is skipped (its vector would be stale); the
        rows read are share-locked, so an edit cannot slip in before the vectors commit. Returns the
        messages actually written. Batches of :data:`BULK_ROWS` and more go through binary COPY.
        """
        vectors = checked_vectors(space, len(messages), vectors)
        if not messages:
            return []

        async def put(conn: psycopg.AsyncConnection) -> list[int]:
            rows = await conn.execute(
                "SELECT id, content FROM messages WHERE id = ANY(%s) ORDER BY id FOR SHARE", (_ids(messages),)
            )
            current = dict(await rows.fetchall())
            keep = [i for i, m in enumerate(messages) if current.get(m.id) == m.content]
            last = list({messages[i].id: i for i in keep}.values())  # a repeated id: its last vector wins
            if last:
                await self._write_vectors(conn, space, [messages[i] for i in last], vectors[last], update=True)
            return keep

        return [messages[i] for i in await self.run_in_transaction(put)]

    async def _write_vectors(
        self,
        conn: psycopg.AsyncConnection,
        space: SpaceRecord,
        messages: Sequence[StoredMessage],
        vectors: np.ndarray,
        update: bool,
    ) -> int:
        """Insert rows of a space table; ``update`` replaces existing vectors, else they are kept."""
        table = sql.Identifier(space_table(space.id))
        conflict = sql.SQL(
            "ON CONFLICT (message_id) DO UPDATE SET embedding = excluded.embedding"
            if update
            else "ON CONFLICT DO NOTHING"
        )
        if len(messages) < BULK_ROWS:
            async with conn.cursor() as cur:
                await cur.executemany(
                    sql.SQL(
                        "INSERT INTO {} (message_id, guild_id, channel_id, embedding) VALUES (%s,%s,%s,%s) "
                    ).format(table)
                    + conflict,
                    [(m.id, m.guild_id, m.channel_id, vectors[i]) for i, m in enumerate(messages)],
                )
                return len(messages)
        columns = [
            np.fromiter((getattr(m, name) for m in messages), dtype=np.int64, count=len(messages))
            for name in ("id", "guild_id", "channel_id")
        ]
        return await self._copy_vectors_in(conn, space, columns, vectors, conflict)

    async def _copy_vectors_in(
        self,
        conn: psycopg.AsyncConnection,
        space: SpaceRecord,
        columns: Sequence[np.ndarray],
        vectors: np.ndarray,
        conflict: sql.Composable,
    ) -> int:
        """Binary COPY into a temporary staging table, then one INSERT ... SELECT into the space table.

        Only rows whose message exists are inserted (a message deleted meanwhile drops its vector).
        """
        kind = vector_type(space.dimension)
        payload = await _off_loop(len(vectors), encode_copy_vectors, columns, vectors, kind)
        staging = sql.Identifier(f"vector_staging_{space.id}")
        await conn.execute(
            sql.SQL(
                "CREATE TEMPORARY TABLE {} (message_id bigint, guild_id bigint, channel_id bigint, embedding {})"
            ).format(staging, sql.SQL(kind))
        )
        async with conn.cursor() as cur:
            async with cur.copy(
                sql.SQL("COPY {} (message_id, guild_id, channel_id, embedding) FROM STDIN (FORMAT BINARY)").format(
                    staging
                )
            ) as copy:
                await copy.write(payload)
            await cur.execute(
                sql.SQL(
                    "INSERT INTO {} (message_id, guild_id, channel_id, embedding) SELECT s.message_id, s.guild_id, "
                    "s.channel_id, s.embedding FROM {} s JOIN messages m ON m.id = s.message_id ORDER BY s.message_id "
                ).format(sql.Identifier(space_table(space.id)), staging)
                + conflict
            )
            inserted = cur.rowcount
        await conn.execute(sql.SQL("DROP TABLE {}").format(staging))  # gone before the commit: no catalog bloat
        return inserted

    async def count_vectors(self, space_id: int, guild_id: int, channel_id: int) -> int:
        row = await self._fetchone(
            sql.SQL("SELECT COUNT(*) FROM {} WHERE guild_id = %s AND channel_id = %s").format(
                sql.Identifier(space_table(space_id))
            ),
            (guild_id, channel_id),
        )
        return int(row[0])

    async def vector_generation(self, space_id: int, guild_id: int, channel_id: int) -> int:
        """A counter bumped by every statement that inserts, updates or deletes vectors of (space, channel).

        Postgres keeps no index files to invalidate, so nothing here *needs* it; it is kept (a
        statement-level trigger on each space table, one upsert per statement and channel) so callers
        that compare generations, like the SQLite store's indexes, see the same contract on both backends.
        """
        row = await self._fetchone(
            "SELECT generation FROM vector_generations WHERE space_id = %s AND guild_id = %s AND channel_id = %s",
            (space_id, guild_id, channel_id),
        )
        return int(row[0]) if row else 0

    async def channel_stats(self, target_space_id: int) -> dict[tuple[int, int], tuple[int, int, int]]:
        """Per channel: (messages without text, without a read-space vector, already in the target space)."""
        tables = {
            r[0]
            for r in await self._fetchall("SELECT id FROM spaces WHERE to_regclass('space_vectors_' || id) IS NOT NULL")
        }
        in_target = (
            sql.SQL("count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {} e WHERE e.message_id = m.id))").format(
                sql.Identifier(space_table(target_space_id))
            )
            if target_space_id in tables
            else sql.SQL("0")
        )
        rows = await self._fetchall(
            sql.SQL(
                "SELECT m.guild_id, m.channel_id, count(*) FILTER (WHERE trim(m.content) = ''), {} "
                "FROM messages m GROUP BY m.guild_id, m.channel_id"
            ).format(in_target)
        )
        missing: dict[tuple[int, int], int] = {}
        for (read_space,) in await self._fetchall("SELECT DISTINCT read_space_id FROM channels"):
            exists = (
                sql.SQL("EXISTS (SELECT 1 FROM {} e WHERE e.message_id = m.id)").format(
                    sql.Identifier(space_table(read_space))
                )
                if read_space in tables
                else sql.SQL("false")
            )
            for g, c, n in await self._fetchall(
                sql.SQL(
                    "SELECT m.guild_id, m.channel_id, count(*) FROM messages m JOIN channels ch "
                    "ON ch.guild_id = m.guild_id AND ch.channel_id = m.channel_id "
                    "WHERE ch.read_space_id = %s AND NOT {} GROUP BY m.guild_id, m.channel_id"
                ).format(exists),
                (read_space,),
            ):
                missing[(g, c)] = int(n)
        return {(g, c): (int(empty), missing.get((g, c), 0), int(done)) for g, c, empty, done in rows}

    async def messages_missing_vectors(
        self,
        space_id: int,
        guild_id: int,
        channel_id: int,
        after_id: int = 0,
        limit: int = 256,
        up_to_id: int = 2**63 - 1,
    ) -> list[StoredMessage]:
        """Messages of the channel with ``after_id`` < id <= ``up_to_id`` lacking a vector in ``space_id``."""
        columns = ", ".join("m." + c.strip() for c in MESSAGE_COLUMNS.split(","))
        rows = await self._fetchall(
            sql.SQL(
                f"SELECT {columns} FROM messages m WHERE m.guild_id = %s AND m.channel_id = %s AND m.id > %s "
                "AND m.id <= %s AND NOT EXISTS (SELECT 1 FROM {} e WHERE e.message_id = m.id) ORDER BY m.id LIMIT %s"
            ).format(sql.Identifier(space_table(space_id))),
            (guild_id, channel_id, after_id, up_to_id, limit),
        )
        return [message_of(r) for r in rows]

    async def get_vectors(self, space_id: int, message_ids: Sequence[int]) -> dict[int, np.ndarray]:
        rows = await self._fetchall(
            sql.SQL("SELECT message_id, embedding FROM {} WHERE message_id = ANY(%s)").format(
                sql.Identifier(space_table(space_id))
            ),
            (list(message_ids),),
        )
        return {r[0]: r[1].to_numpy().astype(np.float32) for r in rows}

    async def _copy_vectors_out(
        self, conn: psycopg.AsyncConnection, space: SpaceRecord, guild_id: int, channel_id: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of (space, channel) ordered by message id, through binary COPY."""
        chunks: list[bytes] = []
        async with (
            conn.cursor() as cur,
            cur.copy(
                sql.SQL(
                    "COPY (SELECT message_id, embedding FROM {} WHERE guild_id = {} AND channel_id = {} "
                    "ORDER BY message_id) TO STDOUT (FORMAT BINARY)"
                ).format(sql.Identifier(space_table(space.id)), sql.Literal(guild_id), sql.Literal(channel_id))
            ) as copy,
        ):
            async for chunk in copy:
                chunks.append(bytes(chunk))
        data, kind = b"".join(chunks), vector_type(space.dimension)
        rows = len(data) // copy_row_dtype(1, space.dimension, kind).itemsize
        return await _off_loop(rows, decode_copy_vectors, data, space.dimension, kind)

    async def load_vectors(
        self, space: SpaceRecord, guild_id: int, channel_id: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """All vectors of (space, channel) as (ids int64, vectors float32 (n, d), generation), one snapshot.

        halfvec spaces (more than 2000 dimensions) come back widened to float32.
        """

        async def load(conn: psycopg.AsyncConnection) -> tuple[np.ndarray, np.ndarray, int]:
            ids, vectors = await self._copy_vectors_out(conn, space, guild_id, channel_id)
            gen = await (
                await conn.execute(
                    "SELECT generation FROM vector_generations WHERE space_id = %s AND guild_id = %s "
                    "AND channel_id = %s",
                    (space.id, guild_id, channel_id),
                )
            ).fetchone()
            return ids, vectors, int(gen[0]) if gen else 0

        return await self.run_in_transaction(load, isolation="REPEATABLE READ, READ ONLY")

    async def delete_space_vectors(self, space_id: int, guild_id: int, channel_id: int) -> int:
        """Drop every vector of (space, channel): the finalize step of a migration."""
        return await self._execute(
            sql.SQL("DELETE FROM {} WHERE guild_id = %s AND channel_id = %s").format(
                sql.Identifier(space_table(space_id))
            ),
            (guild_id, channel_id),
        )

    async def vector_counts(self, guild_id: int, channel_id: int) -> dict[int, int]:
        """Vectors of the channel per space (spaces without any are left out), in one query."""

        async def count(conn: psycopg.AsyncConnection) -> dict[int, int]:
            space_ids = await self._space_ids(conn)
            if not space_ids:
                return {}
            union = sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT {}::bigint, COUNT(*) FROM {} WHERE guild_id = %(g)s AND channel_id = %(c)s").format(
                    sql.Literal(space_id), sql.Identifier(space_table(space_id))
                )
                for space_id in space_ids
            )
            rows = await (await conn.execute(union, {"g": guild_id, "c": channel_id})).fetchall()
            return {r[0]: r[1] for r in rows if r[1]}

        return await self.run_in_transaction(count, isolation="REPEATABLE READ, READ ONLY")

    # ------------------------------------------------------------------ search (Postgres only)
    async def search(
        self,
        space: SpaceRecord,
        guild_id: int,
        channel_id: int,
        query: np.ndarray,
        k: int,
        expect_read_space: bool = False,
        filters: RecallFilters = NO_FILTERS,
    ) -> list[tuple[int, float]]:
        """Top-``k`` (message id, cosine similarity) of one channel that pass ``filters``, best first.

        With ``expect_read_space`` this raises :class:`ReadSpaceMoved` when the channel no longer reads
        ``space`` (another process swapped it), checked in the search's own snapshot.
        """
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        hits = await self.search_vectors(
            space, guild_id, channel_id, query, k, expect_read_space=expect_read_space, filters=filters
        )
        return hits[0]

    async def search_many(
        self, space: SpaceRecord, guild_id: int, channel_id: int, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (n, k) for ``n`` queries in one transaction; ids are -1 past the hits."""
        return as_arrays(await self.search_vectors(space, guild_id, channel_id, queries, k), k)

    async def index_info(self, space: SpaceRecord, guild_id: int, channel_id: int, load: bool = True) -> IndexInfo:
        """The space's vector table seen as the channel's index: always current, so ``load`` changes nothing."""
        return IndexInfo(PGVECTOR_HNSW, await self.count_vectors(space.id, guild_id, channel_id), space.dimension)

    async def search_vectors(
        self,
        space: SpaceRecord,
        guild_id: int,
        channel_id: int,
        queries: np.ndarray,
        k: int,
        ef_search: int | None = None,
        expect_read_space: bool = False,
        filters: RecallFilters = NO_FILTERS,
    ) -> list[list[tuple[int, float]]]:
        """Top-``k`` (message id, cosine similarity) of one channel per query row, best first.

        One read-only snapshot: with ``expect_read_space`` the channel's read pointer is checked first
        (:class:`ReadSpaceMoved` if it no longer names ``space``), and the search sees the vectors as
        they were at that moment even if a finalize deletes them meanwhile. The HNSW scan is iterative
        (``relaxed_order``), so filtering by channel still yields ``k`` results; they are re-sorted here.
        ``filters`` that exclude messages (an author, a time range) are searched exactly instead: every
        passing message is scored (:func:`channel_search_sql`), as a graph walk may stop short of a narrow subset.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, space.dimension)
        if k <= 0 or not len(queries):
            return [[] for _ in range(len(queries))]
        query, params_of = channel_search_sql(space, guild_id, channel_id, k, filters)

        async def search(conn: psycopg.AsyncConnection) -> list[list[tuple[int, float]]]:
            if expect_read_space:
                row = await (
                    await conn.execute(
                        "SELECT read_space_id FROM channels WHERE guild_id = %s AND channel_id = %s",
                        (guild_id, channel_id),
                    )
                ).fetchone()
                if row is None or row[0] != space.id:
                    raise ReadSpaceMoved(
                        f"channel {channel_id} now reads space {row[0] if row else 'none'}, not space {space.id}; "
                        "search again in the channel's current read space"
                    )
            await conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                (str(min(max(ef_search or self.ef_search, k), HNSW_EF_SEARCH_MAX)),),
            )
            cursors = []
            async with conn.pipeline():
                for q in queries:
                    cur = conn.cursor()
                    await cur.execute(query, params_of(q))
                    cursors.append(cur)
            results = []
            for cur in cursors:
                hits = [(int(i), float(s)) for i, s in await cur.fetchall()]
                results.append(sorted(hits, key=lambda hit: -hit[1]))
            return results

        return await self.run_in_transaction(search, isolation="REPEATABLE READ, READ ONLY")

    # ------------------------------------------------------------------ bulk copies and checksums (Postgres only)
    async def copy_messages(self, messages: Sequence[StoredMessage]) -> int:
        """Bulk-load messages through binary COPY, skipping ids already present; returns how many were new.

        For moving a memory between backends: rerunning it after an interruption is harmless.
        """
        if not messages:
            return 0
        terms = await _off_loop(len(messages), lambda: [fts_document(m.content) for m in messages])

        async def copy_in(conn: psycopg.AsyncConnection) -> int:
            await conn.execute(
                "CREATE TEMPORARY TABLE message_staging (id bigint, guild_id bigint, channel_id bigint, "
                "author_id bigint, author_name text, content text, created_at double precision, "
                "edited_at double precision, terms text) ON COMMIT DROP"
            )
            async with conn.cursor() as cur:
                async with cur.copy(
                    f"COPY message_staging ({MESSAGE_COLUMNS}, terms) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["int8", "int8", "int8", "int8", "text", "text", "float8", "float8", "text"])
                    for m, t in zip(messages, terms):
                        await copy.write_row((*_message_row(m), t))
                await cur.execute(
                    f"INSERT INTO messages ({MESSAGE_COLUMNS}, terms) SELECT DISTINCT ON (id) {MESSAGE_COLUMNS}, terms "
                    "FROM message_staging ORDER BY id ON CONFLICT (id) DO NOTHING"
                )
                return cur.rowcount

        return await self.run_in_transaction(copy_in)

    async def copy_vectors(
        self,
        space: SpaceRecord,
        ids: np.ndarray,
        guild_ids: np.ndarray,
        channel_ids: np.ndarray,
        vectors: np.ndarray,
    ) -> int:
        """Bulk-load vectors through binary COPY, keeping vectors already present and skipping those whose
        message is absent; returns how many were new. Idempotent, like :meth:`copy_messages`."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = checked_vectors(space, len(ids), vectors)
        if not len(ids):
            return 0
        _, first = np.unique(ids, return_index=True)  # a repeated id: its first vector
        columns = [np.asarray(c, dtype=np.int64)[first] for c in (ids, guild_ids, channel_ids)]

        async def copy_in(conn: psycopg.AsyncConnection) -> int:
            return await self._copy_vectors_in(conn, space, columns, vectors[first], sql.SQL("ON CONFLICT DO NOTHING"))

        return await self.run_in_transaction(copy_in)

    async def checksums(self, guild_id: int, channel_id: int, space_id: int | None = None) -> dict[str, Any]:
        """Counts and sha256 digests of a channel's messages (and vectors in ``space_id``), one snapshot.

        ``messages_sha`` hashes ``f"{id}\\t{content}\\n"`` per message by id; ``vectors_sha`` hashes the
        id as 8 little-endian bytes plus the float32 little-endian vector, by message id. Both backends
        compute the same digests for the same data, so a move can be checked end to end. A halfvec
        space (over 2000 dimensions) rounded its vectors to float16, so its digest could never match a
        float32 source: ``vectors_sha`` is None there (the count is still given).
        """
        space = await self.get_space(space_id) if space_id is not None else None

        async def digest(conn: psycopg.AsyncConnection) -> dict[str, Any]:
            messages, messages_sha = 0, hashlib.sha256()
            async with conn.cursor() as cur:
                async for message_id, content in cur.stream(
                    "SELECT id, content FROM messages WHERE guild_id = %s AND channel_id = %s ORDER BY id",
                    (guild_id, channel_id),
                ):
                    messages += 1
                    messages_sha.update(f"{message_id}\t{content}\n".encode())
            result: dict[str, Any] = {
                "messages": messages,
                "messages_sha": messages_sha.hexdigest(),
                "vectors": 0,
                "vectors_sha": None,
            }
            if space is not None:
                ids, vectors = await self._copy_vectors_out(conn, space, guild_id, channel_id)
                result["vectors"] = len(ids)
                if vector_type(space.dimension) == "vector":
                    result["vectors_sha"] = await _off_loop(len(ids), vectors_digest, ids, vectors)
            return result

        return await self.run_in_transaction(digest, isolation="REPEATABLE READ, READ ONLY")


async def _upgrade_schema(conn: psycopg.AsyncConnection, server: str) -> None:
    """Apply the missing forward-only scripts in one transaction, under an advisory lock so that several
    processes opening a new database at once apply each script exactly once."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        row = await (await conn.execute("SELECT MAX(version) FROM schema_version")).fetchone()
        current = row[0] or 0
        if current > PG_SCHEMA_VERSION:
            raise StoreError(
                f"{server} has schema version {current}, newer than this code ({PG_SCHEMA_VERSION}); "
                "upgrade qwen3-memory or point it at a database made by this version"
            )
        for version in range(current + 1, PG_SCHEMA_VERSION + 1):
            await conn.execute(PG_SCHEMA_MIGRATIONS[version])
            await conn.execute("INSERT INTO schema_version(version) VALUES (%s)", (version,))
