"""What one guild's import has done so far: the numbers the progress embed and the log show."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from qwen3_memory.history.snowflakes import snowflake_time
from qwen3_memory.units import human_duration


@dataclass
class ImportProgress:
    guild_id: int
    channels_total: int
    state: str = "running"  # queued (waiting for another guild's turn), running, paused, done, cancelled, failed
    channels_done: int = 0
    read: int = 0
    stored: int = 0
    skipped: int = 0
    rate_limit_waits: int = 0
    rate_limit_seconds: float = 0.0
    current: str = ""  # the channel being read
    current_fraction: float = 0.0  # how far through the current channel's time span the cursor is
    failures: list[str] = field(default_factory=list)  # "#secret: I can't read it (403 Forbidden)"
    estimate: str = ""  # the size estimate, when one was made
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def finished_state(self) -> bool:
        return self.state in ("done", "cancelled", "failed")

    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def fraction(self) -> float:
        if not self.channels_total:
            return 1.0
        return min(1.0, (self.channels_done + self.current_fraction) / self.channels_total)

    def eta_seconds(self) -> float | None:
        """Rough: elapsed time scaled by what is left, by channels and by the time span of the current one."""
        done = self.fraction()
        if self.finished_state or done <= 0.01:
            return None
        return self.elapsed() * (1 - done) / done

    def rate(self) -> float:
        return self.read / self.elapsed() if self.elapsed() > 0 else 0.0

    def summary(self) -> str:
        eta = self.eta_seconds()
        return (
            f"{self.state}: {self.channels_done}/{self.channels_total} channels, {self.read:,} read, "
            f"{self.stored:,} stored, {self.skipped:,} skipped, {self.rate_limit_waits} rate-limit waits "
            f"({self.rate_limit_seconds:.1f} s), {self.rate():.0f} msgs/s"
            + (f", about {human_duration(eta)} left" if eta is not None else "")
        )


def span_fraction(start_id: int, cursor: int, now: float | None = None) -> float:
    """How far ``cursor`` is through the time between ``start_id`` (the channel's own id when importing from
    its beginning: ids carry their time) and now."""
    start, now = snowflake_time(start_id), now or time.time()
    if cursor <= start_id or now <= start:
        return 0.0
    return max(0.0, min(1.0, (snowflake_time(cursor) - start) / (now - start)))
