"""Recall that answers, through the real command tree and listeners: hits with the lines around them,
/memory recall filters (author, dates, recency), Discord's embed limits and the memory_recall event."""

from __future__ import annotations

import time

import discord
import pytest

from qwen3_memory.hooks import RecallEvent
from tests.discord_harness import DiscordHarness, running_harness
from tests.factories import message

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on SQLite + FAISS and on Postgres

QUESTION = "anyone know when the raid starts this week?"
ANSWER = "LOCKED: Friday 21:30, bring potions"


@pytest.fixture
async def harness(make_settings) -> DiscordHarness:
    async with running_harness(make_settings(recall={"user_cooldown_seconds": 0})) as h:
        yield h


async def conversation(harness: DiscordHarness, channel=None) -> list[discord.Message]:
    """A question, its answer (in other words), a reply to it, and unrelated talk, by three members."""
    channel = channel or harness.channel(0)
    posts = [
        ("my cat knocked over the plant again", 2),
        (QUESTION, 0),
        (ANSWER, 1),
        ("perfect, I'll be there", 2),
        ("pizza tonight?", 0),
    ]
    sent = [await harness.post(text, channel, harness.member(who)) for text, who in posts]
    await harness.settle()
    return sent


def within_discord_limits(embed: discord.Embed) -> None:
    assert len(embed.title or "") <= 256 and len(embed.description or "") <= 4096
    assert len(embed.fields) <= 25 and all(len(f.name) <= 256 and len(f.value) <= 1024 for f in embed.fields)
    assert len(embed) <= 6000


async def test_a_mention_is_answered_with_the_lines_around_the_hit(harness):
    sent = await conversation(harness)
    await harness.post("raid schedule is in the other channel", harness.channel(1))
    harness.bot_messages()
    await harness.post(f"<@{harness.bot.user.id}> when does the raid start this week?", harness.channel(0))
    (reply,) = harness.bot_messages()
    embed = reply.embeds[0]
    within_discord_limits(embed)
    assert ANSWER in embed.description  # the answer shows beside the question that matched
    assert sent[1].jump_url in embed.description or sent[2].jump_url in embed.description
    assert "other channel" not in embed.description


async def test_recall_shows_neighbours_but_never_a_deleted_one(harness):
    sent = await conversation(harness)
    await harness.delete(sent[3])
    await harness.settle()
    reply = await harness.slash("memory recall", member=harness.member(0), query="raid this week", k=1)
    description = reply.embeds[0].description
    assert ANSWER in description and "I'll be there" not in description


async def test_the_author_option_keeps_only_that_members_messages(harness):
    await conversation(harness)
    bob = harness.member(1)
    reply = await harness.slash("memory recall", member=harness.member(0), query="friday potions", author=bob)
    lines = reply.embeds[0].description.split("\n")
    hits = [line for line in lines if line.startswith("> ▶")]
    assert hits and all(bob.display_name.replace("_", "\\_") in line for line in hits)
    assert any(line.startswith("> ·") for line in lines)  # the others' lines around bob's stay, as context
    assert "by " + bob.display_name in reply.embeds[0].footer.text
    alone = await harness.slash("memory recall", member=harness.member(0), query="my cat and the plant", author=bob)
    assert "Nothing I remember" in alone.text  # carol said it, not bob


async def test_dates_filter_what_is_recalled(harness):
    await conversation(harness)
    channel = harness.channel(0)
    old = message(
        1,
        "the raid used to start at nine",
        channel.guild.id,
        channel.id,
        harness.member(1).id,
        "bob",
        time.time() - 90 * 86_400,
    )
    await harness.memory.capture.write([old])
    reply = await harness.slash(
        "memory recall", member=harness.member(0), query="when does the raid start", before="30d"
    )
    assert "used to start at nine" in reply.embeds[0].description and ANSWER not in reply.embeds[0].description
    reply = await harness.slash(
        "memory recall", member=harness.member(0), query="when does the raid start", after="yesterday"
    )
    assert "used to start at nine" not in reply.embeds[0].description and ANSWER in reply.embeds[0].description
    nothing = await harness.slash(
        "memory recall", member=harness.member(0), query="raid", after="2000-01-01", before="2000-02-01"
    )
    assert "Nothing I remember" in nothing.text and "before 2000-02-01" in nothing.text


async def test_a_date_it_cannot_read_is_one_clear_private_error(harness):
    reply = await harness.slash("memory recall", member=harness.member(0), query="raid", after="last tuesday")
    assert reply.failed and reply.ephemeral
    assert "`after`" in reply.text and "7d" in reply.text


async def test_recent_prefers_this_weeks_answer(harness):
    await conversation(harness)
    channel = harness.channel(0)
    asked = "what time does the raid start?"
    old = message(1, asked, channel.guild.id, channel.id, harness.member(0).id, "alice", time.time() - 60 * 86_400)
    await harness.memory.capture.write([old])
    plain = await harness.slash("memory recall", member=harness.member(0), query=asked, k=1)
    assert f"/{channel.id}/1)" in plain.embeds[0].description  # two months old, but word for word
    recent = await harness.slash("memory recall", member=harness.member(0), query=asked, k=1, recent=True)
    assert f"/{channel.id}/1)" not in recent.embeds[0].description and ANSWER in recent.embeds[0].description
    assert "recent first" in recent.embeds[0].footer.text


async def test_many_long_hits_stay_within_discord_limits(harness):
    channel = harness.channel(0)
    long_lines = [
        message(
            i,
            f"raid plan part {i}: " + "we meet at the north gate and " * 20,
            channel.guild.id,
            channel.id,
            7,
            "x" * 40,
        )
        for i in range(1, 60)
    ]
    await harness.memory.capture.write(long_lines)
    reply = await harness.slash("memory recall", member=harness.member(0), query="raid plan north gate", k=25)
    embed = reply.embeds[0]
    within_discord_limits(embed)
    assert embed.description.count("▶") >= 5


async def test_every_recall_is_dispatched_as_a_memory_recall_event(harness):
    await conversation(harness)
    heard: list[RecallEvent] = []

    async def on_memory_recall(event: RecallEvent) -> None:
        heard.append(event)

    harness.bot.add_listener(on_memory_recall)
    await harness.slash("memory recall", member=harness.member(2), query="raid", author=harness.member(0))
    await harness.settle()
    assert len(heard) == 1
    event = heard[0]
    assert event.source == "command" and event.requested_by == harness.member(2).id
    assert event.channel_id == harness.channel(0).id and event.filters.authors == (harness.member(0).id,)
    assert event.hits and event.excerpts
