"""``/memory import`` and gap fill through the real bot: raw interactions through the real CommandTree, and the
bot's real discord.py HTTP client reading history (channels, active and archived threads) from a local server.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext.test import backend as dpy_backend

from qwen3_memory.history.cursors import ImportCursors
from tests.discord_harness import ADMIN, MEMBER, DiscordHarness, running_harness
from tests.discord_rest import FakeDiscord, local_discord, logged_in_http

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
SLOW = 300.0  # seconds an import may take on a loaded machine before a test gives up (never a timing assert)
ALICE, BOT = 601, 602


@pytest.fixture
async def bot_world(make_settings):
    """The harness's bot with its HTTP client replaced by a real one against a local server that holds the
    harness's channels."""
    fake = FakeDiscord()
    async with running_harness(make_settings()) as harness, local_discord(fake):
        for guild in harness.guilds:
            for channel in guild.text_channels:
                fake.channel(guild.id, channel.id, channel.name)
        http = await logged_in_http()
        harness.bot.http = harness.bot._connection.http = http
        harness.bot.get_cog("Memory").imports.progress_every_s = 0.05
        try:
            yield harness, fake
        finally:
            await harness.bot.get_cog("Memory").imports.close()


def say(fake: FakeDiscord, channel_id: int, n: int, start: dt.datetime = START) -> list[int]:
    """``n`` lines a minute apart, every 5th by a bot; the ids of the human ones."""
    kept = []
    for i in range(n):
        data = fake.post(channel_id, f"line {i} about the spring release", BOT if i % 5 == 4 else ALICE,
                         bot=i % 5 == 4, when=start + dt.timedelta(minutes=i))  # fmt: skip
        if i % 5 != 4:
            kept.append(int(data["id"]))
    return kept


async def stored_ids(harness: DiscordHarness, channel_id: int, guild: int = 0) -> list[int]:
    await harness.memory.capture.drain()
    messages = await harness.memory.store.scroll_messages(harness.guilds[guild].id, channel_id, 0, 100_000)
    return [m.id for m in messages]


async def eventually_stored(harness: DiscordHarness, channel_id: int, count: int) -> None:
    """Wait (at most SLOW seconds) until ``count`` messages of the channel are stored."""
    deadline = asyncio.get_running_loop().time() + SLOW
    while len(await stored_ids(harness, channel_id)) < count:
        assert asyncio.get_running_loop().time() < deadline, "the import made no progress"
        await asyncio.sleep(0.05)


async def test_an_admin_imports_this_channel_with_its_active_and_archived_threads(bot_world):
    harness, fake = bot_world
    channel = harness.channel(0)
    active = harness.make_thread(channel, "release notes")
    fake.channel(channel.guild.id, active.id, active.name, type=11, parent_id=channel.id)
    archived = fake.channel(
        channel.guild.id, channel.id + 999, "old plans", type=11, parent_id=channel.id, archived=True
    )
    private = fake.channel(channel.guild.id, channel.id + 998, "secret", type=12, parent_id=channel.id, archived=True)
    in_channel, in_active, in_archived = say(fake, channel.id, 130), say(fake, active.id, 20), say(fake, archived.id, 8)
    say(fake, private.id, 5)  # the bot may not list private archived threads (no Manage Threads): skipped
    elsewhere = say(fake, harness.channel(1).id, 10)

    reply = await harness.slash("memory import start", member=harness.member(0), permissions=ADMIN, channel=channel)
    await reply.wait_until(lambda r: "import in" in r.text and ": done" in r.text, timeout=SLOW)

    assert reply.ephemeral and not reply.failed
    assert await stored_ids(harness, channel.id) == in_channel
    assert await stored_ids(harness, active.id) == in_active
    assert await stored_ids(harness, archived.id) == in_archived
    assert not await stored_ids(harness, private.id) and not await stored_ids(harness, harness.channel(1).id)
    assert (
        elsewhere
        and "3/3" in reply.text
        and f"{len(in_channel) + len(in_active) + len(in_archived)} stored" in reply.text
    )
    assert "estimated at the start: 158 messages, 4 requests" in reply.text
    hits = await harness.memory.recall(channel.guild.id, channel.id, "when is the spring release?", k=3)
    assert hits and all(h.message.channel_id == channel.id for h in hits)


async def test_members_cannot_import(bot_world):
    harness, fake = bot_world
    say(fake, harness.channel(0).id, 5)
    reply = await harness.slash("memory import start", member=harness.member(1), permissions=MEMBER)
    assert reply.ephemeral and "Manage Server" in reply.text
    assert not await stored_ids(harness, harness.channel(0).id)


async def test_listed_channels_since_a_date_and_a_bad_date(bot_world):
    harness, fake = bot_world
    a, b = harness.channel(0), harness.channel(1)
    say(fake, a.id, 10)
    recent = say(fake, a.id, 10, start=START + dt.timedelta(days=30))
    in_b = say(fake, b.id, 10, start=START + dt.timedelta(days=30))
    since = (START + dt.timedelta(days=10)).strftime("%Y-%m-%d")
    reply = await harness.slash(
        "memory import start",
        member=harness.member(0),
        permissions=ADMIN,
        channels=f"{a.mention} {b.mention}",
        since=since,
    )
    await reply.wait_until(lambda r: ": done" in r.text, timeout=SLOW)
    assert await stored_ids(harness, a.id) == recent and await stored_ids(harness, b.id) == in_b

    bad = await harness.slash("memory import start", member=harness.member(0), permissions=ADMIN, since="last week")
    assert "2024-01-31" in bad.text and bad.ephemeral


async def test_plan_estimates_without_importing(bot_world):
    harness, fake = bot_world
    say(fake, harness.channel(0).id, 60)
    reply = await harness.slash("memory import plan", member=harness.member(0), permissions=ADMIN)
    assert "60 messages, 1 request" in reply.text and "cannot count" in reply.text
    assert not await stored_ids(harness, harness.channel(0).id)


async def test_status_pause_and_cancel_answer_when_nothing_runs(bot_world):
    harness, _ = bot_world
    for command in ("memory import status", "memory import pause", "memory import cancel"):
        reply = await harness.slash(command, member=harness.member(0), permissions=ADMIN)
        assert reply.ephemeral and ("no import is running" in reply.text or "/memory import start" in reply.text)


async def test_gap_fill_on_reconnect_fetches_what_enabled_channels_missed(bot_world):
    harness, fake = bot_world
    channel, off = harness.channel(0), harness.channel(1)
    before = say(fake, channel.id, 5)
    await harness.slash("memory import start", member=harness.member(0), permissions=ADMIN, channel=channel)
    cog = harness.bot.get_cog("Memory")
    await cog.imports.importer.wait(channel.guild.id)
    await harness.memory.set_capture_enabled(off.guild.id, off.id, False)
    say(fake, off.id, 5)

    harness.bot.dispatch("disconnect")
    missed = say(fake, channel.id, 12, start=START + dt.timedelta(days=2))
    harness.bot.dispatch("ready")
    await eventually_stored(harness, channel.id, len(before) + len(missed))
    assert await stored_ids(harness, channel.id) == before + missed
    assert not await stored_ids(harness, off.id)  # memory is off there: no gap fill


async def test_enable_offers_an_import_that_only_admins_can_start(bot_world):
    harness, fake = bot_world
    channel = harness.channel(1)
    kept = say(fake, channel.id, 12)
    reply = await harness.slash("memory enable", member=harness.member(0), permissions=ADMIN, channel=channel)
    assert "Import what was said here before?" in reply.text
    assert [b["label"] for b in reply.messages[-1].buttons] == ["Import earlier messages"]

    refused = await harness.click(reply, "Import earlier messages", member=harness.member(1), permissions=MEMBER)
    assert "Manage Server" in refused.text and not await stored_ids(harness, channel.id)
    click = await harness.click(reply, "Import earlier messages", member=harness.member(0), permissions=ADMIN)
    await click.wait_until(lambda r: ": done" in r.text, timeout=SLOW)
    assert await stored_ids(harness, channel.id) == kept


async def test_an_import_started_by_a_command_resumes_after_a_restart(bot_world):
    harness, fake = bot_world
    kept = say(fake, harness.channel(0).id, 300)
    cog = harness.bot.get_cog("Memory")
    await harness.slash("memory import start", member=harness.member(0), permissions=ADMIN)
    cursors = ImportCursors(harness.memory.store)
    while (await cursors.channels(harness.guilds[0].id))[0].cursor == 0:
        await asyncio.sleep(0.01)
    await cog.imports.close()  # the cog unloads mid-import (a shutdown)

    from cogs.memory.imports import HistoryImports

    cog.imports = HistoryImports(harness.bot, harness.memory)
    harness.bot.dispatch("ready")  # the next start
    await eventually_stored(harness, harness.channel(0).id, len(kept))
    assert await stored_ids(harness, harness.channel(0).id) == kept


async def test_the_whole_server_includes_forum_posts_and_private_threads_the_bot_may_list(bot_world):
    harness, fake = bot_world
    guild, text = harness.guilds[0], harness.channel(0)
    forum_id = text.id + 5000
    harness.bot._connection.parse_channel_create(
        {"id": str(forum_id), "type": 15, "guild_id": str(guild.id), "name": "questions", "position": 9,
         "permission_overwrites": [], "available_tags": [], "flags": 0}
    )  # fmt: skip
    assert [f.id for f in guild.forums] == [forum_id]
    fake.channel(guild.id, forum_id, "questions", type=15)
    post = fake.channel(guild.id, forum_id + 1, "how do I reset?", type=11, parent_id=forum_id, archived=True)
    private = fake.channel(guild.id, text.id + 998, "staff", type=12, parent_id=text.id, archived=True)
    fake.allow_private_threads = True  # Discord lists them to a bot with Manage Threads, which it gets here:
    threads_role = dpy_backend.make_role("threads", guild, permissions=discord.Permissions(manage_threads=True).value)
    await dpytest.add_role(guild.me, threads_role)
    in_post, in_private = say(fake, post.id, 7), say(fake, private.id, 6)
    in_text, in_other = say(fake, text.id, 4), say(fake, harness.channel(1).id, 3)

    reply = await harness.slash("memory import start", member=harness.member(0), permissions=ADMIN, where="server")
    await reply.wait_until(lambda r: ": done" in r.text, timeout=SLOW)
    assert text.permissions_for(guild.me).manage_threads  # so it lists private archived threads, and reads them
    assert await stored_ids(harness, private.id) == in_private
    for channel_id, kept in ((post.id, in_post), (text.id, in_text), (harness.channel(1).id, in_other)):
        assert await stored_ids(harness, channel_id) == kept
