"""Plain records passed between the store, the indexes, recall and the cogs (no Discord types)."""

from __future__ import annotations

from dataclasses import dataclass

from qwen3_memory.space import EmbeddingSpace


@dataclass(frozen=True)
class StoredMessage:
    """One kept Discord message. ``id`` is the Discord snowflake and the row id everywhere."""

    id: int
    guild_id: int
    channel_id: int
    author_id: int
    author_name: str
    content: str
    created_at: float  # unix seconds
    edited_at: float | None = None

    def jump_url(self) -> str:
        return f"https://discord.com/channels/{self.guild_id}/{self.channel_id}/{self.id}"


@dataclass(frozen=True)
class SpaceRecord:
    id: int
    spec: EmbeddingSpace

    @property
    def dimension(self) -> int:
        return self.spec.dimension


@dataclass(frozen=True)
class ChannelState:
    """A channel's pointers: the space it reads from (the alias) and the spaces new messages go to."""

    guild_id: int
    channel_id: int
    read_space_id: int
    write_space_ids: tuple[int, ...]
    enabled: bool
