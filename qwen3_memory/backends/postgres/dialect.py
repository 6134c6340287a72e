"""Postgres' dialect of the SQL and text searches written once for both backends.

The job tables and the portable reads write SQLite-style SQL (``?`` placeholders);
:func:`portable_sql` turns it into what psycopg runs. :func:`tsquery_of` turns a search query into
the ``tsquery`` that matches the ``terms`` column built by :func:`fts_document`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from qwen3_memory.backends.lexical import fts_document

_PORTABLE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[?%]")


@lru_cache(maxsize=1024)
def portable_sql(query: str) -> str:
    """SQLite-style SQL (``?`` placeholders) as psycopg wants it (``%s``, a literal ``%`` doubled).

    ``?`` inside quoted literals or identifiers is left alone; psycopg scans the whole text for ``%``.
    """

    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        return token.replace("%", "%%")

    return _PORTABLE.sub(swap, query)


def tsquery_of(query: str, max_terms: int = 64) -> str:
    """A ``to_tsquery('simple', ...)`` expression ORing the query's terms, each quoted as a lexeme.

    The terms are :func:`fts_document`'s tokens, so CJK text matches by unigrams and bigrams exactly
    like the stored ``terms`` column. '' when the query has no words.
    """
    terms = list(dict.fromkeys(fts_document(query).split()))[:max_terms]
    return " | ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)
