"""Discord glue of the memory: capture listeners, recall on mention, and the ``/memory`` commands.

This module only converts Discord objects to the library's plain records, decides who may do
what, and renders replies. Storing, embedding, searching and the capture rules (channel flags,
members who opted out) live in the library (``qwen3_memory.memory``, ``qwen3_memory.stats``):
listeners hand messages to the capture queue (microseconds; the background writer embeds them off
the event loop) and recall embeds the question in the embedding executor.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common.checks import NotMemoryAdmin, is_admin
from cogs.common.replies import refused_option, tell_privately
from cogs.memory.imports import WHERE_CHOICES, HistoryImports, ImportOffer
from cogs.memory.render import MEMORY_COLOUR, excerpts_embed, filters_text, snippet
from qwen3_memory.errors import UserFacingError
from qwen3_memory.filters import NO_FILTERS, RecallFilters
from qwen3_memory.hooks import RecallEvent
from qwen3_memory.memory import Memory
from qwen3_memory.records import StoredMessage
from qwen3_memory.stats import ChannelStats, MemoryStats, memory_stats
from qwen3_memory.when import parse_when

log = logging.getLogger(__name__)

STATS_FIELDS = 20  # channels shown by /memory stats (an embed holds at most 25 fields)
DM_GUILD_ID = 0  # guild id under which direct messages are kept when capture.allow_dms is on


# ---------------------------------------------------------------------- conversions
def stored_message(message: discord.Message, edited: bool = False) -> StoredMessage:
    """The library's record of a Discord message (the content as sent; a DM is kept under guild 0)."""
    edited_at = None
    if edited:
        edited_at = message.edited_at.timestamp() if message.edited_at else time.time()
    return StoredMessage(
        id=message.id,
        guild_id=message.guild.id if message.guild else DM_GUILD_ID,
        channel_id=message.channel.id,
        author_id=message.author.id,
        author_name=message.author.display_name,
        content=message.content,
        created_at=message.created_at.timestamp(),
        edited_at=edited_at,
    )


def question_of(message: discord.Message, bot_id: int) -> str:
    """The text of a message addressed to the bot, without the bot's mention."""
    return re.sub(rf"<@!?{bot_id}>", " ", message.content).strip()


def recall_filters(
    author: discord.abc.User | None, after: str | None, before: str | None, recent: bool
) -> RecallFilters:
    """The /memory recall options as library filters; a date it cannot read is a UserFacingError naming the option."""
    if author is None and not after and not before and not recent:
        return NO_FILTERS
    now = time.time()
    return RecallFilters.of(
        authors=[author.id] if author is not None else [],
        after=parse_when(after, now, "after") if after else None,
        before=parse_when(before, now, "before") if before else None,
        prefer_recent=recent,
    )


def _where(channel) -> str:
    name = getattr(channel, "name", None)
    return f"#{name}" if name else "this conversation"


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def stats_embed(stats: MemoryStats, guild: discord.Guild) -> discord.Embed:
    """Per channel: messages, capture flag, read and write spaces, vectors and index per space."""
    embed = discord.Embed(
        title=f"🧠 Memory of {guild.name}",
        description=(
            f"profile `{stats.profile}` · {stats.channel_count} channels · capture queue "
            f"{stats.pending} pending, {stats.embedded} embedded, {stats.failures} failures since start"
        ),
        colour=MEMORY_COLOUR,
    )
    for channel in stats.channels:
        embed.add_field(name=_channel_name(guild, channel.channel_id), value=_channel_lines(channel), inline=False)
    if stats.channel_count > len(stats.channels):
        embed.set_footer(text=f"and {stats.channel_count - len(stats.channels)} more channels")
    return embed


def _channel_name(guild: discord.Guild, channel_id: int) -> str:
    channel = guild.get_channel_or_thread(channel_id)
    return f"#{channel.name}" if channel is not None else f"channel {channel_id}"


def _channel_lines(channel: ChannelStats) -> str:
    lines = [
        f"{channel.messages:,} messages · capture {'on' if channel.capture else 'off'}",
        f"reads space {channel.read_space_id} · writes " + ", ".join(f"space {s}" for s in channel.write_space_ids),
    ]
    for s in channel.spaces:
        index = s.index
        if index.location is None:  # the vector table is the index
            size = "in the shared database"
        else:
            size = _bytes(index.disk_bytes) if index.disk_bytes is not None else "not on disk yet"
        lines.append(
            f"space {s.space.id} `{s.space.spec.short_name}` {s.space.dimension}-d: {s.vectors:,} vectors · "
            f"{index.kind} index, {size} · score floor {s.floor}"
        )
    return "\n".join(lines)[:1024]


class RecallRateLimit:
    """One recall per ``seconds`` per user, shared by mentions and ``/memory recall``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._next: dict[int, float] = {}

    def retry_after(self, user_id: int) -> float:
        """0 and the recall is counted, or the seconds left before this user may recall again."""
        if self.seconds <= 0:
            return 0.0
        now = time.monotonic()
        left = self._next.get(user_id, 0.0) - now
        if left > 0:
            return left
        if len(self._next) > 10_000:  # forget users whose window has passed
            self._next = {u: t for u, t in self._next.items() if t > now}
        self._next[user_id] = now + self.seconds
        return 0.0


def _cog(interaction: discord.Interaction) -> MemoryCog:
    command = interaction.command
    cog = getattr(command, "binding", None)
    if not isinstance(cog, MemoryCog):
        cog = interaction.client.get_cog(MemoryCog.__cog_name__)  # type: ignore[attr-defined]
    assert isinstance(cog, MemoryCog)
    return cog


def memory_admin_only():
    """Runtime check behind ``default_permissions`` (which Discord ignores on subcommands)."""

    async def predicate(interaction: discord.Interaction) -> bool:
        cog = _cog(interaction)
        if await cog.is_memory_admin(interaction):
            return True
        raise NotMemoryAdmin(cog.admin_permission)

    return app_commands.check(predicate)


def recall_rate_limited():
    async def predicate(interaction: discord.Interaction) -> bool:
        cog = _cog(interaction)
        retry = cog.rate_limit.retry_after(interaction.user.id)
        if retry > 0:
            raise app_commands.CommandOnCooldown(app_commands.Cooldown(1, cog.rate_limit.seconds), retry)
        return True

    return app_commands.check(predicate)


def import_options(action: str):
    """The options ``/memory import start`` and ``plan`` share, and the admin check."""

    def decorate(command):
        command = app_commands.describe(
            where="This channel (and its threads) or every channel of the server",
            channels=f"Channels to {action} instead, as #mentions",
            since="Only messages since this date (YYYY-MM-DD, UTC)",
        )(command)
        command = app_commands.choices(where=[app_commands.Choice(name=w, value=w) for w in WHERE_CHOICES])(command)
        return memory_admin_only()(command)

    return decorate


# ---------------------------------------------------------------------- the cog
class MemoryCog(commands.Cog, name="Memory"):
    """Remembers the messages of guild channels and recalls the relevant ones on request."""

    memory_group = app_commands.Group(
        name="memory",
        description="What the bot remembers of this server's channels",
        guild_only=True,
        allowed_contexts=app_commands.AppCommandContext(guild=True),  # what app_commands.guild_only() sets
    )
    import_group = app_commands.Group(
        name="import",
        description="Remember this server's earlier messages from Discord's history (admins)",
        parent=memory_group,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: commands.Bot, memory: Memory) -> None:
        self.bot = bot
        self.memory = memory
        capture = memory.settings.memory.capture
        self.allow_dms = capture.allow_dms
        self.min_length = capture.min_length
        self.admin_permission = memory.settings.memory.permissions.admin_permission
        self.rate_limit = RecallRateLimit(memory.settings.memory.recall.user_cooldown_seconds)
        self._stop_dispatching = memory.recall_hooks.add(self._dispatch_recall)
        self.imports = HistoryImports(bot, memory)

    def _dispatch_recall(self, event: RecallEvent) -> None:
        """Every recall of the memory becomes the bot event ``memory_recall`` (``on_memory_recall(event)``)."""
        self.bot.dispatch("memory_recall", event)

    async def cog_unload(self) -> None:
        self._stop_dispatching()
        await self.imports.close()  # unfinished imports resume at the next start

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        await self.imports.connected()

    @commands.Cog.listener()
    async def on_resumed(self) -> None:
        await self.imports.connected()

    @commands.Cog.listener()
    async def on_disconnect(self) -> None:
        self.imports.disconnected()

    # ------------------------------------------------------------------ capture
    def _capturable(self, message: discord.Message) -> bool:
        """A human's ordinary message with text, in a guild text channel or thread (or a DM if allowed)."""
        if message.author.bot or message.webhook_id is not None or message.is_system():
            return False
        if len(message.content.strip()) < max(1, self.min_length):
            return False
        if message.guild is None:
            return self.allow_dms and isinstance(message.channel, discord.DMChannel)
        return isinstance(message.channel, (discord.TextChannel, discord.Thread))

    async def _channel_enabled(self, guild_id: int, channel) -> bool:
        """Capture on in this channel (a thread without a flag of its own follows its parent)."""
        return await self.memory.capture_enabled(guild_id, channel.id, getattr(channel, "parent_id", None))

    def _addresses_me(self, message: discord.Message) -> bool:
        return self.bot.user is not None and self.bot.user.id in message.raw_mentions

    async def _should_capture(self, message: discord.Message) -> bool:
        """Capturable, in an enabled channel, by a member who did not opt out, and not a question to the bot
        (questions would otherwise come back as the best match of every later question on the subject)."""
        if not self._capturable(message) or self._addresses_me(message):
            return False
        guild_id = message.guild.id if message.guild else DM_GUILD_ID
        if await self.memory.is_opted_out(guild_id, message.author.id):
            return False
        return await self._channel_enabled(guild_id, message.channel)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.webhook_id is not None:
            return
        if await self._should_capture(message):
            await self.memory.capture.submit(stored_message(message))
        if self._addresses_me(message) and (message.guild is not None or self.allow_dms):
            await self._answer_mention(message)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """Edits re-embed the message (raw, so messages older than the cache are covered; this also
        covers ``on_message_edit``, which discord.py dispatches only for cached messages)."""
        message = payload.message
        if "content" not in payload.data:  # an embed unfurl, a pin...: the text did not change
            return
        if not message.content.strip() and not message.author.bot:
            await self.memory.capture.delete([message.id])  # edited down to nothing: forget it
            return
        if await self._should_capture(message):
            await self.memory.capture.submit(stored_message(message, edited=True))

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.memory.capture.delete([payload.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self.memory.capture.delete(sorted(payload.message_ids))

    # ------------------------------------------------------------------ recall
    async def _nothing_found(
        self, guild_id: int, channel, query: str, exclude: int | None = None, conditions: str = ""
    ) -> str:
        count = await self.memory.store.count_messages(guild_id, channel.id)
        if count == 1 and exclude is not None and await self.memory.store.get_messages([exclude]):
            count = 0  # only the question itself
        if count == 0:
            if not await self._channel_enabled(guild_id, channel):
                return (
                    f"💤 I don't remember anything from {_where(channel)}: memory is off here. "
                    "An admin can turn it on with `/memory enable`."
                )
            return (
                f"💭 I don't remember anything from {_where(channel)} yet. "
                "I remember messages posted here from now on; ask me again later."
            )
        if conditions:
            return (
                f"🔍 Nothing I remember from {_where(channel)} ({conditions}) matches “{snippet(query, 120)}”. "
                "Try wider filters or other words."
            )
        return (
            f"🔍 Nothing I remember from {_where(channel)} matches “{snippet(query, 120)}”. "
            "Try other words, or a question closer to how it was said."
        )

    async def _answer_mention(self, message: discord.Message) -> None:
        assert self.bot.user is not None
        question = question_of(message, self.bot.user.id)
        reply_kwargs = {"mention_author": False, "allowed_mentions": discord.AllowedMentions.none()}
        if not question:
            await message.reply(
                f"👋 Ask me about something said earlier in {_where(message.channel)}, e.g. "
                f"{self.bot.user.mention} what did we decide about the release date?",
                **reply_kwargs,
            )
            return
        retry = self.rate_limit.retry_after(message.author.id)
        if retry > 0:
            await message.reply(f"⏳ One question at a time: ask me again in {retry:.0f} s.", **reply_kwargs)
            return
        guild_id = message.guild.id if message.guild else DM_GUILD_ID
        try:
            _, excerpts = await self.memory.recall_excerpts(
                guild_id,
                message.channel.id,
                question,
                exclude=message.id,
                source="mention",
                requested_by=message.author.id,
            )
        except UserFacingError as exc:
            await message.reply(f"⚠️ {exc}", **reply_kwargs)
            return
        if excerpts:
            await message.reply(embed=excerpts_embed(excerpts, question, _where(message.channel)), **reply_kwargs)
        else:
            text = await self._nothing_found(guild_id, message.channel, question, exclude=message.id)
            await message.reply(text, **reply_kwargs)

    # ------------------------------------------------------------------ checks
    async def is_memory_admin(self, interaction: discord.Interaction) -> bool:
        return await is_admin(interaction, self.admin_permission)  # the rule shared with /migrate

    # ------------------------------------------------------------------ /memory for everyone
    @memory_group.command(name="recall", description="Find earlier messages of this channel about something")
    @app_commands.describe(
        query="What to look for, in your own words",
        k="How many messages to show (1-25)",
        author="Only messages by this member",
        after="Only messages from then on: 2026-05-01, 2026-05-01 18:30 (UTC), 7d, 2w, 3mo, yesterday",
        before="Only messages before then: 2026-05-01, 2026-05-01 18:30 (UTC), 7d, 2w, 3mo, yesterday",
        recent="Prefer recent messages among the relevant ones",
    )
    @recall_rate_limited()
    async def recall_command(
        self,
        interaction: discord.Interaction,
        query: str,
        k: app_commands.Range[int, 1, 25] | None = None,
        author: discord.User | None = None,
        after: str | None = None,
        before: str | None = None,
        recent: bool = False,
    ) -> None:
        filters = recall_filters(author, after, before, recent)  # a bad date is refused before any work
        conditions = filters_text(filters, {author.id: author.display_name} if author else None)
        await interaction.response.defer(ephemeral=True, thinking=True)
        channel = interaction.channel
        _, excerpts = await self.memory.recall_excerpts(
            interaction.guild_id,
            channel.id,
            query,
            k,
            filters=filters,
            source="command",
            requested_by=interaction.user.id,
        )
        if excerpts:
            embed = excerpts_embed(excerpts, query, _where(channel), conditions)
            await interaction.followup.send(embed=embed, ephemeral=True)
        else:
            text = await self._nothing_found(interaction.guild_id, channel, query, conditions=conditions)
            await interaction.followup.send(text, ephemeral=True)

    @memory_group.command(name="forget-me", description="Forget your messages in this server and stop remembering")
    async def forget_me(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        forgotten = await self.memory.forget_member(interaction.guild_id, interaction.user.id)
        await interaction.followup.send(
            f"🗑️ I forgot {forgotten} of your messages in this server, with their vectors, and I won't remember "
            "what you write here until you use `/memory remember-me`.",
            ephemeral=True,
        )

    @memory_group.command(name="remember-me", description="Let the bot remember your new messages again")
    async def remember_me(self, interaction: discord.Interaction) -> None:
        await self.memory.remember_member(interaction.guild_id, interaction.user.id)
        await interaction.response.send_message(
            "👍 I'll remember your new messages in this server again (what I forgot stays forgotten).", ephemeral=True
        )

    # ------------------------------------------------------------------ /memory for admins
    async def _set_enabled(self, interaction: discord.Interaction, enabled: bool) -> None:
        channel = interaction.channel
        threads = [t.id for t in interaction.guild.threads if t.parent_id == channel.id]
        await self.memory.set_capture_enabled(interaction.guild_id, channel.id, enabled, threads)
        offer = {}
        if enabled:
            text = f"✅ I now remember new messages in {_where(channel)}."
            if not await self.memory.store.count_messages(interaction.guild_id, channel.id):
                text += " Import what was said here before? (`/memory import plan` estimates it first.)"
                offer["view"] = ImportOffer(self.imports, self.admin_permission)
        else:
            text = (
                f"⏸️ I no longer remember new messages in {_where(channel)}. What I already remember stays "
                "(members can erase theirs with `/memory forget-me`)."
            )
        await interaction.response.send_message(text, ephemeral=True, **offer)

    @memory_group.command(name="enable", description="Remember new messages of this channel (admins)")
    @app_commands.default_permissions(manage_guild=True)
    @memory_admin_only()
    async def enable(self, interaction: discord.Interaction) -> None:
        await self._set_enabled(interaction, True)

    @memory_group.command(name="disable", description="Stop remembering new messages of this channel (admins)")
    @app_commands.default_permissions(manage_guild=True)
    @memory_admin_only()
    async def disable(self, interaction: discord.Interaction) -> None:
        await self._set_enabled(interaction, False)

    @memory_group.command(name="stats", description="Messages, vectors, spaces and indexes per channel (admins)")
    @app_commands.default_permissions(manage_guild=True)
    @memory_admin_only()
    async def stats(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        stats = await memory_stats(self.memory, interaction.guild_id, limit=STATS_FIELDS)
        await interaction.followup.send(embed=stats_embed(stats, interaction.guild), ephemeral=True)

    # ------------------------------------------------------------------ /memory import (admins)
    @import_group.command(name="start", description="Import earlier messages of this channel, listed ones or all")
    @import_options("import")
    async def import_start(
        self,
        interaction: discord.Interaction,
        where: str = "here",
        channels: str | None = None,
        since: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.imports.start(interaction, where, channels, since)

    @import_group.command(name="plan", description="Estimate how many messages an import would read")
    @import_options("estimate")
    async def import_plan(
        self,
        interaction: discord.Interaction,
        where: str = "here",
        channels: str | None = None,
        since: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.imports.plan(interaction, where, channels, since)

    async def _send_import_status(self, interaction: discord.Interaction) -> None:
        embed = await self.imports.status_embed(interaction.guild)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @import_group.command(name="status", description="Progress of this server's history import")
    @memory_admin_only()
    async def import_status(self, interaction: discord.Interaction) -> None:
        await self._send_import_status(interaction)

    @import_group.command(name="pause", description="Pause this server's history import")
    @memory_admin_only()
    async def import_pause(self, interaction: discord.Interaction) -> None:
        await self.imports.importer.pause(interaction.guild_id)
        await self._send_import_status(interaction)

    @import_group.command(name="resume", description="Resume this server's paused history import")
    @memory_admin_only()
    async def import_resume(self, interaction: discord.Interaction) -> None:
        await self.imports.importer.resume(interaction.guild_id)
        await self._send_import_status(interaction)

    @import_group.command(name="cancel", description="Stop this server's history import (what it stored stays)")
    @memory_admin_only()
    async def import_cancel(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.imports.importer.cancel(interaction.guild_id)
        await interaction.followup.send(embed=await self.imports.status_embed(interaction.guild), ephemeral=True)

    # ------------------------------------------------------------------ errors
    async def cog_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError):
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(original, UserFacingError):
            text = f"⚠️ {original}"
        elif isinstance(error, app_commands.CommandOnCooldown):
            text = f"⏳ You're asking too often: try again in {error.retry_after:.0f} s."
        elif isinstance(error, app_commands.NoPrivateMessage):
            text = "This command only works in a server."
        elif isinstance(error, app_commands.CheckFailure):
            text = str(error) or "🔒 You can't use this command here."
        elif isinstance(error, app_commands.TransformerError):
            text = refused_option(error)
        else:
            error_id = secrets.token_hex(4)
            log.error(
                "/%s failed [error id %s]",
                interaction.command.qualified_name if interaction.command else "?",
                error_id,
                exc_info=original,
            )
            text = f"💥 Something went wrong (error id `{error_id}`). The bot's log has the details."
        await tell_privately(interaction, text)
