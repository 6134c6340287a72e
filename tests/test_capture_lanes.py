"""Capture's two lanes: live events go before queued history copies, without letting a history copy bring
back a message deleted live, and history is written in long batches."""

from __future__ import annotations

import pytest

from qwen3_memory.capture import HISTORY_BATCHES
from qwen3_memory.memory import Memory
from tests.factories import TOPICS, message


@pytest.fixture
def writes(memory: Memory, monkeypatch) -> list[list[int]]:
    """The ids of each call the capture writer makes to store messages, in order."""
    calls: list[list[int]] = []
    add = memory.store.add_messages

    async def recorded(messages):
        messages = list(messages)
        calls.append([m.id for m in messages])
        return await add(messages)

    monkeypatch.setattr(memory.store, "add_messages", recorded)
    return calls


def history(n: int, first_id: int = 1000) -> list:
    return [message(first_id + i, f"{TOPICS[i % len(TOPICS)]} (page line {i})") for i in range(n)]


async def test_a_live_message_is_written_before_history_queued_ahead_of_it(memory: Memory, writes):
    for m in history(600):
        await memory.capture.submit(m, only_new=True)
    page_written = await memory.capture.checkpoint()
    await memory.capture.submit(message(5, "live: is the deploy done?"))
    await memory.capture.drain()

    assert writes[0] == [5]  # first, though queued last
    batch = memory.capture.batch_size * HISTORY_BATCHES
    assert [len(w) for w in writes[1:]] == [batch, 600 - batch]  # history in long batches
    assert page_written.done()
    assert len(await memory.store.scroll_messages(1, 10, 0, 1000)) == 601


async def test_a_live_deletion_that_overtakes_a_history_copy_keeps_the_message_deleted(memory: Memory, writes):
    copies = history(3)
    for m in copies:
        await memory.capture.submit(m, only_new=True)
    await memory.capture.delete([copies[1].id])  # deleted in Discord after the import read its page
    await memory.capture.drain()

    stored = {m.id for m in await memory.store.scroll_messages(1, 10, 0, 1000)}
    assert stored == {copies[0].id, copies[2].id}
    assert copies[1].id not in {i for w in writes for i in w}  # dropped before writing, not stored then deleted


async def test_a_live_edit_wins_over_a_history_copy_queued_before_it(memory: Memory):
    stale = message(7, "as the page had it")
    await memory.capture.submit(stale, only_new=True)
    edited = message(7, "edited live after the page was read")
    await memory.capture.submit(edited)
    await memory.capture.drain()
    assert (await memory.store.get_messages([7]))[7].content == edited.content
