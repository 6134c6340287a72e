"""FAISS indexes, one per (space, channel): exact inner product when small, HNSW past a threshold.

Both kinds keep our own arrays of Discord message ids and a live mask beside the FAISS index,
because HNSW cannot remove vectors: a removal or an upsert marks the old slot dead, searches
over-fetch and skip dead slots, and the index compacts itself once a tenth of it is dead.
A whole index (FAISS bytes, ids, mask, the store generation it reflects) is one ``.npz`` file,
written to a temp file, fsynced and renamed into place, so a crash never leaves half an index.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from qwen3_memory.errors import DimensionMismatch

if TYPE_CHECKING:
    from qwen3_memory.settings import IndexSettings

EXACT = "exact"
HNSW = "hnsw"
_COMPACT_DEAD_FRACTION = 0.1
SLOT_MAP_BYTES = 100  # a Python dict entry int -> int, with its two int objects


@dataclass(frozen=True)
class IndexParams:
    approximate_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    hnsw_ef_construction: int = 80
    cache_bytes: int = 512 * 2**20  # loaded indexes past this are dropped, least recently used first

    @classmethod
    def from_settings(cls, index: IndexSettings) -> IndexParams:
        return cls(index.approximate_threshold, index.hnsw_m, index.hnsw_ef_search, cache_bytes=index.cache_mb * 2**20)

    def kind_for(self, n: int) -> str:
        return HNSW if n >= self.approximate_threshold else EXACT


class VectorIndex:
    """A searchable set of (message id -> unit vector). Thread-safe; every method may block, so the
    async layer calls them in an executor."""

    def __init__(self, dimension: int, kind: str = EXACT, params: IndexParams = IndexParams()) -> None:
        self.dimension = dimension
        self.kind = kind
        self.params = params
        self.generation = 0
        self._lock = threading.RLock()
        self._faiss = self._new_faiss()
        self._ids = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=bool)
        self._slot: dict[int, int] = {}

    def _new_faiss(self) -> faiss.Index:
        if self.kind == EXACT:
            return faiss.IndexFlatIP(self.dimension)
        index = faiss.IndexHNSWFlat(self.dimension, self.params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.params.hnsw_ef_construction
        index.hnsw.efSearch = self.params.hnsw_ef_search
        return index

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._slot)

    @property
    def dead(self) -> int:
        return int(self._ids.size - len(self._slot))

    @property
    def nbytes(self) -> int:
        """About what the index holds in memory: vectors (plus HNSW links), ids, mask and the id -> slot map."""
        per_slot = self.dimension * 4 + 9 + (self.params.hnsw_m * 8 if self.kind == HNSW else 0)
        return self._ids.size * per_slot + len(self._slot) * SLOT_MAP_BYTES

    def __contains__(self, message_id: int) -> bool:
        return message_id in self._slot

    def ids(self) -> np.ndarray:
        with self._lock:
            return self._ids[self._alive].copy()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, message ids) per query row; missing results are id -1, score -inf."""
        queries = self._check(queries)
        with self._lock:
            n_live = len(self._slot)
            out_scores = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
            out_ids = np.full((queries.shape[0], k), -1, dtype=np.int64)
            if n_live == 0 or k <= 0:
                return out_scores, out_ids
            fetch = min(self._faiss.ntotal, k + self.dead)
            scores, slots = self._faiss.search(queries, fetch)
            for row in range(queries.shape[0]):
                valid = slots[row] >= 0
                s, sl = scores[row][valid], slots[row][valid]
                keep = self._alive[sl]
                s, sl = s[keep][:k], sl[keep][:k]
                out_scores[row, : s.size] = s
                out_ids[row, : s.size] = self._ids[sl]
            return out_scores, out_ids

    def search_among(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, message ids) per query row among the ``allowed`` ids only, scored exactly.

        A filtered search (one author, a time range) cannot rely on HNSW: its graph walk finds too few
        of a narrow subset. The flat vectors (the exact index, or HNSW's storage) are searched with a
        bitmap of the allowed live slots instead, so every allowed message is scored.
        """
        queries = self._check(queries)
        with self._lock:
            out_scores = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
            out_ids = np.full((queries.shape[0], k), -1, dtype=np.int64)
            mask = self._alive & np.isin(self._ids, np.asarray(allowed, dtype=np.int64))
            n_allowed = int(mask.sum())
            if n_allowed == 0 or k <= 0:
                return out_scores, out_ids
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(mask.size, faiss.swig_ptr(bitmap))
            index = faiss.downcast_index(self._faiss)
            flat = faiss.downcast_index(index.storage) if hasattr(index, "storage") else index
            fetch = min(k, n_allowed)
            scores, slots = flat.search(queries, fetch, params=faiss.SearchParameters(sel=selector))
            found = slots >= 0
            out_scores[:, :fetch] = np.where(found, scores, -np.inf)
            out_ids[:, :fetch] = np.where(found, self._ids[np.maximum(slots, 0)], -1)
            return out_scores, out_ids

    # ------------------------------------------------------------------ changes
    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; an id already present is replaced (its old slot dies)."""
        vectors = self._check(vectors)
        ids = np.asarray(ids, dtype=np.int64)
        if ids.shape[0] != vectors.shape[0]:
            raise ValueError(f"{ids.shape[0]} ids for {vectors.shape[0]} vectors")
        if ids.size == 0:
            return
        with self._lock:
            self._kill(ids)
            start = self._ids.size
            self._faiss.add(vectors)
            self._ids = np.concatenate([self._ids, ids])
            self._alive = np.concatenate([self._alive, np.ones(ids.size, dtype=bool)])
            self._slot.update(zip(ids.tolist(), range(start, start + ids.size)))
            self._maybe_compact()

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (unknown ones are ignored); returns how many were present."""
        with self._lock:
            removed = self._kill(np.asarray(ids, dtype=np.int64))
            self._maybe_compact()
            return removed

    def erase(self, ids: np.ndarray) -> int:
        """Remove ids and overwrite what they leave behind (the vector with zeros, the id with -1), so neither
        this index in memory nor a file saved from it holds a trace of them; returns how many were present."""
        with self._lock:
            slots = [self._slot.pop(i) for i in np.asarray(ids, dtype=np.int64).tolist() if i in self._slot]
            if slots:
                self._alive[slots] = False
                self._ids[slots] = -1
                self._stored_vectors()[slots] = 0.0
            self._maybe_compact()
            return len(slots)

    def _stored_vectors(self) -> np.ndarray:
        """A writable view of the vectors FAISS stores, one row per slot (exact, or HNSW's flat storage)."""
        index = faiss.downcast_index(self._faiss)
        flat = faiss.downcast_index(index.storage) if hasattr(index, "storage") else index
        return faiss.rev_swig_ptr(flat.get_xb(), index.ntotal * self.dimension).reshape(index.ntotal, self.dimension)

    def _kill(self, ids: np.ndarray) -> int:
        removed = 0
        for message_id in ids.tolist():
            slot = self._slot.pop(message_id, None)
            if slot is not None:
                self._alive[slot] = False
                removed += 1
        return removed

    def _maybe_compact(self) -> None:
        if self.dead and self.dead >= _COMPACT_DEAD_FRACTION * self._ids.size:
            self.rebuild(self.kind)

    def rebuild(self, kind: str) -> None:
        """Rebuild from the live vectors (drops dead slots; changes exact <-> HNSW)."""
        with self._lock:
            live = np.flatnonzero(self._alive)
            vectors = (
                self._faiss.reconstruct_n(0, self._faiss.ntotal)[live]
                if live.size
                else np.empty((0, self.dimension), dtype=np.float32)
            )
            ids = self._ids[live]
            self.kind = kind
            self._faiss = self._new_faiss()
            self._ids = np.empty(0, dtype=np.int64)
            self._alive = np.empty(0, dtype=bool)
            self._slot = {}
            self.upsert(ids, vectors)

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dimension:
            raise DimensionMismatch(
                f"this index holds {self.dimension}-d vectors, got {vectors.shape[1]}-d; vectors of one embedding "
                "space cannot be searched with another space's model"
            )
        return vectors

    # ------------------------------------------------------------------ persistence
    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dimension: int, params: IndexParams) -> VectorIndex:
        index = cls(dimension, params.kind_for(len(ids)), params)
        index.upsert(ids, vectors)
        return index

    def save(self, path: Path) -> None:
        """Write atomically: temp file, fsync, rename; the directory entry is fsynced too."""
        save_many([(self, path)])

    def _payload(self) -> io.BytesIO:
        with self._lock:
            blob = faiss.serialize_index(self._faiss)
            payload = io.BytesIO()
            np.savez(
                payload,
                faiss=blob,
                ids=self._ids,
                alive=self._alive,
                meta=np.array([self.dimension, self.generation, 1 if self.kind == HNSW else 0], dtype=np.int64),
            )
        return payload

    @classmethod
    def load(cls, path: Path, params: IndexParams) -> VectorIndex:
        """Read an index file; raises ValueError (or OSError) on a damaged file."""
        with np.load(path, allow_pickle=False) as data:
            dimension, generation, is_hnsw = (int(x) for x in data["meta"])
            index = cls(dimension, HNSW if is_hnsw else EXACT, params)
            index._faiss = faiss.deserialize_index(data["faiss"])
            index._ids = data["ids"].astype(np.int64)
            index._alive = data["alive"].astype(bool)
        if (
            index._faiss.d != dimension
            or index._faiss.ntotal != index._ids.size
            or index._alive.size != index._ids.size
        ):
            raise ValueError(f"{path}: inconsistent index file")
        if is_hnsw:
            index._faiss.hnsw.efSearch = params.hnsw_ef_search
        index.generation = generation
        index._slot = {int(i): s for s, i in enumerate(index._ids.tolist()) if index._alive[s]}
        return index


def save_many(items: list[tuple[VectorIndex, Path]]) -> None:
    """Write indexes atomically (each: temp file, fsync, rename), then fsync each directory once: a flush of
    thousands of small channels' indexes costs one directory sync per guild, not one per file."""
    directories: set[Path] = set()
    for index, path in items:
        payload = index._payload()
        if path.parent not in directories:
            path.parent.mkdir(parents=True, exist_ok=True)
            directories.add(path.parent)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(payload.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    for directory in directories:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
