"""The verify queries of a whole group of small channels, encoded in one model call per space.

Verifying a channel asks a few of its messages as queries of both models (old/new agreement) and,
until the space's floor has its samples, other channels' messages as no-answer queries (the noise
the floor is calibrated on). For a 25-message channel that is one or two texts per model call, and
a call costs about the same for one text as for a batch: on 2,000 small channels these calls were
a large share of the model's time. A group's texts are therefore chosen first, encoded together,
and each channel's verify takes its own rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qwen3_memory.memory import Memory
from qwen3_memory.recall.floors import NOISE_BUDGET, noise_texts
from qwen3_memory.records import SpaceRecord

Key = tuple[int, int]


@dataclass
class ChannelQueries:
    """One channel's prepared queries: agreement texts with their old and new vectors, noise texts with theirs."""

    agreement_texts: list[str] = field(default_factory=list)
    old: np.ndarray | None = None
    new: np.ndarray | None = None
    noise_texts: list[str] = field(default_factory=list)
    noise: np.ndarray | None = None


async def prepare_group_queries(
    memory: Memory,
    source: SpaceRecord | None,
    target: SpaceRecord,
    channels: list[Key],
    agreement: list[int],
    noise_per_channel: int,
    noise_samples_held: int,
) -> dict[Key, ChannelQueries]:
    """Choose every channel's texts, then encode them in one call per model (the target's agreement and noise
    texts together). Noise texts go only to as many channels as the space's floor still needs
    (:data:`NOISE_BUDGET` minus the ``noise_samples_held``)."""
    prepared = {key: ChannelQueries() for key in channels}
    noise_left = max(0, NOISE_BUDGET - noise_samples_held) if noise_per_channel else 0
    others = [(g, c) for g, c, _ in await memory.store.message_channels()] if noise_left else []
    for key, n in zip(channels, agreement):
        entry = prepared[key]
        if source is not None and n > 0:
            entry.agreement_texts = [m.content for m in await memory.store.sample_messages(*key, n)]
        if noise_left > 0:
            entry.noise_texts = await noise_texts(memory, *key, noise_per_channel, others)
            noise_left -= len(entry.noise_texts)
    agreement_texts = [t for key in channels for t in prepared[key].agreement_texts]
    target_texts = agreement_texts + [t for key in channels for t in prepared[key].noise_texts]
    if not target_texts:
        return prepared
    new = await memory.services.get(target.spec).aencode_queries(target_texts)
    old = await memory.services.get(source.spec).aencode_queries(agreement_texts) if agreement_texts else None
    at, noise_at = 0, len(agreement_texts)
    for key in channels:
        entry = prepared[key]
        if entry.agreement_texts:
            entry.old, entry.new = old[at : at + len(entry.agreement_texts)], new[at : at + len(entry.agreement_texts)]
            at += len(entry.agreement_texts)
        if entry.noise_texts:
            entry.noise = new[noise_at : noise_at + len(entry.noise_texts)]
            noise_at += len(entry.noise_texts)
    return prepared
