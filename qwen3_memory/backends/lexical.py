"""Lexical terms for the FTS5 index: one tokenisation for stored messages and for queries.

SQLite's unicode61 tokenizer keeps a run of Chinese characters as one token, so a query can only
match a whole sentence. We index CJK text as character unigrams and bigrams instead (the usual
choice for Chinese BM25 without a dictionary) and leave other scripts to unicode61.
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


def fts_document(text: str) -> str:
    """The text stored in the FTS5 table for ``text``."""
    return " ".join(search_terms(text))


def fts_query(text: str, max_terms: int = 64) -> str:
    """An FTS5 MATCH expression that ORs the quoted terms of ``text`` ('' when it has none)."""
    seen: dict[str, None] = {}
    for term in search_terms(text):
        seen.setdefault(term, None)
    quoted = ['"' + term.replace('"', '""') + '"' for term in list(seen)[:max_terms]]
    return " OR ".join(quoted)
