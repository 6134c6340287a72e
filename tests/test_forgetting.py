"""Forgotten means gone: from the database's files, from every space's index files, and for good.

A member's ``forget-me`` and a message deleted in Discord go through one deletion ledger that every
write path honours; these tests read the files themselves (the SQLite database and its log, the
FAISS index files of every space) rather than trusting the store's answers.
"""

from __future__ import annotations

import numpy as np
import pytest

from qwen3_memory.backends.sqlite.index import IndexParams, VectorIndex
from qwen3_memory.memory import Memory
from qwen3_memory.space import EmbeddingSpace
from tests.factories import message

ALICE, BOB = 100, 200
SECRET = "zanzibarquokka"  # a word nobody else writes: findable in raw bytes


async def post(memory: Memory, *messages) -> None:
    for m in messages:
        await memory.capture.submit(m)
    await memory.capture.drain()
    await memory.store.flush()


def alices_messages() -> list:
    return [
        message(i, f"my {SECRET} password hint is the name of my first pet ({i})", author_id=ALICE) for i in range(1, 6)
    ]


def others() -> list:
    return [message(i, f"the raid starts at nine, bring potions ({i})", author_id=BOB) for i in range(10, 20)]


def raw_bytes(*paths) -> bytes:
    return b"".join(p.read_bytes() for p in paths if p.exists())


@pytest.mark.usefixtures("backend")
async def test_a_deleted_message_is_never_stored_again(memory):
    await post(memory, *alices_messages()[:1], *others()[:2])
    await memory.capture.delete([1], wait=True)

    await post(memory, alices_messages()[0])  # a late edit event, an import, a replay: the ledger wins
    assert await memory.store.get_messages([1]) == {}
    assert await memory.store.count_messages(1, 10) == 2


@pytest.mark.sqlite_only
async def test_forget_me_leaves_no_trace_in_the_database_files(memory):
    await post(memory, *alices_messages(), *others())
    database = memory.settings.database_path
    assert SECRET.encode() in raw_bytes(database, database.with_name(database.name + "-wal"))

    assert await memory.forget_member(1, ALICE) == 5

    leftovers = raw_bytes(database, database.with_name(database.name + "-wal"))
    assert SECRET.encode() not in leftovers  # not in free pages, the full-text index or the log
    assert b"raid starts at nine" in leftovers  # what others said stays


@pytest.mark.sqlite_only
async def test_forget_me_erases_the_member_from_every_spaces_index_files(memory):
    await post(memory, *alices_messages(), *others())
    store, default = memory.store, memory.default_space
    old = await store.ensure_space(EmbeddingSpace(model="test/old-space", dimension=4))  # a space nothing searches
    rng = np.random.default_rng(3)
    batch = alices_messages() + others()
    await store.ensure_channel(1, 10, default.id)
    await store.add_write_space(1, 10, old.id)
    old_vectors = rng.standard_normal((len(batch), 4)).astype(np.float32)
    await store.put_vectors(old, batch, old_vectors)
    await store.flush()
    store.indexes.forget(old.id, 1, 10)  # only its file holds it now, as after a restart
    _, default_vectors, _ = await store.load_vectors(default, 1, 10)

    await memory.forget_member(1, ALICE)

    for space, vectors in ((default, default_vectors), (old, old_vectors)):
        path = store.indexes.path(space, 1, 10)
        saved = VectorIndex.load(path, IndexParams())
        assert len(saved) == 10 and not set(range(1, 6)) & set(saved.ids().tolist())
        with np.load(path, allow_pickle=False) as data:
            assert not set(range(1, 6)) & set(data["ids"].tolist())  # no id left, not even in a dead slot
        stored = saved._stored_vectors()
        for i in range(5):  # none of her vectors is stored, alive or dead
            assert not np.any(np.all(np.isclose(stored, vectors[i], atol=1e-6), axis=1))


@pytest.mark.sqlite_only
async def test_restoring_a_backup_made_before_a_forget_does_not_bring_it_back(make_settings):
    from qwen3_memory.backends.sqlite.store import SQLiteStore
    from qwen3_memory.migration.backup import create_backup, restore_backup

    settings = make_settings()
    memory = await Memory.open(settings)
    try:
        await post(memory, *alices_messages(), *others())
        backup = await create_backup(settings)  # taken before she asked to be forgotten
        await memory.forget_member(1, ALICE)
        await memory.capture.delete([10], wait=True)  # and a message deleted in Discord
    finally:
        await memory.close()

    await restore_backup(backup, settings)

    store = await SQLiteStore.open(settings.database_path, settings.vectors_dir)
    try:
        assert await store.get_messages([1, 2, 3, 4, 5, 10]) == {}
        assert await store.count_messages(1, 10) == 9
        assert await store.opted_out_users(1) == {ALICE}
        space = (await store.list_spaces())[0]
        assert len(await store.index_info(space, 1, 10)) == 9
    finally:
        await store.close()
    database = settings.database_path
    assert SECRET.encode() not in raw_bytes(database, database.with_name(database.name + "-wal"))
    saved = VectorIndex.load(store.indexes.path(space, 1, 10), IndexParams())
    assert not {1, 2, 3, 4, 5, 10} & set(saved.ids().tolist())
