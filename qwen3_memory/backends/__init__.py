"""Where the memory is kept, chosen by ``memory_system.backend``.

``sqlite``: one SQLite file plus the FAISS index files it owns, the embedded default for one bot
process. ``postgres``: PostgreSQL + pgvector, shared by several shard processes on several hosts;
its vector tables are the indexes. Both implement :class:`Store`, so capture, recall, the migration
engine and the cogs never ask which one they run on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwen3_memory.backends.protocol import IndexInfo, Store
from qwen3_memory.errors import StoreError

if TYPE_CHECKING:
    from qwen3_memory.settings import Settings

__all__ = ["IndexInfo", "Store", "open_store"]


async def open_store(settings: Settings) -> Store:
    """The configured store, schema upgraded; the DSN comes from settings or ``MEMORY_DATABASE_URL``."""
    ms = settings.memory
    if ms.backend != "postgres":
        from qwen3_memory.backends.sqlite.index import IndexParams
        from qwen3_memory.backends.sqlite.store import SQLiteStore

        params = IndexParams.from_settings(ms.index)
        return await SQLiteStore.open(settings.database_path, settings.vectors_dir, params)
    dsn = settings.database_url
    if not dsn:
        raise StoreError(
            "memory_system.backend is 'postgres' but no server is given: set memory_system.database_url "
            "or the MEMORY_DATABASE_URL environment variable (postgresql://user:password@host:5432/dbname)"
        )
    from qwen3_memory.backends.postgres.store import PostgresStore

    return await PostgresStore.open(
        dsn,
        max_size=max(4, ms.performance.max_concurrent_queries + 2),
        hnsw_ef_search=ms.index.hnsw_ef_search,
    )
