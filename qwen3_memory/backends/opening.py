"""Which backend holds the memory, chosen by ``memory_system.backend``.

``sqlite``: one SQLite file plus FAISS index files, the embedded default for one bot process.
``postgres``: PostgreSQL + pgvector, shared by several shard processes on several hosts; its
vector tables are the indexes. Both expose the same store and catalog methods, so capture,
recall, the migration engine and the cogs never ask which one they run on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from qwen3_memory.backends.sqlite.catalog import IndexCatalog
from qwen3_memory.backends.sqlite.index import IndexParams
from qwen3_memory.backends.sqlite.store import SQLiteStore
from qwen3_memory.errors import StoreError
from qwen3_memory.settings import Settings

if TYPE_CHECKING:
    from qwen3_memory.backends.postgres.catalog import PgVectorCatalog
    from qwen3_memory.backends.postgres.store import PostgresStore

Store = Union[SQLiteStore, "PostgresStore"]
Catalog = Union[IndexCatalog, "PgVectorCatalog"]


def is_postgres(store: Store) -> bool:
    return not isinstance(store, SQLiteStore)


async def open_store(settings: Settings) -> Store:
    """The configured store, schema upgraded; the DSN comes from settings or ``MEMORY_DATABASE_URL``."""
    if settings.memory.backend != "postgres":
        return await SQLiteStore.open(settings.database_path)
    dsn = settings.database_url
    if not dsn:
        raise StoreError(
            "memory_system.backend is 'postgres' but no server is given: set memory_system.database_url "
            "or the MEMORY_DATABASE_URL environment variable (postgresql://user:password@host:5432/dbname)"
        )
    from qwen3_memory.backends.postgres.store import PostgresStore

    return await PostgresStore.open(dsn, max_size=max(4, settings.memory.performance.max_concurrent_queries + 2))


def make_catalog(settings: Settings, store: Store) -> Catalog:
    """The live indexes: FAISS files beside SQLite, or the pgvector tables themselves."""
    ms = settings.memory
    if is_postgres(store):
        from qwen3_memory.backends.postgres.catalog import PgVectorCatalog

        return PgVectorCatalog(store, ef_search=ms.index.hnsw_ef_search)
    return IndexCatalog(
        store,
        settings.vectors_dir,
        IndexParams(ms.index.approximate_threshold, ms.index.hnsw_m, ms.index.hnsw_ef_search),
    )


def make_claims(settings: Settings, store: Store):
    """Job claims: in-process for SQLite, Postgres advisory locks shared by every shard process."""
    from qwen3_memory.backends.claims import AdvisoryClaims, LocalClaims

    return AdvisoryClaims(settings.database_url) if is_postgres(store) else LocalClaims()
