"""A space never holds two models' vectors: the model loaded for a space must reproduce what it holds.

A space's key names its model, but a path setting can point that name at another folder (or a
dropped override can load the hub model instead of a local fine-tune). So when a memory opens,
it reads a few stored messages with their vectors per space; the model loaded for that space
re-embeds those texts, and a model whose vectors point elsewhere is refused before it writes or
answers a query. Vectors of one model agree with themselves (cosine ~1; 0.5-0.8 for the approximate
vectors of the transform strategy, 0.48 for a map fitted on only 40 messages), vectors of two
different models do not (0.01 measured for all-MiniLM-L6-v2 against all-mpnet-base-v2 cut to 384:
their axes are unrelated), so the threshold sits between.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qwen3_memory.space import EmbeddingSpace

SAMPLE_SIZE = 4  # stored messages re-embedded per space, once per process
SAME_MODEL_COSINE = 0.25  # mean cosine below this: another model made the stored vectors
CHANNELS_TRIED = 2  # the largest and the smallest channels looked at per space (migrations start small)


@dataclass(frozen=True)
class StoredSample:
    """Texts of stored messages and their vectors in one space, as the store holds them."""

    texts: tuple[str, ...]
    vectors: np.ndarray


def identity_problem(space: EmbeddingSpace, sample: StoredSample, fresh: np.ndarray) -> str:
    """Why ``fresh`` (the loaded model's vectors of the sample's texts) shows another model, or ''."""
    if fresh.shape != sample.vectors.shape:
        return (
            f"the model loaded for space {space.key} gives {fresh.shape[1]}-d vectors, but the space holds "
            f"{sample.vectors.shape[1]}-d ones: it is not the model that made them"
        )
    stored = sample.vectors / np.maximum(np.linalg.norm(sample.vectors, axis=1, keepdims=True), 1e-12)
    mine = fresh / np.maximum(np.linalg.norm(fresh, axis=1, keepdims=True), 1e-12)
    cosine = float(np.mean(np.sum(stored * mine, axis=1)))
    if cosine >= SAME_MODEL_COSINE:
        return ""
    return (
        f"the model loaded for space {space.key} ({space.model}) does not reproduce the vectors stored there "
        f"(mean cosine {cosine:.2f} on {len(sample.texts)} stored messages, the same model gives ~1): "
        "it is another model than the one that made them"
    )


async def stored_samples(store) -> dict[int, tuple[EmbeddingSpace, StoredSample]]:
    """Per space id, a few stored messages that have a vector in it (from the largest or smallest channels)."""
    channels = await store.message_channels()  # (guild, channel, count), smallest first
    tried = list(dict.fromkeys([*reversed(channels[-CHANNELS_TRIED:]), *channels[:CHANNELS_TRIED]]))
    messages_of = [  # read once, whatever the number of spaces
        [m for m in await store.scroll_messages(guild_id, channel_id, 0, 16) if m.content.strip()]
        for guild_id, channel_id, _ in tried
    ]
    found: dict[int, tuple[EmbeddingSpace, StoredSample]] = {}
    for space in await store.list_spaces():
        for messages in messages_of:
            vectors = await store.get_vectors(space.id, [m.id for m in messages])
            kept = [m for m in messages if m.id in vectors][:SAMPLE_SIZE]
            if kept:
                sample = StoredSample(tuple(m.content for m in kept), np.stack([vectors[m.id] for m in kept]))
                found[space.id] = (space.spec, sample)
                break
    return found


async def expect_stored_vectors(store, services) -> None:
    """Tell ``services`` what each space holds; a loaded model that does not match is refused now."""
    for spec, sample in (await stored_samples(store)).values():
        await services.expect(spec, sample)
