"""Lexical terms for the FTS5 index: one tokenisation for stored messages and for queries.

SQLite's unicode61 tokenizer keeps a run of Chinese characters as one token, so a query can only
match a whole sentence. We index CJK text as character unigrams and bigrams instead (the usual
choice for Chinese BM25 without a dictionary) and leave other scripts to unicode61.

The SQLite store keeps one FTS5 table for every channel, so it scopes each stored term to its
channel (``c<channel id>x<term>``), and queries the same way: a query then reads only its own
channel's postings, and its cost follows the channel's size, not the database's (measured in
bench/many_channels.py). Word rarity (BM25's IDF) becomes a channel's own, which suits chat.
"""

from __future__ import annotations

import re

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_]+", re.UNICODE)
_CJK_RUN = re.compile(rf"^[{_CJK}]+$")


def search_terms(text: str) -> list[str]:
    """Lower-cased word tokens; CJK runs become unigrams plus bigrams."""
    terms: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        if _CJK_RUN.match(token):
            terms.extend(token)
            terms.extend(token[i : i + 2] for i in range(len(token) - 1))
        else:
            terms.append(token)
    return terms


def _scoped(terms: list[str], channel_id: int | None) -> list[str]:
    """``terms`` as one channel's own (letters and digits only, so the tokenizer keeps each one whole)."""
    return terms if channel_id is None else [f"c{channel_id}x{term}" for term in terms]


def fts_document(text: str, channel_id: int | None = None) -> str:
    """The text stored in the full-text index for ``text`` (scoped to ``channel_id`` when given)."""
    return " ".join(_scoped(search_terms(text), channel_id))


def fts_query(text: str, max_terms: int = 64, channel_id: int | None = None) -> str:
    """An FTS5 MATCH expression that ORs the quoted terms of ``text`` ('' when it has none), scoped to
    ``channel_id`` like the stored terms it must match."""
    seen: dict[str, None] = {}
    for term in search_terms(text):
        seen.setdefault(term, None)
    quoted = ['"' + term.replace('"', '""') + '"' for term in _scoped(list(seen)[:max_terms], channel_id)]
    return " OR ".join(quoted)
