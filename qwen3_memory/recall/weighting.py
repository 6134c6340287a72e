"""How much the lexical list weighs against the dense one, per query, from the dense list's shape.

A fixed BM25 weight lets a weak dense list push good lexical hits down: an English model on
Chinese text gives every message of a channel nearly the same cosine, and reciprocal-rank fusion
reads those near-ties as a confident order. How far the dense list's best candidate stands above its
tenth says how much that order means, in any embedding space and any language, without knowing the
model: where the dense list is flat the lexical list weighs more, where it is steep, less.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Spread (cosine of the 1st minus the 10th dense candidate) at which the configured weight applies as is.
REFERENCE_SPREAD = 0.3
DEPTH = 10


@dataclass(frozen=True)
class LexicalWeighting:
    """``weight`` at the reference spread, scaled by (reference / spread) ** ``power`` within bounds."""

    weight: float = 0.7
    power: float = 1.0  # 0: a fixed weight, as before
    lowest: float = 0.25  # bounds of the scale factor: one list never silences the other
    highest: float = 4.0

    def for_query(self, dense_scores: Sequence[float]) -> float:
        """The lexical list's weight for one query whose dense candidates scored ``dense_scores`` (best first)."""
        if self.power == 0 or len(dense_scores) < 2:
            return self.weight
        spread = max(dense_scores[0] - dense_scores[min(DEPTH, len(dense_scores)) - 1], 1e-6)
        factor = min(self.highest, max(self.lowest, (REFERENCE_SPREAD / spread) ** self.power))
        return self.weight * factor
