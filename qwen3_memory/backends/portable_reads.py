"""Reads that are the same SQL on both backends, written once.

The SQL uses ``?`` placeholders: SQLite runs it as is and the Postgres store's ``fetchall`` /
``fetchone`` translate them. Whatever differs (vectors, full-text search, bulk writes) stays in
each store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qwen3_memory.errors import StoreError
from qwen3_memory.records import SpaceRecord, StoredMessage
from qwen3_memory.space import EmbeddingSpace

MESSAGE_COLUMNS = "id, guild_id, channel_id, author_id, author_name, content, created_at, edited_at"


def message_of(row: Sequence) -> StoredMessage:
    """A :class:`StoredMessage` from a row of :data:`MESSAGE_COLUMNS`."""
    return StoredMessage(*row)


class PortableReads:
    """Mixin of both stores; needs ``fetchall(sql, params)`` and ``fetchone(sql, params)``."""

    async def fetchall(self, sql: str, params: Sequence = ()) -> list[Any]:  # pragma: no cover - the stores'
        raise NotImplementedError

    async def fetchone(self, sql: str, params: Sequence = ()) -> Any:  # pragma: no cover - the stores'
        raise NotImplementedError

    async def get_space(self, space_id: int) -> SpaceRecord:
        row = await self.fetchone("SELECT id, spec FROM spaces WHERE id = ?", (space_id,))
        if row is None:
            raise StoreError(f"embedding space {space_id} does not exist")
        return SpaceRecord(row[0], EmbeddingSpace.from_json(row[1]))

    async def list_spaces(self) -> list[SpaceRecord]:
        rows = await self.fetchall("SELECT id, spec FROM spaces ORDER BY id")
        return [SpaceRecord(r[0], EmbeddingSpace.from_json(r[1])) for r in rows]

    async def author_message_ids(self, guild_id: int, author_id: int) -> list[int]:
        rows = await self.fetchall(
            "SELECT id FROM messages WHERE guild_id = ? AND author_id = ? ORDER BY id", (guild_id, author_id)
        )
        return [r[0] for r in rows]

    async def opted_out_users(self, guild_id: int) -> set[int]:
        rows = await self.fetchall("SELECT user_id FROM opted_out_users WHERE guild_id = ?", (guild_id,))
        return {r[0] for r in rows}

    async def scroll_messages(
        self, guild_id: int, channel_id: int, after_id: int = 0, limit: int = 256, up_to_id: int = 2**63 - 1
    ) -> list[StoredMessage]:
        """The channel's messages with ``after_id`` < id <= ``up_to_id``, oldest first (the cursor order)."""
        rows = await self.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE guild_id = ? AND channel_id = ? AND id > ? AND id <= ? "
            "ORDER BY id LIMIT ?",
            (guild_id, channel_id, after_id, up_to_id, limit),
        )
        return [message_of(r) for r in rows]

    async def following_messages(
        self, guild_id: int, channel_id: int, sources: Sequence[tuple[int, float]], lines: int, seconds: float
    ) -> list[tuple[int, int, int]]:
        """(source id, follower id, lines after the source) for each (source id, source time): the
        channel's next ``lines`` messages written at most ``seconds`` after the source. One round trip."""
        if not sources:
            return []
        parts, params = [], []
        for n, (source_id, created_at) in enumerate(sources):
            parts.append(
                f"SELECT * FROM (SELECT {n} AS source, id FROM messages WHERE guild_id = ? AND channel_id = ? "
                f"AND id > ? AND created_at <= ? ORDER BY id LIMIT ?) AS f{n}"
            )
            params += [guild_id, channel_id, int(source_id), float(created_at) + seconds, lines]
        rows = await self.fetchall(" UNION ALL ".join(parts), params)
        result, position = [], {}
        for n, message_id in sorted(rows, key=lambda r: (r[0], r[1])):
            position[n] = position.get(n, 0) + 1
            result.append((int(sources[n][0]), int(message_id), position[n]))
        return result

    async def sample_messages(self, guild_id: int, channel_id: int, n: int) -> list[StoredMessage]:
        """Up to ``n`` random messages of the channel (for verification queries)."""
        rows = await self.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE guild_id = ? AND channel_id = ? ORDER BY random() LIMIT ?",
            (guild_id, channel_id, n),
        )
        return [message_of(r) for r in rows]

    async def newest_message_id(self, guild_id: int, channel_id: int) -> int:
        row = await self.fetchone(
            "SELECT MAX(id) FROM messages WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
        )
        return int(row[0] or 0)

    async def count_messages(self, guild_id: int, channel_id: int) -> int:
        row = await self.fetchone(
            "SELECT COUNT(*) FROM messages WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
        )
        return int(row[0])

    async def message_channels(self) -> list[tuple[int, int, int]]:
        """(guild, channel, message count) of every channel holding messages."""
        rows = await self.fetchall(
            "SELECT guild_id, channel_id, COUNT(*) FROM messages GROUP BY guild_id, channel_id ORDER BY 3, 1, 2"
        )
        return [(r[0], r[1], r[2]) for r in rows]
