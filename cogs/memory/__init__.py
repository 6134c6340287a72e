"""The memory cog: ``await bot.load_extension("cogs.memory")`` after opening ``bot.memory`` (see bot.py)."""

from __future__ import annotations


async def setup(bot) -> None:
    from cogs.memory.cog import MemoryCog  # imported here, so importing the package costs nothing

    memory = getattr(bot, "memory", None)
    if memory is None:
        raise RuntimeError(
            "cogs.memory needs bot.memory: open it with `bot.memory = await Memory.open(settings)` in the bot's "
            "setup_hook before loading the extension (bot.py does this)"
        )
    await bot.add_cog(MemoryCog(bot, memory))
