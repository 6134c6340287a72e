"""kill -9 at random points of a command-line migration, then resume: same vectors as an uninterrupted run."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.factories import CLI_CHANNELS, populate, write_settings
from tests.factories import migration_cli as cli

REPO = Path(__file__).resolve().parents[1]
CHANNELS = CLI_CHANNELS
pytestmark = pytest.mark.slow


def progress(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT COALESCE(SUM(done), 0) FROM migration_channels").fetchone()
            return int(row[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def kill_when(proc: subprocess.Popen, db: Path, done_at_least: int, timeout: float = 120) -> bool:
    """SIGKILL ``proc`` once the migration has committed ``done_at_least`` messages; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if progress(db) >= done_at_least:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    raise AssertionError("the migration made no progress")


def target_vectors(db: Path) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    conn = sqlite3.connect(db)
    try:
        space = conn.execute("SELECT target_space_id FROM migrations ORDER BY id DESC LIMIT 1").fetchone()[0]
        result = {}
        for guild, channel in CHANNELS:
            rows = conn.execute(
                "SELECT message_id, vector FROM embeddings WHERE space_id = ? AND guild_id = ? AND "
                "channel_id = ? ORDER BY message_id",
                (space, guild, channel),
            ).fetchall()
            result[(guild, channel)] = (
                np.array([r[0] for r in rows]),
                np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]),
            )
        return result
    finally:
        conn.close()


def test_kill_9_then_resume_gives_the_same_vectors_as_an_uninterrupted_run(tmp_path, tiny_qwen3_dir):
    original = write_settings(tmp_path / "original", tiny_qwen3_dir)
    asyncio.run(populate(original))
    crashed_dir, clean_dir = tmp_path / "crashed", tmp_path / "clean"
    shutil.copytree(original.parent, crashed_dir)
    shutil.copytree(original.parent, clean_dir)
    crashed, clean = crashed_dir / "settings.json", clean_dir / "settings.json"
    db = crashed_dir / "data" / "memory" / "memory.db"
    total = sum(CHANNELS.values())

    run = cli(clean, "migrate", "--no-backup", "--batch-size", "8")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err

    rng = random.Random(7)
    kills = 0
    proc = cli(crashed, "migrate", "--no-backup", "--batch-size", "8")
    for fraction in sorted(rng.uniform(0.05, 0.9) for _ in range(3)):
        kills += kill_when(proc, db, int(total * fraction))
        proc = cli(crashed, "resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert kills >= 2, "the migration finished before it could be killed; make it longer"

    expected, actual = target_vectors(clean_dir / "data" / "memory" / "memory.db"), target_vectors(db)
    for key, n in CHANNELS.items():
        ids, vectors = actual[key]
        assert len(ids) == n and len(set(ids.tolist())) == n  # none lost, none duplicated
        assert np.array_equal(ids, expected[key][0])
        assert np.allclose(vectors, expected[key][1], atol=1e-5)
    conn = sqlite3.connect(db)
    statuses = {r[0] for r in conn.execute("SELECT status FROM migration_channels")}
    job_status = conn.execute("SELECT status FROM migrations").fetchone()[0]
    events = [r[0] for r in conn.execute("SELECT event FROM migration_events")]
    conn.close()
    assert statuses == {"swapped"} and job_status == "completed"
    assert events.count("running") >= kills + 1  # each resume is logged
