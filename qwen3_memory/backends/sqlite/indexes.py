"""The SQLite store's live set of channel indexes: loaded lazily, kept in sync with the rows, flushed to disk.

Owned by :class:`SQLiteStore`, which calls ``add``/``remove`` inside the same ``writing()`` section as
the row change; nothing else writes here. Every index carries the *generation* of the rows it
reflects: a counter the database bumps on every vector change of that (space, channel), logging
which message changed at each value (``vector_changes``). Several processes may write one SQLite
memory (the bot and a command-line migration), so an index never adopts the database's generation
blindly: after its own write it moves to the new generation only if it was current just before
that write; else, and whenever a search finds it behind, it applies exactly the logged changes it
lacks (another process's included). A file or cache the log no longer reaches back to, or one
that is damaged, is rebuilt from SQLite in a worker thread. Without a ``vectors_dir`` the indexes
live in memory only.

The loaded indexes are a cache with a memory budget (``IndexParams.cache_bytes``, the setting
``index.cache_mb``): past it, the least recently used indexes that hold nothing unflushed are
dropped, and loaded again from their files (or the rows) by the next search that needs them. A
bot with thousands of channels keeps the busy ones in memory, not every vector it ever touched.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qwen3_memory.backends.sqlite.index import IndexParams, VectorIndex, save_many
from qwen3_memory.records import SpaceRecord, StoredMessage

if TYPE_CHECKING:
    from qwen3_memory.backends.sqlite.store import SQLiteStore

log = logging.getLogger(__name__)

Key = tuple[int, int, int]  # (space id, guild id, channel id)
Generations = dict[Key, tuple[int, int]]  # what one write transaction moved: (before, after) per key
FLUSH_CHUNK = 256  # indexes written per worker-thread call of a flush
EVICT_DOWN_TO = 0.9  # an eviction frees room down to this fraction of the cache budget


@dataclass(frozen=True)
class VectorChanges:
    """What changed in one (space, channel) after a generation, as of ``generation`` (one snapshot)."""

    generation: int
    count: int  # vectors the channel holds in the space at ``generation``
    ids: np.ndarray  # messages whose vector is new or replaced: their current vectors follow
    vectors: np.ndarray
    removed: np.ndarray  # messages whose vector is gone


def _apply(index: VectorIndex, changes: VectorChanges) -> None:
    index.erase(changes.removed)
    index.upsert(changes.ids, changes.vectors)


def _upsert_all(changes: Sequence[tuple[Key, VectorIndex, np.ndarray, np.ndarray]]) -> None:
    for _, index, ids, vectors in changes:
        index.upsert(ids, vectors)


class ChannelIndexes:
    def __init__(self, store: SQLiteStore, vectors_dir: Path | None, params: IndexParams = IndexParams()) -> None:
        self.store = store
        self.vectors_dir = Path(vectors_dir) if vectors_dir is not None else None
        self.params = params
        self._indexes: OrderedDict[Key, VectorIndex] = OrderedDict()  # least recently used first
        self._dirty: set[Key] = set()
        self._locks: dict[Key, asyncio.Lock] = {}
        self.rebuilds = 0
        self.catch_ups = 0
        self.evictions = 0
        self._estimated_bytes = 0  # of the loaded indexes, updated as they load; exact after each eviction
        self._sync = asyncio.Lock()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Hold while changing vectors in the store *and* applying the change to the indexes.

        A search compares its cached index with the store's generation under the same lock, so it
        never mistakes this process's own half-applied write for a change by another process.
        """
        async with self._sync:
            yield

    def path(self, space: SpaceRecord, guild_id: int, channel_id: int) -> Path | None:
        """Where the index is persisted; None when the indexes live in memory only."""
        if self.vectors_dir is None:
            return None
        return self.vectors_dir / space.spec.key / str(guild_id) / f"{channel_id}.idx"

    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def get(self, space: SpaceRecord, guild_id: int, channel_id: int, validate: bool = False) -> VectorIndex:
        """The channel's index in ``space``: cached, else loaded from disk if in sync, else rebuilt.

        ``validate`` also checks a cached index against the store's generation, so vectors written
        by another process (a command-line migration beside the bot) are applied before a search.
        """
        key = (space.id, guild_id, channel_id)
        index = self._indexes.get(key)
        if index is not None and validate:
            async with self._sync:
                if index.generation != await self.store.vector_generation(space.id, guild_id, channel_id):
                    async with self._lock(key):
                        return await self.catch_up(space, guild_id, channel_id, index)
        if index is not None:
            self._indexes.move_to_end(key)
            return index
        async with self._lock(key):
            index = self._indexes.get(key)
            if index is None:
                index = await self._load_or_rebuild(space, guild_id, channel_id)
                self._indexes[key] = index
                self._evict(keep=key, loaded=index)
            return index

    @property
    def cached_bytes(self) -> int:
        """About how much memory the loaded indexes take (summed now)."""
        return sum(index.nbytes for index in self._indexes.values())

    def _evict(self, keep: Key | None = None, loaded: VectorIndex | None = None) -> None:
        """Past the budget, drop least recently used indexes with nothing unflushed down to nine tenths of it
        (``keep``, the one just loaded, stays); dirty ones wait for the next flush, which evicts again. The
        running estimate grows by each index ``loaded`` and is summed exactly only when it passes the budget."""
        budget = self.params.cache_bytes
        self._estimated_bytes += loaded.nbytes if loaded is not None else 0
        if self._estimated_bytes <= budget:
            return
        total = self.cached_bytes
        for key in list(self._indexes) if total > budget else ():
            if total <= budget * EVICT_DOWN_TO:
                break
            lock = self._locks.get(key)
            if key == keep or key in self._dirty or (lock is not None and lock.locked()):
                continue
            total -= self._indexes.pop(key).nbytes
            self._locks.pop(key, None)
            self.evictions += 1
        self._estimated_bytes = total

    async def _load_or_rebuild(self, space: SpaceRecord, guild_id: int, channel_id: int) -> VectorIndex:
        path = self.path(space, guild_id, channel_id)
        count = await self.store.count_vectors(space.id, guild_id, channel_id)
        generation = await self.store.vector_generation(space.id, guild_id, channel_id)
        if path is not None and path.exists():
            try:
                index = await asyncio.to_thread(VectorIndex.load, path, self.params)
            except Exception as exc:  # damaged file: rebuild from the source of truth
                log.warning("index %s is unreadable (%s); rebuilding from the database", path, exc)
            else:
                if len(index) == count and index.generation == generation and index.dimension == space.dimension:
                    return index
                if index.dimension == space.dimension and index.generation < generation:
                    return await self.catch_up(space, guild_id, channel_id, index)
                log.info(
                    "index %s is out of sync (%d vectors, db %d; generation %d, db %d); rebuilding",
                    path,
                    len(index),
                    count,
                    index.generation,
                    generation,
                )
        return await self.rebuild(space, guild_id, channel_id)

    async def rebuild(self, space: SpaceRecord, guild_id: int, channel_id: int) -> VectorIndex:
        """Build the index from the store's vectors (in a thread) and persist it."""
        ids, vectors, generation = await self.store.load_vectors(space, guild_id, channel_id)
        index = await asyncio.to_thread(VectorIndex.build, ids, vectors, space.dimension, self.params)
        index.generation = generation
        await self._save(index, self.path(space, guild_id, channel_id))
        self._indexes[(space.id, guild_id, channel_id)] = index
        self.rebuilds += 1
        return index

    async def catch_up(self, space: SpaceRecord, guild_id: int, channel_id: int, index: VectorIndex) -> VectorIndex:
        """Apply to ``index`` exactly the logged changes after its generation; rebuild when the log does not
        reach back that far or the result disagrees with the database's count."""
        key = (space.id, guild_id, channel_id)
        changes = await self.store.vector_changes_since(space, guild_id, channel_id, index.generation)
        if changes is None:
            log.info("index %s is behind the change log (generation %d); rebuilding", key, index.generation)
            return await self.rebuild(space, guild_id, channel_id)
        await asyncio.to_thread(_apply, index, changes)
        index.generation = changes.generation
        if len(index) != changes.count:  # pragma: no cover - a log that disagrees with its rows: trust the rows
            log.warning("index %s holds %d vectors after catching up, the database %d", key, len(index), changes.count)
            return await self.rebuild(space, guild_id, channel_id)
        self._indexes[key] = index
        self._dirty.add(key)
        self.catch_ups += 1
        return index

    async def add(
        self, space: SpaceRecord, messages: Sequence[StoredMessage], vectors: np.ndarray, generations: Generations
    ) -> None:
        """Add vectors the store has just written (``put_vectors``' accepted rows) to their channel indexes;
        ``generations``: what that write transaction moved."""
        by_channel: dict[tuple[int, int], list[int]] = {}
        for row, message in enumerate(messages):
            by_channel.setdefault((message.guild_id, message.channel_id), []).append(row)
        changes: list[tuple[Key, VectorIndex, np.ndarray, np.ndarray]] = []
        for (guild_id, channel_id), rows in by_channel.items():
            key = (space.id, guild_id, channel_id)
            index = self._indexes.get(key)
            if index is None:
                index = self._new_if_first(space, guild_id, channel_id, generations)
            if index is None:
                index = await self.get(space, guild_id, channel_id)
            if index.generation >= generations.get(key, (0, 0))[1]:
                continue  # loaded from the rows after this write: it holds these vectors already
            changes.append((key, index, np.array([messages[r].id for r in rows], dtype=np.int64), vectors[rows]))
        await asyncio.to_thread(_upsert_all, changes)  # one worker call for a batch of many small channels
        for key, index, _, _ in changes:
            self._advance(key, index, generations)

    def _new_if_first(
        self, space: SpaceRecord, guild_id: int, channel_id: int, generations: Generations
    ) -> VectorIndex | None:
        """An empty index for a channel whose first vectors in ``space`` this write added (nothing to load or
        rebuild: the caller adds them, and the next flush writes the file once); None otherwise."""
        key = (space.id, guild_id, channel_id)
        path = self.path(space, guild_id, channel_id)
        if generations.get(key, (None, None))[0] != 0 or (path is not None and path.exists()):
            return None
        index = self._indexes[key] = VectorIndex(space.dimension, self.params.kind_for(0), self.params)
        return index

    async def remove(self, messages: Sequence[StoredMessage], generations: Generations) -> None:
        """Erase deleted or edited messages from every index of their channels, in every space. A loaded
        index is erased in memory and written at the next flush (the capture writer flushes every 30 s and
        at shutdown; forget-me flushes at once); an index that only has a file, such as an old space's
        that nothing searches any more, is loaded, erased and written again now, so no file keeps their
        vectors."""
        by_channel: dict[tuple[int, int], list[int]] = {}
        for message in messages:
            by_channel.setdefault((message.guild_id, message.channel_id), []).append(message.id)
        spaces = await self.store.list_spaces()
        for (guild_id, channel_id), id_list in by_channel.items():
            ids = np.array(id_list, dtype=np.int64)
            for space in spaces:
                key = (space.id, guild_id, channel_id)
                path = self.path(space, guild_id, channel_id)
                index = self._indexes.get(key)
                if index is None and (path is None or not path.exists()):
                    continue
                loaded = index is not None
                if not loaded:
                    try:
                        index = await asyncio.to_thread(VectorIndex.load, path, self.params)
                    except Exception:  # a damaged file would be rebuilt from the database anyway
                        await asyncio.to_thread(path.unlink, True)
                        continue
                if not await asyncio.to_thread(index.erase, ids):
                    continue
                self._advance(key, index, generations)
                if not loaded:
                    await self._save(index, path)
                    self._dirty.discard(key)

    def _advance(self, key: Key, index: VectorIndex, generations: Generations) -> None:
        """After applying its own write: current again only if it was current just before that write. An index
        behind then (another process wrote) keeps its generation, so the next search catches up exactly."""
        before, after = generations.get(key, (None, None))
        if index.generation == before:
            index.generation = after
        self._dirty.add(key)

    async def search(
        self, space: SpaceRecord, guild_id: int, channel_id: int, query: np.ndarray, k: int
    ) -> list[tuple[int, float]]:
        """Top-``k`` (message id, score) of one channel, searched in a worker thread."""
        scores, ids = await self.search_many(space, guild_id, channel_id, query.reshape(1, -1), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    async def search_among(
        self, space: SpaceRecord, guild_id: int, channel_id: int, query: np.ndarray, k: int, allowed: np.ndarray
    ) -> list[tuple[int, float]]:
        """Exact top-``k`` (message id, score) among the ``allowed`` message ids of one channel, in a worker thread."""
        index = await self.get(space, guild_id, channel_id, validate=True)
        scores, ids = await asyncio.to_thread(index.search_among, query.reshape(1, -1), k, allowed)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    async def search_many(
        self, space: SpaceRecord, guild_id: int, channel_id: int, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (n, k) for ``n`` queries in one batched call; ids are -1 past the channel's size."""
        index = await self.get(space, guild_id, channel_id, validate=True)
        return await asyncio.to_thread(index.search, queries, k)

    async def flush(self) -> list[tuple[Key, int]]:
        """Persist every changed index (switching exact <-> HNSW when a channel crossed the threshold);
        returns the indexes written with the generation each reflects."""
        dirty, self._dirty = self._dirty, set()
        spaces = {s.id: s for s in await self.store.list_spaces()}
        saved: list[tuple[Key, VectorIndex, int]] = []
        for key in dirty:
            index = self._indexes.get(key)
            space = spaces.get(key[0])
            if index is None or space is None:
                continue
            wanted = self.params.kind_for(len(index))
            if wanted != index.kind:
                await asyncio.to_thread(index.rebuild, wanted)
            saved.append((key, index, index.generation))  # the file written holds this generation or a later one
        if self.vectors_dir is not None and saved:
            items = [(index, self.path(spaces[key[0]], key[1], key[2])) for key, index, _ in saved]
            for start in range(0, len(items), FLUSH_CHUNK):  # a chunk per worker call: the loop stays responsive
                await asyncio.to_thread(save_many, items[start : start + FLUSH_CHUNK])
        self._estimated_bytes = self.params.cache_bytes + 1  # sum exactly: indexes grew since they loaded
        self._evict()
        return [(key, generation) for key, _, generation in saved]

    @staticmethod
    async def _save(index: VectorIndex, path: Path | None) -> None:
        if path is not None:
            await asyncio.to_thread(index.save, path)

    def forget(self, space_id: int, guild_id: int, channel_id: int) -> None:
        """Drop a cached index (its vectors were deleted from the store)."""
        self._indexes.pop((space_id, guild_id, channel_id), None)
        self._dirty.discard((space_id, guild_id, channel_id))

    async def delete_files(self, space: SpaceRecord, guild_id: int, channel_id: int) -> None:
        self.forget(space.id, guild_id, channel_id)
        path = self.path(space, guild_id, channel_id)
        if path is None:
            return
        await asyncio.to_thread(path.unlink, True)
        guild_dir = path.parent
        if guild_dir.exists() and not any(guild_dir.iterdir()):
            await asyncio.to_thread(shutil.rmtree, guild_dir, True)

    def cached(self, space_id: int, guild_id: int, channel_id: int) -> VectorIndex | None:
        return self._indexes.get((space_id, guild_id, channel_id))
