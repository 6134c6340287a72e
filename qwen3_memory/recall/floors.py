"""Score floors belong to a space: the cosine under which recall drops a result, calibrated per model.

Models place unrelated texts at very different cosine levels, so one global floor tuned on one
model lets noise through or hides answers after a swap, silently. Each space gets its own floor
when it is verified:

- **labelled** (a labelled set is given): the largest floor that costs recall@5 of the dense stage
  less than one point, on the set's queries answered from that space (the rule the old global
  0.25 was chosen by, for all-MiniLM-L6-v2);
- **label-free**: messages of other channels asked as queries in a channel, where they have no
  answer; their best cosine there is what noise scores in this space, and the floor is a quantile
  of it (:data:`NOISE_QUANTILE`, measured so that the label-free floor lands near the labelled one
  on the shipped set for both real models, see the README).

``recall.min_score`` in the settings, when set, overrides every space's floor; a space never
calibrated uses :data:`UNCALIBRATED_FLOOR`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

UNCALIBRATED_FLOOR = 0.25  # the old global floor (all-MiniLM-L6-v2): for spaces never verified
NOISE_QUANTILE = 0.5  # of the best cosines of queries asked where they have no answer (measured, README)
LABELLED_RECALL_LOSS = 0.01  # a labelled floor may cost recall@5 less than one point
NOISE_QUERIES_PER_CHANNEL = 16
NEAR_DUPLICATE = 0.9  # a no-answer query this close to a message here has its answer after all: not noise
MIN_NOISE_SAMPLES = 12  # a quantile of fewer samples is a guess: until then the space keeps the uncalibrated floor
NOISE_BUDGET = 400  # label-free samples per space: later channels of a job ask none (thousands of small channels)
FLOOR_GRID = tuple(round(t, 2) for t in np.arange(-0.2, 0.95, 0.01))
BASES = ("labelled", "label-free")
CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class SpaceFloor:
    """A space's calibrated floor and what it was computed from."""

    space_id: int
    floor: float
    basis: str
    detail: dict[str, Any] = field(default_factory=dict)
    measured_at: float = 0.0

    def describe(self) -> str:
        n = self.detail.get("queries") or self.detail.get("samples") or 0
        return f"{self.floor:.2f} ({self.basis}, {n} {'queries' if self.basis == 'labelled' else 'samples'})"


async def get_floor(store, space_id: int) -> SpaceFloor | None:
    row = await store.fetchone(
        "SELECT floor, basis, detail, measured_at FROM space_floors WHERE space_id = ?", (space_id,)
    )
    return None if row is None else SpaceFloor(space_id, float(row[0]), str(row[1]), json.loads(row[2]), float(row[3]))


async def save_floor(store, floor: SpaceFloor) -> None:
    async with store.transaction() as db:
        await db.execute(
            "INSERT INTO space_floors(space_id, floor, basis, detail, measured_at) VALUES (?,?,?,?,?) "
            "ON CONFLICT(space_id) DO UPDATE SET floor = excluded.floor, basis = excluded.basis, "
            "detail = excluded.detail, measured_at = excluded.measured_at",
            (floor.space_id, floor.floor, floor.basis, json.dumps(floor.detail), floor.measured_at or time.time()),
        )


def label_free_floor(noise: Sequence[float]) -> float:
    """The :data:`NOISE_QUANTILE` of the best cosines that queries with no answer reach in this space
    (:data:`UNCALIBRATED_FLOOR` while fewer than :data:`MIN_NOISE_SAMPLES` were measured)."""
    if len(noise) < MIN_NOISE_SAMPLES:
        return UNCALIBRATED_FLOOR
    return round(float(np.quantile(np.asarray(noise, dtype=np.float64), NOISE_QUANTILE)), 3)


def labelled_floor(found: Sequence[Sequence[float]], relevant: Sequence[int]) -> float:
    """The largest floor of :data:`FLOOR_GRID` whose recall@5 stays within :data:`LABELLED_RECALL_LOSS` of none.

    ``found[q]``: the cosines of query q's relevant messages among its dense top 5; ``relevant[q]``: how many
    relevant messages it has."""

    def recall_at(t: float) -> float:
        return float(np.mean([sum(s >= t for s in sims) / n for sims, n in zip(found, relevant)]))

    best = recall_at(-1.0)
    floor = FLOOR_GRID[0]
    for t in FLOOR_GRID:
        if recall_at(t) >= best - LABELLED_RECALL_LOSS:
            floor = t
        else:
            break
    return float(floor)


async def noise_texts(
    memory,
    guild_id: int,
    channel_id: int,
    n: int = NOISE_QUERIES_PER_CHANNEL,
    others: list[tuple[int, int]] | None = None,
) -> list[str]:
    """Up to ``n`` messages from other channels to ask here as queries that have no answer: same guild first,
    the channel itself never. ``others``: the channels with messages, when the caller has read them already."""
    if others is None:
        others = [(g, c) for g, c, _ in await memory.store.message_channels()]
    others = sorted((gc for gc in others if gc != (guild_id, channel_id)), key=lambda gc: gc[0] != guild_id)
    texts: list[str] = []
    for g, c in others:
        if len(texts) >= n:
            break
        texts += [m.content for m in await memory.store.sample_messages(g, c, n - len(texts)) if m.content.strip()]
    return texts[:n]


async def noise_scores(
    memory,
    space,
    guild_id: int,
    channel_id: int,
    n: int = NOISE_QUERIES_PER_CHANNEL,
    prepared: tuple[list[str], np.ndarray] | None = None,
) -> list[float]:
    """Best cosine in this channel of ``n`` messages from other channels asked as queries (they have no answer
    here): what noise scores in ``space``. ``prepared``: those texts with their query vectors, encoded already."""
    if prepared is not None:
        texts, queries = prepared
    else:
        texts = await noise_texts(memory, guild_id, channel_id, n)
        queries = await memory.services.get(space.spec).aencode_queries(texts) if texts else None
    if not texts:
        return []
    scores, _ = await memory.store.search_many(space, guild_id, channel_id, queries, 1)
    # a near duplicate is an answer, not noise (the same line posted in both channels, a bot's message)
    return [float(s) for s in scores[:, 0] if np.isfinite(s) and -1e30 < s < NEAR_DUPLICATE]


async def describe_floor_in_use(store, space_id: int, override: float | None) -> str:
    """The floor recall applies in a space, and where it comes from (for /memory stats and verify)."""
    if override is not None:
        return f"{override:.2f} (recall.min_score, for every space)"
    found = await get_floor(store, space_id)
    return found.describe() if found is not None else f"{UNCALIBRATED_FLOOR:.2f} (not calibrated yet: verify sets it)"


class FloorCache:
    """The floors recall applies, read from the store at most every :data:`CACHE_SECONDS` per space."""

    def __init__(self, store) -> None:
        self.store = store
        self._cached: dict[int, tuple[float, float]] = {}  # space id -> (floor, read at)

    async def floor(self, space_id: int) -> float:
        cached = self._cached.get(space_id)
        now = time.monotonic()
        if cached is not None and now - cached[1] < CACHE_SECONDS:
            return cached[0]
        found = await get_floor(self.store, space_id)
        value = found.floor if found is not None else UNCALIBRATED_FLOOR
        self._cached[space_id] = (value, now)
        return value

    def forget(self, space_id: int | None = None) -> None:
        """Read again on the next recall (after a calibration in this process)."""
        if space_id is None:
            self._cached.clear()
        else:
            self._cached.pop(space_id, None)
