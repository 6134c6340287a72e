"""What the importer reads: pages of a channel's history, oldest first, as plain records.

The memory cog implements :class:`HistorySource` over discord.py (which honours Discord's rate
limits); tests and the benchmark use that same adapter against a local HTTP server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from qwen3_memory.errors import UserFacingError
from qwen3_memory.records import StoredMessage


class ChannelUnreadable(UserFacingError):
    """The bot may not read this channel's history (Discord answered 403, or it is not a text channel)."""


@dataclass(frozen=True)
class ChannelRef:
    """A channel to import: a text channel, or a thread / forum post under ``parent_id``."""

    channel_id: int
    parent_id: int = 0
    name: str = ""

    @property
    def label(self) -> str:
        return f"#{self.name}" if self.name else f"channel {self.channel_id}"


@dataclass(frozen=True)
class HistoryPage:
    """One page of history, oldest first: what to keep, and how far the page reached."""

    newest_id: int  # the newest message id the page covered (kept or not): the cursor moves here once written
    messages: list[StoredMessage] = field(default_factory=list)  # human messages with text
    skipped: int = 0  # read but never kept: bots, webhooks, system messages, no text
    rate_limit_waits: int = 0  # times Discord made the reader wait while fetching this page
    rate_limit_seconds: float = 0.0

    @property
    def read(self) -> int:
        return len(self.messages) + self.skipped


class HistorySource(Protocol):
    def pages(
        self, guild_id: int, channel_id: int, after_id: int, limit: int | None = None
    ) -> AsyncIterator[HistoryPage]:
        """The channel's messages after ``after_id``, oldest first, in pages; at most ``limit`` read.

        Raises :class:`ChannelUnreadable` when the bot may not read the channel."""
        ...

    async def sample(self, guild_id: int, channel_id: int, after_id: int) -> tuple[list[int], list[int]]:
        """Ids of the oldest page after ``after_id`` and of the newest page (for a size estimate)."""
        ...
