"""How much the lexical list weighs against the dense one, per query, from the dense list's shape.

A fixed BM25 weight lets a weak dense list push good lexical hits down: an English model on
Chinese text gives every message of a channel nearly the same cosine, and reciprocal-rank fusion
reads those near-ties as a confident order. How far the dense list's best candidate stands above its
tenth says how much that order means, in any embedding space and any language, without knowing the
model: where the dense list is flat (a spread under 0.2) the lexical list weighs more.

Chosen on the tuning split of ``tests/data/eval_conversations.jsonl`` and on ``eval_chat.jsonl``:
lowering the weight where the dense list is steep cost English queries more than it gained, so the
configured weight is a floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEPTH = 10  # the spread is the 1st minus the DEPTH-th dense cosine


@dataclass(frozen=True)
class LexicalWeighting:
    """``weight`` times (``reference`` / spread) ** ``power``, kept within [``lowest``, ``highest``]."""

    weight: float = 0.7
    power: float = 1.0  # 0: a fixed weight, as before
    lowest: float = 1.0  # bounds of the factor: the weight never drops below the configured one ...
    highest: float = 4.0  # ... and one list never silences the other
    reference: float = 0.2  # the spread under which the dense order is taken as weak

    def for_query(self, dense_scores: Sequence[float]) -> float:
        """The lexical list's weight for one query whose dense candidates scored ``dense_scores`` (best first)."""
        if self.power == 0 or len(dense_scores) < 2:
            return self.weight
        spread = max(dense_scores[0] - dense_scores[min(DEPTH, len(dense_scores)) - 1], 1e-6)
        factor = min(self.highest, max(self.lowest, (self.reference / spread) ** self.power))
        return self.weight * factor
