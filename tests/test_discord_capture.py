"""The memory cog's listeners on real discord.py events: capture, edits, deletes, recall on mention."""

from __future__ import annotations

import discord
import pytest

from tests.discord_harness import ADMIN, DiscordHarness, running_harness
from tests.factories import faiss_index

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on SQLite + FAISS and on Postgres

PICNIC = "The team picnic moved to Saturday at Lakeside Park; bring sandwiches and a frisbee"
OTHERS = [
    "I fixed the login bug in the authentication service yesterday",
    "Quarterly budget numbers are due to finance by the end of the month",
    "Does anyone know how to reset the office printer?",
]
QUESTION = "when is our outdoor lunch with the team?"


@pytest.fixture
async def harness(make_settings) -> DiscordHarness:
    async with running_harness(make_settings(recall={"user_cooldown_seconds": 0})) as h:
        yield h


async def ask(harness: DiscordHarness, channel, question: str = QUESTION, member=None) -> discord.Message:
    """Mention the bot with a question in ``channel``; returns the bot's reply."""
    harness.bot_messages()
    await harness.post(f"<@{harness.bot.user.id}> {question}", channel, member)
    replies = harness.bot_messages()
    assert len(replies) == 1, replies
    return replies[0]


def reply_text(message: discord.Message) -> str:
    parts = [message.content]
    for embed in message.embeds:
        parts += [embed.title or "", embed.description or "", embed.footer.text or ""]
    return "\n".join(parts)


async def stored_ids(harness: DiscordHarness, channel) -> list[int]:
    messages = await harness.memory.store.scroll_messages(channel.guild.id, channel.id, limit=10_000)
    return [m.id for m in messages]


async def test_a_message_is_recalled_by_a_paraphrase_in_its_channel_only(harness):
    a, b, other_guild = harness.channel(0), harness.channel(1), harness.channel(0, guild=1)
    picnic = await harness.post(PICNIC, a)
    for text in OTHERS:
        await harness.post(text, a)
    await harness.post("The printer on floor two is broken again", b)
    await harness.post("Welcome to the second server", other_guild, harness.member(0, guild=1))
    await harness.settle()

    answer = await ask(harness, a)
    assert picnic.jump_url in reply_text(answer)
    assert "Lakeside Park" in reply_text(answer)
    assert answer.embeds[0].description.startswith("**1.**")  # the picnic ranks first
    assert picnic.jump_url in answer.embeds[0].description.split("\n")[0]

    for elsewhere in (b, other_guild):
        member = harness.member(0, guild=harness.guilds.index(elsewhere.guild))
        text = reply_text(await ask(harness, elsewhere, member=member))
        assert "Lakeside" not in text and picnic.jump_url not in text

    hits = await harness.memory.recaller.recall(other_guild.guild.id, other_guild.id, QUESTION)
    assert all(h.message.id != picnic.id for h in hits)


async def test_the_reply_shows_author_date_snippet_link_and_score(harness):
    channel = harness.channel(0)
    picnic = await harness.post(PICNIC, channel)
    await harness.settle()
    description = (await ask(harness, channel)).embeds[0].description
    first = description.split("\n")[0]
    assert harness.member(0).display_name.replace("_", "\\_") in first
    assert f"<t:{int(picnic.created_at.timestamp())}:d>" in first
    assert "score 0." in first
    assert f"[jump]({picnic.jump_url})" in first
    assert "Lakeside Park" in description


async def test_the_question_is_neither_answered_with_itself_nor_remembered(harness):
    channel = harness.channel(0)
    await harness.post(PICNIC, channel)
    await harness.settle()
    question_reply = await ask(harness, channel, "picnic Saturday Lakeside Park sandwiches frisbee?")
    await harness.settle()
    assert "picnic Saturday Lakeside Park sandwiches frisbee?" not in question_reply.embeds[0].description
    assert len(await stored_ids(harness, channel)) == 1


async def test_friendly_answers_for_empty_memory_and_for_no_match(harness):
    channel = harness.channel(0)
    assert "don't remember anything" in reply_text(await ask(harness, channel))
    await harness.post(PICNIC, channel)
    await harness.settle()
    text = reply_text(await ask(harness, channel, "kubernetes pod eviction thresholds"))
    assert "Nothing I remember" in text and "kubernetes" in text
    assert "Ask me about something" in reply_text(await ask(harness, channel, ""))


async def test_an_edit_re_embeds_the_message(harness):
    channel = harness.channel(0)
    message = await harness.post(PICNIC, channel)
    await harness.post(OTHERS[0], channel)
    await harness.settle()
    await harness.edit(message, "The quarterly budget review meeting is on Thursday in room 4")
    await harness.settle()

    stored = (await harness.memory.store.get_messages([message.id]))[message.id]
    assert stored.content.startswith("The quarterly budget review") and stored.edited_at is not None
    space = harness.memory.default_space
    assert await harness.memory.store.count_vectors(space.id, channel.guild.id, channel.id) == 2
    recall = harness.memory.recaller.recall
    old = await recall(channel.guild.id, channel.id, QUESTION)
    new = await recall(channel.guild.id, channel.id, "when do we go over the budget?")
    assert message.id not in [h.message.id for h in old]
    assert new and new[0].message.id == message.id
    assert picnic_free(reply_text(await ask(harness, channel)))


def picnic_free(text: str) -> bool:
    return "Lakeside" not in text and "frisbee" not in text


async def test_a_delete_removes_the_message_from_the_store_and_the_index(harness):
    channel = harness.channel(0)
    memory, space = harness.memory, harness.memory.default_space
    doomed = await harness.post(PICNIC, channel)
    kept = await harness.post(OTHERS[0], channel)
    await harness.settle()
    index = await faiss_index(memory.store, space, channel.guild.id, channel.id)
    faiss = index is not None  # on Postgres the vector table is the index: the store checks cover it
    assert not faiss or (doomed.id in index and kept.id in index)

    await harness.delete(doomed)
    await harness.settle()
    assert await memory.store.get_messages([doomed.id]) == {}
    assert await memory.store.get_vectors(space.id, [doomed.id]) == {}
    assert await memory.store.count_vectors(space.id, channel.guild.id, channel.id) == 1
    assert len(await memory.store.index_info(space, channel.guild.id, channel.id)) == 1
    if faiss:
        assert doomed.id not in index and kept.id in index
        await memory.store.flush()
        memory.store.indexes.forget(space.id, channel.guild.id, channel.id)  # reload the file written to disk
        reloaded = await memory.store.indexes.get(space, channel.guild.id, channel.id)
        assert doomed.id not in reloaded and kept.id in reloaded
    assert doomed.id not in [h.message.id for h in await memory.recaller.recall(channel.guild.id, channel.id, PICNIC)]


async def test_a_bulk_delete_removes_every_message(harness):
    channel = harness.channel(0)
    messages = [await harness.post(text, channel) for text in [PICNIC, *OTHERS]]
    await harness.settle()
    await harness.bulk_delete(messages[:3])
    await harness.settle()
    assert await stored_ids(harness, channel) == [messages[3].id]
    space = harness.memory.default_space
    assert await harness.memory.store.count_vectors(space.id, channel.guild.id, channel.id) == 1


async def test_bots_webhooks_system_messages_and_empty_messages_are_ignored(harness):
    channel = harness.channel(0)
    robot = await harness.post_payload("beep", channel, harness.bot.user)  # e.g. the bot's own replies
    other_bot = discord.ext.test.backend.make_user("OtherBot", 42)
    other_bot.bot = True
    await harness.post_payload("I am another bot", channel, other_bot)
    await harness.post_payload("from a webhook", channel, harness.member(1), webhook_id=str(channel.id + 1))
    await harness.post_payload("joined the server", channel, harness.member(1), type=7)  # MessageType.new_member
    await harness.post("   ", channel)
    await harness.settle()
    assert robot.author.bot
    assert await stored_ids(harness, channel) == []
    human = await harness.post("a human says hello", channel)
    await harness.settle()
    assert await stored_ids(harness, channel) == [human.id]


async def test_a_disabled_channel_is_not_captured(harness):
    a, b = harness.channel(0), harness.channel(1)
    reply = await harness.slash("memory disable", member=harness.member(0), channel=a, permissions=ADMIN)
    assert reply.ephemeral and "no longer remember" in reply.text
    await harness.post(PICNIC, a)
    kept = await harness.post(PICNIC, b)
    await harness.settle()
    assert await stored_ids(harness, a) == []
    assert await stored_ids(harness, b) == [kept.id]

    await harness.slash("memory enable", member=harness.member(0), channel=a, permissions=ADMIN)
    later = await harness.post(OTHERS[0], a)
    await harness.settle()
    assert await stored_ids(harness, a) == [later.id]


async def test_capture_can_be_off_by_default(make_settings):
    settings = make_settings(capture={"enabled_by_default": False}, recall={"user_cooldown_seconds": 0})
    async with running_harness(settings) as harness:
        channel = harness.channel(0)
        await harness.post(PICNIC, channel)
        await harness.settle()
        assert await stored_ids(harness, channel) == []
        await harness.slash("memory enable", member=harness.member(0), channel=channel, permissions=ADMIN)
        message = await harness.post(PICNIC, channel)
        await harness.settle()
        assert await stored_ids(harness, channel) == [message.id]


async def test_thread_messages_are_remembered_per_thread(harness):
    parent = harness.channel(0)
    thread = harness.make_thread(parent, "picnic-planning")
    message = await harness.post(PICNIC, thread)
    await harness.settle()
    stored = (await harness.memory.store.get_messages([message.id]))[message.id]
    assert (stored.guild_id, stored.channel_id) == (parent.guild.id, thread.id)
    assert "Lakeside" in reply_text(await ask(harness, thread))
    assert "Lakeside" not in reply_text(await ask(harness, parent))


async def test_a_thread_follows_its_parent_when_the_parent_is_disabled(harness):
    parent = harness.channel(0)
    await harness.slash("memory disable", member=harness.member(0), channel=parent, permissions=ADMIN)
    thread = harness.make_thread(parent)
    await harness.post(PICNIC, thread)
    await harness.settle()
    assert await harness.memory.store.count_messages(parent.guild.id, thread.id) == 0


async def test_disabling_a_channel_also_stops_its_threads(harness):
    parent = harness.channel(0)
    thread = harness.make_thread(parent)
    await harness.post(PICNIC, thread)
    await harness.settle()
    await harness.slash("memory disable", member=harness.member(0), channel=parent, permissions=ADMIN)
    await harness.post(OTHERS[0], thread)
    await harness.settle()
    assert await harness.memory.store.count_messages(parent.guild.id, thread.id) == 1


async def test_direct_messages_are_ignored_unless_allowed(harness):
    user = harness.member(0)
    dm = await user.create_dm()
    await discord.ext.test.message(PICNIC, channel=dm, member=user)
    await harness.settle()
    assert await harness.memory.store.message_channels() == []


async def test_direct_messages_are_remembered_when_allowed(make_settings):
    settings = make_settings(capture={"allow_dms": True}, recall={"user_cooldown_seconds": 0})
    async with running_harness(settings) as harness:
        user = harness.member(0)
        dm = await user.create_dm()
        message = await discord.ext.test.message(PICNIC, channel=dm, member=user)
        await harness.settle()
        stored = (await harness.memory.store.get_messages([message.id]))[message.id]
        assert (stored.guild_id, stored.channel_id) == (0, dm.id)


async def test_a_burst_of_1000_messages_is_stored_and_embedded(harness):
    channel = harness.channel(0)
    members = [harness.member(i) for i in range(3)]
    for i in range(1000):
        await harness.post(
            f"burst message {i}: item {i % 37} of the inventory is in aisle {i % 11}", channel, members[i % 3]
        )
    await harness.settle()
    memory, space = harness.memory, harness.memory.default_space
    assert await memory.store.count_messages(channel.guild.id, channel.id) == 1000
    assert await memory.store.count_vectors(space.id, channel.guild.id, channel.id) == 1000
    assert len(await memory.store.index_info(space, channel.guild.id, channel.id)) == 1000
    assert memory.capture.failures == 0
