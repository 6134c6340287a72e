"""kill -9 a bot process in the middle of a history import, start it again: every human message of the channel
is stored exactly once, in every write space of the channel (a migration's target too)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from qwen3_memory.settings import default_settings
from tests.discord_harness import open_memory
from tests.discord_rest import FakeDiscord, local_discord
from tests.factories import TOPICS, qwen3_target

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
GUILD, CHANNEL = 77, 1_150_000_000_000_000_000
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def cursor(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT cursor FROM history_imports").fetchone()
            return int(row[0]) if row else 0
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


async def worker(data_dir: Path, base_url: str, *flags: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.history_worker", str(data_dir), base_url, str(GUILD), str(CHANNEL), *flags,
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_kill_9_mid_import_then_restart_stores_each_message_once_in_every_write_space(tmp_path, tiny_qwen3_dir):
    data_dir = tmp_path / "data"
    memory = await open_memory(default_settings(paths={"data_dir": str(data_dir)}))
    target = await memory.store.ensure_space(qwen3_target(tiny_qwen3_dir))  # a migration is under way
    await memory.store.ensure_channel(GUILD, CHANNEL, memory.default_space.id)
    await memory.store.add_write_space(GUILD, CHANNEL, target.id)
    spaces = (memory.default_space.id, target.id)
    await memory.close()

    fake = FakeDiscord(page_delay=0.3)
    fake.channel(GUILD, CHANNEL, "general")
    humans = []
    for i in range(700):
        data = fake.post(CHANNEL, f"{TOPICS[i % len(TOPICS)]} ({i})", 5 + i % 4, bot=i % 9 == 0,
                         when=START + dt.timedelta(minutes=i))  # fmt: skip
        if i % 9:
            humans.append(int(data["id"]))
    db = data_dir / "memory" / "memory.db"
    async with local_discord(fake):
        first = await worker(data_dir, fake.base_url)
        while cursor(db) == 0:
            assert first.returncode is None, (await first.stderr.read()).decode()[-2000:]
            await asyncio.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
        await first.wait()
        killed_at = cursor(db)
        assert 0 < killed_at < humans[-1]

        second = await worker(data_dir, fake.base_url, "--resume")
        out, err = await second.communicate()
        assert second.returncode == 0, err.decode()[-2000:]
        assert '"state": "done"' in out.decode()
    assert any(int(q["after"]) == killed_at for q in fake.message_requests(CHANNEL))  # resumed from the cursor

    conn = sqlite3.connect(db)
    try:
        stored = [r[0] for r in conn.execute("SELECT id FROM messages WHERE channel_id = ? ORDER BY id", (CHANNEL,))]
        assert stored == humans  # every human message, once; no bot message
        for space_id in spaces:
            vectors = [r[0] for r in conn.execute("SELECT message_id FROM embeddings WHERE space_id = ? "
                                                  "ORDER BY message_id", (space_id,))]  # fmt: skip
            assert vectors == humans
        assert conn.execute("SELECT status, cursor FROM history_imports").fetchone() == (
            "done",
            int(fake.channels[CHANNEL].messages[-1]["id"]),
        )
    finally:
        conn.close()
