"""Small builders of real records, settings and memories that several test modules share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from qwen3_memory.memory import Memory
from qwen3_memory.records import StoredMessage
from qwen3_memory.settings import ModelOverrides, load_settings, resolve_profile
from qwen3_memory.space import EmbeddingSpace

# Chat lines of distinct topics, for channels whose messages must not all look alike.


def message(
    id: int,
    content: str,
    guild_id: int = 1,
    channel_id: int = 10,
    author_id: int = 100,
    author_name: str = "alice",
    created_at: float | None = None,
) -> StoredMessage:
    """A stored message with sensible defaults (ids are snowflake-like but small)."""
    return StoredMessage(
        id,
        guild_id,
        channel_id,
        author_id,
        author_name,
        content,
        created_at if created_at is not None else 1_700_000_000.0 + id,
    )


async def faiss_index(store, space, guild_id: int, channel_id: int):
    """The channel's FAISS index, up to date with the database, on the SQLite backend; None on Postgres,
    whose vector table is the index (the store-level checks cover it)."""
    indexes = getattr(store, "indexes", None)
    return None if indexes is None else await indexes.get(space, guild_id, channel_id, validate=True)


TOPICS = [
    "the raid starts at nine tonight",
    "my python script throws a KeyError",
    "pizza or sushi for dinner",
    "the new album drops on friday",
    "server maintenance is on sunday",
    "who wants to play chess later",
]


def qwen3_target(tiny_dir: Path, dimension: int = 64) -> EmbeddingSpace:
    """The qwen3_medium_performance space, loaded from a tiny random Qwen3 and cut to ``dimension``."""
    return resolve_profile("qwen3_medium_performance", ModelOverrides(str(tiny_dir), dimension)).embedding


# The command-line tests' memory: 2,100 messages in three channels of two guilds.
CLI_CHANNELS = {(1, 10): 700, (1, 11): 500, (2, 20): 900}


def write_settings(directory: Path, tiny_dir: Path) -> Path:
    """settings.json of a memory in 32-d tiny Qwen3 whose migration target is the 64-d cut of the same model."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "settings.json"
    path.write_text(
        json.dumps(
            {
                "memory_system": {
                    "profile": "qwen3_medium_performance",
                    "model_overrides": {"embedding_path": str(tiny_dir), "embedding_dimension": 32},
                    "paths": {"data_dir": "data"},
                    "migration": {"target_embedding_path": str(tiny_dir), "target_embedding_dimension": 64},
                }
            }
        )
    )
    return path


async def populate(settings_path: Path, channels: dict[tuple[int, int], int] = CLI_CHANNELS) -> None:
    """Write ``channels``' messages (and their vectors) into the memory those settings name, as capture does."""
    memory = await Memory.open(load_settings(settings_path), start_capture=False)
    try:
        next_id = 1_000
        for (guild, channel), n in channels.items():
            batch = [
                message(next_id + i, f"message {i} in channel {channel}: remember the plan {i % 13}", guild, channel)
                for i in range(n)
            ]
            await memory.capture.write(batch)
            next_id += n
        await memory.store.flush()
    finally:
        await memory.close()


def make_unwritable(directory: Path, monkeypatch) -> Path:
    """``directory`` exists and this process may not write into it: mode 0o555, and for root (whom modes do
    not stop: only a read-only file system would) os.access answers for it as it does for any other user."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o555)
    if os.geteuid() == 0:
        real_access = os.access

        def access(path, mode, *args, **kwargs):
            if Path(path) == directory and mode & os.W_OK:
                return False
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    return directory


REPO = Path(__file__).resolve().parents[1]


def migration_cli(settings: Path, *args: str) -> subprocess.Popen:
    """``python -m qwen3_memory.migration --settings SETTINGS ARGS`` in a process of its own, output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "qwen3_memory.migration", "--settings", str(settings), *args],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
