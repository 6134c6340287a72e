"""BM25 of one channel whose cost follows the channel, not the database.

Every stored message's full-text row holds its terms twice: as themselves ("word") and scoped to its
channel ("c<channel id>xword", see :func:`qwen3_memory.backends.lexical.fts_document`). A query first
matches the scoped terms, which reads only its own channel's postings (a 25-message channel costs the
same in a database of 5,000 or 500,000 messages), then scores those candidates here with FTS5's own
``bm25()`` formula and the *whole table's* statistics: row count and average length from FTS5's
averages record, and each term's document count from the ``fts5vocab`` table. Word rarity stays
global on purpose: on both evaluation sets per-channel rarity ranked worse (eval_chat nDCG@10 0.567 ->
0.557, conversations 0.354 -> 0.328), since a channel of a few dozen lines says little about which
words are rare. Document counts are cached (see :class:`TableRarity`) and read again once the table
has grown or shrunk by 2%.

A channel with more matching rows than :data:`MAX_SCORED` is ranked by FTS5's ``bm25()`` directly
(its postings dominate the cost there anyway); both paths give the same scores.
"""

from __future__ import annotations

import math
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Sequence

from qwen3_memory.backends.lexical import fts_query, or_match, scoped_prefix, search_terms
from qwen3_memory.filters import NO_FILTERS, RecallFilters

#: FTS5's bm25() parameters (k1, b), which the scores here must reproduce.
K1 = 1.2
B = 0.75
#: Matching rows of one channel scored in Python; beyond this FTS5 ranks them in C.
MAX_SCORED = 1000
#: Terms in at least this many rows have their counts kept from one vocabulary scan (TableRarity).
COMMON_DOCS = 20
#: The counts are read again once the table's row count moved by more than this fraction.
REFRESH_DRIFT = 0.02
#: Rare terms' counts kept between scans; past this many the next query scans again.
MAX_CACHED_TERMS = 100_000
#: FTS5 keeps its row count and total length in the row with this id of its ``_data`` table.
_AVERAGES_ROWID = 1


def _fold(term: str) -> str:
    """``term`` as FTS5's unicode61 tokenizer (remove_diacritics 2) indexes it."""
    decomposed = unicodedata.normalize("NFKD", term)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _varint(block: bytes, at: int) -> tuple[int, int]:
    """SQLite's variable-length integer at ``at``: (value, next offset)."""
    value = 0
    for _ in range(8):
        byte = block[at]
        at += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at
    return (value << 8) | block[at], at + 1


class TableRarity:
    """The whole table's BM25 statistics: rows, average length and document counts per term.

    Counting a term's documents reads its whole posting list, so a common word would cost a query
    time that grows with the database. The counts of every plain term in at least
    :data:`COMMON_DOCS` rows are therefore read in one scan of the vocabulary (about 1 microsecond
    per posting: 60 ms at 50,000 messages) and kept; a rarer term is counted when first asked (its
    list is short by definition). Both are read again once the table's row count has moved by more
    than :data:`REFRESH_DRIFT` since the scan.
    """

    def __init__(self, table: str = "messages_fts", vocab: str = "messages_fts_vocab") -> None:
        self.table = table
        self.vocab = vocab
        self._common: dict[str, int] = {}
        self._rare: dict[str, int] = {}
        self._rows_when_scanned: int | None = None

    def totals(self, conn: sqlite3.Connection) -> tuple[int, float]:
        """(rows, average tokens per row), from FTS5's averages record."""
        row = conn.execute(f"SELECT block FROM {self.table}_data WHERE id = ?", (_AVERAGES_ROWID,)).fetchone()
        if row is None or not row[0]:
            return 0, 0.0
        rows, at = _varint(row[0], 0)
        tokens, _ = _varint(row[0], at)
        return rows, (tokens / rows if rows else 0.0)

    def document_counts(self, conn: sqlite3.Connection, terms: Sequence[str], rows: int) -> dict[str, int]:
        """How many rows hold each term (as of the last scan, within :data:`REFRESH_DRIFT` of the rows)."""
        then = self._rows_when_scanned
        if then is None or abs(rows - then) > then * REFRESH_DRIFT or len(self._rare) > MAX_CACHED_TERMS:
            self._scan(conn, rows)
        missing = [t for t in terms if t not in self._common and t not in self._rare]
        if missing:
            found = dict(
                conn.execute(
                    f"SELECT term, doc FROM {self.vocab} WHERE term IN ({', '.join('?' * len(missing))})", missing
                ).fetchall()
            )
            for term in missing:
                self._rare[term] = int(found.get(term, 0))
        return {t: self._common.get(t, self._rare.get(t, 0)) for t in terms}

    def _scan(self, conn: sqlite3.Connection, rows: int) -> None:
        """Keep the counts of the common plain terms: the vocabulary minus the channel-scoped range
        ("c" and a digit), which the scan skips by seeking past it."""
        common: dict[str, int] = {}
        for condition in ("term < 'c0'", "term >= 'c:'"):
            for term, docs in conn.execute(f"SELECT term, doc FROM {self.vocab} WHERE {condition}"):
                if docs >= COMMON_DOCS:
                    common[term] = int(docs)
        self._common, self._rare, self._rows_when_scanned = common, {}, rows


def _idf(rows: int, having: int) -> float:
    idf = math.log((rows - having + 0.5) / (having + 0.5))
    return idf if idf > 0 else 1e-6  # FTS5's floor for terms in more than half the rows


def score_rows(
    query_terms: Sequence[str], documents: Sequence[tuple[int, str]], rows: int, average: float, counts: dict[str, int]
) -> list[tuple[int, float]]:
    """FTS5's bm25 (negated: higher is better) of each (id, stored terms) row for ``query_terms``."""
    weights = {t: _idf(rows, counts.get(t, 0)) for t in query_terms}
    scored = []
    for message_id, stored in documents:
        tokens = stored.split()
        length = len(tokens)  # both copies of each term, as FTS5 counts them
        frequency = Counter(_fold(t) for t in tokens[: length // 2])
        norm = K1 * (1 - B + B * length / average) if average else K1
        score = 0.0
        for term, weight in weights.items():
            f = frequency.get(term, 0)
            if f:
                score += weight * f * (K1 + 1) / (f + norm)
        scored.append((message_id, score))
    return scored


def search_channel(
    conn: sqlite3.Connection,
    rarity: TableRarity,
    guild_id: int,
    channel_id: int,
    query: str,
    limit: int,
    filters: RecallFilters = NO_FILTERS,
) -> list[tuple[int, float]]:
    """BM25 candidates of one channel that pass ``filters``: (message id, score), best first."""
    terms = list(dict.fromkeys(_fold(t) for t in search_terms(query)))[:64]
    if not terms:
        return []
    prefix = scoped_prefix(channel_id)
    scoped = or_match(prefix + t for t in terms)
    table = rarity.table
    found = [
        r[0] for r in conn.execute(f"SELECT rowid FROM {table} WHERE {table} MATCH ? LIMIT ?", (scoped, MAX_SCORED + 1))
    ]
    if len(found) > MAX_SCORED:  # row ids only so far: cheap to count, even where they are too many to score here
        return _ranked_by_fts5(conn, table, guild_id, channel_id, query, limit, filters)
    if not found:
        return []
    condition, params = filters.sql("m")
    documents = conn.execute(
        f"SELECT m.id, f.terms FROM messages m JOIN {table} f ON f.rowid = m.id "
        f"WHERE m.id IN ({', '.join('?' * len(found))}) AND m.guild_id = ? AND m.channel_id = ?{condition}",
        (*found, guild_id, channel_id, *params),
    ).fetchall()
    rows, average = rarity.totals(conn)
    scored = score_rows(terms, documents, rows, average, rarity.document_counts(conn, terms, rows))
    scored.sort(key=lambda pair: (-pair[1], pair[0]))
    return scored[:limit]


def _ranked_by_fts5(
    conn: sqlite3.Connection,
    table: str,
    guild_id: int,
    channel_id: int,
    query: str,
    limit: int,
    filters: RecallFilters,
) -> list[tuple[int, float]]:
    condition, params = filters.sql("m")
    rows = conn.execute(
        f"SELECT m.id, -bm25({table}) AS score FROM {table} JOIN messages m ON m.id = {table}.rowid "
        f"WHERE {table} MATCH ? AND m.guild_id = ? AND m.channel_id = ?{condition} "
        f"ORDER BY bm25({table}) LIMIT ?",
        (fts_query(query), guild_id, channel_id, *params, limit),
    ).fetchall()
    return [(r[0], float(r[1])) for r in rows]
