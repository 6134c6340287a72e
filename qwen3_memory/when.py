"""Dates as people type them in a command option: ``2026-05-01``, ``2026-05-01 18:30``, ``7d``, ``yesterday``.

A date without a time means the start of that day in UTC (Discord shows dates in each reader's own
zone, so UTC is the only one every member shares). Relative forms count back from now.
"""

from __future__ import annotations

import datetime as dt
import re

from qwen3_memory.errors import UserFacingError

_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400, "mo": 30 * 86_400, "y": 365 * 86_400}
_RELATIVE = re.compile(r"^(\d+)\s*(min|mo|m|h|d|w|y)(?:\s+ago)?$")
_NAMED_DAYS = {"today": 0, "yesterday": 1}
EXAMPLES = "2026-05-01, 2026-05-01 18:30, 7d, 2w, 3mo, 12h, today, yesterday"


class BadDate(UserFacingError):
    """An option that is not a date or a time span this module understands."""


def parse_when(text: str, now: float, option: str = "date") -> float:
    """Unix seconds (UTC) of ``text``: an ISO date or date-time, ``N{min,h,d,w,mo,y}`` before ``now``
    (``m`` is minutes), ``today`` or ``yesterday`` (the start of that UTC day). Raises :class:`BadDate`,
    naming ``option``, for anything else."""
    value = " ".join(text.strip().lower().split())
    if not value:
        raise BadDate(f"`{option}` is empty: use a date or a span such as {EXAMPLES}")
    if value in _NAMED_DAYS:
        today = dt.datetime.fromtimestamp(now, dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return (today - dt.timedelta(days=_NAMED_DAYS[value])).timestamp()
    relative = _RELATIVE.match(value)
    if relative:
        return now - int(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        moment = dt.datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        raise BadDate(f"`{option}`: “{text.strip()[:40]}” is not a date I understand; use e.g. {EXAMPLES}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()
