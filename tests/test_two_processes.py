"""The bot and a command-line migration on one SQLite memory, in two real processes.

The bot keeps capturing and recalling while ``python -m qwen3_memory.migration migrate`` re-embeds
every channel into a new space and swaps it. Afterwards the bot's own indexes must answer exactly
like an exact search over the database, and every message it captured meanwhile must be in both
spaces (written by the bot into each write space, never lost to the other process's writes).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from qwen3_memory.memory import Memory
from qwen3_memory.settings import load_settings
from tests.factories import TOPICS, message, migration_cli, populate, write_settings

CHANNELS = {(1, 10): 240, (1, 11): 160}
pytestmark = pytest.mark.slow


def exact_top(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = vectors @ query
    order = np.lexsort((ids, -scores))[:k]  # best first, ties by id
    return ids[order].tolist()


async def test_the_bot_and_a_command_line_migration_share_one_sqlite_memory(tmp_path, tiny_qwen3_dir):
    settings_path = write_settings(tmp_path / "bot", tiny_qwen3_dir)
    await populate(settings_path, CHANNELS)
    settings = load_settings(settings_path)
    memory = await Memory.open(settings)  # the bot: its capture writer runs in this process
    migrate = migration_cli(settings_path, "migrate")
    posted: list[int] = []
    try:
        next_id = 50_000
        while migrate.poll() is None:  # members keep chatting and asking while the command line migrates
            for guild, channel in CHANNELS:
                text = f"{TOPICS[next_id % len(TOPICS)]} (said during the migration, {next_id})"
                await memory.capture.submit(message(next_id, text, guild, channel))
                posted.append(next_id)
                next_id += 1
            await memory.recall(1, 10, "when does the raid start")
            await asyncio.sleep(0.05)
            assert len(posted) < 20_000, "the migration never ended"
        out, err = migrate.communicate(timeout=60)
        assert migrate.returncode == 0, err[-3000:]
        assert "StoreLocked" not in err and "locked" not in err
        await memory.capture.drain()

        store = memory.store
        assert len(posted) > 10
        for guild, channel in CHANNELS:
            state = await store.get_channel(guild, channel)
            source, target = state.write_space_ids  # dual-write goes on until finalize
            assert state.read_space_id == target != source  # the command line swapped it
            mine = [i for i in posted if (i - 50_000) % 2 == (channel - 10)]
            for space_id in (source, target):  # every message the bot captured meanwhile is in both spaces
                assert set(await store.get_vectors(space_id, mine)) == set(mine)
            space = await store.get_space(target)
            ids, vectors, _ = await store.load_vectors(space, guild, channel)
            assert (await store.index_info(space, guild, channel)).size == len(ids)
            for query in vectors[:: max(1, len(ids) // 25)]:  # the bot's index answers like the database
                found = [i for i, _ in await store.search(space, guild, channel, query, 10)]
                assert found == exact_top(ids, vectors, query, 10)
    finally:
        if migrate.poll() is None:
            migrate.kill()
        await memory.close()
