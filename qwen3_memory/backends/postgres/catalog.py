"""The pgvector catalog: the same surface as :class:`qwen3_memory.backends.sqlite.catalog.IndexCatalog`, no files.

On Postgres each space's vector table carries its own HNSW index, kept current by the server in
the same transaction as the rows. So there is nothing to load, add, remove, flush or rebuild:
those methods keep their signatures and do nothing, and a search is a query through
:meth:`PostgresStore.search_vectors`, seen by every process the moment a write commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np

from qwen3_memory.backends.postgres.store import PostgresStore
from qwen3_memory.records import SpaceRecord, StoredMessage

PGVECTOR_HNSW = "pgvector-hnsw"


@dataclass(frozen=True)
class PgVectorParams:
    """Search-time parameters; m and ef_construction belong to the tables (``PostgresStore.open``)."""

    ef_search: int = 64

    def kind_for(self, n: int) -> str:
        return PGVECTOR_HNSW


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


@dataclass(frozen=True)
class PgVectorIndex:
    """One (space, channel) of the store seen as an index: what verify and /memory stats read of it.
    Searches go through :meth:`PgVectorCatalog.search` and ``search_many``."""

    dimension: int
    size: int
    kind: str = PGVECTOR_HNSW

    def __len__(self) -> int:
        return self.size


class PgVectorCatalog:
    def __init__(self, store: PostgresStore, ef_search: int = 64) -> None:
        self.store = store
        self.params = PgVectorParams(ef_search)
        self.rebuilds = 0  # never: the server maintains its indexes
        self._sync = asyncio.Lock()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Kept for the callers' shape: store writes are already atomic, there is no second copy to sync."""
        async with self._sync:
            yield

    def path(self, space: SpaceRecord, guild_id: int, channel_id: int) -> None:
        """No index file: the vectors and their index are rows and pages on the server."""
        return None

    async def get(self, space: SpaceRecord, guild_id: int, channel_id: int, validate: bool = False) -> PgVectorIndex:
        """The channel's view in ``space``; always current, so ``validate`` changes nothing."""
        return PgVectorIndex(space.dimension, await self.store.count_vectors(space.id, guild_id, channel_id))

    async def add(self, space: SpaceRecord, messages: Sequence[StoredMessage], vectors: np.ndarray) -> None:
        """Nothing to do: ``put_vectors`` already wrote the rows the HNSW index covers."""

    async def remove(self, messages: Sequence[StoredMessage]) -> None:
        """Nothing to do: deleted or edited messages lost their vector rows in the store's transaction."""

    async def search(
        self,
        space: SpaceRecord,
        guild_id: int,
        channel_id: int,
        query: np.ndarray,
        k: int,
        expect_read_space: bool = False,
    ) -> list[tuple[int, float]]:
        """Top-``k`` (message id, cosine similarity) of one channel, best first.

        With ``expect_read_space`` the store raises :class:`ReadSpaceMoved` when the channel no longer
        reads ``space`` (another process swapped it), checked in the search's own snapshot.
        """
        hits = await self.store.search_vectors(
            space,
            guild_id,
            channel_id,
            np.asarray(query, dtype=np.float32).reshape(1, -1),
            k,
            ef_search=self.params.ef_search,
            expect_read_space=expect_read_space,
        )
        return hits[0]

    async def search_many(
        self, space: SpaceRecord, guild_id: int, channel_id: int, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (n, k) for ``n`` queries in one transaction; ids are -1 past the hits."""
        hits = await self.store.search_vectors(space, guild_id, channel_id, queries, k, ef_search=self.params.ef_search)
        return as_arrays(hits, k)

    async def flush(self) -> int:
        """Nothing is ever dirty: committed rows are durable and indexed."""
        return 0

    def forget(self, space_id: int, guild_id: int, channel_id: int) -> None:
        """Nothing is cached."""

    async def delete_files(self, space: SpaceRecord, guild_id: int, channel_id: int) -> None:
        """No files: the rows go with ``store.delete_space_vectors``."""

    def cached(self, space_id: int, guild_id: int, channel_id: int) -> None:
        return None
