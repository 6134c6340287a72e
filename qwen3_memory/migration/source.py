"""The source of a migration: the space the channels in scope read now, not the profile in the settings.

After a swap, ``memory_system.profile`` may still name the old model until an admin edits it; a
second migration (a Matryoshka cut after a move to Qwen3, say) must start from what the channels
actually read, or it would compare, truncate or transform the wrong vectors.
"""

from __future__ import annotations

from collections import Counter

from qwen3_memory.records import SpaceRecord
from qwen3_memory.space import EmbeddingSpace


async def migration_source(
    store,
    target: EmbeddingSpace,
    guild_id: int | None,
    channel_ids: list[int] | None,
    fallback: EmbeddingSpace,
) -> tuple[SpaceRecord, list[str]]:
    """The space most channels in scope read (the target excluded), and a warning per other space read.

    ``fallback`` (the settings' profile) is the source only when no channel in scope reads anything yet."""
    spaces = {s.id: s for s in await store.list_spaces()}
    readers: Counter[int] = Counter()
    for state in await store.list_channels(guild_id):
        space = spaces.get(state.read_space_id)
        if (channel_ids and state.channel_id not in channel_ids) or space is None or space.spec.key == target.key:
            continue
        readers[space.id] += 1
    if not readers:
        return await store.ensure_space(fallback), []
    (chosen, _), *others = readers.most_common()
    warnings = [
        f"{n} channel(s) read {spaces[space_id].spec.key}, not {spaces[chosen].spec.key}: they are left out of "
        "this migration; migrate them in another job once this one is done"
        for space_id, n in others
    ]
    return spaces[chosen], warnings
