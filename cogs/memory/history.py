"""discord.py's side of a history import: pages of a channel's messages, its threads, who may read what.

Reading goes through ``channel.history`` on the bot's own HTTP client, which waits out Discord's
rate limits (429s and exhausted buckets); a log filter on ``discord.http`` counts the 429 waits per
channel so the progress shows them. The library (:mod:`qwen3_memory.history`) never sees a Discord object.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable

import discord

from qwen3_memory.history import ChannelRef, ChannelUnreadable, HistoryPage
from qwen3_memory.history.estimate import PAGE
from qwen3_memory.records import StoredMessage

log = logging.getLogger(__name__)

_RATE_LIMITED = re.compile(r"/channels/(\d+)/")
ThreadParent = discord.TextChannel | discord.ForumChannel


class RateLimitWaits(logging.Filter):
    """Counts discord.py's "We are being rate limited ... Retrying in N seconds" per channel id (and lets the
    line through: operators still see it)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: dict[int, list[float]] = defaultdict(list)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg.startswith("We are being rate limited.") and len(record.args or ()) == 3:
            _, url, retry_after = record.args  # type: ignore[misc]
            found = _RATE_LIMITED.search(str(url))
            if found:
                self.waits[int(found.group(1))].append(float(retry_after))
        return True

    def take(self, channel_id: int) -> list[float]:
        return self.waits.pop(channel_id, [])


def history_copy(message: discord.Message, min_length: int, bot_id: int | None) -> StoredMessage | None:
    """The record of a message read from history, or None for what live capture would not keep either: bots,
    webhooks, system messages, text shorter than ``min_length``, questions addressed to the bot."""
    if message.author.bot or message.webhook_id is not None or message.is_system():
        return None
    if len(message.content.strip()) < max(1, min_length) or (bot_id is not None and bot_id in message.raw_mentions):
        return None
    return StoredMessage(
        id=message.id,
        guild_id=message.guild.id if message.guild else 0,
        channel_id=message.channel.id,
        author_id=message.author.id,
        author_name=getattr(message.author, "display_name", message.author.name),
        content=message.content,
        created_at=message.created_at.timestamp(),
        edited_at=message.edited_at.timestamp() if message.edited_at else None,
    )


def unreadable(label: str, error: discord.HTTPException) -> ChannelUnreadable:
    return ChannelUnreadable(
        f"I can't read the history of {label} (Discord answered {error.status} {error.text or error.response.reason}): "
        "give me View Channel and Read Message History there, then import it again"
    )


class DiscordHistory:
    """A :class:`~qwen3_memory.history.HistorySource` over a discord.py client."""

    def __init__(self, client: discord.Client, min_length: int = 1) -> None:
        self.client = client
        self.min_length = min_length
        self.waits = RateLimitWaits()
        logging.getLogger("discord.http").addFilter(self.waits)

    def close(self) -> None:
        logging.getLogger("discord.http").removeFilter(self.waits)

    async def channel(self, channel_id: int) -> discord.abc.Messageable:
        found = self.client.get_channel(channel_id)
        if found is None:
            try:
                found = await self.client.fetch_channel(channel_id)
            except (discord.Forbidden, discord.NotFound) as exc:
                raise unreadable(f"channel {channel_id}", exc) from exc
        if not isinstance(found, discord.abc.Messageable):
            raise ChannelUnreadable(f"{found} has no messages of its own to import (its threads do)")
        return found

    async def pages(
        self, guild_id: int, channel_id: int, after_id: int, limit: int | None = None
    ) -> AsyncIterator[HistoryPage]:
        channel = await self.channel(channel_id)
        bot_id = self.client.user.id if self.client.user else None
        kept: list[StoredMessage] = []
        read = newest = 0
        try:
            async for message in channel.history(limit=limit, after=discord.Object(after_id), oldest_first=True):
                record = history_copy(message, self.min_length, bot_id)
                if record is not None:
                    kept.append(record)
                read, newest = read + 1, message.id
                if read == PAGE:
                    yield self._page(channel_id, newest, kept, read)
                    kept, read = [], 0
        except discord.Forbidden as exc:
            raise unreadable(f"#{getattr(channel, 'name', channel_id)}", exc) from exc
        if read:
            yield self._page(channel_id, newest, kept, read)

    def _page(self, channel_id: int, newest: int, kept: list[StoredMessage], read: int) -> HistoryPage:
        waits = self.waits.take(channel_id)
        return HistoryPage(newest, kept, read - len(kept), len(waits), sum(waits))

    async def sample(self, guild_id: int, channel_id: int, after_id: int) -> tuple[list[int], list[int]]:
        channel = await self.channel(channel_id)
        try:
            after = discord.Object(after_id)
            oldest = [m.id async for m in channel.history(limit=PAGE, after=after, oldest_first=True)]
            newest = [m.id async for m in channel.history(limit=PAGE)] if len(oldest) == PAGE else []
        except discord.Forbidden as exc:
            raise unreadable(f"#{getattr(channel, 'name', channel_id)}", exc) from exc
        return oldest, newest


def readable_by(channel: discord.abc.GuildChannel | discord.Thread, *members: discord.Member) -> bool:
    """Every member (the bot, the admin asking) may see the channel and read its history."""
    for member in members:
        permissions = channel.permissions_for(member)
        if not (permissions.view_channel and permissions.read_message_history):
            return False
    return True


async def threads_of(parent: ThreadParent, me: discord.Member) -> list[discord.Thread]:
    """The parent's threads (forum posts): active, archived public, and archived private where the bot may list
    them (Manage Threads; else the private ones it joined), oldest first."""
    found: dict[int, discord.Thread] = {t.id: t for t in parent.threads}
    try:
        for thread in await parent.guild.active_threads():
            if thread.parent_id == parent.id:
                found[thread.id] = thread
        async for thread in parent.archived_threads(limit=None):
            found[thread.id] = thread
    except discord.Forbidden as exc:
        raise unreadable(f"#{parent.name}'s threads", exc) from exc
    if isinstance(parent, discord.TextChannel):
        private = parent.permissions_for(me).manage_threads
        try:
            async for thread in parent.archived_threads(limit=None, private=True, joined=not private):
                found[thread.id] = thread
        except discord.Forbidden:
            log.info("#%s: private archived threads are not readable by the bot; skipped", parent.name)
    return sorted(found.values(), key=lambda t: t.id)


async def importable(
    channels: Iterable[discord.abc.GuildChannel], me: discord.Member, admin: discord.Member
) -> tuple[list[ChannelRef], list[str]]:
    """Channel refs (each channel, then its threads) that both the bot and the admin can read, and the names of
    those left out and why."""
    refs, left_out = [], []
    for channel in channels:
        if not isinstance(channel, (discord.TextChannel, discord.ForumChannel, discord.Thread)):
            continue
        if not readable_by(channel, me, admin):
            left_out.append(f"#{channel.name} (not readable by both of us)")
            continue
        if isinstance(channel, discord.Thread):
            refs.append(ChannelRef(channel.id, channel.parent_id or 0, channel.name))
            continue
        if isinstance(channel, discord.TextChannel):
            refs.append(ChannelRef(channel.id, 0, channel.name))
        try:
            threads = await threads_of(channel, me)
        except ChannelUnreadable as exc:
            left_out.append(f"#{channel.name}'s threads ({exc})")
            continue
        refs += [ChannelRef(t.id, channel.id, t.name) for t in threads if readable_by(t, me, admin)]
    return refs, left_out
