"""FAISS indexes per (space, channel): search, changes, persistence, rebuilds from SQLite, HNSW."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qwen3_memory.backends.sqlite import store as store_module
from qwen3_memory.backends.sqlite.index import EXACT, HNSW, IndexParams, VectorIndex
from qwen3_memory.backends.sqlite.indexes import ChannelIndexes
from qwen3_memory.backends.sqlite.store import SQLiteStore
from qwen3_memory.capture import Capture
from qwen3_memory.errors import DimensionMismatch
from qwen3_memory.models.embedding import EmbeddingServices
from qwen3_memory.records import SpaceRecord, StoredMessage
from qwen3_memory.space import EmbeddingSpace
from tests.factories import message

DIM = 16
SPACE = EmbeddingSpace(model="test/random-16", dimension=DIM)


def unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def gaussian_unit_vectors(n: int, dimension: int, seed: int = 0) -> np.ndarray:
    """I.i.d. Gaussian directions: the hardest case for a graph index (no structure at all)."""
    return unit(np.random.default_rng(seed).standard_normal((n, dimension)))


def clustered_unit_vectors(n: int, dimension: int, clusters: int = 200, noise: float = 0.05, seed: int = 0):
    """Unit vectors around ``clusters`` random topics, which is how sentence embeddings of a chat look
    (nearest-neighbour cosine around 0.6, unrelated messages near 0)."""
    rng = np.random.default_rng(seed)
    centers = unit(rng.standard_normal((clusters, dimension)))
    labels = rng.integers(0, clusters, n)
    return unit(centers[labels] + noise * rng.standard_normal((n, dimension)))


def recall_at(k: int, truth: np.ndarray, found: np.ndarray) -> float:
    return float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found)]))


# ----------------------------------------------------------------------------------------------- VectorIndex


def test_exact_search_returns_the_nearest_messages_best_first():
    index = VectorIndex(DIM)
    vectors = gaussian_unit_vectors(50, DIM)
    ids = np.arange(1000, 1050, dtype=np.int64)
    index.upsert(ids, vectors)

    scores, found = index.search(vectors[7], 5)

    brute = np.argsort(-(vectors @ vectors[7]))[:5]
    assert found[0].tolist() == ids[brute].tolist()
    assert found[0, 0] == 1007 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(scores[0]) <= 0)


def test_a_search_for_more_than_there_is_pads_with_minus_one():
    index = VectorIndex(DIM)
    index.upsert(np.array([1, 2]), gaussian_unit_vectors(2, DIM))

    scores, found = index.search(gaussian_unit_vectors(1, DIM, seed=9), 4)

    assert sorted(found[0, :2].tolist()) == [1, 2]
    assert found[0, 2:].tolist() == [-1, -1] and np.all(np.isneginf(scores[0, 2:]))


def test_an_empty_index_finds_nothing():
    scores, found = VectorIndex(DIM).search(gaussian_unit_vectors(2, DIM), 3)

    assert found.tolist() == [[-1] * 3] * 2 and found.dtype == np.int64


def test_upserting_an_existing_id_replaces_its_vector():
    index = VectorIndex(DIM)
    old, new = gaussian_unit_vectors(2, DIM, seed=1)
    index.upsert(np.array([1, 2, 3]), gaussian_unit_vectors(3, DIM, seed=2))
    index.upsert(np.array([2]), old[None])

    index.upsert(np.array([2]), new[None])

    assert len(index) == 3
    assert index.search(new, 1)[1][0, 0] == 2
    assert 2 not in index.search(old, 3)[1][0, :1]  # the old vector no longer stands for message 2
    assert sorted(index.ids().tolist()) == [1, 2, 3]


def test_removing_ids_forgets_them_and_ignores_unknown_ones():
    index = VectorIndex(DIM)
    vectors = gaussian_unit_vectors(3, DIM)
    index.upsert(np.array([1, 2, 3]), vectors)

    assert index.remove(np.array([2, 99])) == 1

    assert len(index) == 2 and 2 not in index
    assert 2 not in index.search(vectors[1], 3)[1][0].tolist()


def test_vectors_of_another_dimension_are_refused():
    index = VectorIndex(DIM)

    with pytest.raises(DimensionMismatch, match=f"holds {DIM}-d vectors, got 8-d"):
        index.upsert(np.array([1]), gaussian_unit_vectors(1, 8))
    with pytest.raises(DimensionMismatch):
        index.search(gaussian_unit_vectors(1, 8), 1)


@pytest.mark.parametrize("kind", [EXACT, HNSW])
def test_an_index_survives_a_save_and_load_round_trip(tmp_path, kind):
    vectors = gaussian_unit_vectors(300, DIM)
    index = VectorIndex(DIM, kind)
    index.upsert(np.arange(1, 301), vectors)
    index.remove(np.array([5, 6]))
    index.generation = 42
    path = tmp_path / "vectors" / "10.idx"

    index.save(path)
    loaded = VectorIndex.load(path, IndexParams())

    assert (loaded.kind, loaded.generation, loaded.dimension, len(loaded)) == (kind, 42, DIM, 298)
    assert sorted(loaded.ids().tolist()) == sorted(index.ids().tolist())
    queries = gaussian_unit_vectors(20, DIM, seed=3)
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], index.search(queries, 10)[1])
    assert [p.name for p in path.parent.iterdir()] == ["10.idx"]  # the temp file was renamed into place


# ----------------------------------------------------------------------------------------------- HNSW


@pytest.mark.parametrize(
    ("name", "dimension", "make"),
    [
        ("64-d i.i.d. Gaussian", 64, gaussian_unit_vectors),
        ("384-d mixture of 200 clusters", 384, clustered_unit_vectors),
    ],
    ids=["gaussian-64", "clustered-384"],
)
def test_approximate_search_recalls_at_least_95_percent_of_exact_top_10(name, dimension, make):
    vectors = make(20_200, dimension)
    data, queries = vectors[:20_000], vectors[20_000:]  # 200 queries from the same distribution, not indexed
    ids = np.arange(1, 20_001, dtype=np.int64)
    params = IndexParams()  # the defaults the bot runs with
    exact, approximate = VectorIndex(dimension, EXACT, params), VectorIndex(dimension, HNSW, params)
    exact.upsert(ids, data)
    started = time.perf_counter()
    approximate.upsert(ids, data)
    build = time.perf_counter() - started

    _, truth = exact.search(queries, 10)
    _, found = approximate.search(queries, 10)

    brute = ids[np.argsort(-(queries @ data.T), axis=1)[:, :10]]
    assert recall_at(10, brute, truth) == 1.0  # the exact index really is exact
    recall = recall_at(10, truth, found)
    print(
        f"\nHNSW recall@10 vs exact, {name}, 20k vectors, M={params.hnsw_m} efConstruction="
        f"{params.hnsw_ef_construction} efSearch={params.hnsw_ef_search}: {recall:.3f} (build {build:.1f}s)"
    )
    assert recall >= 0.95


def test_hnsw_skips_removed_vectors_and_still_returns_k_results():
    vectors = gaussian_unit_vectors(1000, DIM)
    ids = np.arange(1, 1001, dtype=np.int64)
    index = VectorIndex(DIM, HNSW)
    index.upsert(ids, vectors)
    removed = ids[:50]  # 5%: below the compaction threshold, so the slots stay in the graph, dead

    index.remove(removed)

    assert index.dead == 50 and len(index) == 950
    _, found = index.search(vectors[:50], 10)  # each removed vector as a query: its own slot is the nearest
    assert not set(found.ravel().tolist()) & set(removed.tolist())
    assert np.all(found >= 0), "over-fetching past dead slots still fills k results"


def test_hnsw_compacts_once_a_tenth_of_it_is_dead():
    vectors = gaussian_unit_vectors(1000, DIM)
    index = VectorIndex(DIM, HNSW)
    index.upsert(np.arange(1, 1001), vectors)
    index.remove(np.arange(1, 51))
    assert index.dead == 50

    index.remove(np.arange(51, 111))  # 110 dead of 1000 slots: compaction

    assert index.dead == 0 and len(index) == 890 and index.kind == HNSW
    assert index.search(vectors[500], 1)[1][0, 0] == 501


def test_upserts_leave_dead_slots_that_are_never_returned():
    vectors = gaussian_unit_vectors(200, DIM)
    index = VectorIndex(DIM, HNSW)
    index.upsert(np.arange(1, 201), vectors)

    replacement = gaussian_unit_vectors(1, DIM, seed=11)[0]

    index.upsert(np.array([7]), replacement[None])

    assert index.dead == 1 and len(index) == 200
    scores, found = index.search(vectors[6], 10)  # the old vector of 7: its dead slot is the nearest
    assert -1 not in found[0].tolist() and len(set(found[0].tolist())) == 10
    for score, message_id in zip(scores[0], found[0]):
        if message_id == 7:  # only ever found through its new vector
            assert score == pytest.approx(float(vectors[6] @ replacement), abs=1e-5)


# ----------------------------------------------------------------------------------------------- the indexes


@pytest.fixture
async def store(tmp_path, vectors_dir):
    s = await SQLiteStore.open(tmp_path / "memory.db", vectors_dir)
    yield s
    await s.close()


@pytest.fixture
async def space(store) -> SpaceRecord:
    return await store.ensure_space(SPACE)


@pytest.fixture
def vectors_dir(tmp_path) -> Path:
    return tmp_path / "vectors"


@pytest.fixture
def indexes(store) -> ChannelIndexes:
    """The indexes the store owns and keeps in step with its rows."""
    return store.indexes


def messages(ids, channel_id: int = 10) -> list[StoredMessage]:
    return [message(i, f"message number {i}", channel_id=channel_id) for i in ids]


async def write(store, space, batch, vectors):
    """What capture does: store the messages, then their vectors (the store adds them to the index)."""
    await store.add_messages(batch)
    await store.put_vectors(space, batch, vectors)


async def search_ids(indexes, space, query, k=5, channel_id=10) -> list[int]:
    return [i for i, _ in await indexes.search(space, 1, channel_id, query, k)]


@pytest.fixture
async def filled(store, indexes, space):
    """A channel with 100 vectors, flushed to disk; returns them."""
    vectors = gaussian_unit_vectors(100, DIM)
    await write(store, space, messages(range(1, 101)), vectors)
    await indexes.flush()
    return vectors


async def test_a_flushed_index_is_loaded_from_disk_by_the_next_process(store, space, vectors_dir, filled):
    restarted = ChannelIndexes(store, vectors_dir)

    assert await search_ids(restarted, space, filled[41], 1) == [42]
    assert restarted.rebuilds == 0


async def test_a_deleted_index_file_is_rebuilt_from_sqlite(store, indexes, space, vectors_dir, filled):
    indexes.path(space, 1, 10).unlink()
    restarted = ChannelIndexes(store, vectors_dir)

    assert await search_ids(restarted, space, filled[41], 1) == [42]
    assert restarted.rebuilds == 1
    assert indexes.path(space, 1, 10).exists()  # and persisted again


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
async def test_a_damaged_index_file_is_rebuilt_from_sqlite(store, indexes, space, vectors_dir, filled, damage):
    path = indexes.path(space, 1, 10)
    good = path.read_bytes()
    path.write_bytes(
        {"garbage": b"\x00\xffnot an index" * 100, "truncated": good[: len(good) // 2], "empty": b""}[damage]
    )
    restarted = ChannelIndexes(store, vectors_dir)

    index = await restarted.get(space, 1, 10)

    assert restarted.rebuilds == 1 and len(index) == 100
    assert await search_ids(restarted, space, filled[9], 1) == [10]
    assert VectorIndex.load(path, IndexParams()).generation == index.generation  # the rebuilt file is sound


async def test_an_index_missing_vectors_added_behind_its_back_catches_up(store, indexes, space, vectors_dir, filled):
    extra = gaussian_unit_vectors(5, DIM, seed=7)
    batch = messages(range(101, 106))
    await store.add_messages(batch)
    await store.put_vectors(space, batch, extra)  # a command-line migration wrote vectors; the file is stale
    restarted = ChannelIndexes(store, vectors_dir)

    assert await search_ids(restarted, space, extra[2], 1) == [103]
    assert len(await restarted.get(space, 1, 10)) == 105
    assert (restarted.rebuilds, restarted.catch_ups) == (0, 1)  # the 5 logged changes, not a rebuild


async def test_an_index_stale_after_an_edit_with_the_same_count_catches_up(store, indexes, space, vectors_dir, filled):
    edited = replace(messages([42])[0], content="an edited message", edited_at=1.0)
    new_vector = gaussian_unit_vectors(1, DIM, seed=99)
    await store.add_messages([edited])  # drops the old vector: count 99
    await store.put_vectors(space, [edited], new_vector)  # count back to 100, behind the index's back
    assert await store.count_vectors(space.id, 1, 10) == 100
    restarted = ChannelIndexes(store, vectors_dir)

    assert await search_ids(restarted, space, new_vector[0], 1) == [42]
    scores = dict(await restarted.search(space, 1, 10, filled[41], 100))
    assert scores[42] == pytest.approx(float(filled[41] @ new_vector[0]), abs=1e-5)  # not the stale vector's 1.0
    assert (restarted.rebuilds, restarted.catch_ups) == (0, 1)


async def test_a_cached_index_picks_up_vectors_written_by_another_process(store, indexes, space, filled, tmp_path):
    await search_ids(indexes, space, filled[0])  # cached in this process
    other = await SQLiteStore.open(tmp_path / "memory.db")
    try:
        extra = gaussian_unit_vectors(1, DIM, seed=5)
        await other.add_messages(messages([500]))
        await other.put_vectors(space, messages([500]), extra)
    finally:
        await other.close()

    assert await search_ids(indexes, space, extra[0], 1) == [500]


async def test_an_index_that_applies_its_own_write_after_another_process_wrote_still_gets_both(
    store, indexes, space, filled, tmp_path
):
    await search_ids(indexes, space, filled[0])  # cached in this process (the bot)
    other = await SQLiteStore.open(tmp_path / "memory.db")  # a command-line migration beside it
    try:
        theirs = gaussian_unit_vectors(30, DIM, seed=11)
        await other.add_messages(messages(range(500, 530)))
        await other.put_vectors(space, messages(range(500, 530)), theirs)
    finally:
        await other.close()
    ours = gaussian_unit_vectors(1, DIM, seed=12)
    await write(store, space, messages([600]), ours)  # this process writes before it searches again

    assert await search_ids(indexes, space, ours[0], 1) == [600]
    assert [(await search_ids(indexes, space, theirs[i], 1))[0] for i in range(30)] == list(range(500, 530))
    assert len(await indexes.get(space, 1, 10)) == 131 == await store.count_vectors(space.id, 1, 10)


async def test_a_deletion_by_another_process_leaves_this_processs_index(store, indexes, space, filled, tmp_path):
    await search_ids(indexes, space, filled[0])
    rebuilds = indexes.rebuilds
    other = await SQLiteStore.open(tmp_path / "memory.db")
    try:
        await other.delete_messages([7, 8])
    finally:
        await other.close()

    assert 7 not in await search_ids(indexes, space, filled[6], 100)
    assert len(await indexes.get(space, 1, 10)) == 98 and indexes.rebuilds == rebuilds and indexes.catch_ups == 1


async def test_an_index_further_behind_than_the_change_log_reaches_is_rebuilt(
    store, indexes, space, vectors_dir, filled
):
    await store.flush()
    await store.add_messages(messages(range(101, 106)))
    await store.put_vectors(space, messages(range(101, 106)), gaussian_unit_vectors(5, DIM, seed=3))
    async with store.transaction() as db:  # the log was cut back past the file's generation
        await db.execute("DELETE FROM vector_changes")
    restarted = ChannelIndexes(store, vectors_dir)

    assert len(await restarted.get(space, 1, 10)) == 105
    assert (restarted.rebuilds, restarted.catch_ups) == (1, 0)


async def test_flush_cuts_the_change_log_back(store, space, monkeypatch):
    monkeypatch.setattr(store_module, "KEEP_CHANGES", 10)
    await write(store, space, messages(range(1, 41)), gaussian_unit_vectors(40, DIM))
    await store.flush()

    rows = await store.fetchall("SELECT MIN(generation), MAX(generation), COUNT(*) FROM vector_changes")
    assert tuple(rows[0]) == (31, 40, 10)


async def test_indexes_are_per_channel(store, indexes, space):
    vectors = gaussian_unit_vectors(20, DIM)
    await write(store, space, messages(range(1, 11), channel_id=10), vectors[:10])
    await write(store, space, messages(range(11, 21), channel_id=11), vectors[10:])

    assert set(await search_ids(indexes, space, vectors[15], 20, channel_id=10)) == set(range(1, 11))
    assert set(await search_ids(indexes, space, vectors[5], 20, channel_id=11)) == set(range(11, 21))


async def test_a_deletion_through_capture_reaches_faiss_and_the_file(store, indexes, space, vectors_dir, filled):
    services = EmbeddingServices()  # a deletion embeds nothing: no model is loaded
    capture = Capture(store, services, space.id)
    capture.start()
    try:
        await capture.delete([42, 43], wait=True)

        index = indexes.cached(space.id, 1, 10)
        assert index is not None and 42 not in index and 43 not in index
        assert (await search_ids(indexes, space, filled[41], 1)) != [42]
        assert 42 not in await search_ids(indexes, space, filled[41], 100)
    finally:
        await capture.stop()  # flushes the index
        services.close()
    restarted = ChannelIndexes(store, vectors_dir)

    assert len(await restarted.get(space, 1, 10)) == 98
    assert restarted.rebuilds == 0  # the flushed file already reflected the deletion


async def test_a_channel_switches_from_exact_to_hnsw_when_it_crosses_the_threshold_on_flush(store, space, vectors_dir):
    store.indexes = indexes = ChannelIndexes(store, vectors_dir, IndexParams(approximate_threshold=300))
    vectors = gaussian_unit_vectors(400, DIM)
    await write(store, space, messages(range(1, 201)), vectors[:200])
    await indexes.flush()
    assert (await indexes.get(space, 1, 10)).kind == EXACT

    await write(store, space, messages(range(201, 401)), vectors[200:])
    assert (await indexes.get(space, 1, 10)).kind == EXACT  # switching waits for the flush
    await indexes.flush()

    index = await indexes.get(space, 1, 10)
    assert index.kind == HNSW and len(index) == 400
    assert VectorIndex.load(indexes.path(space, 1, 10), IndexParams()).kind == HNSW
    assert await search_ids(indexes, space, vectors[350], 1) == [351]
    restarted = ChannelIndexes(store, vectors_dir, IndexParams(approximate_threshold=300))
    assert (await restarted.get(space, 1, 10)).kind == HNSW and restarted.rebuilds == 0


async def test_a_channel_shrinking_below_the_threshold_goes_back_to_exact_search(store, space, vectors_dir):
    store.indexes = indexes = ChannelIndexes(store, vectors_dir, IndexParams(approximate_threshold=300))
    await write(store, space, messages(range(1, 351)), gaussian_unit_vectors(350, DIM))
    await indexes.flush()
    assert (await indexes.get(space, 1, 10)).kind == HNSW

    await store.delete_messages(range(1, 101))
    await indexes.flush()

    index = await indexes.get(space, 1, 10)
    assert index.kind == EXACT and len(index) == 250
