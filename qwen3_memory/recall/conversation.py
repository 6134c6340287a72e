"""Answers live after their questions: pass a question's match on to the lines that follow it.

In chat the message that shares a query's words is often the one that *asked* ("why does certbot
time out?"); the answer comes a few lines later in other words ("it's ufw, allow 80/tcp"). A
message alone cannot be matched to the query, but in its conversation it can. Rather than store a
second vector per message (a window of lines, to be kept right through edits, deletes and every
migration), recall reads the conversation at query time: each of a ranked list's best candidates
that asks something passes a share of its score to the lines that follow it in the channel within
a short time, and the list is re-ordered by what each message earns itself plus what it inherits.
It needs nothing but the stored messages and each list's own scores, so it works in every
embedding space and is right after any edit, delete or migration by construction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from qwen3_memory.backends.protocol import Store
from qwen3_memory.filters import NO_FILTERS, RecallFilters

#: A message that asks: a question mark (ASCII or full-width), or a Chinese question particle or word.
_ASKS = re.compile(r"[?？]|[吗呢么][\s。！!~～]*$|怎么|为什么|什么|哪|谁|几点|如何|有没有")


def asks(text: str) -> bool:
    """Whether a message asks something (its followers may answer it)."""
    return bool(_ASKS.search(text))


@dataclass(frozen=True)
class Follower:
    """A message that follows a source message in its channel: ``lines`` after it (1 = the next)."""

    message_id: int
    source_id: int
    lines: int


@dataclass(frozen=True)
class ConversationOptions:
    """How far a question's match carries. Defaults chosen on the tuning split of
    ``tests/data/eval_conversations.jsonl`` and checked on its other split and on ``eval_chat.jsonl``."""

    sources: int = 3  # how many of a list's best candidates may pass their score on
    lines: int = 8  # to how many following lines of the channel
    gap_seconds: float = 1200.0  # that came at most this long after the source
    carry: float = 1.0  # the share of a source's (list-normalised) score its followers inherit
    decay: float = 1.0  # per line further from the source (1: a settled value ten lines on counts as much)
    own_weight: float = 0.6  # a follower scores max(own, own_weight * own + inherited)

    def __post_init__(self) -> None:
        if self.sources < 1 or self.lines < 1:
            raise ValueError("conversation sources and lines must be at least 1")
        if self.gap_seconds <= 0 or not 0 < self.carry <= 2 or not 0 < self.decay <= 1:
            raise ValueError("conversation gap_seconds must be above 0, carry in (0, 2], decay in (0, 1]")


def carry_forward(
    ranked: Sequence[tuple[int, float]],
    followers: Sequence[Follower],
    own: Mapping[int, float],
    options: ConversationOptions,
) -> list[tuple[int, float]]:
    """``ranked`` re-ordered by own score plus the best share inherited from an earlier asking line.

    ``ranked``: (id, score) best first, scores of one list (cosines, BM25). ``own``: the list's
    score of followers that are not in it (e.g. their cosine), 0 when unknown. Scores are divided by
    the list's best, so one ``carry`` fits every list. A source passes on its own score, never one
    it inherited, so credit does not run down a whole channel. Ties keep the list's order.
    """
    if not ranked:
        return []
    top = max(score for _, score in ranked)
    scale = top if top > 0 else 1.0
    score = {i: s / scale for i, s in ranked}
    base = dict(score)
    for follower in followers:
        if follower.source_id in base:
            base.setdefault(follower.message_id, max(own.get(follower.message_id, 0.0), 0.0) / scale)
    inherited: dict[int, float] = {}
    for follower in followers:
        source = score.get(follower.source_id)
        if source is None:
            continue
        share = options.carry * source * options.decay ** (follower.lines - 1)
        inherited[follower.message_id] = max(inherited.get(follower.message_id, 0.0), share)
    order = {i: n for n, i in enumerate(base)}
    total = {i: max(s, options.own_weight * s + inherited[i]) if i in inherited else s for i, s in base.items()}
    return sorted(((i, s * scale) for i, s in total.items()), key=lambda kv: (-kv[1], order[kv[0]]))


@dataclass(frozen=True)
class CarriedLists:
    """The lists after :func:`carry_forward`, and for each follower the asking line it follows (its
    closest source's text), which a reranker reads before the follower: an answer alone says little."""

    dense: list[tuple[int, float]] | None
    lexical: list[tuple[int, float]] | None
    asked: dict[int, str] = field(default_factory=dict)


async def in_conversation(
    store: Store,
    space_id: int,
    guild_id: int,
    channel_id: int,
    query_vector: np.ndarray | None,
    dense: list[tuple[int, float]] | None,
    lexical: list[tuple[int, float]] | None,
    options: ConversationOptions,
    filters: RecallFilters = NO_FILTERS,
) -> CarriedLists:
    """The dense and lexical lists with :func:`carry_forward` applied (two store reads, one vector read).

    Followers of a dense source that the dense list lacks are scored by their stored vector in
    ``space_id`` (the read space, so a migration's new vectors serve as soon as it swaps);
    followers the lexical list lacks own no BM25 score.
    """
    heads = {i for ranked in (dense, lexical) if ranked for i, _ in ranked[: options.sources]}
    if not heads:
        return CarriedLists(dense, lexical)
    messages = await store.get_messages(sorted(heads))
    sources = [(i, m.created_at) for i, m in sorted(messages.items()) if asks(m.content)]
    links = await store.following_messages(guild_id, channel_id, sources, options.lines, options.gap_seconds)
    if not links:
        return CarriedLists(dense, lexical)
    if filters.restricts:  # an answer outside the filters (another author, another time) is not returned
        admitted = await store.get_messages(sorted({follower for _, follower, _ in links}))
        links = [link for link in links if (m := admitted.get(link[1])) and filters.admits(m.author_id, m.created_at)]
    followers = [Follower(follower, source, lines) for source, follower, lines in links]
    if dense:
        known = dict(dense)
        missing = sorted({f.message_id for f in followers} - known.keys())
        vectors = await store.get_vectors(space_id, missing) if missing and query_vector is not None else {}
        own = {i: float(v @ query_vector) for i, v in vectors.items()}
        dense = carry_forward(dense, _within(followers, dense, options), own, options)
    if lexical:
        lexical = carry_forward(lexical, _within(followers, lexical, options), {}, options)
    asked: dict[int, str] = {}
    for follower in sorted(followers, key=lambda f: f.lines):
        asked.setdefault(follower.message_id, messages[follower.source_id].content)
    return CarriedLists(dense, lexical, asked)


def _within(
    followers: Sequence[Follower], ranked: Sequence[tuple[int, float]], options: ConversationOptions
) -> list[Follower]:
    """The followers whose source is among this list's first ``sources`` candidates."""
    heads = {i for i, _ in ranked[: options.sources]}
    return [f for f in followers if f.source_id in heads]
