"""The embedded backend: one SQLite file (WAL, FTS5) and the FAISS index files derived from it."""
