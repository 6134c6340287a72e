"""How big an import is before it starts: Discord cannot count a channel's messages in advance.

The first page after the start and the newest page give two densities (messages per second of
channel time); their mean over the channel's age since the start is the estimate. A start page
that is not full is the exact count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from qwen3_memory.history.snowflakes import snowflake_time

PAGE = 100  # messages per history request (Discord's maximum)


@dataclass(frozen=True)
class SizeEstimate:
    messages: int
    exact: bool
    requests: int = 1  # history requests of 100 (at least one per channel)

    def describe(self) -> str:
        count = f"{self.messages:,}" if self.exact else f"about {self.messages:,}"
        return f"{count} messages, {self.requests:,} request{'s' if self.requests != 1 else ''}"


def _span(ids: Sequence[int]) -> float:
    return max(1.0, snowflake_time(max(ids)) - snowflake_time(min(ids)))


def estimate_size(oldest: Sequence[int], newest: Sequence[int]) -> SizeEstimate:
    """Messages after the start, from the ids of the oldest page after it and of the channel's newest page."""
    if len(oldest) < PAGE or set(oldest) & set(newest):
        return _sized(len(set(oldest) | set(newest)), exact=True)
    age = snowflake_time(max(newest)) - snowflake_time(min(oldest))
    density = (len(oldest) + len(newest)) / (_span(oldest) + _span(newest))
    return _sized(max(len(oldest) + len(newest), round(density * age)), exact=False)


def _sized(messages: int, exact: bool) -> SizeEstimate:
    return SizeEstimate(messages, exact, max(1, math.ceil(messages / PAGE)))


def add(estimates: Sequence[SizeEstimate]) -> SizeEstimate:
    return SizeEstimate(
        sum(e.messages for e in estimates), all(e.exact for e in estimates), sum(e.requests for e in estimates)
    )
