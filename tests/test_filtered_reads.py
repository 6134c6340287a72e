"""The store reads behind recall filters and context excerpts, on both backends: filtered vector and text
search (an author, a time range) and the lines around a hit."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_memory.backends.sqlite.index import HNSW, IndexParams
from qwen3_memory.backends.sqlite.indexes import ChannelIndexes
from qwen3_memory.filters import RecallFilters
from qwen3_memory.space import EmbeddingSpace
from tests.factories import message

SPACE = EmbeddingSpace(model="test/filters", dimension=8)
T0 = 1_700_000_000.0
CHANNEL_SIZE = 600


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, SPACE.dimension)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
async def store(any_store):
    """The test's store; on SQLite its indexes switch to HNSW from 200 vectors, so filters meet a graph index."""
    indexes = getattr(any_store, "indexes", None)
    if indexes is not None:
        any_store.indexes = ChannelIndexes(any_store, indexes.vectors_dir, IndexParams(approximate_threshold=200))
    return any_store


@pytest.fixture
async def channel(store):
    """600 messages a minute apart in channel 10 (author 100 + id % 20), their vectors, and one line elsewhere."""
    space = await store.ensure_space(SPACE)
    await store.ensure_channel(1, 10, space.id)
    messages = [
        message(i, f"line {i} about topic {i % 7}", author_id=100 + i % 20, created_at=T0 + 60 * i)
        for i in range(1, CHANNEL_SIZE + 1)
    ]
    vectors = unit_vectors(len(messages))
    await store.add_messages(messages)
    await store.put_vectors(space, messages, vectors)
    elsewhere = message(5_000, "line about topic 3 in another channel", channel_id=11, created_at=T0 + 60 * 301)
    await store.add_messages([elsewhere])
    await store.put_vectors(space, [elsewhere], unit_vectors(1, seed=9))
    await store.flush()
    return space, messages, vectors


def exact_top(messages, vectors, query, k, keep) -> list[int]:
    chosen = [n for n, m in enumerate(messages) if keep(m)]
    scores = vectors[chosen] @ query
    return [messages[chosen[i]].id for i in np.argsort(-scores)[:k]]


async def test_a_narrow_author_filter_still_returns_k_exact_results(store, channel):
    space, messages, vectors = channel
    index = getattr(store, "indexes", None)
    if index is not None:
        assert (await index.get(space, 1, 10)).kind == HNSW
    query = unit_vectors(1, seed=5)[0]
    filters = RecallFilters.of(authors=[103, 117])  # 60 of 600 messages
    hits = await store.search(space, 1, 10, query, 10, filters=filters)
    assert [i for i, _ in hits] == exact_top(messages, vectors, query, 10, lambda m: m.author_id in (103, 117))
    assert all(h[1] == pytest.approx(float(vectors[h[0] - 1] @ query), abs=1e-4) for h in hits)


async def test_a_filter_matching_fewer_than_k_returns_all_of_them(store, channel):
    space, messages, vectors = channel
    filters = RecallFilters.of(after=T0 + 60 * 598)  # the last three messages
    hits = await store.search(space, 1, 10, unit_vectors(1, seed=6)[0], 10, filters=filters)
    assert sorted(i for i, _ in hits) == [598, 599, 600]


async def test_a_time_range_keeps_after_and_excludes_before(store, channel):
    space, messages, vectors = channel
    query = unit_vectors(1, seed=7)[0]
    filters = RecallFilters.of(after=T0 + 60 * 100, before=T0 + 60 * 200)
    hits = await store.search(space, 1, 10, query, 200, filters=filters)
    assert sorted(i for i, _ in hits) == list(range(100, 200))


async def test_text_search_applies_the_filters(store, channel):
    filters = RecallFilters.of(authors=[104], before=T0 + 60 * 300)
    found = [i for i, _ in await store.search_text(1, 10, "topic 3", 50, filters=filters)]
    expected = [m.id for m in channel[1] if m.author_id == 104 and m.created_at < T0 + 60 * 300]
    assert sorted(found) == expected  # every line says "topic": all of the author's lines before that time
    assert {found[0], found[1]} == {24, 164}  # those that say "topic 3" first


async def test_neighbours_are_the_lines_around_each_hit_of_its_channel_only(store, channel):
    lines = await store.neighbours(1, 10, [300, 302, 5_000], before=2, after=1, window_seconds=3600)
    assert [m.id for m in lines] == [298, 299, 300, 301, 302, 303]  # 5,000 is of another channel: nothing


async def test_neighbours_stop_at_the_time_window(store, channel):
    lines = await store.neighbours(1, 10, [300], before=5, after=5, window_seconds=150)  # two minutes and a half
    assert [m.id for m in lines] == [298, 299, 300, 301, 302]


async def test_deleted_messages_are_never_neighbours(store, channel):
    await store.delete_messages([299, 301])
    lines = await store.neighbours(1, 10, [300], before=1, after=1, window_seconds=3600)
    assert [m.id for m in lines] == [298, 300, 302]
