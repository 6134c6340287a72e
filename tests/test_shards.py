"""Two shard processes on one Postgres memory while one of them migrates it, and is killed halfway.

Process A (a subprocess, shard 0) starts the migration and keeps capturing and recalling in its
guild; this test's own event loop is process B (shard 1), doing the same in its guild. Then A is
killed with SIGKILL mid-migration: its advisory lock goes with its connection, B adopts the job
and finishes it from the committed cursors.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qwen3_memory.memory import Memory
from qwen3_memory.migration import jobs as J
from qwen3_memory.migration.engine import MigrationEngine
from qwen3_memory.settings import load_settings
from tests.factories import message
from tests.shard_worker import shard_of

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
GUILD_A, GUILD_B = 2 << 22, 3 << 22  # shard 0 and shard 1 of 2
CHANNEL_A, CHANNEL_B, CHANNEL_B2 = 100, 200, 201
SEED = {(GUILD_A, CHANNEL_A): 240, (GUILD_B, CHANNEL_B): 240, (GUILD_B, CHANNEL_B2): 120}


def write_settings(directory: Path, dsn: str, tiny_dir: Path) -> Path:
    path = directory / "settings.json"
    path.write_text(json.dumps({"memory_system": {
        "backend": "postgres",
        "database_url": dsn,
        "profile": "offline_default",
        "paths": {"data_dir": str(directory / "data")},
        "migration": {"target_profile": "qwen3_medium_performance", "target_embedding_path": str(tiny_dir),
                      "target_embedding_dimension": 64},
    }}))  # fmt: skip
    return path


class Reader(threading.Thread):
    """Collects the worker's JSON lines while it runs."""

    def __init__(self, proc: subprocess.Popen) -> None:
        super().__init__(daemon=True)
        self.proc, self.lines = proc, []

    def run(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.append(json.loads(line))

    def field(self, name: str) -> list:
        return [line for line in list(self.lines) if name in line]


async def seed(settings_path: Path) -> None:
    memory = await Memory.open(load_settings(settings_path), start_capture=False)
    try:
        next_id = 1_000
        for (guild, channel), n in SEED.items():
            await memory.capture.write(
                [message(next_id + i, f"seed {i}: plan {i % 11}", guild, channel) for i in range(n)]
            )
            next_id += n
    finally:
        await memory.close()


def check_recall(report: dict) -> None:
    """Hits all come from one space: the channel's read space just before or just after the recall."""
    spaces = set(report["recall"])
    assert report["recall"], "recall found nothing"
    assert len(spaces) == 1 and spaces <= {report["pointer_before"], report["pointer_after"]}, report


async def test_two_shards_share_a_migration_and_the_survivor_finishes_it(tmp_path, pg_dsn, tiny_qwen3_dir):
    settings_path = write_settings(tmp_path, pg_dsn, tiny_qwen3_dir)
    await seed(settings_path)
    assert shard_of(GUILD_A, 2) == 0 and shard_of(GUILD_B, 2) == 1

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.shard_worker", "--settings", str(settings_path), "--shard-id", "0",
         "--guild", str(GUILD_A), "--channel", str(CHANNEL_A), "--first-id", "5000000", "--migrate",
         "--batch-size", "4"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    reader = Reader(proc)
    reader.start()
    memory = await Memory.open(load_settings(settings_path))  # process B: shard 1
    engine = MigrationEngine(memory)
    captured_b: list[int] = []
    recalls_b: list[dict] = []
    seen_progress: list[int] = []
    next_id = 7_000_000

    async def shard_b_step() -> None:
        nonlocal next_id
        batch = [message(next_id + i, f"the raid starts at nine #{next_id + i}", GUILD_B, CHANNEL_B) for i in range(2)]
        next_id += len(batch)
        for m in batch:
            await memory.capture.submit(m)
        await memory.capture.drain()
        captured_b.extend(m.id for m in batch)
        before = (await memory.store.get_channel(GUILD_B, CHANNEL_B)).read_space_id
        hits = await memory.recaller.recall(GUILD_B, CHANNEL_B, "raid", memory.recall_options(k=5, min_score=-1.0))
        after = (await memory.store.get_channel(GUILD_B, CHANNEL_B)).read_space_id
        recalls_b.append({"recall": [h.space_id for h in hits], "pointer_before": before, "pointer_after": after})

    try:
        # ---- A migrates while both capture and recall; B follows A's progress from the job tables
        deadline = time.monotonic() + 240
        total = sum(SEED.values())
        while True:
            assert time.monotonic() < deadline, f"no progress; worker stderr: {proc.stderr.read()[-2000:]}"
            assert proc.poll() is None, f"the worker ended early: {proc.stderr.read()[-2000:]}"
            await shard_b_step()
            jobs = reader.field("job")
            if not jobs:
                continue
            status = await engine.status(jobs[0]["job"])
            done = sum(c.done for c in status.channels)
            seen_progress.append(done)
            if done >= total * 0.5:  # past the first channels, in the middle of the biggest one
                break
        job_id = reader.field("job")[0]["job"]
        assert engine.runs_elsewhere(await engine.jobs.get(job_id))
        assert any(0 < d < total for d in seen_progress), "B saw A's progress while it ran"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=10)

        # ---- B adopts the orphaned job (the lock left with A's connection) and finishes it
        adopted: list[int] = []
        for _ in range(100):
            adopted = await engine.adopt_orphans()
            if adopted:
                break
            await asyncio.sleep(0.1)
        assert adopted == [job_id]
        task = engine.launch(job_id)
        while not task.done():
            await shard_b_step()
        job = await task
        assert job.status == J.COMPLETED, job.error
        await shard_b_step()  # a recall after the swap
        await memory.capture.drain()

        # ---- every message captured by either shard is in the new space, every channel reads it
        target = job.target_space_id
        channels = await memory.store.list_channels()
        assert {(c.guild_id, c.channel_id): c.read_space_id for c in channels} == {key: target for key in SEED}
        captured_a = [i for line in reader.field("captured") for i in line["captured"]]
        assert captured_a and captured_b
        have = await memory.store.get_vectors(target, captured_a + captured_b)
        assert set(have) == set(captured_a + captured_b)
        for guild, channel in SEED:
            missing = await memory.store.messages_missing_vectors(target, guild, channel)
            assert not [m for m in missing if m.id < 5_000_000], "seeded messages all migrated"
        events = [e for _at, _c, e, _d in await engine.jobs.events(job_id, limit=1000)]
        assert events.count("claimed") == 2  # A, then B
        # ---- both shards kept recalling from the channel's read space, before and after the swap
        for report in reader.field("recall") + recalls_b:
            check_recall(report)
        assert set(recalls_b[-1]["recall"]) == {target}
    finally:
        if proc.poll() is None:
            proc.kill()
        await memory.close()
