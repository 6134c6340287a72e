"""Discord extensions of qwen3-memory: the memory cog and the migration cog."""
