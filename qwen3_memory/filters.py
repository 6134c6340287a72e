"""What a recall may return besides "the channel": some authors, a time range, a preference for recent lines.

One :class:`RecallFilters` travels from the command or the library call down to the stores, which turn
its message part into one portable SQL condition (:meth:`RecallFilters.sql`), so the dense search,
the lexical search and the context reads all apply the very same rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qwen3_memory.errors import UserFacingError

DEFAULT_RECENCY_HALF_LIFE_DAYS = 30.0  # "prefer recent": a month-old line counts half as much as one of today


@dataclass(frozen=True)
class RecallFilters:
    """Which messages of the channel recall may return, and whether newer ones are preferred.

    ``after`` includes its instant, ``before`` excludes it (unix seconds, UTC). ``recency_half_life_days``
    (None: off) multiplies each candidate's score by 0.5 ** (age / half-life) before the final order.
    """

    authors: tuple[int, ...] = ()
    after: float | None = None
    before: float | None = None
    recency_half_life_days: float | None = None

    def __post_init__(self) -> None:
        if self.after is not None and self.before is not None and self.after >= self.before:
            raise UserFacingError("`after` must be earlier than `before`: no message can be both")
        if self.recency_half_life_days is not None and not self.recency_half_life_days > 0:
            raise UserFacingError(f"the recency half-life must be above 0 days, got {self.recency_half_life_days}")

    @classmethod
    def of(
        cls,
        authors: Iterable[int] = (),
        after: float | None = None,
        before: float | None = None,
        prefer_recent: bool | float = False,
    ) -> RecallFilters:
        """The filters from plain values; ``prefer_recent`` is True (the default half-life) or a half-life in days."""
        half_life = None
        if prefer_recent is True:
            half_life = DEFAULT_RECENCY_HALF_LIFE_DAYS
        elif prefer_recent:
            half_life = float(prefer_recent)
        return cls(tuple(sorted(set(authors))), after, before, half_life)

    @property
    def restricts(self) -> bool:
        """Whether some messages of the channel are excluded (a recency preference alone excludes none)."""
        return bool(self.authors) or self.after is not None or self.before is not None

    def sql(self, alias: str = "m") -> tuple[str, list]:
        """`` AND ...`` conditions on the messages table ``alias`` with ``?`` placeholders, and their values;
        ("", []) when nothing is excluded."""
        conditions, params = [], []
        if self.authors:
            conditions.append(f"{alias}.author_id IN ({', '.join('?' * len(self.authors))})")
            params.extend(self.authors)
        if self.after is not None:
            conditions.append(f"{alias}.created_at >= ?")
            params.append(self.after)
        if self.before is not None:
            conditions.append(f"{alias}.created_at < ?")
            params.append(self.before)
        return "".join(f" AND {c}" for c in conditions), params

    def admits(self, author_id: int, created_at: float) -> bool:
        """Whether a message of ``author_id`` written at ``created_at`` passes (what :meth:`sql` selects)."""
        if self.authors and author_id not in self.authors:
            return False
        if self.after is not None and created_at < self.after:
            return False
        return self.before is None or created_at < self.before


NO_FILTERS = RecallFilters()
