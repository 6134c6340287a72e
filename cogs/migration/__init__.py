"""Zero-downtime migration of the memory to a new embedding space: engine, command line and admin cog."""

from __future__ import annotations


async def setup(bot) -> None:
    """Load the /migrate commands; one MigrationEngine per bot, kept as ``bot.migration_engine``."""
    from cogs.migration.cog import (
        MigrationCog,  # imported here, so importing the package (the CLI, the engine) costs nothing
    )
    from qwen3_memory.migration.engine import MigrationEngine

    memory = getattr(bot, "memory", None)
    if memory is None:
        raise RuntimeError(
            "cogs.migration needs bot.memory: open it with `bot.memory = await Memory.open(settings)` in the bot's "
            "setup_hook before loading the extension (bot.py does this)"
        )
    engine = getattr(bot, "migration_engine", None)
    if engine is None or engine.memory is not memory:
        engine = bot.migration_engine = MigrationEngine(memory)
    await bot.add_cog(MigrationCog(bot, engine))
