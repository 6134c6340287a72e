"""The ``history_imports`` table: per channel what an import was asked to do and how far it got.

The cursor is the newest message id whose page the capture writer has written, so a restart (or a
``kill -9``) resumes right after it; what was written past it is recognised as already stored.
The SQL is portable (``?`` placeholders, ``ON CONFLICT``), as the migration tables'.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from qwen3_memory.backends import Store
from qwen3_memory.history.source import ChannelRef

QUEUED, RUNNING, PAUSED = "queued", "running", "paused"
DONE, CANCELLED, FAILED = "done", "cancelled", "failed"
UNFINISHED = (QUEUED, RUNNING, PAUSED)

_COLUMNS = (
    "guild_id, channel_id, parent_id, status, cursor, read_count, stored_count, skipped_count, error, queued_up_to"
)


@dataclass(frozen=True)
class ChannelImport:
    guild_id: int
    channel_id: int
    parent_id: int
    status: str
    cursor: int
    read: int
    stored: int
    skipped: int
    error: str | None
    queued_up_to: int = 0  # the newest id handed to the writer (past the cursor when a process was killed)

    @property
    def ref(self) -> ChannelRef:
        return ChannelRef(self.channel_id, self.parent_id)


class ImportCursors:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def queue(self, guild_id: int, channels: Sequence[ChannelRef], since_id: int) -> None:
        """(Re)start these channels from ``since_id`` (messages already stored are skipped when read again)."""
        now = time.time()
        async with self.store.transaction() as db:
            await db.executemany(
                "INSERT INTO history_imports(guild_id, channel_id, parent_id, status, cursor, updated_at) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT (guild_id, channel_id) DO UPDATE SET parent_id = excluded.parent_id, "
                "status = excluded.status, cursor = excluded.cursor, read_count = 0, stored_count = 0, "
                "skipped_count = 0, error = NULL, updated_at = excluded.updated_at",
                [(guild_id, c.channel_id, c.parent_id, QUEUED, since_id, now) for c in channels],
            )

    async def advance(self, guild_id: int, channel_id: int, cursor: int, read: int, stored: int, skipped: int) -> None:
        """Move the cursor past a written page and add its counts (one statement, so they never disagree)."""
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE history_imports SET cursor = ?, read_count = read_count + ?, stored_count = stored_count + ?, "
                "skipped_count = skipped_count + ?, updated_at = ? "
                "WHERE guild_id = ? AND channel_id = ? AND cursor < ?",
                (cursor, read, stored, skipped, time.time(), guild_id, channel_id, cursor),
            )

    async def queued(self, guild_id: int, channel_id: int, up_to: int) -> None:
        """A page up to ``up_to`` was handed to the writer (a killed process may have stored it without vectors)."""
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE history_imports SET queued_up_to = ? "
                "WHERE guild_id = ? AND channel_id = ? AND queued_up_to < ?",
                (up_to, guild_id, channel_id, up_to),
            )

    async def adopt(self, rows: Sequence[ChannelImport]) -> None:
        """Take over rows read from another store (a memory moved there): each channel keeps whichever of the
        two went further, so running the copy again never moves a cursor back."""
        now = time.time()
        async with self.store.transaction() as db:
            await db.executemany(
                "INSERT INTO history_imports(guild_id, channel_id, parent_id, status, cursor, read_count, "
                "stored_count, skipped_count, error, queued_up_to, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (guild_id, channel_id) DO UPDATE SET parent_id = excluded.parent_id, "
                "status = excluded.status, cursor = excluded.cursor, read_count = excluded.read_count, "
                "stored_count = excluded.stored_count, skipped_count = excluded.skipped_count, error = excluded.error, "
                "queued_up_to = excluded.queued_up_to, updated_at = excluded.updated_at "
                "WHERE history_imports.cursor < excluded.cursor",
                [
                    (r.guild_id, r.channel_id, r.parent_id, r.status, r.cursor, r.read, r.stored, r.skipped, r.error,
                     r.queued_up_to, now)
                    for r in rows
                ],
            )  # fmt: skip

    async def set_status(
        self, guild_id: int, channel_id: int | None, status: str, error: str | None = None, only: Sequence[str] = ()
    ) -> None:
        """One channel's status, or (``channel_id`` None) every channel of the guild whose status is in ``only``."""
        where, params = _where(guild_id, channel_id, only)
        async with self.store.transaction() as db:
            await db.execute(
                f"UPDATE history_imports SET status = ?, error = ?, updated_at = ? WHERE {where}",
                [status, error, time.time(), *params],
            )

    async def channels(self, guild_id: int | None = None, statuses: Sequence[str] = ()) -> list[ChannelImport]:
        """Rows of one guild (or all), in the order they are imported (channels before their threads)."""
        where, params = _where(guild_id, None, statuses)
        rows = await self.store.fetchall(
            f"SELECT {_COLUMNS} FROM history_imports WHERE {where} ORDER BY guild_id, parent_id, channel_id", params
        )
        return [ChannelImport(*row) for row in rows]


def _where(guild_id: int | None, channel_id: int | None, statuses: Sequence[str]) -> tuple[str, list]:
    """The rows of a guild (None: all), a channel (None: all), with one of ``statuses`` (none: any)."""
    conditions, params = ["1 = 1"], []
    for column, value in (("guild_id", guild_id), ("channel_id", channel_id)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if statuses:
        conditions.append(f"status IN ({','.join('?' * len(statuses))})")
        params += list(statuses)
    return " AND ".join(conditions), params
