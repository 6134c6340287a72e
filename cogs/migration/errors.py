"""What an admin sees in Discord for an error they can act on: the library's advice, with its icons."""

from __future__ import annotations

from cogs.migration.embeds import MESSAGE_LIMIT
from qwen3_memory.migration.advice import SLASH_COMMANDS, advise


def known_error_text(error: BaseException) -> str | None:
    """The message an admin sees for an error they can act on; None for an unexpected one."""
    advice = advise(error, SLASH_COMMANDS)
    if advice is None:
        return None
    if advice.disk_full:
        return f"💾 {advice.message}"[:MESSAGE_LIMIT]
    return (f"⚠️ {advice.message}" + (f"\n➡️ {advice.next_step}" if advice.next_step else ""))[:MESSAGE_LIMIT]
