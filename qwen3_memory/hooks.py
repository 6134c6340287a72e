"""Listeners told about every recall, so other code (an LLM cog, analytics, a log) can follow what is recalled.

The library knows nothing of Discord: a :class:`Memory` keeps :class:`RecallHooks`, and the memory cog
registers one listener that re-dispatches each :class:`RecallEvent` as the bot event ``memory_recall``
(``@commands.Cog.listener() async def on_memory_recall(self, event)``). Listeners run right after
the recall, in the order they were added; one that raises is logged and the others still run. Keep
them quick (schedule slow work as a task): the recall's caller waits for them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from qwen3_memory.filters import RecallFilters
from qwen3_memory.recall.context import Excerpt
from qwen3_memory.recall.pipeline import Hit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecallEvent:
    """One recall: where, what was asked, with which filters, what came back, and who asked for it."""

    guild_id: int
    channel_id: int
    query: str
    filters: RecallFilters
    hits: tuple[Hit, ...]
    excerpts: tuple[Excerpt, ...] = ()  # the hits with their neighbouring lines, when the caller asked for them
    source: str = "api"  # "mention", "command" (the memory cog), "context" (Memory.context), or the caller's own
    requested_by: int | None = None  # the member who asked, when a member did


RecallListener = Callable[[RecallEvent], Awaitable[None] | None]


class RecallHooks:
    """The listeners of one memory's recalls."""

    def __init__(self) -> None:
        self._listeners: list[RecallListener] = []

    def add(self, listener: RecallListener) -> Callable[[], None]:
        """Call ``listener(event)`` (a function or a coroutine function) after every recall; returns its remover."""
        self._listeners.append(listener)
        return lambda: self.remove(listener)

    def remove(self, listener: RecallListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def emit(self, event: RecallEvent) -> None:
        for listener in list(self._listeners):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("a recall listener (%r) failed; the recall itself is unaffected", listener)
