"""The one contract between the memory's logic and where it is kept.

Capture, recall, the migration engine, evaluation, the cogs and the tests program against
:class:`Store`; :class:`~qwen3_memory.backends.sqlite.store.SQLiteStore` (SQLite + the FAISS
indexes it owns) and :class:`~qwen3_memory.backends.postgres.store.PostgresStore` (PostgreSQL +
pgvector) implement it. Every write is a single call that leaves rows and vector indexes
consistent, so no caller ever holds an index lock, adds to an index or reads a generation counter.
What differs between backends and matters to a caller is a capability attribute, never a type test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from qwen3_memory.backends.claims import Claims
from qwen3_memory.records import ChannelState, SpaceRecord, StoredMessage
from qwen3_memory.space import EmbeddingSpace


@dataclass(frozen=True)
class IndexInfo:
    """What one channel's vector index in one space holds (verify checks it, ``/memory stats`` shows it)."""

    kind: str  # "exact" or "hnsw" (FAISS), "pgvector-hnsw"
    size: int  # vectors in the index
    dimension: int
    disk_bytes: int | None = None  # size of its file; None when it has none (yet)
    location: str | None = None  # its file, or None when the database itself is the index

    def __len__(self) -> int:
        return self.size


@dataclass(frozen=True)
class DiskFootprint:
    """What a store occupies on this machine's disk: what a file backup copies, where new vectors grow.

    A store on a server (Postgres) has none here: ``directory`` is None and the sizes are 0.
    """

    directory: Path | None = None  # where the database lies; new vectors are written beside it
    database_bytes: int = 0  # the database file with its write-ahead log
    index_bytes: int = 0  # the index files the store owns

    @property
    def total_bytes(self) -> int:
        return self.database_bytes + self.index_bytes


@runtime_checkable
class Store(Protocol):
    """A memory's storage: messages, spaces, channel pointers, vectors with their search, and job tables."""

    kind: str  # "sqlite" or "postgres": for logs and messages only, never for branching
    where: str  # where the memory lives, safe to log (a DSN is redacted)
    shared_by_processes: bool  # several bot processes may use it at once (shards); claims then span processes
    file_backups: bool  # a migration backs it up to files first (else the server's own backups cover it)

    # ---------------------------------------------------------------- lifecycle
    async def close(self) -> None: ...
    async def flush(self) -> int:
        """Persist derived state (index files); returns how many things were written."""

    async def disk_footprint(self) -> DiskFootprint:
        """What the store occupies on this machine's disk (a backup's size, where new vectors go)."""

    async def scrub(self) -> None:
        """Make what was deleted unreadable in the storage's files too (after a member asked to be forgotten)."""

    def make_claims(self) -> Claims:
        """Who runs which migration job: in-process, or across every process sharing the store."""

    async def schema_version(self) -> int: ...
    async def integrity_check(self) -> str:
        """``"ok"``, or what is damaged."""

    # ---------------------------------------------------------------- raw access for the job tables
    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """One write transaction whose ``execute``/``executemany`` take portable SQL with ``?`` placeholders."""

    async def fetchall(self, sql: str, params: Sequence = ()) -> list[Any]: ...
    async def fetchone(self, sql: str, params: Sequence = ()) -> Any: ...

    # ---------------------------------------------------------------- spaces and channel pointers
    async def ensure_space(self, spec: EmbeddingSpace) -> SpaceRecord: ...
    async def get_space(self, space_id: int) -> SpaceRecord: ...
    async def list_spaces(self) -> list[SpaceRecord]: ...
    async def get_channel(self, guild_id: int, channel_id: int) -> ChannelState | None: ...
    async def ensure_channel(
        self, guild_id: int, channel_id: int, space_id: int, enabled: bool = True
    ) -> ChannelState: ...
    async def list_channels(self, guild_id: int | None = None) -> list[ChannelState]: ...
    async def set_channel_enabled(self, guild_id: int, channel_id: int, enabled: bool) -> None: ...
    async def add_write_space(self, guild_id: int, channel_id: int, space_id: int) -> None: ...
    async def remove_write_space(self, guild_id: int, channel_id: int, space_id: int) -> None: ...
    async def set_read_space(self, guild_id: int, channel_id: int, space_id: int) -> None:
        """Move the read pointer in one transaction (the swap); the space must be a write space."""

    # ---------------------------------------------------------------- messages
    async def add_messages(self, messages: Iterable[StoredMessage]) -> list[StoredMessage]:
        """Insert or update; returns new or changed messages. An edit drops its stale vectors everywhere."""

    async def delete_messages(self, message_ids: Iterable[int]) -> list[StoredMessage]:
        """Delete messages, their vectors in every space and every index; returns what was deleted."""

    async def get_messages(self, message_ids: Iterable[int]) -> dict[int, StoredMessage]: ...
    async def scroll_messages(
        self, guild_id: int, channel_id: int, after_id: int, limit: int, up_to_id: int = 2**63 - 1
    ) -> list[StoredMessage]: ...
    async def sample_messages(self, guild_id: int, channel_id: int, n: int) -> list[StoredMessage]: ...
    async def following_messages(
        self, guild_id: int, channel_id: int, sources: Sequence[tuple[int, float]], lines: int, seconds: float
    ) -> list[tuple[int, int, int]]:
        """(source, follower, lines after) of the messages that follow each (source id, time) in the channel."""

    async def newest_message_id(self, guild_id: int, channel_id: int) -> int: ...
    async def count_messages(self, guild_id: int, channel_id: int) -> int: ...
    async def message_channels(self) -> list[tuple[int, int, int]]: ...
    async def author_message_ids(self, guild_id: int, author_id: int) -> list[int]: ...
    async def set_opted_out(self, guild_id: int, user_id: int, opted_out: bool) -> None: ...
    async def opted_out_users(self, guild_id: int) -> set[int]: ...
    async def search_text(self, guild_id: int, channel_id: int, query: str, limit: int) -> list[tuple[int, float]]:
        """Lexical candidates of one channel: (message id, score), best first."""

    async def channel_stats(self, target_space_id: int) -> dict[tuple[int, int], tuple[int, int, int]]: ...

    # ---------------------------------------------------------------- vectors
    async def put_vectors(
        self, space: SpaceRecord, messages: Sequence[StoredMessage], vectors: np.ndarray
    ) -> list[StoredMessage]:
        """Upsert vectors into ``space`` and its index in one step; skips messages edited or deleted since."""

    async def delete_space_vectors(self, space_id: int, guild_id: int, channel_id: int) -> int:
        """Drop every vector of (space, channel) and its index (finalize); returns how many."""

    async def count_vectors(self, space_id: int, guild_id: int, channel_id: int) -> int: ...
    async def vector_counts(self, guild_id: int, channel_id: int) -> dict[int, int]: ...
    async def get_vectors(self, space_id: int, message_ids: Sequence[int]) -> dict[int, np.ndarray]: ...
    async def load_vectors(
        self, space: SpaceRecord, guild_id: int, channel_id: int
    ) -> tuple[np.ndarray, np.ndarray, int]: ...
    async def messages_missing_vectors(
        self,
        space_id: int,
        guild_id: int,
        channel_id: int,
        after_id: int = 0,
        limit: int = 256,
        up_to_id: int = 2**63 - 1,
    ) -> list[StoredMessage]: ...
    async def checksums(self, guild_id: int, channel_id: int, space_id: int | None = None) -> dict[str, Any]: ...

    # ---------------------------------------------------------------- vector search
    async def search(
        self,
        space: SpaceRecord,
        guild_id: int,
        channel_id: int,
        query: np.ndarray,
        k: int,
        expect_read_space: bool = False,
    ) -> list[tuple[int, float]]:
        """Top-``k`` (message id, cosine similarity) of one channel, best first. With ``expect_read_space``
        a shared store raises :class:`ReadSpaceMoved` when another process moved the read pointer meanwhile."""

    async def search_many(
        self, space: SpaceRecord, guild_id: int, channel_id: int, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (n, k) for ``n`` queries; ids are -1 past the channel's size."""

    async def index_info(self, space: SpaceRecord, guild_id: int, channel_id: int, load: bool = True) -> IndexInfo:
        """The channel's index in ``space``; ``load`` first brings it up to date with the rows."""
