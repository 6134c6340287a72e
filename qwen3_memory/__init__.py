"""qwen3-memory: a per-channel semantic memory of Discord chat, and its migration between embedding models.

The library imports without discord.py: the cogs in ``cogs/``, the command lines
(``python -m qwen3_memory``, ``python -m qwen3_memory.migration``), the benchmarks and other bots'
cogs all use it directly. Start at :class:`qwen3_memory.memory.Memory`, which wires settings, a
store (:mod:`qwen3_memory.backends`), the models, capture and recall; the migration engine is
:class:`qwen3_memory.migration.engine.MigrationEngine`.
"""
