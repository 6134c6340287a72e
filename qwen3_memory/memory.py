"""The memory as one object: store (with its indexes), embedding services, capture and recall, wired from settings.

The cogs, the demo, the evaluation and the migration engine all open a :class:`Memory`, so they
share one store connection, one set of loaded models and one set of live indexes per process.
It also holds the rules a chat front end applies before it captures or recalls: which channels
are captured, which members opted out (and forgetting what they wrote), what recall returns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from qwen3_memory.backends import Store, open_store
from qwen3_memory.capture import Capture
from qwen3_memory.errors import UserFacingError, disk_full_is_a_warning
from qwen3_memory.filters import NO_FILTERS, RecallFilters
from qwen3_memory.hooks import RecallEvent, RecallHooks
from qwen3_memory.models.embedding import EmbeddingServices
from qwen3_memory.recall.context import Excerpt, ExcerptShape, RecallContext, build_excerpts, fit_context
from qwen3_memory.recall.pipeline import Hit, Recaller, RecallOptions
from qwen3_memory.records import SpaceRecord
from qwen3_memory.settings import Settings
from qwen3_memory.space_identity import expect_stored_vectors

log = logging.getLogger(__name__)

MAX_RECALL_K = 25  # the most hits one recall returns (an embed shows 25 fields at most)


class Memory:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        default_space: SpaceRecord,
        services: EmbeddingServices | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.default_space = default_space
        ms = settings.memory
        self.claims = store.make_claims()  # which process runs which migration job
        # ``services`` lets one process share loaded models between memories (tests, benchmarks);
        # a Memory releases only the models it loaded itself.
        self._owns_services = services is None
        self.services = services or EmbeddingServices(
            settings.device_policy, ms.performance.max_concurrent_queries, settings.batch_size
        )
        self.reranker = None
        if settings.reranker is not None:  # loads lazily, on the first reranked query
            from qwen3_memory.models.rerank import Reranker

            self.reranker = Reranker(settings.reranker, settings.device_policy)
        self.recaller = Recaller(store, self.services, self.reranker)
        self.capture = Capture(
            store,
            self.services,
            default_space.id,
            batch_size=ms.capture.batch_size,
            queue_size=ms.capture.queue_size,
        )
        self._capture_enabled: dict[tuple[int, int], bool] = {}  # (guild, channel) -> on; cleared on change
        self._opted_out: dict[int, set[int]] = {}  # guild -> members who asked to be forgotten
        self.recall_hooks = RecallHooks()  # told of every recall (the memory cog re-dispatches as `memory_recall`)

    @classmethod
    async def open(
        cls, settings: Settings, start_capture: bool = True, services: EmbeddingServices | None = None
    ) -> Memory:
        store = await open_store(settings)
        try:
            default_space = await store.ensure_space(settings.space)
        except BaseException:
            await store.close()
            raise
        memory = cls(settings, store, default_space, services)
        try:
            await expect_stored_vectors(store, memory.services)  # a space never holds two models' vectors
        except BaseException:
            await memory.close()
            raise
        if start_capture:
            memory.capture.start()
        return memory

    def recall_options(self, **overrides) -> RecallOptions:
        return RecallOptions.from_settings(self.settings.memory.recall, **overrides)

    # ------------------------------------------------------------------ which channels are captured
    async def capture_enabled(self, guild_id: int, channel_id: int, parent_id: int | None = None) -> bool:
        """The channel's flag; a thread (``parent_id``) without its own follows its parent; else
        ``capture.enabled_by_default``. Cached until :meth:`set_capture_enabled`."""
        key = (guild_id, channel_id)
        if key not in self._capture_enabled:
            state = await self.store.get_channel(guild_id, channel_id)
            if state is None and parent_id is not None:
                state = await self.store.get_channel(guild_id, parent_id)
            enabled = state.enabled if state is not None else self.settings.memory.capture.enabled_by_default
            self._capture_enabled[key] = enabled
        return self._capture_enabled[key]

    async def set_capture_enabled(
        self, guild_id: int, channel_id: int, enabled: bool, threads: Iterable[int] = ()
    ) -> None:
        """Capture new messages of the channel or not; those of its ``threads`` already remembered follow it
        (threads without a flag of their own follow their parent anyway)."""
        store = self.store
        await store.ensure_channel(guild_id, channel_id, self.default_space.id, enabled=enabled)
        await store.set_channel_enabled(guild_id, channel_id, enabled)
        thread_ids = set(threads)
        for state in await store.list_channels(guild_id):
            if state.channel_id in thread_ids:
                await store.set_channel_enabled(guild_id, state.channel_id, enabled)
        self._capture_enabled.clear()

    # ------------------------------------------------------------------ members who opted out
    async def is_opted_out(self, guild_id: int, user_id: int) -> bool:
        """Whether the member asked this guild's memory to forget them (their messages are not captured)."""
        return user_id in await self._opted_out_users(guild_id)

    async def _opted_out_users(self, guild_id: int) -> set[int]:
        if guild_id not in self._opted_out:
            self._opted_out[guild_id] = await self.store.opted_out_users(guild_id)
        return self._opted_out[guild_id]

    async def forget_member(self, guild_id: int, user_id: int) -> int:
        """Stop capturing the member in this guild and delete what they wrote there (messages, vectors,
        index entries, including messages still queued); how many messages were deleted."""
        await self.store.set_opted_out(guild_id, user_id, True)
        (await self._opted_out_users(guild_id)).add(user_id)
        await self.capture.drain()  # messages already queued are written first, so they are deleted too
        ids = await self.store.author_message_ids(guild_id, user_id)
        await self.capture.delete(ids, wait=True)
        await self.store.flush()  # index files written now, not at the next periodic flush
        await self.store.scrub()  # gone from the database files too: free pages, the full-text index, the log
        return len(ids)

    async def remember_member(self, guild_id: int, user_id: int) -> None:
        """Capture the member's new messages in this guild again (what was forgotten stays forgotten)."""
        await self.store.set_opted_out(guild_id, user_id, False)
        (await self._opted_out_users(guild_id)).discard(user_id)

    # ------------------------------------------------------------------ recall
    async def recall(
        self,
        guild_id: int,
        channel_id: int,
        query: str,
        k: int | None = None,
        exclude: int | None = None,
        filters: RecallFilters = NO_FILTERS,
        source: str = "api",
        requested_by: int | None = None,
    ) -> list[Hit]:
        """The channel's ``k`` best earlier messages for ``query`` (default ``recall.k``) that pass ``filters``
        (authors, a time range, a preference for recent ones), without message ``exclude`` (the question
        itself, when it was captured). Recall listeners (:attr:`recall_hooks`) hear of it as from ``source``."""
        hits = await self._hits(guild_id, channel_id, query, k, exclude, filters)
        await self.recall_hooks.emit(
            RecallEvent(guild_id, channel_id, query, filters, tuple(hits), (), source, requested_by)
        )
        return hits

    async def recall_excerpts(
        self,
        guild_id: int,
        channel_id: int,
        query: str,
        k: int | None = None,
        exclude: int | None = None,
        filters: RecallFilters = NO_FILTERS,
        shape: ExcerptShape = ExcerptShape(),
        source: str = "api",
        requested_by: int | None = None,
    ) -> tuple[list[Hit], list[Excerpt]]:
        """:meth:`recall`, and its hits with the lines around them merged into excerpts (most relevant first)."""
        hits = await self._hits(guild_id, channel_id, query, k, exclude, filters)
        excerpts = await self.excerpts(guild_id, channel_id, hits, shape, exclude)
        await self.recall_hooks.emit(
            RecallEvent(guild_id, channel_id, query, filters, tuple(hits), tuple(excerpts), source, requested_by)
        )
        return hits, excerpts

    async def context(
        self,
        guild_id: int,
        channel_id: int,
        query: str,
        *,
        budget_chars: int = 4000,
        filters: RecallFilters = NO_FILTERS,
        k: int | None = None,
        shape: ExcerptShape = ExcerptShape(),
        exclude: int | None = None,
    ) -> RecallContext:
        """What this channel said about ``query``, ready for a prompt: excerpts (hits with their neighbouring
        lines, authors, UTC times, jump links), oldest first, de-duplicated, in at most ``budget_chars``.

        The API for other cogs (an LLM chat cog): see ``examples/ask_cog.py``. Never crosses the channel;
        deleted messages and members who opted out never appear.
        """
        _, excerpts = await self.recall_excerpts(guild_id, channel_id, query, k, exclude, filters, shape, "context")
        return fit_context(query, excerpts, budget_chars)

    async def excerpts(
        self,
        guild_id: int,
        channel_id: int,
        hits: Sequence[Hit],
        shape: ExcerptShape = ExcerptShape(),
        exclude: int | None = None,
    ) -> list[Excerpt]:
        """``hits`` of one channel with their neighbouring lines (read from the store), merged where they touch."""
        if not hits:
            return []
        lines = await self.store.neighbours(
            guild_id, channel_id, [h.message.id for h in hits], shape.before, shape.after, shape.window_seconds
        )
        hidden = await self._opted_out_users(guild_id)
        deleting = self.capture.deleting  # deleted in Discord, the deletion still queued
        lines = [m for m in lines if m.author_id not in hidden and m.id not in deleting and m.id != exclude]
        return build_excerpts(hits, lines, shape.before, shape.after, shape.max_gap_seconds)

    async def _hits(
        self, guild_id: int, channel_id: int, query: str, k: int | None, exclude: int | None, filters: RecallFilters
    ) -> list[Hit]:
        if k is not None and not 1 <= k <= MAX_RECALL_K:  # the commands offer 1-25; a crafted request may not
            raise UserFacingError(f"k must be between 1 and {MAX_RECALL_K}, got {k}")
        k = k or self.settings.memory.recall.k
        options = self.recall_options(k=k + 1 if exclude is not None else k)
        hits = await self.recaller.recall(guild_id, channel_id, query, options, filters=filters)
        deleting = self.capture.deleting  # deleted in Discord, the deletion still queued
        return [h for h in hits if h.message.id != exclude and h.message.id not in deleting][:k]

    async def close(self) -> None:
        """Write every queued message, persist indexes, release models and the database.

        A full disk does not stop the closing: what could not be written is logged in one line (claims
        expire by themselves, indexes are rebuilt from the database) and every step still runs."""
        try:
            await self.capture.stop()
        finally:
            if self._owns_services:
                self.services.close()
            try:
                with disk_full_is_a_warning(log, "migration claims not released (no space left); their leases expire"):
                    await self.claims.close()
            finally:
                await self.store.close()
