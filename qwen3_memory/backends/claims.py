"""Who runs a migration job: a claim that exactly one process holds, released when it dies.

On SQLite the bot and a command-line migration may share the memory: claims are lease rows in the
database (:mod:`qwen3_memory.backends.sqlite.claims`). On Postgres several shard processes share
it: a claim is a session-level advisory lock held on a connection of its own. A process that
crashes or is killed loses its connection, the server releases the lock, and another process's
next ``MigrationEngine.adopt_orphans`` claims the job and resumes it from the cursors committed in
the job tables.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


def claim_key(*parts: object) -> int:
    """A stable signed 64-bit advisory-lock key for e.g. ("job", 7) or ("channel", 7, guild, channel)."""
    digest = hashlib.blake2b(b"qwen3-memory/" + repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Claims(Protocol):
    """A named claim (e.g. ``("job", 7)``) that at most one holder has at a time."""

    async def try_claim(self, *parts: object) -> bool: ...
    async def release(self, *parts: object) -> None: ...
    async def holds(self, *parts: object) -> bool: ...
    async def holder(self, *parts: object) -> Any:
        """Who holds it (something with ``describe()``), or None when that is unknown or nobody does."""

    async def close(self) -> None: ...


class AdvisoryClaims:
    """Claims across processes and hosts: Postgres session advisory locks on one dedicated connection."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the connection
        self._held: set[int] = set()

    async def _connection(self) -> psycopg.AsyncConnection:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
            self._held.clear()  # a new session holds nothing
        return self._conn

    async def try_claim(self, *parts: object) -> bool:
        key = claim_key(*parts)
        async with self._lock:
            if key in self._held:  # advisory locks are re-entrant per session; claims are not
                return False
            conn = await self._connection()
            row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
            if row[0]:
                self._held.add(key)
            return bool(row[0])

    async def release(self, *parts: object) -> None:
        key = claim_key(*parts)
        async with self._lock:
            if key not in self._held or self._conn is None or self._conn.closed:
                self._held.discard(key)
                return
            await self._conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            self._held.discard(key)

    async def holds(self, *parts: object) -> bool:
        """Still ours: a session lock lives as long as its connection, so a live connection means held.

        A connection the server or the network dropped lost every lock with it, and another process
        may already have adopted the job: the runner checks this before each batch and each swap.
        """
        import psycopg

        key = claim_key(*parts)
        async with self._lock:
            if key not in self._held or self._conn is None or self._conn.closed:
                return False
            try:
                await self._conn.execute("SELECT 1")
            except psycopg.Error:
                log.warning("the connection holding migration claims was lost; so were the claims")
                self._held.clear()
                return False
            return True

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.closed:
                try:  # now, not whenever the server reaps the session: a successor may be waiting
                    await self._conn.execute("SELECT pg_advisory_unlock_all()")
                finally:
                    await self._conn.close()
            self._conn = None
            self._held.clear()

    async def holder(self, *parts: object) -> None:
        """Unknown: an advisory lock names a server session, not a bot process."""
        return None
