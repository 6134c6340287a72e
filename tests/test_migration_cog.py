"""The /migrate admin commands, driven through the real command tree with raw interaction payloads.

The bot is the real MemoryBot on dpytest's fake Discord; the memory is real (packaged MiniLM, temp
SQLite, FAISS) and migrations go to the tiny Qwen3 embedder (64-d). Buttons are clicked by raw
MESSAGE_COMPONENT payloads through the real view store.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import re
import sqlite3
import time
from pathlib import Path

import discord
import pytest

from cogs.migration.cog import MigrationCog, parse_channel_ids
from cogs.migration.embeds import progress_bar
from qwen3_memory.errors import EncodeOutOfMemory
from qwen3_memory.migration import backup as backup_module
from qwen3_memory.migration import jobs as J
from qwen3_memory.migration.engine import SHUTDOWN_PAUSE, MigrationEngine
from qwen3_memory.recall.floors import get_floor
from qwen3_memory.settings import Settings
from tests.discord_harness import ADMIN, MEMBER, DiscordHarness, open_memory, running_harness
from tests.factories import TOPICS

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on SQLite + FAISS and on Postgres

EXTENSIONS = ("cogs.memory", "cogs.migration")
BAR = re.compile(r"\[[█░]{10}\] (\d+)%")
COMMANDS = {  # every /migrate subcommand with the options it needs
    "migrate check": {},
    "migrate plan": {},
    "migrate start": {},
    "migrate status": {},
    "migrate pause": {},
    "migrate resume": {},
    "migrate cancel": {},
    "migrate verify": {},
    "migrate swap": {},
    "migrate rollback": {},
    "migrate finalize": {},
    "migrate compare": {"query": "raid"},
}


def cog_settings(make_settings, tiny_dir: Path, **overrides) -> Settings:
    """The offline default profile migrating to the tiny Qwen3 (64-d) in small batches."""
    migration = {"target_embedding_path": str(tiny_dir), "target_embedding_dimension": 64, "verify_sample": 50}
    migration |= overrides.pop("migration", {})
    return make_settings(
        recall={"user_cooldown_seconds": 0},
        performance={"batch_size": 4},
        migration=migration,
        **overrides,
    )


async def fill(harness: DiscordHarness, counts: dict[int, int], guild: int = 0) -> list[discord.Message]:
    """Members post ``counts[channel index]`` messages in each channel of ``guild``; waits until embedded."""
    posted = []
    for index, n in counts.items():
        for i in range(n):
            text = f"{TOPICS[i % len(TOPICS)]} (note {i} in channel {index})"
            posted.append(await harness.post(text, harness.channel(index, guild), harness.member(i % 2, guild)))
    await harness.settle()
    return posted


def slow_target(monkeypatch, harness: DiscordHarness, seconds: float = 0.05) -> None:
    """Encoding with the target model takes ``seconds`` longer per 4 texts, so progress can be watched
    (per text, not per call: a migration hands the model several batches in one call)."""
    service = harness.memory.services.get(harness.memory.settings.memory.migration.target().embedding)
    real = service.encode_documents

    def slow(texts, batch_size=None):
        time.sleep(seconds * math.ceil(len(texts) / 4))
        return real(texts, batch_size)

    monkeypatch.setattr(service, "encode_documents", slow)


async def until(condition, timeout: float = 30.0, interval: float = 0.02):
    """Poll ``condition`` (sync or async) until it is truthy; returns its value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


def engine_of(harness: DiscordHarness) -> MigrationEngine:
    return harness.bot.migration_engine


def cog_of(harness: DiscordHarness) -> MigrationCog:
    return harness.bot.get_cog("Migration")


async def done(harness: DiscordHarness, job_id: int) -> int:
    return sum(c.done for c in await engine_of(harness).jobs.channels(job_id))


async def channel_texts(channel: discord.TextChannel) -> list[str]:
    """What the bot posted in ``channel`` (dpytest keeps the channel's history; none yet is a KeyError)."""
    try:
        return [m.content async for m in channel.history(limit=500) if m.author.bot]
    except KeyError:
        return []


async def start_and_confirm(harness: DiscordHarness, admin: discord.Member, **options) -> tuple[int, object]:
    reply = await harness.slash("migrate start", member=admin, permissions=ADMIN, **options)
    assert not reply.failed, reply.text
    click = await harness.click(reply, "Start migration", member=admin, permissions=ADMIN)
    job = await engine_of(harness).jobs.latest(admin.guild.id)
    assert job is not None, click.text
    return job.id, click


@pytest.fixture
async def harness(make_settings, tiny_qwen3_dir) -> DiscordHarness:
    async with running_harness(cog_settings(make_settings, tiny_qwen3_dir), extensions=EXTENSIONS) as h:
        yield h


# ---------------------------------------------------------------- pieces without Discord
def test_progress_bar_and_channel_option_parsing():
    assert progress_bar(6, 10) == "[██████░░░░] 60%"
    assert progress_bar(0, 10) == "[░░░░░░░░░░] 0%"
    assert progress_bar(12, 10) == "[██████████] 100%"
    assert progress_bar(0, 0) == "[██████████] 100%"
    assert parse_channel_ids("<#123456> 7890, <#123456>") == [123456, 7890]
    assert parse_channel_ids("  ") is None
    with pytest.raises(Exception, match="#mentions or ids"):
        parse_channel_ids("general")


# ---------------------------------------------------------------- who may run what
async def test_every_migrate_command_refuses_members_without_the_permission(harness):
    await fill(harness, {0: 3})
    member = harness.member(1)
    for command, options in COMMANDS.items():
        reply = await harness.slash(command, member=member, permissions=MEMBER, **options)
        assert reply.failed and reply.ephemeral, command
        assert "Manage Server" in reply.text and "Only members" in reply.text, command
    assert await engine_of(harness).jobs.latest() is None


async def test_bot_owners_and_administrators_are_admins(harness):
    owner = harness.member(2)
    harness.bot.owner_ids = {owner.id}
    reply = await harness.slash("migrate status", member=owner, permissions=MEMBER)
    assert reply.ephemeral and "Only members" not in reply.text
    assert "no migration in this server yet" in reply.text
    administrator = discord.Permissions(administrator=True)
    reply = await harness.slash("migrate status", member=harness.member(0), permissions=administrator)
    assert "Only members" not in reply.text


async def test_the_migrate_group_is_guild_only_with_the_admin_permission_as_default(harness):
    group = harness.bot.tree.get_command("migrate")
    assert group.guild_only
    assert group.default_permissions == discord.Permissions(manage_guild=True)
    assert {c.name for c in group.commands} == {name.split()[1] for name in COMMANDS}


# ---------------------------------------------------------------- one guild never sees another's job
async def test_an_admin_of_another_guild_cannot_see_or_touch_the_job(harness):
    await fill(harness, {0: 4})
    await fill(harness, {0: 2}, guild=1)
    job_id, _ = await start_and_confirm(harness, harness.member(0))
    await until(lambda: engine_of(harness).jobs.get(job_id))
    other = harness.member(0, guild=1)
    for command in ("status", "pause", "resume", "cancel", "swap", "rollback", "verify", "finalize"):
        reply = await harness.slash(f"migrate {command}", member=other, permissions=ADMIN, job=job_id)
        assert reply.failed and reply.ephemeral, command
        assert f"no migration #{job_id} in this server" in reply.text, command
    reply = await harness.slash("migrate compare", member=other, permissions=ADMIN, job=job_id, query="raid")
    assert f"no migration #{job_id} in this server" in reply.text
    reply = await harness.slash("migrate status", member=other, permissions=ADMIN)
    assert "no migration in this server yet" in reply.text
    assert (await engine_of(harness).jobs.get(job_id)).guild_id == harness.guilds[0].id
    channels = await engine_of(harness).jobs.channels(job_id)
    assert {c.guild_id for c in channels} == {harness.guilds[0].id}  # guild B's channel is not part of it
    await until(lambda: not engine_of(harness).is_running(job_id))


async def test_a_crafted_payload_naming_another_guilds_channel_is_refused(harness):
    await fill(harness, {0: 2}, guild=1)
    admin, foreign = harness.member(0), harness.channel(0, guild=1)
    for command, options in (
        ("migrate swap", {}),
        ("migrate rollback", {}),
        ("migrate verify", {}),
        ("migrate compare", {"query": "raid"}),
    ):
        reply = await harness.slash(command, member=admin, permissions=ADMIN, options={"channel": foreign, **options})
        assert reply.ephemeral, command
        assert "not a text channel or thread of this server" in reply.text, command
        assert "Something went wrong" not in reply.text, command
    assert await engine_of(harness).jobs.latest() is None


# ---------------------------------------------------------------- confirmation buttons
@pytest.mark.sqlite_only  # the file backup and SQLite's lock; Postgres relies on the server's backups
async def test_start_asks_for_confirmation_and_only_the_invoking_admin_may_answer(harness, monkeypatch):
    await fill(harness, {0: 6, 1: 4})
    slow_target(monkeypatch, harness)
    engine, admin, guild = engine_of(harness), harness.member(0), harness.guilds[0]
    reply = await harness.slash("migrate start", member=admin, permissions=ADMIN)
    assert reply.ephemeral and not reply.failed
    prompt = reply.messages[-1]
    assert [b["label"] for b in prompt.buttons] == ["Start migration", "Cancel"]
    assert "Start this migration?" in prompt.content
    embed = prompt.embeds[0]
    fields = {f.name: f.value for f in embed.fields}
    assert "10 messages" in embed.description and "Channels" in fields and "Estimate" in fields
    assert str(harness.memory.settings.backups_dir) in fields["Then"]

    refused = await harness.click(reply, "Start migration", member=harness.member(1), permissions=ADMIN)
    assert refused.ephemeral and "Only <@" in refused.text
    assert await engine.jobs.latest(guild.id) is None

    cancelled = await harness.click(reply, "Cancel", member=admin, permissions=ADMIN)
    assert "nothing was changed" in cancelled.text and cancelled.messages[-1].buttons == []
    assert await engine.jobs.latest(guild.id) is None
    assert not harness.memory.settings.backups_dir.exists()

    reply = await harness.slash("migrate start", member=admin, permissions=ADMIN)
    confirmed = await harness.click(reply, "Start migration", member=admin, permissions=ADMIN)
    job = await engine.jobs.latest(guild.id)
    assert job is not None and f"Migration #{job.id} started" in confirmed.text
    assert engine.is_running(job.id)  # the command returned; the job runs on in the background
    assert job.guild_id == guild.id and job.options["report_channel_id"] == harness.channel(0).id
    assert Path(job.backup_path).is_dir() and "qwen3_migration_backup_" in job.backup_path
    await until(lambda: not engine.is_running(job.id))
    assert (await engine.jobs.get(job.id)).status == J.COMPLETED
    posted = await until(lambda: channel_texts(harness.channel(0)))
    assert any(f"Migration #{job.id} completed" in t for t in posted)


async def test_a_confirmation_from_an_admin_who_lost_the_permission_is_refused(harness):
    await fill(harness, {0: 4})
    admin, guild = harness.member(0), harness.guilds[0]
    reply = await harness.slash("migrate start", member=admin, permissions=ADMIN)
    assert not reply.failed, reply.text

    refused = await harness.click(reply, "Start migration", member=admin, permissions=MEMBER)

    assert refused.ephemeral and "Manage Server" in refused.text and "no longer" in refused.text
    assert await engine_of(harness).jobs.latest(guild.id) is None
    assert not harness.memory.settings.backups_dir.exists()
    cancelled = await harness.click(reply, "Cancel", member=admin, permissions=ADMIN)  # the prompt still answers
    assert "nothing was changed" in cancelled.text


async def test_the_buttons_expire_without_starting_anything(harness):
    await fill(harness, {0: 3})
    cog_of(harness).confirm_timeout_s = 0.2
    reply = await harness.slash("migrate start", member=harness.member(0), permissions=ADMIN)
    await reply.wait_until(lambda r: "No answer in time" in r.messages[-1].content, timeout=10)
    assert reply.messages[-1].buttons == []
    assert await engine_of(harness).jobs.latest() is None


# ---------------------------------------------------------------- the whole cycle while members chat
async def test_start_status_verify_compare_swap_rollback_while_members_keep_chatting(harness, monkeypatch):
    memory, engine, cog = harness.memory, engine_of(harness), cog_of(harness)
    cog.status_refresh_s = 0.05
    guild, admin, bot_id = harness.guilds[0], harness.member(0), harness.bot.user.id
    await fill(harness, {0: 24, 1: 12})
    slow_target(monkeypatch, harness)
    job_id, _ = await start_and_confirm(harness, admin, auto_swap=False)

    stop = asyncio.Event()
    posted: list[int] = []
    recalls, mentions, answers = [], [], []

    async def members_keep_chatting() -> None:
        i = 0
        while not stop.is_set():
            message = await harness.post(
                f"{TOPICS[i % len(TOPICS)]} said during the migration ({i})", harness.channel(i % 2), harness.member(1)
            )
            posted.append(message.id)
            if i % 3 == 0:
                recalls.append(await harness.slash("memory recall", member=harness.member(2), query="raid tonight"))
            elif i % 3 == 1:  # the listener has answered when post() returns
                mentions.append(
                    await harness.post(f"<@{bot_id}> when is the raid?", harness.channel(0), harness.member(2))
                )
                answers.extend(m for m in harness.bot_messages() if "Migration #" not in m.content)
            i += 1
            await asyncio.sleep(0.01)

    chatter = asyncio.create_task(members_keep_chatting())
    status = await harness.slash("migrate status", member=admin, permissions=ADMIN)
    assert status.ephemeral and BAR.search(status.embeds[0].description)
    await status.wait_until(lambda r: "completed" in (r.messages[-1].embeds[0].title or ""), timeout=90)
    stop.set()
    await chatter
    await harness.settle()

    edits = [m for m in status.messages if m.route == "edit_original"]
    assert len(edits) >= 2  # the same message, edited in place while it ran
    percents = [int(BAR.search(m.embeds[0].description).group(1)) for m in status.messages]
    assert percents[-1] == 100 and min(percents) < 100
    running = [m.embeds[0] for m in edits if "running" in m.embeds[0].title]
    assert running and all(k in running[0].description for k in ("msg/s", "ETA", "batch", "RSS", "error(s)"))
    assert "verified" in status.messages[-1].text

    assert recalls and not any(r.failed for r in recalls)
    assert mentions and len(answers) == len(mentions)  # every mention answered
    assert all(a.embeds or "Nothing I remember" in a.content for a in answers)
    job = await engine.jobs.get(job_id)
    assert job.status == J.COMPLETED and len(posted) > 5
    assert set(await memory.store.get_vectors(job.target_space_id, posted)) == set(posted)  # none lost

    verify = await harness.slash("migrate verify", member=admin, permissions=ADMIN)
    assert not verify.failed and verify.ephemeral and "PASS" in verify.embeds[0].title
    files = dict(verify.files)
    assert set(files) == {f"migration-{job_id}-verify.json", f"migration-{job_id}-scores.png"}
    data = json.loads(files[f"migration-{job_id}-verify.json"])
    assert len(data["reports"]) == 2 and all(r["passed"] and r["scores_new"] for r in data["reports"])
    assert files[f"migration-{job_id}-scores.png"].startswith(b"\x89PNG\r\n\x1a\n")

    one = await harness.slash(
        "migrate verify", member=admin, permissions=ADMIN, options={"channel": harness.channel(1)}
    )
    reports = json.loads(dict(one.files)[f"migration-{job_id}-verify.json"])["reports"]
    assert [r["channel_id"] for r in reports] == [harness.channel(1).id]

    compare = await harness.slash("migrate compare", member=admin, permissions=ADMIN, query="when is the raid")
    old, new = compare.embeds[0].fields
    assert old.name.startswith("Old: ") and new.name.startswith("New: ")
    assert old.value.startswith("1. ") and new.value.startswith("1. ") and "raid" in old.value

    channel = harness.channel(0)
    swap = await harness.slash("migrate swap", member=admin, permissions=ADMIN, options={"channel": channel})
    assert f"1 channel(s) now read from the new space: #{channel.name}" in swap.text
    assert (await memory.store.get_channel(guild.id, channel.id)).read_space_id == job.target_space_id
    swap = await harness.slash("migrate swap", member=admin, permissions=ADMIN)
    assert "1 channel(s) now read from the new space" in swap.text
    recall = await harness.slash("memory recall", member=harness.member(2), query="raid tonight")
    # the tiny random Qwen3 has no semantics: its own label-free floor (rightly) calls its answers noise
    assert not recall.failed and (recall.embeds or "Nothing I remember" in recall.text)
    floor = await get_floor(memory.store, job.target_space_id)
    assert floor is not None and floor.basis == "label-free" and floor.detail["samples"] > 0
    unfloored = memory.recall_options(min_score=-1.0)
    hits = await memory.recaller.recall(guild.id, channel.id, "raid tonight", unfloored)
    assert hits and {h.space_id for h in hits} == {job.target_space_id}

    rollback = await harness.slash("migrate rollback", member=admin, permissions=ADMIN)
    assert "2 channel(s) read from the old space again" in rollback.text
    for index in (0, 1):
        state = await memory.store.get_channel(guild.id, harness.channel(index).id)
        assert state.read_space_id == job.source_space_id
    again = await harness.slash("migrate rollback", member=admin, permissions=ADMIN)
    assert "Nothing to roll back" in again.text


async def test_status_stops_following_after_a_bounded_time_and_cancel_stops_a_running_job(harness, monkeypatch):
    await fill(harness, {0: 64})  # about 3 s of encoding: still running when the status stops following
    slow_target(monkeypatch, harness, 0.2)
    cog, engine, admin = cog_of(harness), engine_of(harness), harness.member(0)
    cog.status_refresh_s, cog.status_follow_s = 0.05, 0.15
    job_id, _ = await start_and_confirm(harness, admin)
    status = await harness.slash("migrate status", member=admin, permissions=ADMIN)
    await status.wait_until(lambda r: "stopped updating" in r.messages[-1].embeds[0].footer.text, timeout=10)
    edits = len(status.messages)
    assert engine.is_running(job_id)
    cancel = await harness.slash("migrate cancel", member=admin, permissions=ADMIN)
    assert f"Migration #{job_id} cancelled" in cancel.text and not engine.is_running(job_id)
    await asyncio.sleep(0.2)
    assert len(status.messages) == edits  # no more edits once it stopped following
    job = await engine.jobs.get(job_id)
    state = await harness.memory.store.get_channel(harness.guilds[0].id, harness.channel(0).id)
    assert job.status == J.CANCELLED and state.read_space_id == job.source_space_id
    assert job.target_space_id not in state.write_space_ids


# ---------------------------------------------------------------- restart
async def test_a_job_stopped_by_a_restart_waits_or_resumes_by_itself(make_settings, tiny_qwen3_dir, monkeypatch):
    waiting = cog_settings(make_settings, tiny_qwen3_dir, migration={"resume_on_startup": False})
    automatic = cog_settings(make_settings, tiny_qwen3_dir)
    assert waiting.database_path == automatic.database_path

    # bot 1 starts the migration and is stopped in the middle of it
    memory = await open_memory(automatic)
    first = await DiscordHarness.start(memory, extensions=EXTENSIONS)
    try:
        await fill(first, {0: 30, 1: 10})
        slow_target(monkeypatch, first)
        job_id, _ = await start_and_confirm(first, first.member(0), auto_swap=False)
        await until(lambda: _progressed(first, job_id, 8))
    finally:
        await first.close()
        await memory.close()

    # bot 2: resume_on_startup is off, so the job waits for /migrate resume
    memory = await open_memory(waiting)
    second = await DiscordHarness.start(memory, extensions=EXTENSIONS, same_world_as=first)
    try:
        engine = engine_of(second)
        job = await engine.jobs.get(job_id)
        assert job.status == J.PAUSED and job.error == SHUTDOWN_PAUSE
        stopped_at = await done(second, job_id)
        assert 0 < stopped_at < 40
        posted = await until(lambda: channel_texts(second.channel(0)))
        assert any("waits for `/migrate resume`" in t for t in posted)
        await asyncio.sleep(0.2)
        assert not engine.is_running(job_id) and await done(second, job_id) == stopped_at
        status = await second.slash("migrate status", member=second.member(0), permissions=ADMIN)
        assert "`/migrate resume` continues at #" in status.text and "cursor" in status.text
        resumed = await second.slash("migrate resume", member=second.member(0), permissions=ADMIN)
        assert f"Migration #{job_id} resumed at #" in resumed.text and engine.is_running(job_id)
        await until(lambda: _progressed(second, job_id, stopped_at + 4))
    finally:
        await second.close()
        await memory.close()

    # bot 3: resume_on_startup is on (the default): the job resumes by itself and finishes
    memory = await open_memory(automatic)
    third = await DiscordHarness.start(memory, extensions=EXTENSIONS, same_world_as=first)
    try:
        engine = engine_of(third)
        await until(lambda: engine.is_running(job_id) or _finished(third, job_id), timeout=10)
        assert job_id in cog_of(third).resumed
        status = await third.slash("migrate status", member=third.member(0), permissions=ADMIN)
        assert "resumed after a restart at #" in status.text
        await until(lambda: _finished(third, job_id), timeout=60)
        assert (await engine.jobs.get(job_id)).status == J.COMPLETED
        posted = await until(lambda: channel_texts(third.channel(0)))
        assert any(f"Migration #{job_id} was interrupted by a restart and resumed by itself" in t for t in posted)
        channels = await engine.jobs.channels(job_id)
        assert all(c.status == J.VERIFIED and c.done == c.total for c in channels)
        target = (await engine.jobs.get(job_id)).target_space_id
        for c in channels:  # every message has its vector in the new space: nothing lost, nothing twice
            assert await memory.store.count_vectors(target, c.guild_id, c.channel_id) == c.total
    finally:
        await third.close()
        await memory.close()


@pytest.mark.postgres_only  # one SQLite memory belongs to one process: no other shard to take over
async def test_a_shard_adopts_a_running_job_whose_process_died(make_settings, tiny_qwen3_dir, monkeypatch):
    from cogs.migration import cog as cog_module

    monkeypatch.setattr(cog_module, "ADOPT_EVERY_S", 0.05)
    settings = cog_settings(make_settings, tiny_qwen3_dir)
    async with running_harness(settings, extensions=EXTENSIONS) as harness:
        await fill(harness, {0: 12, 1: 6})
        # another shard process starts a job on the shared memory and dies before doing any work
        other = await open_memory(settings)
        try:
            engine = MigrationEngine(other)
            target = other.settings.memory.migration.target().embedding
            report_to = {cog_module.REPORT_CHANNEL: harness.channel(0).id}  # as /migrate start records it
            job = await engine.start(target, backup=False, guild_id=harness.guilds[0].id, options=report_to)
            await engine.jobs.set_status(job.id, J.RUNNING)
        finally:
            await other.close()  # its connection goes, and with it any claim it held

        await until(lambda: _finished(harness, job.id), timeout=60)
        assert (await engine_of(harness).jobs.get(job.id)).status == J.COMPLETED
        posted = await until(lambda: channel_texts(harness.channel(0)))
        assert any(f"Migration #{job.id} lost its bot process and was resumed by this one" in t for t in posted)


async def _progressed(harness: DiscordHarness, job_id: int, at_least: int) -> bool:
    return await done(harness, job_id) >= at_least


async def _finished(harness: DiscordHarness, job_id: int) -> bool:
    return (await engine_of(harness).jobs.get(job_id)).status in (J.COMPLETED, J.FAILED)


# ---------------------------------------------------------------- errors reach the admin with the next step
async def test_refusals_are_clear_ephemeral_messages_with_the_next_step(harness, monkeypatch):
    await fill(harness, {0: 12})
    admin, engine, guild = harness.member(0), engine_of(harness), harness.guilds[0]
    slow_target(monkeypatch, harness, 0.2)

    finalize = await harness.slash("migrate finalize", member=admin, permissions=ADMIN)
    assert finalize.failed and "no migration in this server yet" in finalize.text

    job_id, _ = await start_and_confirm(harness, admin)
    resume = await harness.slash("migrate resume", member=admin, permissions=ADMIN)
    assert resume.failed and resume.ephemeral and f"migration #{job_id} is already running" in resume.text
    await harness.slash("migrate pause", member=admin, permissions=ADMIN)
    await until(lambda: not engine.is_running(job_id))

    again = await harness.slash("migrate start", member=admin, permissions=ADMIN)
    assert again.failed and again.ephemeral and not any(m.buttons for m in again.messages)
    assert f"migration #{job_id} is paused; resume or cancel it first" in again.text
    assert "➡️ `/migrate status`" in again.text

    finalize = await harness.slash("migrate finalize", member=admin, permissions=ADMIN)
    assert finalize.failed and finalize.ephemeral and "without a passing verify" in finalize.text
    assert not any(m.buttons for m in finalize.messages)  # refused before any confirmation

    pad = await harness.slash("migrate plan", member=admin, permissions=ADMIN, strategy="pad")
    assert "⛔ Refused" in {f.name for f in pad.embeds[0].fields}

    cancel = await harness.slash("migrate cancel", member=admin, permissions=ADMIN)
    assert f"Migration #{job_id} cancelled" in cancel.text
    assert (await engine.jobs.get(job_id)).status == J.CANCELLED
    cancel = await harness.slash("migrate cancel", member=admin, permissions=ADMIN)
    assert cancel.failed and "already cancelled" in cancel.text

    pad = await harness.slash("migrate start", member=admin, permissions=ADMIN, strategy="pad")
    assert pad.failed and "pad needs a larger target dimension" in pad.text and "`/migrate plan`" in pad.text
    assert (await engine.jobs.latest(guild.id)).id == job_id  # nothing new


async def test_pad_without_force_and_a_missing_target_model_are_refused(make_settings, tmp_path):
    missing = tmp_path / "no-such-model"
    settings = make_settings(
        recall={"user_cooldown_seconds": 0}, migration={"target_embedding_path": str(missing)}
    )  # the target is 1024-d: pad could grow 384-d vectors, but only with force
    async with running_harness(settings, extensions=EXTENSIONS) as harness:
        await fill(harness, {0: 3})
        admin = harness.member(0)
        pad = await harness.slash("migrate start", member=admin, permissions=ADMIN, strategy="pad")
        assert pad.failed and pad.ephemeral and "allowed only with --force" in pad.text
        assert "the `force` option of `/migrate start`" in pad.text

        model = await harness.slash("migrate start", member=admin, permissions=ADMIN)
        assert model.failed and model.ephemeral and "cannot load embedding model" in model.text
        assert "target_embedding_path" in model.text and model.messages[-1].buttons == []

        check = await harness.slash("migrate check", member=admin, permissions=ADMIN)
        embed = check.embeds[0]
        assert "FAIL" in embed.title and f"local model path {missing} does not exist" in embed.description
        assert await engine_of(harness).jobs.latest() is None


@pytest.mark.sqlite_only  # the file backup and SQLite's lock; Postgres relies on the server's backups
async def test_a_locked_database_and_a_failed_backup_start_nothing(make_settings, tiny_qwen3_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings = cog_settings(
        make_settings,
        tiny_qwen3_dir,
        paths={"data_dir": str(tmp_path / "data"), "backups_dir": str(blocker / "backups")},
    )
    async with running_harness(settings, extensions=EXTENSIONS) as harness:
        await fill(harness, {0: 3})
        admin, engine = harness.member(0), engine_of(harness)

        other_process = sqlite3.connect(settings.database_path, isolation_level=None)
        try:
            reply = await harness.slash("migrate start", member=admin, permissions=ADMIN)
            other_process.execute("BEGIN IMMEDIATE")  # another writer holds the database past the busy timeout
            locked = await harness.click(reply, "Start migration", member=admin, permissions=ADMIN)
        finally:
            other_process.execute("ROLLBACK")
            other_process.close()
        assert "stayed locked" in locked.text and "let it finish, then try again" in locked.text
        assert await engine.jobs.latest() is None

        reply = await harness.slash("migrate start", member=admin, permissions=ADMIN)
        failed = await harness.click(reply, "Start migration", member=admin, permissions=ADMIN)
        assert "the backup could not be written to" in failed.text and "Nothing was started" in failed.text
        assert await engine.jobs.latest() is None  # no job without its backup


@pytest.mark.sqlite_only  # the file backup and SQLite's lock; Postgres relies on the server's backups
async def test_a_full_disk_during_the_backup_is_reported_and_starts_nothing(harness, monkeypatch):
    await fill(harness, {0: 3})
    admin = harness.member(0)

    def disk_full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(backup_module, "_copy_file", disk_full)  # the file system's answer, injected
    await harness.memory.store.flush()  # index files exist, so the backup copies some
    reply = await harness.slash("migrate start", member=admin, permissions=ADMIN)
    failed = await harness.click(reply, "Start migration", member=admin, permissions=ADMIN)
    assert "the disk is full" in failed.text and "Nothing was started" in failed.text
    assert await engine_of(harness).jobs.latest() is None
    assert not list((harness.memory.settings.backups_dir / "qwen3_migration").iterdir())  # no half backup


async def test_a_job_failing_in_the_background_reports_in_status_and_in_the_channel(harness, monkeypatch):
    await fill(harness, {0: 6})
    service = harness.memory.services.get(harness.memory.settings.memory.migration.target().embedding)

    def out_of_memory(texts, batch_size=None):
        raise EncodeOutOfMemory("out of memory encoding with the target model on cpu; lower the batch size")

    monkeypatch.setattr(service, "encode_documents", out_of_memory)
    engine, admin = engine_of(harness), harness.member(0)
    job_id, _ = await start_and_confirm(harness, admin)
    await until(lambda: _finished(harness, job_id))
    status = await harness.slash("migrate status", member=admin, permissions=ADMIN)
    assert "failed" in status.embeds[0].title and "already at batch size 1" in status.embeds[0].description
    posted = await until(lambda: channel_texts(harness.channel(0)))
    failure = next(t for t in posted if f"Migration #{job_id} failed" in t)
    assert "already at batch size 1" in failure and "`/migrate resume` retries it" in failure
    assert engine.is_running(job_id) is False


async def test_unexpected_errors_are_logged_with_an_id_shown_to_the_admin(harness, monkeypatch, caplog):
    engine = engine_of(harness)

    async def broken(*args, **kwargs):
        raise RuntimeError("the job table exploded")

    monkeypatch.setattr(engine.jobs, "latest", broken)
    with caplog.at_level(logging.ERROR, logger="cogs.migration.cog"):
        reply = await harness.slash("migrate status", member=harness.member(0), permissions=ADMIN)
    assert reply.failed and reply.ephemeral and "exploded" not in reply.text
    error_id = reply.text.split("error id `")[1].split("`")[0]
    record = next(r for r in caplog.records if error_id in r.getMessage())
    assert "the job table exploded" in str(record.exc_info[1])


# ---------------------------------------------------------------- check, plan, pause, finalize
async def test_check_and_plan_render_embeds(harness):
    await fill(harness, {0: 5, 1: 3})
    admin = harness.member(0)
    check = await harness.slash("migrate check", member=admin, permissions=ADMIN)
    description = check.embeds[0].description
    assert check.ephemeral and all(name in description for name in ("**ram**", "**database**", "**model load**"))
    channel = harness.channel(1)
    plan = await harness.slash("migrate plan", member=admin, permissions=ADMIN, channels=f"<#{channel.id}>")
    embed = plan.embeds[0]
    fields = {f.name: f.value for f in embed.fields}
    assert f"#{channel.name}: 3 messages, 3 to migrate" in fields["Channels"]
    assert "measured" in fields["Estimate"] and "Backup" in fields
    assert await engine_of(harness).jobs.latest() is None  # a plan changes nothing


async def test_pause_resume_and_finalize_with_confirmation(harness, monkeypatch):
    await fill(harness, {0: 16})
    slow_target(monkeypatch, harness, 0.2)
    admin, engine = harness.member(0), engine_of(harness)
    job_id, _ = await start_and_confirm(harness, admin)
    pause = await harness.slash("migrate pause", member=admin, permissions=ADMIN)
    assert f"Migration #{job_id} pauses" in pause.text
    await until(lambda: not engine.is_running(job_id))
    assert (await engine.jobs.get(job_id)).status == J.PAUSED
    status = await harness.slash("migrate status", member=admin, permissions=ADMIN)
    assert "paused" in status.embeds[0].title and "`/migrate resume` continues at #" in status.text
    resume = await harness.slash("migrate resume", member=admin, permissions=ADMIN)
    assert f"Migration #{job_id} resumed" in resume.text
    await until(lambda: _finished(harness, job_id))

    reply = await harness.slash("migrate finalize", member=admin, permissions=ADMIN)
    assert "deletes the old space's vectors" in reply.text
    assert [b["label"] for b in reply.messages[-1].buttons] == ["Delete old vectors", "Cancel"]
    finalized = await harness.click(reply, "Delete old vectors", member=admin, permissions=ADMIN)
    assert f"Migration #{job_id} finalized" in finalized.text
    job = await engine.jobs.get(job_id)
    counts = await harness.memory.store.vector_counts(harness.guilds[0].id, harness.channel(0).id)
    assert counts == {job.target_space_id: 16}


# ---------------------------------------------------------------- engine rules the cog relies on
async def test_a_job_paused_before_its_task_starts_stays_paused(harness):
    await fill(harness, {0: 3})
    engine = engine_of(harness)
    target = harness.memory.settings.memory.migration.target().embedding
    job = await engine.start(target, guild_id=harness.guilds[0].id, backup=False)
    await engine.pause(job.id, harness.guilds[0].id)
    assert (await engine.run(job.id)).status == J.PAUSED  # the task starting late does not overwrite the pause
    assert not await engine.jobs.set_status(job.id, J.RUNNING, unless=(J.PAUSED,))
    assert (await engine.jobs.get(job.id)).status == J.PAUSED
    assert await engine.interrupted_jobs() == []  # paused by an admin: not resumed by a restart
    await engine.jobs.set_status(job.id, J.PAUSED, SHUTDOWN_PAUSE)
    assert [j.id for j in await engine.interrupted_jobs()] == [job.id]  # paused by a shutdown: resumed
