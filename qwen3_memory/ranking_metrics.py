"""Ranking metrics of one query: recall@k, reciprocal rank, nDCG@k (binary or graded relevance).

Pure functions over a ranked list of ids (best first) and the ids judged relevant. A ranked list
may hold an id twice (two stages returning the same message); only its first, best position
counts, so no metric can exceed 1. A query with no relevant id has no defined recall or nDCG:
every function refuses it rather than silently scoring 0 or 1.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence

Relevance = Collection[Hashable] | Mapping[Hashable, float]


def _grades(relevant: Relevance) -> dict[Hashable, float]:
    """Relevant id -> grade (> 0); a plain collection means binary relevance (every grade 1)."""
    if isinstance(relevant, Mapping):
        grades = {item: float(grade) for item, grade in relevant.items() if grade > 0}
    else:
        grades = dict.fromkeys(relevant, 1.0)
    if not grades:
        raise ValueError("a query needs at least one relevant id (with a grade above 0) to be scored")
    return grades


def _first_positions(ranked: Iterable[Hashable]) -> list[Hashable]:
    """``ranked`` with repeats dropped: each id at its first (best) position."""
    return list(dict.fromkeys(ranked))


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def recall_at_k(ranked: Sequence[Hashable], relevant: Relevance, k: int) -> float:
    """Fraction of the relevant ids found in the first ``k`` results."""
    _check_k(k)
    grades = _grades(relevant)
    found = sum(1 for item in _first_positions(ranked)[:k] if item in grades)
    return found / len(grades)


def reciprocal_rank(ranked: Sequence[Hashable], relevant: Relevance, k: int | None = None) -> float:
    """1 / rank of the first relevant result (ranks from 1); 0 if none is found (in the first ``k``)."""
    if k is not None:
        _check_k(k)
    grades = _grades(relevant)
    for rank, item in enumerate(_first_positions(ranked)[:k], start=1):
        if item in grades:
            return 1.0 / rank
    return 0.0


def dcg_at_k(gains: Sequence[float], k: int) -> float:
    """Discounted cumulative gain of gains listed in rank order: sum of gain / log2(rank + 1)."""
    _check_k(k)
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains[:k], start=1))


def ndcg_at_k(ranked: Sequence[Hashable], relevant: Relevance, k: int) -> float:
    """DCG of the first ``k`` results over the DCG of the ideal order, in [0, 1].

    Gains are linear in the grade (gain = grade, as in trec_eval and BEIR); with a plain collection
    of relevant ids every relevant result gains 1 (binary relevance). The ideal order ranks every
    judged id by grade, so relevant ids missing from ``ranked`` lower the score.
    """
    grades = _grades(relevant)
    actual = dcg_at_k([grades.get(item, 0.0) for item in _first_positions(ranked)], k)
    ideal = dcg_at_k(sorted(grades.values(), reverse=True), k)
    return actual / ideal
