"""Small builders of real records for tests."""

from __future__ import annotations

from qwen3_memory.records import StoredMessage


def message(id: int, content: str, guild_id: int = 1, channel_id: int = 10, author_id: int = 100,
            author_name: str = "alice", created_at: float | None = None) -> StoredMessage:
    """A stored message with sensible defaults (ids are snowflake-like but small)."""
    return StoredMessage(id, guild_id, channel_id, author_id, author_name, content,
                         created_at if created_at is not None else 1_700_000_000.0 + id)


async def faiss_index(store, space, guild_id: int, channel_id: int):
    """The channel's FAISS index, up to date with the database, on the SQLite backend; None on Postgres,
    whose vector table is the index (the store-level checks cover it)."""
    indexes = getattr(store, "indexes", None)
    return None if indexes is None else await indexes.get(space, guild_id, channel_id, validate=True)
