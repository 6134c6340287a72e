"""The aiosqlite look-alike that lets portable SQL (the job tables') run in one Postgres transaction.

Code written against aiosqlite's connection (``execute`` returning a cursor, ``executemany``) gets
a :class:`PgTransaction` from :meth:`~qwen3_memory.backends.postgres.store.PostgresStore.transaction`
and runs unchanged: ``?`` placeholders are translated by :func:`portable_sql`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg

from qwen3_memory.backends.postgres.dialect import portable_sql


class PgCursor:
    """The result of :meth:`PgTransaction.execute`: aiosqlite's cursor surface (rowcount, fetchone, fetchall)."""

    def __init__(self, cursor: psycopg.AsyncCursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def fetchone(self) -> tuple | None:
        return await self._cursor.fetchone() if self._cursor.description is not None else None

    async def fetchall(self) -> list[tuple]:
        return await self._cursor.fetchall() if self._cursor.description is not None else []


class PgTransaction:
    """What :meth:`PostgresStore.transaction` yields: the slice of aiosqlite's connection that portable
    SQL needs (``?`` placeholders, ``RETURNING``, ``ON CONFLICT``), run on one Postgres transaction."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self.connection = conn

    async def execute(self, query: str, params: Sequence = ()) -> PgCursor:
        cursor = self.connection.cursor()
        await cursor.execute(portable_sql(query), params)
        return PgCursor(cursor)

    async def executemany(self, query: str, seq: Iterable[Sequence]) -> None:
        async with self.connection.cursor() as cursor:
            await cursor.executemany(portable_sql(query), list(seq))
