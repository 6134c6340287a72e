"""What a guild's memory holds, per channel: messages, capture flag, spaces, vectors and indexes.

Plain records for any front end (``/memory stats`` renders them as an embed); reading them
changes nothing and loads no index (``index_info(..., load=False)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from qwen3_memory.backends import IndexInfo
from qwen3_memory.recall.floors import describe_floor_in_use
from qwen3_memory.records import ChannelState, SpaceRecord

if TYPE_CHECKING:
    from qwen3_memory.memory import Memory


@dataclass(frozen=True)
class SpaceStats:
    """One channel's vectors in one space, and the index that searches them."""

    space: SpaceRecord
    vectors: int
    index: IndexInfo  # index.location is None when the database itself is the index (pgvector)
    floor: str = ""  # the score floor recall applies there, and where it comes from


@dataclass(frozen=True)
class ChannelStats:
    channel_id: int
    messages: int
    capture: bool
    read_space_id: int
    write_space_ids: tuple[int, ...]
    spaces: tuple[SpaceStats, ...]  # by space id: those holding vectors, read or written


@dataclass(frozen=True)
class MemoryStats:
    guild_id: int
    profile: str
    channel_count: int  # every remembered channel of the guild; ``channels`` may hold fewer
    channels: tuple[ChannelStats, ...]
    pending: int  # capture queue, since this process started
    embedded: int
    failures: int


async def memory_stats(memory: Memory, guild_id: int, limit: int | None = None) -> MemoryStats:
    """The guild's numbers; per channel for the first ``limit`` channels (all when None)."""
    store = memory.store
    spaces = {s.id: s for s in await store.list_spaces()}
    states = await store.list_channels(guild_id)
    shown = states if limit is None else states[:limit]
    capture = memory.capture
    return MemoryStats(
        guild_id=guild_id,
        profile=memory.settings.memory.profile,
        channel_count=len(states),
        channels=tuple([await _channel_stats(memory, state, spaces) for state in shown]),
        pending=capture.pending,
        embedded=capture.embedded,
        failures=capture.failures,
    )


async def _channel_stats(memory: Memory, state: ChannelState, spaces: dict[int, SpaceRecord]) -> ChannelStats:
    store, guild_id, channel_id = memory.store, state.guild_id, state.channel_id
    messages = await store.count_messages(guild_id, channel_id)
    vectors = await store.vector_counts(guild_id, channel_id)
    per_space = []
    for space_id in sorted(set(vectors) | {state.read_space_id, *state.write_space_ids}):
        space = spaces.get(space_id)
        if space is None:
            continue
        index = await store.index_info(space, guild_id, channel_id, load=False)
        floor = await describe_floor_in_use(store, space_id, memory.settings.memory.recall.min_score)
        per_space.append(SpaceStats(space, vectors.get(space_id, 0), index, floor))
    return ChannelStats(
        channel_id=channel_id,
        messages=messages,
        capture=state.enabled,
        read_space_id=state.read_space_id,
        write_space_ids=tuple(state.write_space_ids),
        spaces=tuple(per_space),
    )
