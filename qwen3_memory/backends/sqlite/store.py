"""The embedded backend: SQLite (aiosqlite, WAL) for messages, FTS5 terms, spaces, vectors and pointers,
plus the FAISS indexes it derives from them.

SQLite is the source of truth; FAISS indexes are a cache of it that this store owns. Every write
of vectors or messages is one call here that changes the rows *and* the loaded indexes under one
lock, so callers never see or manage the cache. One connection per process owns all writes; every
multi-step change runs in one ``BEGIN IMMEDIATE`` transaction under an asyncio lock, so coroutines
never interleave half-done changes. Bulk reads of vectors go through a short-lived read-only
connection in a worker thread, so the event loop never decodes megabytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import numpy as np

from qwen3_memory.backends.checksums import vectors_digest
from qwen3_memory.backends.lexical import fts_document
from qwen3_memory.backends.portable_reads import MESSAGE_COLUMNS, PortableReads, message_of
from qwen3_memory.backends.protocol import DiskFootprint, IndexInfo
from qwen3_memory.backends.sqlite.channel_bm25 import TableRarity, search_channel
from qwen3_memory.backends.sqlite.claims import LeaseClaims
from qwen3_memory.backends.sqlite.index import IndexParams
from qwen3_memory.backends.sqlite.indexes import ChannelIndexes, Generations, VectorChanges
from qwen3_memory.backends.sqlite.schema import SCHEMA_MIGRATIONS, SCHEMA_VERSION
from qwen3_memory.errors import DimensionMismatch, StoreError, StoreLocked
from qwen3_memory.filters import NO_FILTERS, RecallFilters
from qwen3_memory.records import ChannelState, SpaceRecord, StoredMessage
from qwen3_memory.space import EmbeddingSpace

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
KEEP_CHANGES = 10_000  # change-log entries kept per (space, channel) behind its newest flushed index
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
RESTORE_ADVICE = (
    "restore a backup (python -m qwen3_memory.migration restore --backup-path ...; list them with "
    "python -m qwen3_memory.migration backups) or move the file away to start a new, empty memory"
)


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


def _tree_bytes(root: Path | None) -> int:
    """The size of every file under ``root`` (0 when there is none); files removed meanwhile count 0."""
    if root is None or not root.is_dir():
        return 0
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += (Path(dirpath) / name).stat().st_size
            except FileNotFoundError:
                continue
    return total


async def _generations(
    db: aiosqlite.Connection, channels: Iterable[tuple[int, int]], space_id: int | None = None
) -> dict[tuple[int, int, int], int]:
    """The current generation of every (space, guild, channel) of ``channels`` (one space, or all), in ``db``'s
    transaction."""
    pairs = sorted(set(channels))
    if not pairs:
        return {}
    values = ",".join("(?,?)" for _ in pairs)
    sql = (
        "SELECT space_id, guild_id, channel_id, generation FROM vector_generations "
        f"WHERE (guild_id, channel_id) IN (VALUES {values})"
    )
    params: list[int] = [x for pair in pairs for x in pair]
    if space_id is not None:
        sql += " AND space_id = ?"
        params.append(space_id)
    rows = await (await db.execute(sql, params)).fetchall()
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


def _moved(before: dict[tuple[int, int, int], int], after: dict[tuple[int, int, int], int]) -> Generations:
    """(before, after) of every generation a transaction moved."""
    return {key: (before.get(key, 0), value) for key, value in after.items() if value != before.get(key, 0)}


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection for worker threads: bulk reads off the event loop, in their own snapshot, never
    on the store's asyncio connections."""
    return sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
    )  # the store's worker-thread reader is used by one pool thread at a time, under its lock


@dataclass(frozen=True)
class DeletionLedger:
    """What a memory forgot: ``forgotten_messages`` rows and ``opted_out_users`` rows."""

    messages: list[tuple] = field(default_factory=list)
    opted_out: list[tuple] = field(default_factory=list)


def read_deletion_ledger(path: Path) -> DeletionLedger:
    """The ledger of the database at ``path`` (read-only, blocking: call in a thread); empty when the file
    does not exist or predates the ledger."""
    if not path.exists():
        return DeletionLedger()
    conn = _read_only(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        messages = list(conn.execute("SELECT * FROM forgotten_messages")) if "forgotten_messages" in tables else []
        opted_out = list(conn.execute("SELECT * FROM opted_out_users")) if "opted_out_users" in tables else []
        return DeletionLedger(messages, opted_out)
    finally:
        conn.close()


def _refuse_unusable_file(path: Path) -> None:
    """Refuse an existing file that is empty or not a SQLite database: SQLite would take a 0-byte file for a
    new database, and an existing file must never become an empty memory unnoticed. A missing file is fine."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except (FileNotFoundError, IsADirectoryError):  # a new memory; a directory fails in connect
        return
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the memory database ({exc.strerror}); check its permissions") from None
    if not header:
        raise StoreError(f"{path} is empty (0 bytes), not a memory database; {RESTORE_ADVICE}")
    if header != SQLITE_HEADER:
        raise StoreError(f"{path} is not a SQLite database (damaged or another file); {RESTORE_ADVICE}")


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc).lower() or "busy" in str(exc).lower()


class SQLiteStore(PortableReads):
    """The embedded backend. Open with :meth:`open`; every method is a coroutine safe to call concurrently."""

    kind = "sqlite"
    shared_by_processes = False  # one bot process owns the file; a command-line run beside it is the exception
    file_backups = True  # a migration copies the database and the index files before it changes anything

    def __init__(
        self,
        path: Path,
        conn: aiosqlite.Connection,
        vectors_dir: Path | None = None,
        params: IndexParams = IndexParams(),
    ) -> None:
        self.path = path
        self.where = str(path)  # how messages name this memory's location (the Postgres store redacts its DSN)
        self._conn = conn  # writes, and the reads a write transaction makes
        # Reads outside a transaction go through a read-only connection of their own: a read in flight on the
        # writing connection would pin an old snapshot, and a write begun then, after another process
        # committed, would fail at once instead of waiting out the busy timeout. Reads also never queue
        # behind a write this way.
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()  # one write transaction at a time on the writing connection
        # One read at a time on the reading connection, from its first step to its close: two interleaved reads
        # would share the first one's snapshot, and the second would miss what was committed in between
        # (a job read back right after it was created).
        self._read_lock = asyncio.Lock()
        # Bulk reads in worker threads (vectors, change logs, digests) share one more read-only connection.
        self._worker_reader: sqlite3.Connection | None = None
        self._worker_lock = threading.Lock()
        self._rarity = TableRarity()  # the whole table's word rarity for BM25, cached (read under _worker_lock)
        # The FAISS indexes, one per (space, channel): persisted under ``vectors_dir``, or kept in memory
        # only when it is None (a store opened to inspect or copy the database).
        self.indexes = ChannelIndexes(self, vectors_dir, params)

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    async def open(
        cls, path: str | Path, vectors_dir: str | Path | None = None, index_params: IndexParams = IndexParams()
    ) -> SQLiteStore:
        path = Path(path)
        _refuse_unusable_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = None
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
            await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            async with conn.execute("PRAGMA quick_check") as cur:  # before anything writes to a damaged file
                check = [str(row[0]) for row in await cur.fetchall()]
            if check != ["ok"]:
                raise sqlite3.DatabaseError(f"quick_check says: {check[0] if check else 'nothing'}")
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
        except sqlite3.DatabaseError as exc:
            if conn is not None:  # its worker thread would keep the process from exiting
                await conn.close()
            raise StoreError(
                f"{path}: cannot open the memory database ({_one_line(str(exc))}); {RESTORE_ADVICE}"
            ) from None
        store = cls(path, conn, Path(vectors_dir) if vectors_dir is not None else None, index_params)
        try:
            await store._upgrade_schema()
            store._reader = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            await store._reader.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            await store._reader.execute("PRAGMA foreign_keys=ON")  # both connections see the same database rules
        except sqlite3.DatabaseError as exc:  # "file is not a database", "disk image is malformed"
            await store._close_connections()
            raise StoreError(
                f"{path}: the memory database is damaged ({_one_line(str(exc))}); {RESTORE_ADVICE}"
            ) from None
        except BaseException:
            await store._close_connections()
            raise
        return store

    async def _close_connections(self) -> None:
        """The reader first: the writing connection, closing last, folds the write-ahead log into the database
        (a read-only connection cannot), so a closed memory is one self-contained file."""
        if self._reader is not None:
            await self._reader.close()
        await asyncio.to_thread(self._close_worker_reader)
        await self._conn.close()

    def _close_worker_reader(self) -> None:
        with self._worker_lock:
            if self._worker_reader is not None:
                self._worker_reader.close()
                self._worker_reader = None

    async def close(self) -> None:
        async with self._lock:
            await self._close_connections()

    def make_claims(self) -> LeaseClaims:
        """Job claims as lease rows in this database: the bot and a command-line migration beside it see the
        same claims, so exactly one process runs a job."""
        return LeaseClaims(self)

    async def flush(self) -> int:
        """Persist every index changed since the last flush; returns how many were written. The change log
        of each written index is cut back to its last ``KEEP_CHANGES`` entries (a cache further behind rebuilds)."""
        saved = await self.indexes.flush()
        prune = [(k[0], k[1], k[2], generation - KEEP_CHANGES) for k, generation in saved if generation > KEEP_CHANGES]
        if prune:
            async with self.transaction() as db:
                await db.executemany(
                    "DELETE FROM vector_changes WHERE space_id = ? AND guild_id = ? AND channel_id = ? "
                    "AND generation <= ?",
                    prune,
                )
        return len(saved)

    async def scrub(self) -> None:
        """Make what was deleted unreadable in the files too: merge the full-text index (its segments keep
        deleted terms until merged), then checkpoint the write-ahead log into the database (where
        ``secure_delete`` overwrote the freed pages) and truncate it."""
        async with self.transaction() as db:
            await db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
        async with self._lock:
            await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def apply_deletion_ledger(self, ledger: DeletionLedger) -> int:
        """Forget again what ``ledger`` (read from a newer copy of this memory) forgot: its rows join this
        database's ledger and opt-outs, and the messages it lists are deleted here (vectors and index files
        included). A restore of an older backup calls this, so nothing forgotten comes back; returns how
        many messages it deleted."""
        async with self.transaction() as db:
            await db.executemany("INSERT OR IGNORE INTO forgotten_messages VALUES (?,?,?,?,?)", ledger.messages)
            await db.executemany("INSERT OR IGNORE INTO opted_out_users VALUES (?,?,?)", ledger.opted_out)
        deleted = await self.delete_messages([row[0] for row in ledger.messages])
        if deleted:
            await self.scrub()
        return len(deleted)

    async def disk_footprint(self) -> DiskFootprint:
        """The database file with its write-ahead log, and the index files under ``vectors_dir``."""
        return await asyncio.to_thread(self._disk_footprint_sync)

    def _disk_footprint_sync(self) -> DiskFootprint:
        files = (self.path, self.path.with_name(self.path.name + "-wal"))
        database = sum(p.stat().st_size for p in files if p.exists())
        return DiskFootprint(self.path.parent, database, _tree_bytes(self.indexes.vectors_dir))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction, begun IMMEDIATE before any read it makes; rolled back on any error.
        Lock errors become :class:`StoreLocked`."""
        async with self._lock:
            await self._begin_immediate()
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    await self._conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    await self._conn.execute("ROLLBACK")
                    if _locked(exc):
                        raise StoreLocked(f"{self.path} is locked by another process; retry later") from None
                    raise

    async def _begin_immediate(self) -> None:
        """Take the write lock, waiting out another writer for up to the busy timeout.

        SQLite's own busy handler does not cover every case: a write lock taken while another connection
        commits can fail at once (the snapshot it began with is no longer the newest). So a busy answer is
        retried here, with a growing pause, until the busy timeout has passed.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = 0.002
        while True:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _locked(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreLocked(
                        f"{self.path} stayed locked for {BUSY_TIMEOUT_MS / 1000:.0f}s by another process; "
                        "stop the other writer (a second bot or a migration command) and retry"
                    ) from None
            await asyncio.sleep(pause)
            pause = min(0.1, pause * 2)

    async def fetchall(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        """Rows of a read, on the read-only connection: what is committed, never a transaction in progress."""
        async with self._read_lock, self._read_connection().execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence = ()) -> sqlite3.Row | None:
        async with self._read_lock, self._read_connection().execute(sql, params) as cur:
            return await cur.fetchone()

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """The store's one read-only connection for worker threads, in one read transaction (a consistent
        snapshot). Opened once and reused: a connection per read cost more than reading a small channel."""
        with self._worker_lock:
            if self._worker_reader is None:
                self._worker_reader = _read_only(self.path)
            conn = self._worker_reader
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")  # reads only: this ends the snapshot

    def _read_connection(self) -> aiosqlite.Connection:
        return self._reader if self._reader is not None else self._conn  # the latter only while opening

    async def _upgrade_schema(self) -> None:
        """Apply forward-only schema migrations, each in its own transaction."""
        async with self.transaction() as db:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = await (await db.execute("SELECT MAX(version) FROM schema_version")).fetchone()
        current = row[0] or 0
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this code ({SCHEMA_VERSION}); "
                "upgrade qwen3-memory or restore a backup made by this version"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            if current:  # an existing memory: some steps rewrite every row (8: the full-text terms), say so first
                log.info("%s: upgrading the schema to version %d", self.path, version)
            async with self.transaction() as db:
                for statement in _statements(SCHEMA_MIGRATIONS[version]):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version(version) VALUES (?)", (version,))

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT MAX(version) FROM schema_version")
        return int(row[0])

    async def integrity_check(self) -> str:
        row = await self.fetchone("PRAGMA integrity_check")
        return str(row[0])

    # ------------------------------------------------------------------ spaces
    async def ensure_space(self, spec: EmbeddingSpace) -> SpaceRecord:
        """The space's record, registering it on first use (by key: model, dimension, pooling, prompt...)."""
        row = await self.fetchone("SELECT id, spec FROM spaces WHERE key = ?", (spec.key,))
        if row is None:
            async with self.transaction() as db:
                await db.execute(
                    "INSERT OR IGNORE INTO spaces(key, model, dimension, pooling, spec, created_at) "
                    "VALUES (?,?,?,?,?,?)",
                    (spec.key, spec.model, spec.dimension, spec.pooling, spec.to_json(), time.time()),
                )
            row = await self.fetchone("SELECT id, spec FROM spaces WHERE key = ?", (spec.key,))
        elif EmbeddingSpace.from_json(row[1]).load_source != spec.load_source:
            async with self.transaction() as db:  # same vectors' meaning, new place to load the model from
                await db.execute("UPDATE spaces SET spec = ? WHERE id = ?", (spec.to_json(), row[0]))
            return SpaceRecord(row[0], spec)
        return SpaceRecord(row[0], EmbeddingSpace.from_json(row[1]))

    # ------------------------------------------------------------------ channels
    async def get_channel(self, guild_id: int, channel_id: int) -> ChannelState | None:
        row = await self.fetchone(
            "SELECT read_space_id, enabled FROM channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
        )
        if row is None:
            return None
        writes = await self.fetchall(
            "SELECT space_id FROM channel_write_spaces WHERE guild_id = ? AND channel_id = ? ORDER BY space_id",
            (guild_id, channel_id),
        )
        return ChannelState(guild_id, channel_id, row[0], tuple(w[0] for w in writes), bool(row[1]))

    async def ensure_channel(self, guild_id: int, channel_id: int, space_id: int, enabled: bool = True) -> ChannelState:
        """The channel's state; a new channel reads from and writes to ``space_id``."""
        state = await self.get_channel(guild_id, channel_id)
        if state is not None:
            return state
        async with self.transaction() as db:
            await db.execute(
                "INSERT OR IGNORE INTO channels(guild_id, channel_id, read_space_id, enabled) VALUES (?,?,?,?)",
                (guild_id, channel_id, space_id, int(enabled)),
            )
            await db.execute(
                "INSERT OR IGNORE INTO channel_write_spaces(guild_id, channel_id, space_id) VALUES (?,?,?)",
                (guild_id, channel_id, space_id),
            )
        state = await self.get_channel(guild_id, channel_id)
        assert state is not None
        return state

    async def list_channels(self, guild_id: int | None = None) -> list[ChannelState]:
        """Every channel's pointers (of one guild, or all), in two queries whatever the number of channels."""
        where, params = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
        rows = await self.fetchall(
            f"SELECT guild_id, channel_id, read_space_id, enabled FROM channels {where} ORDER BY guild_id, channel_id",
            params,
        )
        writes: dict[tuple[int, int], list[int]] = {}
        for g, c, space_id in await self.fetchall(
            f"SELECT guild_id, channel_id, space_id FROM channel_write_spaces {where} ORDER BY space_id", params
        ):
            writes.setdefault((g, c), []).append(space_id)
        return [ChannelState(g, c, read, tuple(writes.get((g, c), ())), bool(enabled)) for g, c, read, enabled in rows]

    async def set_channel_enabled(self, guild_id: int, channel_id: int, enabled: bool) -> None:
        async with self.transaction() as db:
            await db.execute(
                "UPDATE channels SET enabled = ? WHERE guild_id = ? AND channel_id = ?",
                (int(enabled), guild_id, channel_id),
            )

    async def add_write_space(self, guild_id: int, channel_id: int, space_id: int) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT OR IGNORE INTO channel_write_spaces(guild_id, channel_id, space_id) VALUES (?,?,?)",
                (guild_id, channel_id, space_id),
            )

    async def remove_write_space(self, guild_id: int, channel_id: int, space_id: int) -> None:
        async with self.transaction() as db:
            await db.execute(
                "DELETE FROM channel_write_spaces WHERE guild_id = ? AND channel_id = ? AND space_id = ?",
                (guild_id, channel_id, space_id),
            )

    async def set_read_space(self, guild_id: int, channel_id: int, space_id: int) -> None:
        """Move the channel's read pointer (the alias) in one transaction; the space must be written to."""
        async with self.transaction() as db:
            row = await (
                await db.execute(
                    "SELECT 1 FROM channel_write_spaces WHERE guild_id = ? AND channel_id = ? AND space_id = ?",
                    (guild_id, channel_id, space_id),
                )
            ).fetchone()
            if row is None:
                raise StoreError(
                    f"channel {channel_id} does not write to space {space_id}; a read pointer may only move to a "
                    "space that receives new messages"
                )
            await db.execute(
                "UPDATE channels SET read_space_id = ? WHERE guild_id = ? AND channel_id = ?",
                (space_id, guild_id, channel_id),
            )

    # ------------------------------------------------------------------ messages
    async def add_messages(self, messages: Iterable[StoredMessage]) -> list[StoredMessage]:
        """Insert new messages, or update changed ones (dropping their now-stale vectors).

        Returns the messages whose text is new or changed: those need embedding. Edited messages leave
        every loaded index in the same step. A message the deletion ledger lists is never stored again.
        """
        messages = list(messages)
        if not messages:
            return []
        async with self.indexes.writing():
            changed, edited, generations = await self._write_messages(messages)
            if edited:
                await self.indexes.remove(edited, generations)
        return changed

    async def _write_messages(
        self, messages: list[StoredMessage]
    ) -> tuple[list[StoredMessage], list[StoredMessage], Generations]:
        """(new or changed messages, the changed ones that existed before, the generations their vectors'
        removal moved) in one transaction."""
        ids = [m.id for m in messages]
        async with self.transaction() as db:
            existing = {
                r[0]: r[1]
                for r in await (
                    await db.execute(f"SELECT id, content FROM messages WHERE id IN ({_placeholders(len(ids))})", ids)
                ).fetchall()
            }
            forgotten = {
                r[0]
                for r in await (
                    await db.execute(
                        f"SELECT message_id FROM forgotten_messages WHERE message_id IN ({_placeholders(len(ids))})",
                        ids,
                    )
                ).fetchall()
            }
            changed = [m for m in messages if existing.get(m.id) != m.content and m.id not in forgotten]
            edited = [m for m in changed if m.id in existing]
            stale = [m.id for m in edited]
            generations: Generations = {}
            if stale:
                channels = {(m.guild_id, m.channel_id) for m in edited}
                before = await _generations(db, channels)
                await db.execute(f"DELETE FROM embeddings WHERE message_id IN ({_placeholders(len(stale))})", stale)
                generations = _moved(before, await _generations(db, channels))
                await db.execute(f"DELETE FROM messages_fts WHERE rowid IN ({_placeholders(len(stale))})", stale)
            await db.executemany(
                f"INSERT INTO messages({MESSAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET content = excluded.content, edited_at = excluded.edited_at, "
                "author_name = excluded.author_name",
                [
                    (m.id, m.guild_id, m.channel_id, m.author_id, m.author_name, m.content, m.created_at, m.edited_at)
                    for m in changed
                ],
            )
            await db.executemany(
                "INSERT INTO messages_fts(rowid, terms) VALUES (?, ?)",
                [(m.id, fts_document(m.content, m.channel_id)) for m in changed],
            )
        return changed, edited, generations

    async def delete_messages(self, message_ids: Iterable[int]) -> list[StoredMessage]:
        """Delete messages with their vectors in every space (FK cascade) and every loaded index."""
        ids = list(message_ids)
        deleted: list[StoredMessage] = []
        async with self.indexes.writing():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                async with self.transaction() as db:
                    rows = await (
                        await db.execute(
                            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ({_placeholders(len(chunk))})", chunk
                        )
                    ).fetchall()
                    gone = [message_of(r) for r in rows]
                    channels = {(m.guild_id, m.channel_id) for m in gone}
                    before = await _generations(db, channels)
                    await db.execute(f"DELETE FROM messages WHERE id IN ({_placeholders(len(chunk))})", chunk)
                    generations = _moved(before, await _generations(db, channels))
                if gone:
                    await self.indexes.remove(gone, generations)
                deleted.extend(gone)
        return deleted

    async def set_opted_out(self, guild_id: int, user_id: int, opted_out: bool) -> None:
        """Stop (or resume) capturing a member's messages in a guild (/memory forget-me, remember-me)."""
        async with self.transaction() as db:
            if opted_out:
                await db.execute(
                    "INSERT OR IGNORE INTO opted_out_users(guild_id, user_id, created_at) VALUES (?,?,?)",
                    (guild_id, user_id, time.time()),
                )
            else:
                await db.execute("DELETE FROM opted_out_users WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))

    async def get_messages(self, message_ids: Iterable[int]) -> dict[int, StoredMessage]:
        ids = list(message_ids)
        found: dict[int, StoredMessage] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await self.fetchall(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ({_placeholders(len(chunk))})", chunk
            )
            found.update((r[0], message_of(r)) for r in rows)
        return found

    async def search_text(
        self, guild_id: int, channel_id: int, query: str, limit: int, filters: RecallFilters = NO_FILTERS
    ) -> list[tuple[int, float]]:
        """BM25 candidates of one channel that pass ``filters``: (message id, score), best first; higher is better.
        Read from the channel's own postings in a worker thread (channel_bm25)."""

        def search() -> list[tuple[int, float]]:
            with self._snapshot() as conn:
                return search_channel(conn, self._rarity, guild_id, channel_id, query, limit, filters)

        return await asyncio.to_thread(search)

    async def channel_stats(self, target_space_id: int) -> dict[tuple[int, int], tuple[int, int, int]]:
        """Per channel: (messages without text, without a read-space vector, already in the target space)."""
        rows = await self.fetchall(_STATS_SQL, (target_space_id,))
        return {(r[0], r[1]): (int(r[2] or 0), int(r[3] or 0), int(r[4] or 0)) for r in rows}

    # ------------------------------------------------------------------ vectors
    async def put_vectors(
        self, space: SpaceRecord, messages: Sequence[StoredMessage], vectors: np.ndarray
    ) -> list[StoredMessage]:
        """Upsert vectors of ``messages`` into ``space`` and its channel indexes, idempotently, in one step.

        A message deleted or edited since it was embedded is skipped (its vector would be stale);
        returns the messages actually written.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(messages):
            raise ValueError(f"expected {len(messages)} vectors, got shape {vectors.shape}")
        if vectors.shape[1] != space.dimension:
            raise DimensionMismatch(
                f"space {space.spec.key} holds {space.dimension}-d vectors, got {vectors.shape[1]}-d; "
                "the model's output dimension does not match the space (check model_overrides.embedding_dimension)"
            )
        if not messages:
            return []
        async with self.indexes.writing():
            keep, generations = await self._write_vector_rows(space, messages, vectors)
            if keep:
                await self.indexes.add(space, [messages[i] for i in keep], vectors[keep], generations)
        return [messages[i] for i in keep]

    async def _write_vector_rows(
        self, space: SpaceRecord, messages: Sequence[StoredMessage], vectors: np.ndarray
    ) -> tuple[list[int], Generations]:
        """Rows of ``messages`` whose vectors were upserted (their text is still the one embedded), and the
        generations this transaction moved: exactly its own changes lie between their two values."""
        ids = [m.id for m in messages]
        channels = {(m.guild_id, m.channel_id) for m in messages}
        async with self.transaction() as db:
            before = await _generations(db, channels, space.id)
            current = {
                r[0]: r[1]
                for r in await (
                    await db.execute(f"SELECT id, content FROM messages WHERE id IN ({_placeholders(len(ids))})", ids)
                ).fetchall()
            }
            keep = [i for i, m in enumerate(messages) if current.get(m.id) == m.content]
            await db.executemany(
                "INSERT INTO embeddings(space_id, message_id, guild_id, channel_id, vector) VALUES (?,?,?,?,?) "
                "ON CONFLICT(space_id, message_id) DO UPDATE SET vector = excluded.vector",
                [
                    (space.id, messages[i].id, messages[i].guild_id, messages[i].channel_id, vectors[i].tobytes())
                    for i in keep
                ],
            )
            generations = _moved(before, await _generations(db, channels, space.id))
        return keep, generations

    async def count_vectors(self, space_id: int, guild_id: int, channel_id: int) -> int:
        row = await self.fetchone(
            "SELECT COUNT(*) FROM embeddings WHERE space_id = ? AND guild_id = ? AND channel_id = ?",
            (space_id, guild_id, channel_id),
        )
        return int(row[0])

    async def vector_generation(self, space_id: int, guild_id: int, channel_id: int) -> int:
        """A counter bumped by every vector insert, update or delete in (space, channel)."""
        row = await self.fetchone(
            "SELECT generation FROM vector_generations WHERE space_id = ? AND guild_id = ? AND channel_id = ?",
            (space_id, guild_id, channel_id),
        )
        return int(row[0]) if row else 0

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
        rows = await self.fetchall(
            f"SELECT {', '.join('m.' + c.strip() for c in MESSAGE_COLUMNS.split(','))} FROM messages m "
            "WHERE m.guild_id = ? AND m.channel_id = ? AND m.id > ? AND m.id <= ? AND NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.space_id = ? AND e.message_id = m.id) ORDER BY m.id LIMIT ?",
            (guild_id, channel_id, after_id, up_to_id, space_id, limit),
        )
        return [message_of(r) for r in rows]

    async def get_vectors(self, space_id: int, message_ids: Sequence[int]) -> dict[int, np.ndarray]:
        rows = await self.fetchall(
            f"SELECT message_id, vector FROM embeddings WHERE space_id = ? AND message_id IN "
            f"({_placeholders(len(message_ids))})",
            (space_id, *message_ids),
        )
        return {r[0]: np.frombuffer(r[1], dtype=np.float32) for r in rows}

    async def load_vectors(
        self, space: SpaceRecord, guild_id: int, channel_id: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """All vectors of (space, channel) as (ids int64, vectors float32 (n, d), generation), read in a thread."""
        return await asyncio.to_thread(self._load_vectors_sync, space, guild_id, channel_id)

    def _load_vectors_sync(
        self, space: SpaceRecord, guild_id: int, channel_id: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        with self._snapshot() as conn:  # one snapshot for the vectors and their generation
            rows = conn.execute(
                "SELECT message_id, vector FROM embeddings WHERE space_id = ? AND guild_id = ? AND channel_id = ? "
                "ORDER BY message_id",
                (space.id, guild_id, channel_id),
            ).fetchall()
            gen = conn.execute(
                "SELECT generation FROM vector_generations WHERE space_id = ? AND guild_id = ? AND channel_id = ?",
                (space.id, guild_id, channel_id),
            ).fetchone()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), space.dimension)
        return ids, vectors, int(gen[0]) if gen else 0

    async def delete_space_vectors(self, space_id: int, guild_id: int, channel_id: int) -> int:
        """Drop every vector of (space, channel) and its index file: the finalize step of a migration."""
        space = await self.get_space(space_id)
        async with self.indexes.writing():
            async with self.transaction() as db:
                cur = await db.execute(
                    "DELETE FROM embeddings WHERE space_id = ? AND guild_id = ? AND channel_id = ?",
                    (space_id, guild_id, channel_id),
                )
                await db.execute(  # nothing is left to catch up with: a cache of it rebuilds (empty)
                    "DELETE FROM vector_changes WHERE space_id = ? AND guild_id = ? AND channel_id = ?",
                    (space_id, guild_id, channel_id),
                )
            await self.indexes.delete_files(space, guild_id, channel_id)
        return cur.rowcount

    async def vector_changes_since(
        self, space: SpaceRecord, guild_id: int, channel_id: int, generation: int
    ) -> VectorChanges | None:
        """What changed in (space, channel) after ``generation``, read in one snapshot in a worker thread:
        the current vectors of the messages changed since, and those removed. None when the change log no
        longer reaches back that far (pruned, or written before it existed): then only a rebuild is exact."""
        return await asyncio.to_thread(self._vector_changes_since_sync, space, guild_id, channel_id, generation)

    def _vector_changes_since_sync(
        self, space: SpaceRecord, guild_id: int, channel_id: int, generation: int
    ) -> VectorChanges | None:
        key = (space.id, guild_id, channel_id)
        with self._snapshot() as conn:  # one snapshot: the log, the vectors and the generation agree
            row = conn.execute(
                "SELECT generation FROM vector_generations WHERE space_id = ? AND guild_id = ? AND channel_id = ?",
                key,
            ).fetchone()
            current = int(row[0]) if row else 0
            changes = conn.execute(
                "SELECT generation, message_id FROM vector_changes WHERE space_id = ? AND guild_id = ? "
                "AND channel_id = ? AND generation > ? AND generation <= ? ORDER BY generation",
                (*key, generation, current),
            ).fetchall()
            if current < generation or (current > generation and (not changes or changes[0][0] != generation + 1)):
                return None
            changed = sorted({message_id for _, message_id in changes})
            found: dict[int, bytes] = {}
            for start in range(0, len(changed), 500):
                chunk = changed[start : start + 500]
                found.update(
                    conn.execute(
                        "SELECT message_id, vector FROM embeddings WHERE space_id = ? AND guild_id = ? "
                        f"AND channel_id = ? AND message_id IN ({_placeholders(len(chunk))})",
                        (*key, *chunk),
                    ).fetchall()
                )
            count = conn.execute(
                "SELECT COUNT(*) FROM embeddings WHERE space_id = ? AND guild_id = ? AND channel_id = ?", key
            ).fetchone()[0]
        ids = np.array(sorted(found), dtype=np.int64)
        vectors = np.frombuffer(b"".join(found[i] for i in ids.tolist()), dtype=np.float32).reshape(
            len(ids), space.dimension
        )
        removed = np.array([i for i in changed if i not in found], dtype=np.int64)
        return VectorChanges(current, int(count), ids, vectors, removed)

    # ------------------------------------------------------------------ vector search
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
        """Top-``k`` (message id, score) of one channel, best first, searched in a worker thread.

        With ``filters`` that exclude messages, every message passing them is scored (an exact search of
        that subset), so a narrow filter still yields ``k`` results. ``expect_read_space`` matters on a
        shared server only; one process owns a SQLite memory and moves its pointers itself.
        """
        if filters.restricts:
            allowed = await asyncio.to_thread(self._filtered_ids_sync, guild_id, channel_id, filters)
            return await self.indexes.search_among(space, guild_id, channel_id, query, k, allowed)
        return await self.indexes.search(space, guild_id, channel_id, query, k)

    def _filtered_ids_sync(self, guild_id: int, channel_id: int, filters: RecallFilters) -> np.ndarray:
        """Ids of the channel's messages passing ``filters``, read through the covering indexes of schema 5."""
        condition, params = filters.sql("m")
        conn = _read_only(self.path)
        try:
            rows = conn.execute(
                f"SELECT m.id FROM messages m WHERE m.guild_id = ? AND m.channel_id = ?{condition}",
                (guild_id, channel_id, *params),
            )
            return np.fromiter((r[0] for r in rows), dtype=np.int64)
        finally:
            conn.close()

    async def search_many(
        self, space: SpaceRecord, guild_id: int, channel_id: int, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (n, k) for ``n`` queries in one batched call; ids are -1 past the channel's size."""
        return await self.indexes.search_many(space, guild_id, channel_id, queries, k)

    async def index_info(self, space: SpaceRecord, guild_id: int, channel_id: int, load: bool = True) -> IndexInfo:
        """What the channel's index in ``space`` holds; ``load`` brings it up to date with the database first
        (what verify checks), else the cached or on-disk state is described without loading (what stats show)."""
        path = self.indexes.path(space, guild_id, channel_id)
        on_disk = path.stat().st_size if path is not None and path.exists() else None
        if load:
            index = await self.indexes.get(space, guild_id, channel_id, validate=True)
            return IndexInfo(index.kind, len(index), index.dimension, on_disk, str(path) if path else None)
        count = await self.count_vectors(space.id, guild_id, channel_id)
        index = self.indexes.cached(space.id, guild_id, channel_id)
        kind = index.kind if index is not None else self.indexes.params.kind_for(count)
        return IndexInfo(kind, count, space.dimension, on_disk, str(path) if path else None)

    async def vector_counts(self, guild_id: int, channel_id: int) -> dict[int, int]:
        rows = await self.fetchall(
            "SELECT space_id, COUNT(*) FROM embeddings WHERE guild_id = ? AND channel_id = ? GROUP BY space_id",
            (guild_id, channel_id),
        )
        return {r[0]: r[1] for r in rows}

    # ------------------------------------------------------------------ checksums
    async def checksums(self, guild_id: int, channel_id: int, space_id: int | None = None) -> dict[str, Any]:
        """Counts and sha256 digests of a channel's messages (and vectors in ``space_id``).

        The definition of :meth:`PostgresStore.checksums`, so a move between backends can be checked
        end to end: ``messages_sha`` hashes ``f"{id}\\t{content}\\n"`` per message by id, ``vectors_sha``
        is :func:`vectors_digest` of the vectors by message id. Messages are hashed in a worker thread
        from a read-only connection, vectors come through :meth:`load_vectors`; the two reads are two
        snapshots, so a bot writing meanwhile can make them disagree (a move verifies again).
        """
        messages, messages_sha = await asyncio.to_thread(self._messages_digest_sync, guild_id, channel_id)
        result: dict[str, Any] = {"messages": messages, "messages_sha": messages_sha, "vectors": 0, "vectors_sha": None}
        if space_id is not None:
            ids, vectors, _ = await self.load_vectors(await self.get_space(space_id), guild_id, channel_id)
            result["vectors"] = len(ids)
            result["vectors_sha"] = await asyncio.to_thread(vectors_digest, ids, vectors)
        return result

    def _messages_digest_sync(self, guild_id: int, channel_id: int) -> tuple[int, str]:
        with self._snapshot() as conn:
            count, digest = 0, hashlib.sha256()
            for message_id, content in conn.execute(
                "SELECT id, content FROM messages WHERE guild_id = ? AND channel_id = ? ORDER BY id",
                (guild_id, channel_id),
            ):
                count += 1
                digest.update(f"{message_id}\t{content}\n".encode())
            return count, digest.hexdigest()


_STATS_SQL = """
SELECT m.guild_id, m.channel_id,
       SUM(CASE WHEN trim(m.content) = '' THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT EXISTS (SELECT 1 FROM embeddings e
                                 WHERE e.space_id = c.read_space_id AND e.message_id = m.id) THEN 1 ELSE 0 END),
       SUM(CASE WHEN EXISTS (SELECT 1 FROM embeddings e WHERE e.space_id = ? AND e.message_id = m.id)
           THEN 1 ELSE 0 END)
FROM messages m LEFT JOIN channels c ON c.guild_id = m.guild_id AND c.channel_id = m.channel_id
GROUP BY m.guild_id, m.channel_id
"""


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers contain ';' inside BEGIN...END)."""
    statements, buffer = [], ""
    for line in script.strip().splitlines():
        buffer += line + "\n"
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
