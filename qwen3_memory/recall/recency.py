"""An optional preference for recent messages: each candidate's score decays with its age.

"What did we decide about the raid?" usually means the latest decision. With a half-life of h days
a candidate's fused score is multiplied by 0.5 ** (age in days / h), after the cosine floor (which
keeps its meaning) and before the final cut to k. Only the order among relevant candidates changes:
recency never brings in a message the search did not find.
"""

from __future__ import annotations

import time

from qwen3_memory.backends import Store

SECONDS_PER_DAY = 86_400.0


def decay(age_seconds: float, half_life_days: float) -> float:
    """0.5 ** (age / half-life); a message from the future (clock skew) counts as new."""
    return 0.5 ** (max(0.0, age_seconds) / (half_life_days * SECONDS_PER_DAY))


async def prefer_recent(
    store: Store, ranked: list[tuple[int, float]], half_life_days: float, now: float | None = None
) -> list[tuple[int, float]]:
    """``ranked`` (message id, score) re-ordered by score times the decay of the message's age, best first."""
    if not ranked:
        return ranked
    now = time.time() if now is None else now
    messages = await store.get_messages([i for i, _ in ranked])
    decayed = [(i, score * decay(now - messages[i].created_at, half_life_days)) for i, score in ranked if i in messages]
    return sorted(decayed, key=lambda item: -item[1])  # stable: equal scores keep the fused order
