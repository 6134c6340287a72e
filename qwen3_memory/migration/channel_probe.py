"""The fixed cost of one channel in a migration, measured on this memory, for the plan's time estimate.

Besides encoding its messages, every channel costs a migration the same bookkeeping whatever its
size: reads of its bounds and counts, a catch-up and a verify, status changes, a swap. On a server of
thousands of 25-message channels that is most of the job, so an estimate from the encode speed
alone is several times too short. The probe times the reads and an empty write transaction on a
sample of the planned channels (changing nothing), and :data:`PROBE_TO_CHANNEL` scales that to a
whole channel's work. ``bench/many_channels.py`` prints the plan's estimate against the measured job
for both shapes; the factor is fitted there on 2,000 x 25 (quiet machine, tiny Qwen3: the job took
54.6 s, its encoding 45.3 s at the benchmark's rate, the probe 0.70 ms per channel: 9.3 s / 2,000 /
0.70 ms = 6.7, rounded down to 6 so that a heavier model, whose encoding hides more of it, is not
overestimated).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from qwen3_memory.backends import Store

PROBE_CHANNELS = 16  # channels the probe visits (the smallest: their fixed cost is what matters)
PROBE_TO_CHANNEL = 6.0  # a migrated channel's fixed seconds / the probe's seconds for it (fitted, see above)


async def probe_channel_seconds(store: Store, channels: Sequence[tuple[int, int]], space_id: int) -> float:
    """Estimated fixed seconds per channel of a migration: the probe's time per channel x PROBE_TO_CHANNEL;
    0 without channels. ``space_id``: the space the channels read from now."""
    sample = list(channels[:PROBE_CHANNELS])
    if not sample:
        return 0.0
    started = time.perf_counter()
    for guild_id, channel_id in sample:
        await store.newest_message_id(guild_id, channel_id)
        await store.count_messages(guild_id, channel_id)
        await store.scroll_messages(guild_id, channel_id, 0, 1)
        await store.count_vectors(space_id, guild_id, channel_id)
        async with store.transaction() as db:  # what committing a status change costs, writing nothing
            await db.execute("SELECT 1")
    return (time.perf_counter() - started) / len(sample) * PROBE_TO_CHANNEL
