"""Discord glue of the migration engine: the ``/migrate`` admin commands.

Every rule lives in the engine (``qwen3_memory.migration``; the command line is the other face over
it). This module only turns options into engine calls, asks for confirmation with buttons
(``views``), renders embeds (``embeds``) and the verification plot (``report_png``), and keeps the
admin informed:

* heavy work (model loads, encoding, verification) runs in the engine's executors or in its
  background task, so the bot keeps answering recall while a migration runs;
* ``/migrate status`` edits its embed in place every few seconds until the job ends;
* a job's end or failure is posted to the channel where it was started;
* jobs interrupted by a restart resume by themselves when ``migration.resume_on_startup`` is set.

Every command is scoped to the guild it runs in: jobs are created with that guild id and every
engine call passes it, so an admin never sees or changes another server's migration.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common.checks import NotMemoryAdmin, is_admin
from cogs.common.replies import refused_option, tell_privately
from cogs.migration.embeds import (
    MESSAGE_LIMIT,
    channel_label,
    checks_embed,
    clip_lines,
    compare_embed,
    plan_embed,
    resume_point,
    status_embed,
    verify_embed,
)
from cogs.migration.errors import known_error_text
from cogs.migration.report_png import render_verify_png
from cogs.migration.views import Confirmation
from qwen3_memory.errors import UserFacingError
from qwen3_memory.migration import jobs as J
from qwen3_memory.migration.checks import run_checks
from qwen3_memory.migration.engine import MigrationEngine
from qwen3_memory.migration.jobs import Job
from qwen3_memory.migration.plan import make_plan
from qwen3_memory.migration.strategies import STRATEGIES
from qwen3_memory.models.profiles import Profile
from qwen3_memory.settings import PROFILE_NAMES
from qwen3_memory.units import human_duration

log = logging.getLogger(__name__)

SWAP_REPLIES = (
    "🔀 {count} channel(s) now read from the new space: {names}. `/migrate rollback` points them back instantly.",
    "Nothing to swap: no channel of migration #{job} is verified and still on the old space (see `/migrate status`).",
)
ROLLBACK_REPLIES = (
    "↩️ {count} channel(s) read from the old space again: {names}. The new space stays up to date; "
    "`/migrate swap` moves them back.",
    "Nothing to roll back: no channel of migration #{job} reads from the new space.",
)

STATUS_REFRESH_S = 3.0  # how often /migrate status edits its embed while the job runs
STATUS_FOLLOW_S = 14 * 60.0  # and for how long at most (an interaction token lives 15 minutes)
CONFIRM_TIMEOUT_S = 120.0  # how long the Confirm/Cancel buttons wait
ADOPT_EVERY_S = 30.0  # shared memory (Postgres): how often a shard looks for migrations whose runner died
COMPARE_K = 5
REPORT_CHANNEL = "report_channel_id"  # job option: where the job was started (its end is posted there)

PROFILE_CHOICES = [app_commands.Choice(name=name, value=name) for name in PROFILE_NAMES][:25]
STRATEGY_CHOICES = [app_commands.Choice(name=name, value=name) for name in STRATEGIES]


# ---------------------------------------------------------------------- options
def parse_channel_ids(text: str | None) -> list[int] | None:
    """Channel ids from ``<#123> <#456>`` or ``123, 456``; None when empty (every channel)."""
    if not text or not text.strip():
        return None
    ids = [int(x) for x in re.findall(r"\d{2,}", text)]
    if not ids:
        raise UserFacingError(
            f"no channel in {text[:100]!r}: name channels as #mentions or ids separated by spaces, "
            "or leave the option out for every channel of this server"
        )
    return list(dict.fromkeys(ids))


# ---------------------------------------------------------------------- the cog
class MigrationCog(commands.Cog, name="Migration"):
    """Admin commands that plan, run, watch, verify, swap and roll back a migration of this server's memory."""

    migrate = app_commands.Group(
        name="migrate",
        description="Move this server's memory to a new embedding model (admins)",
        guild_only=True,
        allowed_contexts=app_commands.AppCommandContext(guild=True),
        default_permissions=discord.Permissions(manage_guild=True),
    )

    status_refresh_s = STATUS_REFRESH_S
    status_follow_s = STATUS_FOLLOW_S
    confirm_timeout_s = CONFIRM_TIMEOUT_S

    def __init__(self, bot: commands.Bot, engine: MigrationEngine) -> None:
        self.bot = bot
        self.engine = engine
        self.memory = engine.memory
        self.settings = engine.memory.settings
        self.admin_permission = self.settings.memory.permissions.admin_permission
        self.migrate.default_permissions = discord.Permissions(**{self.admin_permission: True})
        self.resumed: dict[int, str] = {}  # job id -> where it resumed by itself after a restart
        self._background: set[asyncio.Task] = set()  # status followers, reports, the startup resume
        self._runs: dict[int, asyncio.Task] = {}  # job id -> the engine task this cog launched or resumed

    # ------------------------------------------------------------------ lifecycle
    async def cog_load(self) -> None:
        self._spawn(self._resume_interrupted(), "migration-startup")
        if self.memory.store.shared_by_processes and self.settings.memory.migration.resume_on_startup:
            self._spawn(self._adopt_orphans_periodically(), "migration-adopt")

    async def _adopt_orphans_periodically(self) -> None:
        """Shared memory: when the shard process running a migration dies, one of the others takes it over."""
        while True:
            await asyncio.sleep(ADOPT_EVERY_S)
            try:
                for job_id in await self.engine.adopt_orphans():
                    self._watch(job_id, self.engine.launch(job_id))
                    job = await self.engine.jobs.get(job_id)
                    await self._post(job, f"🔁 Migration #{job_id} lost its bot process and was resumed by this one.")
            except Exception:
                log.exception("could not look for migrations without a runner")

    async def cog_unload(self) -> None:
        """Stop following and reporting; cancel running jobs (the engine marks them paused, to resume on start)."""
        for task in list(self._background):
            task.cancel()
        runs = [t for t in self._runs.values() if not t.done()]
        for task in runs:
            task.cancel()
        await asyncio.gather(*self._background, *runs, return_exceptions=True)
        if runs:
            log.info("paused %d running migration(s) for the shutdown; they resume on the next start", len(runs))

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _watch(self, job_id: int, task: asyncio.Task) -> None:
        """Report the end of the job's task (completed, failed, crashed) to the channel it was started from."""
        if self._runs.get(job_id) is task:
            return
        self._runs[job_id] = task
        task.add_done_callback(lambda done: self._spawn(self._report_end(job_id, done), f"migration-{job_id}-report"))

    async def _resume_interrupted(self) -> None:
        """Jobs a restart interrupted: resume them (resume_on_startup) or leave them for /migrate resume."""
        try:
            jobs = await self.engine.interrupted_jobs()
        except Exception:
            log.exception("could not look for interrupted migrations")
            return
        automatic = self.settings.memory.migration.resume_on_startup
        for job in jobs:
            guild = self.bot.get_guild(job.guild_id) if job.guild_id else None
            where = resume_point(await self.engine.status(job.id), guild) or "its verification"
            if not automatic:
                log.info("migration #%d was interrupted at %s; waiting for /migrate resume", job.id, where)
                await self._post(
                    job,
                    f"⏸️ Migration #{job.id} was interrupted by a restart. It waits for `/migrate resume` "
                    f"(migration.resume_on_startup is off) and will continue at {where}.",
                )
                continue
            try:
                await self.engine.resume(job.id, job.guild_id)
            except UserFacingError as exc:
                log.warning("migration #%d could not resume after the restart: %s", job.id, exc)
                continue
            self._watch(job.id, self.engine.launch(job.id))
            self.resumed[job.id] = where
            log.info("migration #%d resumed after a restart at %s", job.id, where)
            await self._post(
                job,
                f"🔁 Migration #{job.id} was interrupted by a restart and resumed by itself at {where}. "
                "`/migrate status` follows it.",
            )

    async def _report_end(self, job_id: int, task: asyncio.Task) -> None:
        if task.cancelled():
            return  # the bot is shutting down: the engine marked the job paused
        error = task.exception()
        try:
            job = await self.engine.jobs.get(job_id)
        except Exception:
            log.exception("migration #%d ended but its job cannot be read", job_id)
            return
        if error is not None:
            error_id = secrets.token_hex(4)
            log.error("migration #%d stopped on an unexpected error [error id %s]", job_id, error_id, exc_info=error)
            text = (
                f"💥 Migration #{job_id} stopped on an unexpected error (error id `{error_id}`; the bot's log and "
                f"{job.log_path} have the details). Nothing was swapped that was not verified; `/migrate resume` "
                "retries, `/migrate cancel` stops it."
            )
        elif job.status == J.COMPLETED:
            channels = await self.engine.jobs.channels(job_id)
            swapped = sum(c.status == J.SWAPPED for c in channels)
            text = (
                f"✅ Migration #{job_id} completed: {len(channels)} channel(s) verified, {swapped} now read from "
                "the new space. "
                + (
                    "`/migrate rollback` points them back instantly; `/migrate finalize` deletes the old vectors."
                    if swapped
                    else "`/migrate verify`, then `/migrate swap` moves them to the new space."
                )
            )
        elif job.status == J.FAILED:
            text = (
                f"❌ Migration #{job_id} failed: {job.error}\n➡️ `/migrate status` shows the failing channel; "
                "`/migrate resume` retries it, `/migrate cancel` stops the migration."
            )
        elif job.status == J.PAUSED and job.error:  # it paused itself (a full disk): nobody was told yet
            text = f"⏸️ Migration #{job_id} paused itself: {job.error}\n➡️ `/migrate resume` continues it."
        else:
            return  # paused or cancelled by an admin, who already got an answer
        await self._post(job, text[:MESSAGE_LIMIT])

    async def _post(self, job: Job, text: str) -> None:
        """Tell the channel where the job was started (if it still exists); the log has it anyway."""
        channel_id = job.options.get(REPORT_CHANNEL)
        channel = self.bot.get_channel(channel_id) if channel_id else None
        if channel is None and channel_id and not self.bot.is_ready():
            try:  # at startup the channel cache fills once the gateway is ready
                await asyncio.wait_for(self.bot.wait_until_ready(), timeout=600)
            except (TimeoutError, RuntimeError):
                pass
            channel = self.bot.get_channel(channel_id)
        if channel is None:
            log.info("migration #%d: %s", job.id, text)
            return
        try:
            await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.warning("could not post to channel %s about migration #%d: %s", channel_id, job.id, exc)

    # ------------------------------------------------------------------ checks and errors
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        if await is_admin(interaction, self.admin_permission):
            return True
        raise NotMemoryAdmin(self.admin_permission)

    def error_text(self, error: BaseException, interaction: discord.Interaction | None = None) -> str:
        """A known error's message with the next step; an unknown one is logged with an id the admin sees."""
        known = known_error_text(error)
        if known is not None:
            return known
        error_id = secrets.token_hex(4)
        command = interaction.command.qualified_name if interaction and interaction.command else "migrate"
        log.error("/%s failed [error id %s]", command, error_id, exc_info=error)
        return f"💥 Something went wrong (error id `{error_id}`). The bot's log has the details."

    async def send_error(self, interaction: discord.Interaction, error: BaseException) -> None:
        if isinstance(error, app_commands.CommandInvokeError):
            error = error.original
        if isinstance(error, app_commands.NoPrivateMessage):
            text = "This command only works in a server."
        elif isinstance(error, app_commands.CheckFailure):
            text = str(error) or "🔒 You can't use this command here."
        elif isinstance(error, app_commands.TransformerError):
            text = refused_option(error)
        else:
            text = self.error_text(error, interaction)
        await tell_privately(interaction, text)

    async def cog_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError):
        await self.send_error(interaction, error)

    # ------------------------------------------------------------------ helpers
    def target(self, profile: str | None) -> Profile:
        """The target profile: the option wins over memory_system.migration.target_profile (as on the CLI)."""
        return self.settings.memory.migration.target(profile)

    async def job_id(self, interaction: discord.Interaction, job: int | None) -> int:
        """The job named, or this server's latest."""
        return (await self.engine.resolve_job(job, interaction.guild_id)).id

    def _launch(self, job_id: int) -> None:
        self._watch(job_id, self.engine.launch(job_id))

    async def _follow(self, interaction: discord.Interaction, job_id: int) -> None:
        """Edit the status embed in place until the job ends, or for status_follow_s at most."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.status_follow_s
        while True:
            await asyncio.sleep(self.status_refresh_s)
            status = await self.engine.status(job_id, interaction.guild_id)
            running = status.running
            embed = status_embed(status, interaction.guild, resumed=self.resumed.get(job_id))
            last = not running or loop.time() >= deadline
            if running and last:
                embed.set_footer(
                    text=f"{embed.footer.text}\nstopped updating after {human_duration(self.status_follow_s)}: "
                    "run /migrate status again"
                )
            try:
                await interaction.edit_original_response(embed=embed)
            except discord.HTTPException as exc:  # the token expired or the message is gone
                log.debug("stopped following migration #%d: %s", job_id, exc)
                return
            if last:
                return

    # ------------------------------------------------------------------ /migrate check, plan
    @migrate.command(name="check", description="Can this machine migrate? RAM, GPU, packages, database, model, disk")
    @app_commands.describe(target_profile="Profile to migrate to (default: the settings' migration.target_profile)")
    @app_commands.choices(target_profile=PROFILE_CHOICES)
    async def check(self, interaction: discord.Interaction, target_profile: str | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        target = self.target(target_profile)
        checks = await run_checks(self.settings, target, store=self.memory.store)
        await interaction.followup.send(embed=checks_embed(checks, target), ephemeral=True)

    @migrate.command(name="plan", description="Dry run: channels, measured time estimate and risks; changes nothing")
    @app_commands.describe(
        target_profile="Profile to migrate to (default: the settings' migration.target_profile)",
        strategy="How target vectors are made (regenerate is exact)",
        channels="Only these channels (#mentions or ids); default: every channel of this server",
    )
    @app_commands.choices(target_profile=PROFILE_CHOICES, strategy=STRATEGY_CHOICES)
    async def plan(
        self,
        interaction: discord.Interaction,
        target_profile: str | None = None,
        strategy: str = "regenerate",
        channels: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        target = self.target(target_profile).embedding
        plan = await make_plan(
            self.memory, target, strategy, guild_id=interaction.guild_id, channels=parse_channel_ids(channels)
        )
        await interaction.followup.send(embed=plan_embed(plan, interaction.guild), ephemeral=True)

    # ------------------------------------------------------------------ /migrate start
    @migrate.command(name="start", description="Back up, then migrate this server's memory in the background")
    @app_commands.describe(
        target_profile="Profile to migrate to (default: the settings' migration.target_profile)",
        strategy="How target vectors are made (regenerate is exact)",
        channels="Only these channels (#mentions or ids); default: every channel of this server",
        force="Allow risky strategies the engine otherwise refuses (pad, truncate of a non-Matryoshka model)",
        auto_swap="Move each channel to the new space as soon as it is verified (default: yes)",
    )
    @app_commands.choices(target_profile=PROFILE_CHOICES, strategy=STRATEGY_CHOICES)
    async def start(
        self,
        interaction: discord.Interaction,
        target_profile: str | None = None,
        strategy: str = "regenerate",
        channels: str | None = None,
        force: bool = False,
        auto_swap: bool = True,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild_id = interaction.guild_id
        chosen = self.target(target_profile)
        target = chosen.embedding
        channel_ids = parse_channel_ids(channels)
        sample = self.settings.memory.migration.transform_sample
        checked = await self.engine.preflight(  # refusals come now, not after the confirmation
            target, strategy, guild_id=guild_id, channel_ids=channel_ids, force=force, transform_sample=sample
        )
        plan = await make_plan(self.memory, target, strategy, guild_id=guild_id, channels=channel_ids, force=force)
        embed = plan_embed(plan, interaction.guild, title=f"Start migration: {strategy} → {target.model}")
        embed.add_field(
            name="Then",
            value=(
                f"a backup into `{self.settings.backups_dir}`, then the migration runs in the background "
                f"({'each verified channel swaps by itself' if auto_swap else 'channels wait for /migrate swap'}); "
                "the bot keeps answering meanwhile. `/migrate status` follows it."
            ),
            inline=False,
        )
        if checked.warnings:
            embed.add_field(name="⚠️ Warnings", value=clip_lines([f"• {w}" for w in checked.warnings]), inline=False)

        async def begin(click: discord.Interaction) -> None:
            job = await self.engine.start(
                target,
                strategy,
                guild_id=guild_id,
                channel_ids=channel_ids,
                force=force,
                auto_swap=auto_swap,
                batch_size=self.settings.migration_batch_size(chosen),
                transform_sample=sample,
                options={REPORT_CHANNEL: interaction.channel_id, "started_by": interaction.user.id},
            )
            self._launch(job.id)
            await click.edit_original_response(
                content=(
                    f"▶️ Migration #{job.id} started in the background. Backup: `{job.backup_path}`; log: "
                    f"`{job.log_path}`. `/migrate status` follows it; its end is posted in this channel."
                ),
                view=None,
            )

        view = Confirmation(
            self,
            interaction,
            begin,
            confirm_label="Start migration",
            working="Taking the backup, then starting…",
            timeout=self.confirm_timeout_s,
        )
        await interaction.edit_original_response(
            content=(
                f"Start this migration? Only {interaction.user.mention} can answer; the buttons expire in "
                f"{human_duration(self.confirm_timeout_s)}."
            ),
            embed=embed,
            view=view,
        )

    # ------------------------------------------------------------------ /migrate status, pause, resume, cancel
    @migrate.command(name="status", description="Progress of this server's migration, updated live while it runs")
    @app_commands.describe(job="Migration number (default: this server's latest)")
    async def status(self, interaction: discord.Interaction, job: int | None = None) -> None:
        status = await self.engine.status(job, interaction.guild_id)
        embed = status_embed(status, interaction.guild, resumed=self.resumed.get(status.job.id))
        await interaction.response.send_message(embed=embed, ephemeral=True)
        if status.running:
            self._spawn(self._follow(interaction, status.job.id), f"migration-{status.job.id}-status")

    @migrate.command(name="pause", description="Pause the migration at the next batch; resume continues there")
    @app_commands.describe(job="Migration number (default: this server's latest)")
    async def pause(self, interaction: discord.Interaction, job: int | None = None) -> None:
        paused = await self.engine.pause(await self.job_id(interaction, job), interaction.guild_id)
        await interaction.response.send_message(
            f"⏸️ Migration #{paused.id} pauses at the next batch boundary; nothing is lost. `/migrate resume` "
            "continues from its cursor.",
            ephemeral=True,
        )

    @migrate.command(name="resume", description="Continue a paused, failed or interrupted migration")
    @app_commands.describe(job="Migration number (default: this server's latest)")
    async def resume(self, interaction: discord.Interaction, job: int | None = None) -> None:
        job_id = await self.job_id(interaction, job)
        where = resume_point(await self.engine.status(job_id, interaction.guild_id), interaction.guild)
        resumed = await self.engine.resume(job_id, interaction.guild_id)
        self._launch(resumed.id)
        await interaction.response.send_message(
            f"▶️ Migration #{resumed.id} resumed"
            + (f" at {where}" if where else "")
            + "; `/migrate status` follows it.",
            ephemeral=True,
        )

    @migrate.command(name="cancel", description="Stop the migration for good; channels not swapped keep the old space")
    @app_commands.describe(job="Migration number (default: this server's latest)")
    async def cancel(self, interaction: discord.Interaction, job: int | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        cancelled = await self.engine.cancel(await self.job_id(interaction, job), interaction.guild_id)
        await interaction.followup.send(
            f"⏹️ Migration #{cancelled.id} cancelled. Channels not swapped keep reading the old space and new "
            "messages no longer go to the new one; nothing was deleted.",
            ephemeral=True,
        )

    # ------------------------------------------------------------------ /migrate verify, compare
    @migrate.command(name="verify", description="Verify the new space: counts, NaN, index, self-retrieval, old/new")
    @app_commands.describe(channel="Only this channel (default: every channel of the migration)", job="Migration id")
    async def verify(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.Thread | None = None,
        job: int | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        job_id = await self.job_id(interaction, job)
        reports = await self.engine.verify(job_id, channel.id if channel else None, interaction.guild_id)
        labels = [channel_label(interaction.guild, r.channel_id) for r in reports]
        png = await asyncio.to_thread(render_verify_png, reports, labels)
        data = json.dumps({"migration": job_id, "reports": [r.to_dict() for r in reports]}, indent=2)
        await interaction.followup.send(
            embed=verify_embed(job_id, reports, interaction.guild),
            files=[
                discord.File(io.BytesIO(data.encode()), filename=f"migration-{job_id}-verify.json"),
                discord.File(io.BytesIO(png), filename=f"migration-{job_id}-scores.png"),
            ],
            ephemeral=True,
        )

    @migrate.command(name="compare", description="Top results of the old and the new space side by side")
    @app_commands.describe(
        query="What to look for", channel="Channel to search (default: this one)", job="Migration number"
    )
    async def compare(
        self,
        interaction: discord.Interaction,
        query: str,
        channel: discord.TextChannel | discord.Thread | None = None,
        job: int | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        job_id = await self.job_id(interaction, job)
        channel_id = channel.id if channel else interaction.channel_id
        old, new = await self.engine.compare(job_id, interaction.guild_id, channel_id, query, k=COMPARE_K)
        status = await self.engine.status(job_id, interaction.guild_id)
        embed = compare_embed(status, query, old, new, interaction.guild, channel_id)
        await interaction.followup.send(embed=embed, ephemeral=True)

    # ------------------------------------------------------------------ /migrate swap, rollback, finalize
    async def _move_read_pointers(
        self,
        interaction: discord.Interaction,
        move: Callable[[int, int | None, int | None], Awaitable[list[int]]],
        replies: tuple[str, str],
        channel: discord.abc.GuildChannel | discord.Thread | None,
        job: int | None,
    ) -> None:
        """Swap or roll back (``move``) one channel or all; ``replies``: what to say when channels moved, or none."""
        job_id = await self.job_id(interaction, job)
        changed = await move(job_id, channel.id if channel else None, interaction.guild_id)
        names = ", ".join(channel_label(interaction.guild, c) for c in changed)
        text = (replies[0] if changed else replies[1]).format(count=len(changed), names=names, job=job_id)
        await interaction.response.send_message(text[:MESSAGE_LIMIT], ephemeral=True)

    @migrate.command(name="swap", description="Point verified channels at the new space (one channel, or all)")
    @app_commands.describe(
        channel="Only this channel (default: all)",
        job="Migration number",
        force="Also swap channels the quality gate failed (their recall gets worse: see /migrate verify)",
    )
    async def swap(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.Thread | None = None,
        job: int | None = None,
        force: bool = False,
    ) -> None:
        await self._move_read_pointers(
            interaction, functools.partial(self.engine.swap, force=force), SWAP_REPLIES, channel, job
        )

    @migrate.command(name="rollback", description="Point swapped channels back at the old space (one, or all)")
    @app_commands.describe(channel="Only this channel (default: all)", job="Migration number")
    async def rollback(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.Thread | None = None,
        job: int | None = None,
    ) -> None:
        await self._move_read_pointers(interaction, self.engine.rollback, ROLLBACK_REPLIES, channel, job)

    @migrate.command(name="finalize", description="Delete the old vectors for good (after a passing verify)")
    @app_commands.describe(job="Migration number (default: this server's latest)")
    async def finalize(self, interaction: discord.Interaction, job: int | None = None) -> None:
        ready = await self.engine.check_finalize(await self.job_id(interaction, job), interaction.guild_id)
        guild_id = interaction.guild_id

        async def delete_old(click: discord.Interaction) -> None:
            done = await self.engine.finalize(ready.id, confirm=True, guild_id=guild_id)
            await click.edit_original_response(
                content=(
                    f"🧹 Migration #{ready.id} finalized: the old vectors of {len(done)} channel(s) are deleted. "
                    f"Only the backup (`{ready.backup_path}`) can bring them back."
                ),
                view=None,
            )

        view = Confirmation(
            self,
            interaction,
            delete_old,
            confirm_label="Delete old vectors",
            working="Deleting the old vectors…",
            timeout=self.confirm_timeout_s,
        )
        await interaction.response.send_message(
            f"⚠️ Finalize migration #{ready.id}? This deletes the old space's vectors and indexes of its channels "
            f"for good: rollback will no longer be instant, only the backup (`{ready.backup_path}`) restores them. "
            f"Only {interaction.user.mention} can answer.",
            view=view,
            ephemeral=True,
        )
