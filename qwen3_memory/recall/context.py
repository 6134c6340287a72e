"""Hits shown with their conversation: the lines before and after each hit, adjacent hits merged.

A chat answer ("yeah friday works") means nothing alone. Recall's hits are turned into *excerpts*:
each hit with up to ``before`` earlier and ``after`` later lines of its channel, walking outwards
only while consecutive lines are at most ``max_gap_seconds`` apart (a pause ends a conversation).
Excerpts that overlap or touch merge into one, so no line appears twice. The store reads the lines
(:meth:`~qwen3_memory.backends.protocol.Store.neighbours`: one channel, deleted messages gone);
this module only groups them and fits them into a character budget, the one rule that both a
Discord embed and an LLM prompt need.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qwen3_memory.recall.pipeline import Hit
from qwen3_memory.records import StoredMessage

DEFAULT_BEFORE = 2
DEFAULT_AFTER = 2
DEFAULT_MAX_GAP_SECONDS = 15 * 60.0  # a longer pause between two lines ends the conversation around a hit
MIN_LINE_CHARS = 40  # a line cut shorter than this is left out rather than shown as a stub
ELLIPSIS = "…"


@dataclass(frozen=True)
class ExcerptShape:
    """How much conversation surrounds a hit: lines before and after, and the pause that ends it."""

    before: int = DEFAULT_BEFORE
    after: int = DEFAULT_AFTER
    max_gap_seconds: float = DEFAULT_MAX_GAP_SECONDS

    def __post_init__(self) -> None:
        if not (0 <= self.before <= 20 and 0 <= self.after <= 20):
            raise ValueError(f"before and after are 0-20 lines, got {self.before} and {self.after}")
        if not self.max_gap_seconds >= 0:
            raise ValueError(f"max_gap_seconds must be at least 0, got {self.max_gap_seconds}")

    @property
    def window_seconds(self) -> float:
        """The farthest a neighbour can be from its hit: every pause in between at most ``max_gap_seconds``."""
        return self.max_gap_seconds * max(self.before, self.after, 1)


@dataclass(frozen=True)
class ExcerptLine:
    """One message of an excerpt; ``hit`` is the recall hit it is, if it is one, and ``rank`` that hit's rank."""

    message: StoredMessage
    hit: Hit | None = None
    rank: int | None = None  # from 1, best first

    @property
    def is_hit(self) -> bool:
        return self.hit is not None


@dataclass(frozen=True)
class Excerpt:
    """Consecutive lines of one channel around one or more hits, oldest first."""

    lines: tuple[ExcerptLine, ...]
    rank: int  # the best (lowest) recall rank among its hits, from 1

    @property
    def hits(self) -> list[Hit]:
        return [line.hit for line in self.lines if line.hit is not None]

    @property
    def best_hit(self) -> Hit:
        return min((line for line in self.lines if line.is_hit), key=lambda line: line.rank).hit

    @property
    def guild_id(self) -> int:
        return self.lines[0].message.guild_id

    @property
    def channel_id(self) -> int:
        return self.lines[0].message.channel_id

    @property
    def started_at(self) -> float:
        return self.lines[0].message.created_at

    @property
    def jump_url(self) -> str:
        """The link to the best hit of the excerpt (Discord shows the lines around it there)."""
        return self.best_hit.message.jump_url()

    def fit(self, limit: int, render: Callable[[ExcerptLine, int], str], line_chars: int) -> list[str]:
        """The excerpt's lines rendered within ``limit`` characters (newlines included), oldest first.

        ``render(line, content_chars)`` renders one line with its text cut to ``content_chars``. Hits
        come first, then neighbours closest to a hit; a line that no longer fits is left out (an
        ``…`` line marks a hole between kept lines), a hit that does not fit whole is cut. Empty when
        not even the best hit fits in ``MIN_LINE_CHARS``.
        """
        hit_positions = [n for n, line in enumerate(self.lines) if line.is_hit]

        def priority(n: int) -> tuple[int, int]:
            line = self.lines[n]
            if line.is_hit:
                return (0, line.rank)
            return (1, min(abs(n - h) for h in hit_positions))

        kept: dict[int, str] = {}
        for n in sorted(range(len(self.lines)), key=priority):
            line = self.lines[n]
            text = render(line, line_chars)
            over = _length(_assemble({**kept, n: text})) - limit
            if over > 0 and line.is_hit:  # cut the hit's text to what is left, if that leaves enough of it
                chars = len(text) - len(render(line, 0)) - over
                while over > 0 and chars >= MIN_LINE_CHARS:  # escaping may lengthen a cut text: cut again
                    text = render(line, chars)
                    over = _length(_assemble({**kept, n: text})) - limit
                    chars -= max(over, 0)
            if over <= 0:
                kept[n] = text
        return _assemble(kept) if any(self.lines[n].is_hit for n in kept) else []


def _assemble(kept: dict[int, str]) -> list[str]:
    """Kept lines (by position) in order, an ``…`` line where lines between them were left out."""
    out: list[str] = []
    previous = None
    for n in sorted(kept):
        if previous is not None and n != previous + 1:
            out.append(ELLIPSIS)
        out.append(kept[n])
        previous = n
    return out


def _length(lines: list[str]) -> int:
    return sum(len(line) for line in lines) + max(0, len(lines) - 1)  # with the newlines between them


def clip(text: str, chars: int) -> str:
    """``text`` on one line, cut to ``chars`` characters with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= chars:
        return text
    return text[: max(0, chars - 1)].rstrip() + ELLIPSIS if chars > 0 else ""


def build_excerpts(
    hits: Sequence[Hit],
    lines: Sequence[StoredMessage],
    before: int = DEFAULT_BEFORE,
    after: int = DEFAULT_AFTER,
    max_gap_seconds: float = DEFAULT_MAX_GAP_SECONDS,
) -> list[Excerpt]:
    """Excerpts of ``hits`` (best first) from ``lines`` (the store's neighbours of the hits, oldest first).

    A hit missing from ``lines`` (deleted meanwhile) is dropped. Returned by the rank of each
    excerpt's best hit, so the most relevant conversation comes first.
    """
    ordered = sorted(lines, key=lambda m: m.id)
    position = {m.id: n for n, m in enumerate(ordered)}
    spans: list[tuple[int, int, int]] = []  # (first, last, best rank) in ``ordered``
    for rank, hit in enumerate(hits, 1):
        at = position.get(hit.message.id)
        if at is None:
            continue
        first = _walk(ordered, at, -1, before, max_gap_seconds)
        last = _walk(ordered, at, 1, after, max_gap_seconds)
        spans.append((first, last, rank))
    merged: list[list[int]] = []
    for first, last, rank in sorted(spans):
        if merged and _touch(ordered, merged[-1][1], first, max_gap_seconds):
            merged[-1][1] = max(merged[-1][1], last)
            merged[-1][2] = min(merged[-1][2], rank)
        else:
            merged.append([first, last, rank])
    ranked = {h.message.id: (h, rank) for rank, h in enumerate(hits, 1)}
    excerpts = [
        Excerpt(tuple(ExcerptLine(m, *ranked.get(m.id, (None, None))) for m in ordered[first : last + 1]), rank)
        for first, last, rank in merged
    ]
    return sorted(excerpts, key=lambda e: e.rank)


def _walk(lines: Sequence[StoredMessage], at: int, step: int, count: int, max_gap: float) -> int:
    """How far from ``at`` the conversation reaches in direction ``step``: at most ``count`` lines, no pause
    longer than ``max_gap`` between neighbours."""
    n = at
    while 0 <= n + step < len(lines) and abs(n + step - at) <= count:
        if abs(lines[n + step].created_at - lines[n].created_at) > max_gap:
            break
        n += step
    return n


def _touch(lines: Sequence[StoredMessage], last: int, first: int, max_gap: float) -> bool:
    """Whether a span ending at ``last`` and one starting at ``first`` form one conversation."""
    if first <= last:
        return True
    return first == last + 1 and lines[first].created_at - lines[last].created_at <= max_gap


def utc_time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------------------------------------- for a prompt
PROMPT_LINE_CHARS = 400  # the most of one message a prompt excerpt shows


@dataclass(frozen=True)
class RecallContext:
    """What a channel said about a query, for a prompt: ``text`` holds ``excerpts`` (oldest first) in at most
    the budget it was fitted to; a line it had to leave out shows as ``…``."""

    query: str
    excerpts: tuple[Excerpt, ...]
    text: str

    def __str__(self) -> str:
        return self.text

    def __bool__(self) -> bool:
        return bool(self.excerpts)


def prompt_line(line: ExcerptLine, chars: int) -> str:
    """``» [2026-05-01 18:30] alice: text`` for a hit, two spaces instead of ``»`` for a neighbour."""
    marker = "»" if line.is_hit else " "
    m = line.message
    return f"{marker} [{utc_time(m.created_at)}] {clip(m.author_name, 40)}: {clip(m.content, chars)}"


def prompt_header(excerpt: Excerpt) -> str:
    return f"--- {utc_time(excerpt.started_at)} UTC, {excerpt.jump_url}"


def fit_context(query: str, excerpts: Sequence[Excerpt], budget_chars: int) -> RecallContext:
    """The most relevant excerpts that fit in ``budget_chars`` (each cut to what fits, lower ranks first to go),
    then put back in time order: a conversation reads best as it happened."""
    if budget_chars < 1:
        raise ValueError(f"budget_chars must be at least 1, got {budget_chars}")
    kept: list[tuple[Excerpt, str]] = []
    used = 0
    for excerpt in excerpts:  # best first
        header = prompt_header(excerpt)
        separator = 2 if kept else 0  # a blank line between excerpts
        room = budget_chars - used - separator - len(header) - 1
        lines = excerpt.fit(room, prompt_line, PROMPT_LINE_CHARS) if room > 0 else []
        if not lines:
            continue
        block = header + "\n" + "\n".join(lines)
        kept.append((excerpt, block))
        used += separator + len(block)
    kept.sort(key=lambda item: item[0].started_at)
    return RecallContext(query, tuple(e for e, _ in kept), "\n\n".join(block for _, block in kept))
