"""The /memory slash commands, dispatched as raw interactions through the real command tree."""

from __future__ import annotations

import logging
from pathlib import Path

import discord
import pytest

from qwen3_memory.space import EmbeddingSpace
from tests.discord_harness import ADMIN, MEMBER, DiscordHarness, running_harness
from tests.factories import faiss_index

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on SQLite + FAISS and on Postgres

PICNIC = "The team picnic moved to Saturday at Lakeside Park; bring sandwiches and a frisbee"
BUG = "I fixed the login bug in the authentication service yesterday"
ADMIN_COMMANDS = ["memory stats", "memory enable", "memory disable"]


@pytest.fixture
async def harness(make_settings) -> DiscordHarness:
    async with running_harness(make_settings(recall={"user_cooldown_seconds": 0})) as h:
        yield h


async def remember(harness: DiscordHarness, *posts: tuple[str, int], channel=None) -> list[discord.Message]:
    """Post (text, member index) pairs and wait until they are stored and embedded."""
    messages = [await harness.post(text, channel or harness.channel(0), harness.member(who)) for text, who in posts]
    await harness.settle()
    return messages


async def test_recall_answers_ephemerally_with_the_best_earlier_messages(harness):
    picnic, _ = await remember(harness, (PICNIC, 0), (BUG, 1))
    reply = await harness.slash("memory recall", member=harness.member(2), query="when is the outdoor team lunch?")
    assert not reply.failed
    assert reply.deferred and reply.ephemeral
    assert len(reply.embeds) == 1
    first = reply.embeds[0].description.split("\n")[0]
    assert picnic.jump_url in first and "score" in first


async def test_recall_k_limits_the_number_of_results(harness):
    await remember(harness, *[(f"{PICNIC} (reminder {i})", 0) for i in range(5)])
    reply = await harness.slash("memory recall", member=harness.member(1), query="picnic at the lake", k=2)
    assert reply.embeds[0].description.count("▶") == 2  # two hits (one excerpt: they are neighbours)


async def test_recall_stays_in_the_channel_it_is_asked_in(harness):
    await remember(harness, (PICNIC, 0), channel=harness.channel(0))
    reply = await harness.slash(
        "memory recall", member=harness.member(0), channel=harness.channel(1), query="picnic at the lake"
    )
    assert reply.ephemeral and "don't remember anything" in reply.text and "Lakeside" not in reply.text


async def test_recall_says_so_when_nothing_matches(harness):
    await remember(harness, (PICNIC, 0))
    reply = await harness.slash("memory recall", member=harness.member(0), query="kubernetes pod eviction")
    assert reply.ephemeral and "Nothing I remember" in reply.text


@pytest.mark.parametrize("command", ADMIN_COMMANDS)
async def test_admin_commands_refuse_members_without_the_permission(harness, command):
    reply = await harness.slash(command, member=harness.member(1), permissions=MEMBER)
    assert reply.failed
    assert reply.ephemeral
    assert "Manage Server" in reply.text and "Only members" in reply.text


async def test_a_refused_disable_changes_nothing(harness):
    await harness.slash("memory disable", member=harness.member(1), permissions=MEMBER)
    message = (await remember(harness, (PICNIC, 0)))[0]
    assert await harness.memory.store.get_messages([message.id])


@pytest.mark.parametrize("command", ADMIN_COMMANDS)
async def test_admin_commands_work_for_members_with_the_permission(harness, command):
    reply = await harness.slash(command, member=harness.member(0), permissions=ADMIN)
    assert not reply.failed and reply.ephemeral
    assert "Only members" not in reply.text


async def test_administrators_and_bot_owners_are_admins(make_settings):
    settings = make_settings(recall={"user_cooldown_seconds": 0})
    async with running_harness(settings, owner_ids=()) as harness:
        owner = harness.member(2)
        harness.bot.owner_ids = {owner.id}
        administrator = discord.Permissions(administrator=True)
        assert not (await harness.slash("memory stats", member=harness.member(0), permissions=administrator)).failed
        assert not (await harness.slash("memory stats", member=owner, permissions=MEMBER)).failed


async def test_the_admin_permission_comes_from_the_settings(make_settings):
    settings = make_settings(permissions={"admin_permission": "manage_messages"})
    async with running_harness(settings) as harness:
        refused = await harness.slash("memory stats", member=harness.member(0), permissions=ADMIN)
        assert refused.failed and "Manage Messages" in refused.text
        moderator = discord.Permissions(manage_messages=True)
        assert not (await harness.slash("memory stats", member=harness.member(0), permissions=moderator)).failed


async def test_stats_show_messages_spaces_vectors_and_indexes(harness):
    await remember(harness, (PICNIC, 0), (BUG, 1))
    await remember(harness, ("hello from the other channel", 0), channel=harness.channel(1))
    await harness.memory.store.flush()
    reply = await harness.slash("memory stats", member=harness.member(0), permissions=ADMIN)
    embed = reply.embeds[0]
    fields = {f.name: f.value for f in embed.fields}
    first = fields[f"#{harness.channel(0).name}"]
    space = harness.memory.default_space
    assert "2 messages" in first and "capture on" in first
    assert f"reads space {space.id}" in first and f"writes space {space.id}" in first
    assert "`all-MiniLM-L6-v2` 384-d: 2 vectors" in first
    index = await harness.memory.store.index_info(space, harness.guilds[0].id, harness.channel(0).id, load=False)
    if index.location is None:  # Postgres: the space's table with its HNSW index
        assert "pgvector-hnsw index, in the shared database" in first
    else:
        assert "exact index" in first and f"{Path(index.location).stat().st_size / 1024:.1f} KB" in first
    assert "1 messages" in fields[f"#{harness.channel(1).name}"]
    assert "score floor 0.25 (not calibrated yet: verify sets it)" in first  # the space's own floor, not a global


async def test_forget_me_erases_the_callers_messages_and_stops_capturing_them(harness):
    memory, space = harness.memory, harness.memory.default_space
    channel, guild = harness.channel(0), harness.guilds[0]
    mine = await remember(harness, (PICNIC, 0), ("my second message about the office printer", 0))
    theirs = (await remember(harness, (BUG, 1)))[0]
    index = await faiss_index(memory.store, space, guild.id, channel.id)

    reply = await harness.slash("memory forget-me", member=harness.member(0))
    assert reply.ephemeral and "forgot 2 of your messages" in reply.text
    assert await memory.store.author_message_ids(guild.id, harness.member(0).id) == []
    assert await memory.store.get_vectors(space.id, [m.id for m in mine]) == {}
    if index is not None:  # FAISS forgot them too (on Postgres the vector table is the index)
        assert all(m.id not in index for m in mine) and theirs.id in index
    assert set(await memory.store.get_vectors(space.id, [theirs.id])) == {theirs.id}

    await remember(harness, ("a new message after forget-me", 0))
    assert await memory.store.author_message_ids(guild.id, harness.member(0).id) == []

    reply = await harness.slash("memory remember-me", member=harness.member(0))
    assert reply.ephemeral and "remember your new messages" in reply.text
    again = (await remember(harness, ("remember this one", 0)))[0]
    assert await memory.store.author_message_ids(guild.id, harness.member(0).id) == [again.id]


async def test_forget_me_is_per_guild(harness):
    other_channel = harness.channel(0, guild=1)
    elsewhere = await harness.post(PICNIC, other_channel, harness.member(0, guild=1))
    await remember(harness, (PICNIC, 0))
    await harness.slash("memory forget-me", member=harness.member(0))
    assert await harness.memory.store.get_messages([elsewhere.id])


async def test_recall_is_rate_limited_per_user(make_settings):
    async with running_harness(make_settings(recall={"user_cooldown_seconds": 60})) as harness:
        await remember(harness, (PICNIC, 0))
        first = await harness.slash("memory recall", member=harness.member(0), query="picnic")
        assert not first.failed
        second = await harness.slash("memory recall", member=harness.member(0), query="picnic")
        assert second.failed and second.ephemeral
        assert "try again in" in second.text and ("60 s" in second.text or "59 s" in second.text)
        other_user = await harness.slash("memory recall", member=harness.member(1), query="picnic")
        assert not other_user.failed

        harness.bot_messages()  # a mention counts against the same limit
        await harness.post(f"<@{harness.bot.user.id}> picnic?", harness.channel(0), harness.member(0))
        assert "ask me again in" in harness.bot_messages()[0].content


async def test_errors_users_can_cause_are_shown_as_a_short_message(harness):
    """A channel reading from a space whose model cannot be loaded: the ModelUnavailable text, ephemeral."""
    store, channel = harness.memory.store, harness.channel(0)
    await remember(harness, (PICNIC, 0))
    missing = await store.ensure_space(
        EmbeddingSpace(model="example/missing-model", dimension=384, source="/nonexistent/missing-model")
    )
    await store.add_write_space(channel.guild.id, channel.id, missing.id)
    await store.set_read_space(channel.guild.id, channel.id, missing.id)
    reply = await harness.slash("memory recall", member=harness.member(0), query="picnic")
    assert reply.failed and reply.ephemeral
    assert "cannot load embedding model 'example/missing-model'" in reply.text
    assert "Traceback" not in reply.text


async def test_unexpected_errors_are_logged_with_an_id_shown_to_the_user(harness, caplog, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("the index exploded")

    monkeypatch.setattr(
        harness.memory, "recall_excerpts", broken
    )  # a fault injected into the command body, nothing else
    with caplog.at_level(logging.ERROR, logger="cogs.memory.cog"):
        reply = await harness.slash("memory recall", member=harness.member(0), query="picnic")
    assert reply.failed and reply.ephemeral
    assert "Something went wrong (error id `" in reply.text and "exploded" not in reply.text
    error_id = reply.text.split("error id `")[1].split("`")[0]
    record = next(r for r in caplog.records if error_id in r.getMessage())
    assert record.exc_info and "the index exploded" in str(record.exc_info[1])


async def test_the_memory_group_is_guild_only_and_admin_commands_carry_default_permissions(harness):
    group = harness.bot.tree.get_command("memory")
    assert group.guild_only
    names = {"recall", "forget-me", "remember-me", "enable", "disable", "stats", "import"}
    assert {c.name for c in group.commands} == names
    for name in ("stats", "enable", "disable", "import"):
        assert group.get_command(name).default_permissions == discord.Permissions(manage_guild=True)
    imports = group.get_command("import")
    assert {c.name for c in imports.commands} == {"start", "plan", "status", "pause", "resume", "cancel"}


async def test_a_crafted_k_outside_1_to_25_is_refused_clearly(harness):
    for k in (-1, 0, 1000):
        reply = await harness.slash("memory recall", member=harness.member(1), query="picnic at the lake", k=k)
        assert reply.ephemeral and "k must be between 1 and 25" in reply.text, reply.text
