"""Calibrating a space's score floor as its channels are verified (see :mod:`qwen3_memory.recall.floors`).

Each verified channel adds its samples to the space's floor: its labelled queries (the cosines of
their relevant messages among the dense top 5) when a labelled set is given, else the best
cosines of queries that have no answer there. A channel verified again replaces its own samples.
A labelled floor is never replaced by a label-free one.
"""

from __future__ import annotations

import time
from pathlib import Path

from qwen3_memory.recall.floors import (
    NOISE_BUDGET,
    NOISE_QUERIES_PER_CHANNEL,
    SpaceFloor,
    get_floor,
    label_free_floor,
    labelled_floor,
    save_floor,
)
from qwen3_memory.records import SpaceRecord

LABELLED_DEPTH = 5


async def noise_needed(memory, space: SpaceRecord) -> tuple[int, int]:
    """(no-answer queries the next verify of ``space`` should ask per channel, label-free samples its floor holds):
    none once the budget is spent or the floor is labelled."""
    floor = await get_floor(memory.store, space.id)
    held = int(floor.detail.get("samples", 0)) if floor is not None and floor.basis == "label-free" else 0
    if floor is not None and (floor.basis == "labelled" or held >= NOISE_BUDGET):
        return 0, held
    return NOISE_QUERIES_PER_CHANNEL, held


async def noise_queries_wanted(memory, space: SpaceRecord) -> int:
    """How many no-answer queries the next verify of ``space`` should ask: none once the budget is spent."""
    return (await noise_needed(memory, space))[0]


async def labelled_samples(
    memory, space: SpaceRecord, eval_path: Path, guild_id: int, channel_id: int
) -> tuple[list[list[float]], list[int]]:
    """Per labelled query of the channel (relevant messages stored): cosines of its relevant hits in the dense top 5."""
    from qwen3_memory.evaluation import channel_queries_in_memory

    queries, _ = await channel_queries_in_memory(memory, eval_path, guild_id, channel_id)
    options = memory.recall_options(k=LABELLED_DEPTH, hybrid=False, rerank=False, min_score=-1.0)
    found, relevant = [], []
    for query in queries:
        hits = await memory.recaller.recall(guild_id, channel_id, query.text, options, space=space)
        found.append([h.similarity for h in hits if h.message.id in query.relevant])
        relevant.append(len(query.relevant))
    return found, relevant


async def calibrate_after_verify(
    memory, space: SpaceRecord, guild_id: int, channel_id: int, noise: list[float], eval_path: Path | None = None
) -> SpaceFloor | None:
    """Add one verified channel's samples to ``space``'s floor and save it; the floor, or None if nothing measured."""
    current = await get_floor(memory.store, space.id)
    key = f"{guild_id}:{channel_id}"
    floor = None
    if eval_path is not None:
        found, relevant = await labelled_samples(memory, space, eval_path, guild_id, channel_id)
        if found:
            channels = dict(current.detail.get("channels", {})) if current and current.basis == "labelled" else {}
            channels[key] = {"found": found, "relevant": relevant}
            all_found = [f for ch in channels.values() for f in ch["found"]]
            all_relevant = [r for ch in channels.values() for r in ch["relevant"]]
            detail = {"dataset": str(eval_path), "queries": len(all_found), "channels": channels}
            floor = SpaceFloor(space.id, labelled_floor(all_found, all_relevant), "labelled", detail, time.time())
    if floor is None and noise and not (current is not None and current.basis == "labelled"):
        channels = dict(current.detail.get("channels", {})) if current else {}
        channels[key] = noise
        samples = [s for scores in channels.values() for s in scores]
        detail = {"samples": len(samples), "channels": channels}
        floor = SpaceFloor(space.id, label_free_floor(samples), "label-free", detail, time.time())
    if floor is not None:
        await save_floor(memory.store, floor)
        memory.recaller.floors.forget(space.id)
    return floor
