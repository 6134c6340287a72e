"""The example ``/ask`` cog (examples/ask.py) through the real command tree: a prompt built from Memory.context."""

from __future__ import annotations

import pytest

from examples.ask import CONTEXT_BUDGET_CHARS, INSTRUCTIONS
from tests.discord_harness import DiscordHarness, open_memory

# On SQLite only: the context API's store reads run on both backends in test_filtered_reads / test_recall_context.
ANSWER = "LOCKED: Friday 21:30, bring potions"


@pytest.fixture
async def harness(make_settings) -> DiscordHarness:
    memory = await open_memory(make_settings())
    h = await DiscordHarness.start(memory, extensions=("cogs.memory", "examples.ask"))
    yield h
    await h.close()
    await memory.close()


async def chat(harness: DiscordHarness) -> None:
    for text, who in [("anyone know when the raid starts this week?", 0), (ANSWER, 1), ("see you there", 2)]:
        await harness.post(text, harness.channel(0), harness.member(who))
    await harness.post("the raid in this channel is on monday", harness.channel(1), harness.member(0))
    await harness.settle()


async def test_ask_gives_the_model_this_channels_excerpts_and_the_question(harness):
    await chat(harness)
    prompts: list[str] = []

    async def model(prompt: str) -> str:  # the bot owner's language model
        prompts.append(prompt)
        return "Friday at 21:30."

    harness.bot.ask_model = model
    reply = await harness.slash("ask", member=harness.member(2), question="when is the raid?")
    assert not reply.failed and reply.text == "Friday at 21:30."
    (prompt,) = prompts
    excerpts = prompt.split("Excerpts:\n", 1)[1].split("\n\nQuestion:", 1)[0]
    assert prompt.startswith(INSTRUCTIONS) and prompt.endswith("Question: when is the raid?\nAnswer:")
    assert (
        ANSWER in excerpts
        and f"https://discord.com/channels/{harness.guilds[0].id}/{harness.channel(0).id}/" in excerpts
    )
    assert "monday" not in excerpts and len(excerpts) <= CONTEXT_BUDGET_CHARS
    assert harness.bot.get_cog("Ask").recalls_seen == 1  # the memory_recall event reached the example's listener


async def test_without_a_model_ask_shows_the_prompt(harness):
    await chat(harness)
    reply = await harness.slash("ask", member=harness.member(0), question="when is the raid?")
    assert not reply.failed and "No language model is set up" in reply.text and ANSWER in reply.text
