"""Discord glue of history imports: which channels an admin's ``/memory import`` means, the progress embed,
gap fill when the gateway comes back, and resuming imports a stopped process left unfinished.

The work itself (pages, cursors, pause/resume/cancel) is :class:`qwen3_memory.history.HistoryImporter`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time

import discord

from cogs.common.checks import NotMemoryAdmin, is_admin
from cogs.memory.history import DiscordHistory, importable, readable_by
from qwen3_memory.errors import UserFacingError
from qwen3_memory.history import ChannelRef, HistoryImporter, ImportProgress
from qwen3_memory.history.cursors import ImportCursors
from qwen3_memory.history.estimate import SizeEstimate, add, estimate_size
from qwen3_memory.history.snowflakes import snowflake_at
from qwen3_memory.memory import Memory
from qwen3_memory.units import human_duration

log = logging.getLogger(__name__)

IMPORT_COLOUR = discord.Colour.teal()
PROGRESS_EVERY_S = 3.0  # how often the progress embed is edited
FOLLOW_FOR_S = 14 * 60.0  # an interaction token lives 15 minutes: stop editing before it expires
PLAN_CHANNELS = 25  # channels sampled by /memory import plan (two requests each)
WHERE_CHOICES = ("here", "server")
_CHANNEL_MENTION = re.compile(r"<#(\d+)>|\b(\d{15,21})\b")


def parse_since(since: str | None) -> int:
    """The id bound of ``since`` (YYYY-MM-DD, UTC), or 0 for the whole history."""
    if not since:
        return 0
    try:
        day = dt.datetime.strptime(since.strip(), "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise UserFacingError(f"`since` must be a date like 2024-01-31, not “{since}”") from None
    if day > dt.datetime.now(dt.UTC):
        raise UserFacingError(f"`since` {since} is in the future: nothing was posted after it yet")
    return snowflake_at(day.timestamp())


def progress_embed(progress: ImportProgress, guild: discord.Guild) -> discord.Embed:
    """Messages read, stored, skipped, rate-limit waits and ETA, like ``/migrate status``."""
    eta = progress.eta_seconds()
    lines = [
        f"**{progress.channels_done}/{progress.channels_total}** channels and threads"
        + (f" · reading {progress.current}" if progress.current and not progress.finished_state else ""),
        f"{progress.read:,} read · **{progress.stored:,} stored** · {progress.skipped:,} skipped "
        "(bots, webhooks, system messages, opted-out members, already stored)",
        f"{progress.rate_limit_waits} rate-limit waits ({progress.rate_limit_seconds:.1f} s) · "
        f"{progress.rate():.0f} messages/s · {human_duration(progress.elapsed())} elapsed"
        + (f" · about {human_duration(eta)} left" if eta is not None else ""),
    ]
    if progress.estimate:
        lines.append(f"estimated at the start: {progress.estimate}")
    if progress.failures:
        lines.append("⚠️ " + "\n⚠️ ".join(progress.failures[:5]))
        if len(progress.failures) > 5:
            lines.append(f"and {len(progress.failures) - 5} more")
    icon = {"running": "📥", "paused": "⏸️", "done": "✅", "cancelled": "⏹️", "failed": "❌"}.get(progress.state, "📥")
    return discord.Embed(
        title=f"{icon} History import in {guild.name}: {progress.state}",
        description="\n".join(lines)[:4000],
        colour=IMPORT_COLOUR,
    )


class HistoryImports:
    """The memory cog's history imports: commands' logic, the progress follower, gap fill and resume."""

    def __init__(self, bot: discord.Client, memory: Memory) -> None:
        self.bot = bot
        self.memory = memory
        settings = memory.settings.memory
        self.source = DiscordHistory(bot, settings.capture.min_length)
        self.importer = HistoryImporter(memory, self.source, settings.history)
        self.gap_fill = settings.history.gap_fill
        self._away_since = time.time()  # until the first ready: this process started, live capture was off
        self._resumed = False
        self._tasks: set[asyncio.Task] = set()
        self.progress_every_s = PROGRESS_EVERY_S

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.importer.close()
        self.source.close()

    def spawn(self, coroutine, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ gateway
    def disconnected(self) -> None:
        self._away_since = min(self._away_since or time.time(), time.time())

    async def connected(self) -> None:
        """(Re)connected: resume unfinished imports once, and fill each guild's gap since we were away."""
        if not self._resumed:
            self._resumed = True
            for progress in await self.importer.resume_unfinished():
                log.info("resumed the history import of guild %d", progress.guild_id)
        away, self._away_since = self._away_since, None
        if self.gap_fill and away is not None:
            for guild in self.bot.guilds:
                self.spawn(self._fill_gap(guild, away), f"history-gap-fill-{guild.id}")

    async def _fill_gap(self, guild: discord.Guild, away_since: float) -> ImportProgress | None:
        refs = []
        for state in await self.memory.store.list_channels(guild.id):
            channel = guild.get_channel_or_thread(state.channel_id)
            if state.enabled and channel is not None and readable_by(channel, guild.me):
                refs.append(ChannelRef(channel.id, getattr(channel, "parent_id", None) or 0, channel.name))
        if not refs:
            return None
        try:
            return await self.importer.fill_gap(guild.id, refs, snowflake_at(away_since))
        except Exception:
            log.exception("gap fill of guild %d failed; /memory import fetches what is missing", guild.id)
            return None

    # ------------------------------------------------------------------ which channels
    async def chosen_channels(
        self, interaction: discord.Interaction, where: str, channels: str | None
    ) -> tuple[list[ChannelRef], list[str]]:
        """The refs (channels, then their threads) the admin named that both the bot and they can read, and
        what was left out and why."""
        guild = interaction.guild
        assert guild is not None
        if channels:
            named = []
            for mention, bare in _CHANNEL_MENTION.findall(channels):
                channel = guild.get_channel_or_thread(int(mention or bare))
                if channel is None:
                    raise UserFacingError(f"there is no channel {mention or bare} in this server")
                named.append(channel)
            if not named:
                raise UserFacingError("name channels as #mentions in `channels`, e.g. `#general #help`")
        elif where == "server":
            named = [*guild.text_channels, *guild.forums]
        else:
            named = [interaction.channel]
        kept, off = [], []
        for channel in named:
            parent = getattr(channel, "parent_id", None)
            if await self.memory.capture_enabled(guild.id, channel.id, parent):
                kept.append(channel)
            else:
                off.append(f"#{channel.name} (memory is off there: `/memory enable` first)")
        refs, unreadable = await importable(kept, guild.me, interaction.user)
        return refs, off + unreadable

    # ------------------------------------------------------------------ commands
    async def start(self, interaction: discord.Interaction, where: str, channels: str | None, since: str | None):
        since_id = parse_since(since)
        refs, left_out = await self.chosen_channels(interaction, where, channels)
        estimate = ""
        if refs and len(refs) <= PLAN_CHANNELS:
            estimate = (await self.estimate(interaction.guild_id, refs, since_id)).describe()
        progress = await self.importer.start(interaction.guild_id, refs, since_id, estimate=estimate)
        embed = progress_embed(progress, interaction.guild)
        if left_out:
            embed.add_field(name="left out", value="\n".join(left_out)[:1024], inline=False)
        await interaction.followup.send(embed=embed, ephemeral=True)
        self.spawn(self._follow(interaction, progress), f"history-import-progress-{interaction.guild_id}")

    async def estimates(self, guild_id: int, refs: list[ChannelRef], since_id: int) -> list[SizeEstimate]:
        """Per channel (the first PLAN_CHANNELS), from its oldest page after ``since_id`` and its newest page."""
        estimates = []
        for ref in refs[:PLAN_CHANNELS]:
            oldest, newest = await self.source.sample(guild_id, ref.channel_id, since_id)
            estimates.append(estimate_size(oldest, newest))
        return estimates

    async def estimate(self, guild_id: int, refs: list[ChannelRef], since_id: int) -> SizeEstimate:
        return add(await self.estimates(guild_id, refs, since_id))

    async def plan(self, interaction: discord.Interaction, where: str, channels: str | None, since: str | None):
        since_id = parse_since(since)
        refs, left_out = await self.chosen_channels(interaction, where, channels)
        estimates = await self.estimates(interaction.guild_id, refs, since_id)
        lines = [f"{ref.label}: {estimate.describe()}" for ref, estimate in zip(refs, estimates, strict=False)]
        if len(refs) > PLAN_CHANNELS:
            lines.append(f"and {len(refs) - PLAN_CHANNELS} more channels or threads, not sampled")
        total = add(estimates) if estimates else SizeEstimate(0, True, 0)
        embed = discord.Embed(
            title=f"📋 Import plan: {total.describe()} in {len(refs)} channels and threads",
            description="\n".join(lines)[:4000] or "nothing to import",
            colour=IMPORT_COLOUR,
        )
        embed.set_footer(
            text="Discord cannot count messages in advance: estimated from the first and newest pages of each "
            "channel. Start it with /memory import start."
        )
        if left_out:
            embed.add_field(name="left out", value="\n".join(left_out)[:1024], inline=False)
        await interaction.followup.send(embed=embed, ephemeral=True)

    async def status_embed(self, guild: discord.Guild) -> discord.Embed:
        progress = self.importer.progress(guild.id)
        if progress is not None:
            return progress_embed(progress, guild)
        rows = await ImportCursors(self.memory.store).channels(guild.id)
        if not rows:
            raise UserFacingError("no history was imported in this server yet: `/memory import start`")
        by_status: dict[str, int] = {}
        for row in rows:
            by_status[row.status] = by_status.get(row.status, 0) + 1
        return discord.Embed(
            title=f"📥 History imports in {guild.name}",
            description=f"{sum(r.stored for r in rows):,} messages stored from history; channels: "
            + ", ".join(f"{n} {status}" for status, n in sorted(by_status.items())),
            colour=IMPORT_COLOUR,
        )

    async def _follow(self, interaction: discord.Interaction, progress: ImportProgress) -> None:
        """Edit the progress embed in place until the import ends (or the interaction token is about to expire)."""
        deadline = time.monotonic() + FOLLOW_FOR_S
        while True:
            await asyncio.sleep(self.progress_every_s)
            last = progress.finished_state or time.monotonic() >= deadline
            try:
                await interaction.edit_original_response(embed=progress_embed(progress, interaction.guild))
            except discord.HTTPException as exc:
                log.debug("stopped following the history import of guild %d: %s", progress.guild_id, exc)
                return
            if last:
                return


class ImportOffer(discord.ui.View):
    """The button under ``/memory enable``'s answer in a channel the memory knows nothing of yet."""

    def __init__(self, imports: HistoryImports, admin_permission: str, timeout: float = 600) -> None:
        super().__init__(timeout=timeout)
        self.imports = imports
        self.admin_permission = admin_permission

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if await is_admin(interaction, self.admin_permission):
            return True
        await interaction.response.send_message(str(NotMemoryAdmin(self.admin_permission)), ephemeral=True)
        return False

    @discord.ui.button(label="Import earlier messages", style=discord.ButtonStyle.primary, emoji="📥")
    async def start_import(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(view=None)
        try:
            await self.imports.start(interaction, "here", None, None)
        except UserFacingError as exc:
            await interaction.followup.send(f"⚠️ {exc}", ephemeral=True)
