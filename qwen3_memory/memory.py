"""The memory as one object: store (with its indexes), embedding services, capture and recall, wired from settings.

The cogs, the demo, the evaluation and the migration engine all open a :class:`Memory`, so they
share one store connection, one set of loaded models and one set of live indexes per process.
"""

from __future__ import annotations

import logging

from qwen3_memory.backends import Store, open_store
from qwen3_memory.capture import Capture
from qwen3_memory.models.embedding import EmbeddingServices
from qwen3_memory.recall.pipeline import Recaller, RecallOptions
from qwen3_memory.records import SpaceRecord
from qwen3_memory.settings import Settings

log = logging.getLogger(__name__)


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
        if start_capture:
            memory.capture.start()
        return memory

    def recall_options(self, **overrides) -> RecallOptions:
        return RecallOptions.from_settings(self.settings.memory.recall, **overrides)

    async def close(self) -> None:
        """Write every queued message, persist indexes, release models and the database."""
        try:
            await self.capture.stop()
        finally:
            if self._owns_services:
                self.services.close()
            await self.claims.close()
            await self.store.close()
