"""Recall results as a Discord embed: each hit with the lines around it, within Discord's embed limits.

One excerpt per block of the description: a header line (rank, the hit's author, date, score and a
jump link) and the excerpt's lines quoted below it, the hit marked ▶. Every block gets a fair share
of the room left (what one block does not use goes to the next), and :meth:`Excerpt.fit` drops the
neighbours farthest from a hit first, so the answer itself is the last thing to go.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import discord

from qwen3_memory.filters import RecallFilters
from qwen3_memory.recall.context import Excerpt, ExcerptLine, clip

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FOOTER_LIMIT = 2048
TOTAL_LIMIT = 6000  # title + description + fields + footer of one embed
LINE_CHARS = 200  # the most of one message an excerpt line shows
MEMORY_COLOUR = discord.Colour.blurple()


def snippet(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters, with Discord's markdown escaped."""
    return discord.utils.escape_markdown(clip(text, limit))


def excerpt_line(line: ExcerptLine, chars: int) -> str:
    """``> ▶ **alice** <t:…:t> text`` (the hit) or ``> · **bob** <t:…:t> text`` (a neighbour)."""
    m = line.message
    marker = "▶" if line.is_hit else "·"
    author = discord.utils.escape_markdown(clip(m.author_name, 32))
    return f"> {marker} **{author}** <t:{int(m.created_at)}:t> {snippet(m.content, chars)}"


def excerpt_header(rank: int, excerpt: Excerpt, cosine: bool) -> str:
    hit = excerpt.best_hit
    m = hit.message
    score = hit.similarity if cosine else hit.score
    return (
        f"**{rank}.** {discord.utils.escape_markdown(clip(m.author_name, 32))} · <t:{int(m.created_at)}:d> · "
        f"score {score:.2f} · [jump]({m.jump_url()})"
    )


def filters_text(filters: RecallFilters, author_names: dict[int, str] | None = None) -> str:
    """The filters as a reader says them: ``by alice · after 2026-05-01 · recent first``; '' without any."""
    names = author_names or {}
    parts = []
    if filters.authors:
        parts.append("by " + ", ".join(names.get(a, f"member {a}") for a in filters.authors))
    for word, moment in (("after", filters.after), ("before", filters.before)):
        if moment is not None:
            parts.append(f"{word} {dt.datetime.fromtimestamp(moment, dt.UTC):%Y-%m-%d %H:%M} UTC")
    if filters.recency_half_life_days is not None:
        parts.append("recent first")
    return " · ".join(parts)


def excerpts_embed(excerpts: Sequence[Excerpt], query: str, where: str, conditions: str = "") -> discord.Embed:
    """One embed holding every excerpt that fits (most relevant first), with the query and filters in the footer."""
    cosine = all(not math.isnan(h.similarity) for e in excerpts for h in e.hits)  # NaN: lexical-only recall
    meaning = "cosine similarity to your question" if cosine else "ranking score"
    title = clip(f"🧠 What I remember from {where}", TITLE_LIMIT)
    footer = clip(
        f"for “{clip(query, 120)}”" + (f" · {conditions}" if conditions else "") + f" · score = {meaning}", 300
    )
    room = min(DESCRIPTION_LIMIT, TOTAL_LIMIT - len(title) - len(footer))
    blocks: list[str] = []
    for n, excerpt in enumerate(excerpts):
        used = sum(len(b) for b in blocks) + len(blocks)  # the blocks and their newlines
        share = (room - used) // (len(excerpts) - n) - 1
        header = excerpt_header(len(blocks) + 1, excerpt, cosine)
        lines = excerpt.fit(share - len(header) - 1, excerpt_line, LINE_CHARS) if share > len(header) else []
        if lines:
            blocks.append("\n".join([header, *lines]))
    embed = discord.Embed(title=title, description="\n".join(blocks), colour=MEMORY_COLOUR)
    embed.set_footer(text=footer)
    return embed
