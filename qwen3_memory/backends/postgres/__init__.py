"""The shared backend: PostgreSQL + pgvector, one HNSW-indexed table per space, for several bot processes."""
