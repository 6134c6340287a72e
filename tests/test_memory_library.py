"""The library side of the /memory commands, on a real Memory without Discord: stats, forget-me and
remember-me, capture flags, recall."""

from __future__ import annotations

import pytest

from qwen3_memory.memory import Memory
from qwen3_memory.stats import memory_stats
from tests.factories import message

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on SQLite + FAISS and on Postgres

ALICE, BOB = 100, 200


async def post(memory: Memory, *messages) -> None:
    """Messages through the capture queue, written, embedded and their indexes saved."""
    for m in messages:
        await memory.capture.submit(m)
    await memory.capture.drain()
    await memory.store.flush()


# ---------------------------------------------------------------------------------------- stats
async def test_each_channel_shows_its_messages_capture_flag_spaces_vectors_and_index(memory):
    await post(memory, message(1, "the picnic moved to Saturday"), message(2, "bring sandwiches", channel_id=10))
    await post(memory, message(3, "hello from the other channel", channel_id=11))

    stats = await memory_stats(memory, guild_id=1)

    assert stats.profile == memory.settings.memory.profile and stats.channel_count == 2
    first = next(c for c in stats.channels if c.channel_id == 10)
    space = memory.default_space
    assert (first.messages, first.capture) == (2, True)
    assert (first.read_space_id, first.write_space_ids) == (space.id, (space.id,))
    [in_space] = first.spaces
    assert (in_space.space, in_space.vectors) == (space, 2)
    assert in_space.index == await memory.store.index_info(space, 1, 10, load=False)
    assert next(c for c in stats.channels if c.channel_id == 11).messages == 1


async def test_a_disabled_channel_shows_capture_off(memory):
    await post(memory, message(1, "the picnic moved to Saturday"))
    await memory.set_capture_enabled(1, 10, False)
    [channel] = (await memory_stats(memory, guild_id=1)).channels
    assert not channel.capture and channel.messages == 1


async def test_limit_shortens_the_channel_list_but_not_the_count(memory):
    await post(memory, *[message(i, f"message number {i}", channel_id=10 + i) for i in range(1, 4)])
    stats = await memory_stats(memory, guild_id=1, limit=2)
    assert stats.channel_count == 3 and len(stats.channels) == 2


async def test_stats_are_per_guild(memory):
    await post(memory, message(1, "in the first server"), message(2, "in the second server", guild_id=2))
    stats = await memory_stats(memory, guild_id=2)
    assert [(c.channel_id, c.messages) for c in stats.channels] == [(10, 1)]


async def test_the_capture_queue_counters_come_along(memory):
    await post(memory, message(1, "the picnic moved to Saturday"))
    stats = await memory_stats(memory, guild_id=1)
    assert (stats.pending, stats.embedded, stats.failures) == (0, memory.capture.embedded, 0)
    assert stats.embedded >= 1


# ---------------------------------------------------------------------------------------- forget / remember
async def test_forget_member_deletes_their_messages_and_vectors_in_that_guild_only(memory):
    mine = [message(1, "the picnic moved to Saturday", author_id=ALICE), message(2, "bring a frisbee", author_id=ALICE)]
    theirs = message(3, "I fixed the login bug", author_id=BOB)
    elsewhere = message(4, "the picnic in another server", guild_id=2, author_id=ALICE)
    await post(memory, *mine, theirs, elsewhere)

    assert await memory.forget_member(1, ALICE) == 2

    space = memory.default_space.id
    assert await memory.store.author_message_ids(1, ALICE) == []
    assert await memory.store.get_vectors(space, [m.id for m in mine]) == {}
    assert set(await memory.store.get_messages([theirs.id, elsewhere.id])) == {theirs.id, elsewhere.id}


async def test_forget_member_also_deletes_messages_still_queued(memory):
    await memory.capture.submit(message(1, "queued just before forget-me", author_id=ALICE))
    assert await memory.forget_member(1, ALICE) == 1
    assert await memory.store.author_message_ids(1, ALICE) == []


async def test_a_forgotten_member_is_opted_out_until_remember_member(memory):
    assert not await memory.is_opted_out(1, ALICE)
    await memory.forget_member(1, ALICE)
    assert await memory.is_opted_out(1, ALICE) and not await memory.is_opted_out(2, ALICE)
    assert await memory.store.opted_out_users(1) == {ALICE}

    await memory.remember_member(1, ALICE)
    assert not await memory.is_opted_out(1, ALICE)
    assert await memory.store.opted_out_users(1) == set()


# ---------------------------------------------------------------------------------------- capture flags
@pytest.mark.parametrize("default", [True, False])
async def test_a_channel_without_a_flag_follows_capture_enabled_by_default(make_settings, default):
    memory = await Memory.open(make_settings(capture={"enabled_by_default": default}))
    try:
        assert await memory.capture_enabled(1, 10) is default
    finally:
        await memory.close()


async def test_set_capture_enabled_turns_a_channel_off_and_on(memory):
    await memory.set_capture_enabled(1, 10, False)
    assert not await memory.capture_enabled(1, 10)
    assert (await memory.store.get_channel(1, 10)).enabled is False
    await memory.set_capture_enabled(1, 10, True)
    assert await memory.capture_enabled(1, 10)


async def test_a_thread_without_a_flag_follows_its_parent(memory):
    await memory.set_capture_enabled(1, 10, False)
    assert not await memory.capture_enabled(1, 50, parent_id=10)
    assert await memory.capture_enabled(1, 51, parent_id=11)


async def test_remembered_threads_named_follow_their_parent(memory):
    await post(memory, message(1, "a message in a thread", channel_id=50), message(2, "in another", channel_id=60))
    await memory.set_capture_enabled(1, 10, False, threads=[50])
    assert not await memory.capture_enabled(1, 50, parent_id=10)
    assert (await memory.store.get_channel(1, 50)).enabled is False
    assert (await memory.store.get_channel(1, 60)).enabled is True


# ---------------------------------------------------------------------------------------- recall
async def test_recall_leaves_out_the_question_and_keeps_k(memory):
    await post(
        memory,
        message(1, "The team picnic moved to Saturday at Lakeside Park"),
        message(2, "I fixed the login bug in the authentication service"),
        message(3, "when is the team picnic?"),  # the question, captured before it is answered
    )
    hits = await memory.recall(1, 10, "when is the team picnic?", k=1, exclude=3)
    assert [h.message.id for h in hits] == [1]
    assert 3 in [h.message.id for h in await memory.recall(1, 10, "when is the team picnic?", k=3)]


async def test_the_first_writes_repair_check_never_embeds_what_a_later_batch_is_embedding(memory, monkeypatch):
    service = memory.services.get(memory.default_space.spec)
    await service.aload()
    encode = service.encode_documents

    def slow_encode(*args, **kwargs):  # a later batch is stored long before it is embedded
        import time

        time.sleep(0.05)
        return encode(*args, **kwargs)

    monkeypatch.setattr(service, "encode_documents", slow_encode)
    total = 4 * memory.capture.batch_size
    for i in range(1, total + 1):
        await memory.capture.submit(message(i, f"line {i} of a busy channel"))
    await memory.capture.drain(repairs=True)

    assert memory.capture.embedded == total  # each message embedded once, none twice by the repair check
    assert await memory.store.count_vectors(memory.default_space.id, 1, 10) == total
