"""Reads that are the same SQL on both backends, written once (and the channel rows a capture batch creates).

The SQL uses ``?`` placeholders: SQLite runs it as is and the Postgres store's ``fetchall`` /
``fetchone`` / ``transaction`` translate them. Whatever differs (vectors, full-text search, bulk
writes) stays in each store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from qwen3_memory.errors import StoreError
from qwen3_memory.records import ChannelState, SpaceRecord, StoredMessage
from qwen3_memory.space import EmbeddingSpace

MESSAGE_COLUMNS = "id, guild_id, channel_id, author_id, author_name, content, created_at, edited_at"
CHANNELS_PER_QUERY = 400  # (guild, channel) pairs per statement, well within both backends' parameter limits


def message_of(row: Sequence) -> StoredMessage:
    """A :class:`StoredMessage` from a row of :data:`MESSAGE_COLUMNS`."""
    return StoredMessage(*row)


class PortableReads:
    """Mixin of both stores; needs ``fetchall(sql, params)`` and ``fetchone(sql, params)``."""

    async def fetchall(self, sql: str, params: Sequence = ()) -> list[Any]:  # pragma: no cover - the stores'
        raise NotImplementedError

    async def fetchone(self, sql: str, params: Sequence = ()) -> Any:  # pragma: no cover - the stores'
        raise NotImplementedError

    def transaction(self) -> AbstractAsyncContextManager[Any]:  # pragma: no cover - the stores'
        raise NotImplementedError

    async def add_write_spaces(self, channels: Iterable[tuple[int, int]], space_id: int) -> None:
        """Add ``space_id`` to the write spaces of every (guild, channel) of ``channels`` in one transaction
        (a migration starts dual-writing a group of small channels at once)."""
        async with self.transaction() as db:
            await db.executemany(
                "INSERT INTO channel_write_spaces(guild_id, channel_id, space_id) VALUES (?,?,?) "
                "ON CONFLICT DO NOTHING",
                [(g, c, space_id) for g, c in sorted(set(channels))],
            )

    async def channels_messages(self, channels: Sequence[tuple[int, int]]) -> list[StoredMessage]:
        """Every message of a few small channels in one read, channel by channel in the given order, by id."""
        order = {pair: n for n, pair in enumerate(channels)}
        found: list[StoredMessage] = []
        for start in range(0, len(channels), CHANNELS_PER_QUERY):
            chunk = channels[start : start + CHANNELS_PER_QUERY]
            rows = await self.fetchall(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE (guild_id, channel_id) IN "
                f"(VALUES {','.join('(?,?)' for _ in chunk)})",
                [x for pair in chunk for x in pair],
            )
            found.extend(message_of(r) for r in rows)
        return sorted(found, key=lambda m: (order[(m.guild_id, m.channel_id)], m.id))

    async def channel_states(self, channels: Iterable[tuple[int, int]]) -> dict[tuple[int, int], ChannelState]:
        """The state of each known (guild, channel) of ``channels``, in two queries per few hundred channels:
        a capture batch asks once for all its channels, not once per channel."""
        pairs = sorted(set(channels))
        states: dict[tuple[int, int], ChannelState] = {}
        for start in range(0, len(pairs), CHANNELS_PER_QUERY):
            chunk = pairs[start : start + CHANNELS_PER_QUERY]
            where = f"WHERE (guild_id, channel_id) IN (VALUES {','.join('(?,?)' for _ in chunk)})"
            params = [x for pair in chunk for x in pair]
            writes: dict[tuple[int, int], list[int]] = {}
            for g, c, space_id in await self.fetchall(
                f"SELECT guild_id, channel_id, space_id FROM channel_write_spaces {where} ORDER BY space_id", params
            ):
                writes.setdefault((g, c), []).append(space_id)
            for g, c, read, enabled in await self.fetchall(
                f"SELECT guild_id, channel_id, read_space_id, enabled FROM channels {where}", params
            ):
                states[(g, c)] = ChannelState(g, c, read, tuple(writes.get((g, c), ())), bool(enabled))
        return states

    async def ensure_channels(
        self, channels: Iterable[tuple[int, int]], space_id: int
    ) -> dict[tuple[int, int], ChannelState]:
        """:meth:`channel_states`, creating the channels not known yet (they read from and write to
        ``space_id``) in one transaction. A channel another process created meanwhile keeps its own."""
        pairs = sorted(set(channels))
        states = await self.channel_states(pairs)
        missing = [pair for pair in pairs if pair not in states]
        if missing:
            async with self.transaction() as db:
                await db.executemany(
                    "INSERT INTO channels(guild_id, channel_id, read_space_id, enabled) VALUES (?,?,?,1) "
                    "ON CONFLICT DO NOTHING",
                    [(g, c, space_id) for g, c in missing],
                )
                await db.executemany(  # only where the insert above created the channel: it has no write space yet
                    "INSERT INTO channel_write_spaces(guild_id, channel_id, space_id) SELECT guild_id, channel_id, "
                    "read_space_id FROM channels c WHERE guild_id = ? AND channel_id = ? AND NOT EXISTS (SELECT 1 "
                    "FROM channel_write_spaces w WHERE w.guild_id = c.guild_id AND w.channel_id = c.channel_id)",
                    missing,
                )
            states.update(await self.channel_states(missing))
        return states

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

    async def neighbours(
        self,
        guild_id: int,
        channel_id: int,
        around_ids: Sequence[int],
        before: int,
        after: int,
        window_seconds: float,
    ) -> list[StoredMessage]:
        """The lines around each of ``around_ids`` in its channel, oldest first, without repeats: up to ``before``
        earlier and ``after`` later messages within ``window_seconds`` of it, and the message itself.

        Only messages of (``guild_id``, ``channel_id``) are read, so an id of another channel brings
        nothing; deleted messages are gone from the table, and so are those of members who opted out.
        """
        parts, params = [], []
        for n, message_id in enumerate(dict.fromkeys(around_ids)):
            at = "(SELECT created_at FROM messages WHERE id = ? AND guild_id = ? AND channel_id = ?)"
            for side, (compare, order, limit) in enumerate((("<", "DESC", before), (">=", "ASC", after + 1))):
                if limit <= 0:
                    continue
                bound = f"created_at >= {at} - ?" if compare == "<" else f"created_at <= {at} + ?"
                parts.append(
                    f"SELECT * FROM (SELECT {MESSAGE_COLUMNS} FROM messages WHERE guild_id = ? AND channel_id = ? "
                    f"AND id {compare} ? AND {bound} ORDER BY id {order} LIMIT ?) AS around_{n}_{side}"
                )
                params += [guild_id, channel_id, message_id, message_id, guild_id, channel_id, window_seconds, limit]
        if not parts:
            return []
        rows = await self.fetchall(" UNION ALL ".join(parts), params)
        return sorted({r[0]: message_of(r) for r in rows}.values(), key=lambda m: m.id)
