"""Discord ids carry their creation time: what sizing and progress read from them without any request."""

from __future__ import annotations

DISCORD_EPOCH_MS = 1_420_070_400_000


def snowflake_time(snowflake: int) -> float:
    """Unix seconds at which the id was minted."""
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000


def snowflake_at(unix_seconds: float) -> int:
    """The smallest id minted at ``unix_seconds`` (an ``after`` bound for messages since then)."""
    return max(0, int(unix_seconds * 1000) - DISCORD_EPOCH_MS) << 22
