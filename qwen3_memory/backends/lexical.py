"""Lexical terms for the FTS5 index: one tokenisation for stored messages and for queries.

SQLite's unicode61 tokenizer keeps a run of Chinese characters as one token, so a query can only
match a whole sentence. We index CJK text as character unigrams and bigrams instead (the usual
choice for Chinese BM25 without a dictionary) and leave other scripts to unicode61.

The SQLite store also keeps each term scoped to its channel (``c<channel id>x<term>``) beside the
term itself, so one channel's search reads only its own postings
(qwen3_memory.backends.sqlite.channel_bm25).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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


def scoped_prefix(channel_id: int) -> str:
    """What precedes a term scoped to ``channel_id`` (letters and digits: the tokenizer keeps it whole)."""
    return f"c{channel_id}x"


def fts_document(text: str, channel_id: int | None = None) -> str:
    """The text stored in the full-text index for ``text``: its terms, then (with ``channel_id``) the
    same terms scoped to that channel."""
    terms = search_terms(text)
    if channel_id is not None:
        prefix = scoped_prefix(channel_id)
        terms += [prefix + term for term in terms]
    return " ".join(terms)


def fts_query(text: str, max_terms: int = 64) -> str:
    """An FTS5 MATCH expression that ORs the quoted terms of ``text`` ('' when it has none)."""
    seen: dict[str, None] = {}
    for term in search_terms(text):
        seen.setdefault(term, None)
    return or_match(list(seen)[:max_terms])


def or_match(terms: Iterable[str]) -> str:
    """An FTS5 MATCH expression that ORs ``terms``, each quoted as one token ('' for none)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
