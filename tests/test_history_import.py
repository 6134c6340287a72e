"""Importing Discord history: discord.py's real HTTP client reads a local REST server, the real memory stores.

Paging, rate limits, 403s, skipping (bots, webhooks, system messages, opted-out members, messages
already stored), live edits and deletes winning, the cursor (resume after a stop), gap fill, both
write spaces during a migration, and the size estimate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import discord
import pytest

from cogs.memory.history import DiscordHistory
from qwen3_memory.history import ChannelRef, HistoryImporter
from qwen3_memory.history.cursors import DONE, FAILED, ImportCursors
from qwen3_memory.history.estimate import estimate_size
from qwen3_memory.history.snowflakes import snowflake_at
from qwen3_memory.memory import Memory
from qwen3_memory.records import SpaceRecord, StoredMessage
from qwen3_memory.settings import HistorySettings
from tests.discord_harness import open_memory
from tests.discord_rest import TOKEN, FakeDiscord, local_discord
from tests.factories import TOPICS, qwen3_target

GUILD = 4242
CHANNEL = discord.utils.time_snowflake(dt.datetime(2023, 1, 1, tzinfo=dt.UTC))
OTHER = CHANNEL + 1
START = dt.datetime(2023, 6, 1, tzinfo=dt.UTC)
ALICE, BOB, BOT = 501, 502, 503


@dataclass
class World:
    discord: FakeDiscord
    memory: Memory
    client: discord.Client
    source: DiscordHistory
    importer: HistoryImporter

    def new_importer(self, **settings) -> HistoryImporter:
        return HistoryImporter(self.memory, self.source, HistorySettings(**settings))

    async def stored(self, channel_id: int = CHANNEL) -> dict[int, StoredMessage]:
        await self.memory.capture.drain()
        return {m.id: m for m in await self.memory.store.scroll_messages(GUILD, channel_id, 0, 100_000)}


def chat(fake: FakeDiscord, channel_id: int, n: int, start: dt.datetime = START) -> list[int]:
    """``n`` messages a minute apart: every 7th by a bot, every 11th a join notice (system), the rest human.
    Returns the ids that should be kept."""
    kept = []
    for i in range(n):
        when = start + dt.timedelta(minutes=i)
        if i % 7 == 3:
            fake.post(channel_id, f"bot line {i}", BOT, bot=True, when=when)
        elif i % 11 == 5:
            fake.post(channel_id, "", ALICE, when=when, type=7)
        else:
            data = fake.post(channel_id, f"{TOPICS[i % len(TOPICS)]} #{i}", ALICE if i % 2 else BOB, when=when)
            kept.append(int(data["id"]))
    return kept


@pytest.fixture
async def world(make_settings):
    fake = FakeDiscord()
    fake.channel(GUILD, CHANNEL, "general")
    fake.channel(GUILD, OTHER, "random")
    memory = await open_memory(make_settings())
    async with local_discord(fake):
        client = discord.Client(intents=discord.Intents.none())
        await client.login(TOKEN)
        source = DiscordHistory(client)
        world = World(fake, memory, client, source, HistoryImporter(memory, source, HistorySettings()))
        try:
            yield world
        finally:
            await world.importer.close()
            source.close()
            await client.close()
            await memory.close()


async def migrating(memory: Memory, tiny_qwen3_dir) -> SpaceRecord:
    """A migration is under way in the channel: it writes to a second space (tiny Qwen3), which is returned."""
    await memory.store.ensure_channel(GUILD, CHANNEL, memory.default_space.id)
    target = await memory.store.ensure_space(qwen3_target(tiny_qwen3_dir))
    await memory.store.add_write_space(GUILD, CHANNEL, target.id)
    return target


async def import_all(world: World, *refs: ChannelRef, since_id: int = 0):
    await world.importer.start(GUILD, refs or [ChannelRef(CHANNEL, name="general")], since_id)
    return await world.importer.wait(GUILD)


@pytest.mark.usefixtures("backend")  # on SQLite + FAISS and on Postgres + pgvector
async def test_import_pages_through_history_and_keeps_exactly_the_human_messages(world):
    kept = chat(world.discord, CHANNEL, 250)
    progress = await import_all(world)

    stored = await world.stored()
    assert sorted(stored) == kept
    assert progress.state == "done" and progress.read == 250 and progress.stored == len(kept)
    assert progress.skipped == 250 - len(kept)
    pages = world.discord.message_requests(CHANNEL)
    assert [q["limit"] for q in pages] == ["100", "100", "100"]
    assert pages[0]["after"] == "0" and int(pages[1]["after"]) < int(pages[2]["after"])
    space = world.memory.default_space
    assert await world.memory.store.count_vectors(space.id, GUILD, CHANNEL) == len(kept)
    assert await world.memory.store.search_text(GUILD, CHANNEL, "KeyError", 5)  # full-text indexed
    (row,) = await ImportCursors(world.memory.store).channels(GUILD)
    assert row.status == DONE and row.cursor == int(world.discord.channels[CHANNEL].messages[-1]["id"])
    assert (row.read, row.stored, row.skipped) == (250, len(kept), 250 - len(kept))


async def test_recall_finds_imported_messages(world):
    chat(world.discord, CHANNEL, 60)
    await import_all(world)
    hits = await world.memory.recall(GUILD, CHANNEL, "what are we eating tonight?", k=3)
    assert any("pizza or sushi" in h.message.content for h in hits)
    assert not await world.memory.recall(GUILD, OTHER, "what are we eating tonight?", k=3)


async def test_rate_limited_pages_are_waited_out_and_counted(world):
    world.discord.rate_limit_every = 2
    kept = chat(world.discord, CHANNEL, 320)
    progress = await import_all(world)
    assert sorted(await world.stored()) == kept
    assert world.discord.rate_limited >= 2
    assert progress.rate_limit_waits == world.discord.rate_limited
    assert progress.rate_limit_seconds == pytest.approx(world.discord.retry_after * world.discord.rate_limited)


async def test_an_unreadable_channel_fails_alone_with_what_to_do(world):
    world.discord.channels[OTHER].readable = False
    kept = chat(world.discord, CHANNEL, 30)
    progress = await import_all(world, ChannelRef(OTHER, name="random"), ChannelRef(CHANNEL, name="general"))
    assert sorted(await world.stored()) == kept
    assert len(progress.failures) == 1 and "#random" in progress.failures[0] and "403" in progress.failures[0]
    assert "Read Message History" in progress.failures[0]
    rows = {r.channel_id: r for r in await ImportCursors(world.memory.store).channels(GUILD)}
    assert rows[OTHER].status == FAILED and "403" in rows[OTHER].error and rows[CHANNEL].status == DONE


async def test_opted_out_members_and_webhooks_are_not_imported(world):
    await world.memory.forget_member(GUILD, BOB)
    for i in range(20):
        world.discord.post(CHANNEL, f"line {i}", ALICE if i % 2 else BOB, when=START + dt.timedelta(minutes=i))
    world.discord.post(CHANNEL, "from a webhook", ALICE, webhook_id="77", when=START + dt.timedelta(hours=1))
    await import_all(world)
    stored = await world.stored()
    assert len(stored) == 10 and {m.author_id for m in stored.values()} == {ALICE}


@pytest.mark.usefixtures("backend")  # on SQLite + FAISS and on Postgres + pgvector
async def test_live_copies_win_and_nothing_is_stored_twice(world):
    kept = chat(world.discord, CHANNEL, 120)
    memory = world.memory
    live = dict(world.discord.channels[CHANNEL].messages[0])  # captured live, then edited live
    edited = StoredMessage(int(live["id"]), GUILD, CHANNEL, BOB, "bob", "edited text wins", 1.0, edited_at=2.0)
    await memory.capture.submit(edited)
    deleted = kept[5]  # deleted in Discord before the import read it (the server still lists it)
    await memory.capture.submit(StoredMessage(deleted, GUILD, CHANNEL, ALICE, "alice", "bye", 1.0))
    await memory.capture.delete([deleted])
    await memory.capture.drain()

    await import_all(world)
    await import_all(world)  # a second import reads everything again and stores nothing
    stored = await world.stored()
    assert sorted(stored) == [i for i in kept if i != deleted]
    assert stored[edited.id].content == "edited text wins"
    assert world.importer.progress(GUILD).stored == 0
    assert await memory.store.count_vectors(memory.default_space.id, GUILD, CHANNEL) == len(kept) - 1


async def test_a_history_copy_never_replaces_a_live_copy_queued_before_it(world):
    memory = world.memory
    live = StoredMessage(99, GUILD, CHANNEL, ALICE, "alice", "edited after the page was read", 1.0, 2.0)
    stale = StoredMessage(99, GUILD, CHANNEL, ALICE, "alice", "as the page had it", 1.0)
    await memory.capture.submit(live)
    await memory.capture.submit(stale, only_new=True)
    later = StoredMessage(99, GUILD, CHANNEL, ALICE, "alice", "edited once more", 1.0, 3.0)
    await memory.capture.drain()
    assert (await world.stored())[99].content == live.content
    await memory.capture.submit(later)
    assert (await world.stored())[99].content == later.content


@pytest.mark.usefixtures("backend")  # on SQLite + FAISS and on Postgres + pgvector
async def test_a_stopped_import_resumes_from_its_cursor(world):
    kept = chat(world.discord, CHANNEL, 400)
    await world.importer.start(GUILD, [ChannelRef(CHANNEL, name="general")])
    cursors = ImportCursors(world.memory.store)
    while (await cursors.channels(GUILD))[0].cursor == 0:
        await asyncio.sleep(0.01)
    await world.importer.close()  # the process stops mid-import
    (row,) = await cursors.channels(GUILD)
    assert row.status == "running" and 0 < row.cursor < kept[-1]

    again = world.new_importer()
    (progress,) = await again.resume_unfinished()
    await again.wait(GUILD)
    assert sorted(await world.stored()) == kept
    resumed = [q for q in world.discord.message_requests(CHANNEL) if int(q["after"]) >= row.cursor]
    assert resumed[0]["after"] == str(row.cursor)  # read on from the cursor, not from the start
    assert (await cursors.channels(GUILD))[0].status == DONE and progress.state == "done"


async def test_pause_resume_and_cancel(world):
    chat(world.discord, CHANNEL, 300)
    importer = world.importer
    await importer.start(GUILD, [ChannelRef(CHANNEL, name="general")])
    await importer.pause(GUILD)
    read = importer.progress(GUILD).read
    await asyncio.sleep(0.3)
    assert importer.progress(GUILD).read <= read + 100 and importer.progress(GUILD).state == "paused"
    assert {r.status for r in await ImportCursors(world.memory.store).channels(GUILD)} == {"paused"}
    await importer.resume(GUILD)
    await importer.cancel(GUILD)
    assert importer.progress(GUILD).state == "cancelled"
    assert (await ImportCursors(world.memory.store).channels(GUILD))[0].status in ("cancelled", "done")


async def test_guilds_beyond_the_limit_wait_their_turn_queued(world):
    other_guild, other_channel = GUILD + 1, OTHER + 1
    world.discord.channel(other_guild, other_channel, "elsewhere")
    kept = chat(world.discord, CHANNEL, 120)
    kept_elsewhere = chat(world.discord, other_channel, 40)
    importer = world.new_importer(guilds_at_once=1)
    try:
        await importer.start(GUILD, [ChannelRef(CHANNEL, name="general")])
        await importer.pause(GUILD)  # holds the one turn
        await asyncio.sleep(0.05)
        await importer.start(other_guild, [ChannelRef(other_channel, name="elsewhere")])
        await asyncio.sleep(0.2)
        waiting = importer.progress(other_guild)
        assert waiting.state == "queued" and waiting.read == 0
        assert not world.discord.message_requests(other_channel)
        await importer.resume(GUILD)
        first, second = await importer.wait(GUILD), await importer.wait(other_guild)
        assert (first.state, second.state) == ("done", "done")
        elsewhere = await world.memory.store.scroll_messages(other_guild, other_channel, 0, 1000)
        assert sorted(await world.stored()) == kept and sorted(m.id for m in elsewhere) == kept_elsewhere
    finally:
        await importer.close()


@pytest.mark.usefixtures("backend")  # on SQLite + FAISS and on Postgres + pgvector
async def test_gap_fill_fetches_what_was_posted_while_away_bounded(world):
    before = chat(world.discord, CHANNEL, 50)
    await import_all(world)
    went_away = snowflake_at(dt.datetime.now(dt.UTC).timestamp())
    missed = chat(world.discord, CHANNEL, 150, start=START + dt.timedelta(days=1))
    empty_elsewhere = world.discord.post(OTHER, "never imported here", ALICE)

    channels = [ChannelRef(CHANNEL, name="general"), ChannelRef(OTHER, name="random")]
    progress = await world.new_importer(gap_fill_max_messages=100).fill_gap(GUILD, channels, went_away)
    first_hundred = [int(m["id"]) for m in world.discord.channels[CHANNEL].messages if int(m["id"]) > before[-1]]
    first_hundred = first_hundred[:100]
    assert sorted(await world.stored()) == before + [i for i in missed if i <= first_hundred[-1]]
    assert progress.read == 100  # bounded
    progress = await world.importer.fill_gap(GUILD, channels, went_away)
    assert sorted(await world.stored()) == before + missed
    assert int(empty_elsewhere["id"]) not in await world.stored(OTHER)  # nothing stored there: import's job


async def test_an_import_during_a_migration_lands_in_both_spaces(world, tiny_qwen3_dir):
    memory = world.memory
    target = await migrating(memory, tiny_qwen3_dir)
    kept = chat(world.discord, CHANNEL, 40)
    await import_all(world)
    for space in (memory.default_space, target):
        assert await memory.store.count_vectors(space.id, GUILD, CHANNEL) == len(kept)


def test_size_estimate_from_the_first_and_newest_pages():
    minute = 60_000 << 22
    dense = [CHANNEL + i * minute for i in range(100)]  # a message a minute
    newest = [CHANNEL + 10_000 * minute + i * minute for i in range(100)]
    estimate = estimate_size(dense, newest)
    assert not estimate.exact and 9_000 <= estimate.messages <= 11_000
    assert estimate.requests == -(-estimate.messages // 100)
    assert estimate_size(dense[:40], []).messages == 40 and estimate_size(dense[:40], []).exact


async def test_a_resume_embeds_what_a_killed_process_stored_past_its_cursor_in_every_write_space(world, tiny_qwen3_dir):
    memory = world.memory
    target = await migrating(memory, tiny_qwen3_dir)
    kept = chat(world.discord, CHANNEL, 150)
    first_page = [m for m in world.discord.channels[CHANNEL].messages[:100]]
    stored_unembedded = [  # what the writer stored of the first page before the kill, without its vectors
        StoredMessage(int(m["id"]), GUILD, CHANNEL, int(m["author"]["id"]), "x", m["content"], 1.0)
        for m in first_page
        if int(m["id"]) in kept
    ]
    await memory.store.add_messages(stored_unembedded)
    cursors = ImportCursors(memory.store)
    await cursors.queue(GUILD, [ChannelRef(CHANNEL, name="general")], 0)
    await cursors.set_status(GUILD, CHANNEL, "running")
    await cursors.queued(GUILD, CHANNEL, int(first_page[-1]["id"]))  # handed to the writer, cursor still 0

    await world.importer.resume_unfinished()
    await world.importer.wait(GUILD)
    assert sorted(await world.stored()) == kept
    for space in (memory.default_space, target):
        assert await memory.store.count_vectors(space.id, GUILD, CHANNEL) == len(kept)
