"""An example of another cog using the memory: ``/ask`` builds a language-model prompt from this channel's memory.

Load it beside the memory cog (``MemoryBot(..., extensions=("cogs.memory", "examples.ask"))``, or add
``"examples.ask"`` to ``EXTENSIONS`` in bot.py). It shows the two things a chat cog needs:

* :meth:`Memory.context` for the excerpts of this channel about the question (authors, UTC times,
  jump links), de-duplicated and within a character budget, ready to paste into a prompt;
* the ``memory_recall`` event, which the memory cog dispatches after every recall (here: counted).

No model ships with the project: set ``bot.ask_model`` to an async function ``prompt -> answer`` (a
call to your LLM). Without one, ``/ask`` shows the prompt it would send.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from qwen3_memory.hooks import RecallEvent
from qwen3_memory.memory import Memory

CONTEXT_BUDGET_CHARS = 3000  # the excerpts' share of the prompt; the model's context window sets it in practice
REPLY_LIMIT = 2000  # Discord's message length
INSTRUCTIONS = (
    "You answer questions about a Discord channel using only the excerpts of it below. Lines marked » are the "
    "best matches; the others are the conversation around them. Times are UTC. Say so if the excerpts do not "
    "answer the question, and end with the link of each excerpt you used."
)


def build_prompt(question: str, excerpts: str) -> str:
    """The prompt: instructions, the channel's excerpts, the question."""
    return (
        f"{INSTRUCTIONS}\n\nExcerpts:\n{excerpts or '(nothing relevant remembered)'}\n\nQuestion: {question}\nAnswer:"
    )


class AskCog(commands.Cog, name="Ask"):
    """Answers questions about the channel from its memory, through a language model the bot owner provides."""

    def __init__(self, bot: commands.Bot, memory: Memory) -> None:
        self.bot = bot
        self.memory = memory
        self.recalls_seen = 0  # any recall of the memory, from any cog: what the memory_recall event carries

    @commands.Cog.listener()
    async def on_memory_recall(self, event: RecallEvent) -> None:
        self.recalls_seen += 1

    @app_commands.command(name="ask", description="Ask a question about what was said in this channel")
    @app_commands.describe(question="Your question")
    @app_commands.guild_only()
    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        await interaction.response.defer(thinking=True)
        context = await self.memory.context(
            interaction.guild_id, interaction.channel_id, question, budget_chars=CONTEXT_BUDGET_CHARS
        )
        prompt = build_prompt(question, context.text)
        model = getattr(self.bot, "ask_model", None)
        if model is None:
            preview = prompt[: REPLY_LIMIT - 80].replace("```", "'''")
            await interaction.followup.send(f"No language model is set up; the prompt would be:\n```\n{preview}\n```")
            return
        answer = await model(prompt)
        await interaction.followup.send(
            answer[:REPLY_LIMIT], allowed_mentions=discord.AllowedMentions.none(), suppress_embeds=True
        )


async def setup(bot: commands.Bot) -> None:
    memory = getattr(bot, "memory", None)
    if memory is None:
        raise RuntimeError("examples.ask needs bot.memory (bot.py opens it before loading extensions)")
    await bot.add_cog(AskCog(bot, memory))
