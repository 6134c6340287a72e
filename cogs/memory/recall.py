"""Recall: query -> dense (+ BM25, fused) -> optional rerank -> threshold -> messages.

The query is embedded by the model of the space the channel *reads* from, never another, and
every lookup is scoped to one guild and one channel: a result from elsewhere is impossible by
construction (the index is per channel) and is filtered again before returning.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .catalog import IndexCatalog
from .config import RecallSettings
from .embedding import EmbeddingServices
from .fusion import reciprocal_rank_fusion
from .records import SpaceRecord, StoredMessage
from .store import SQLiteStore


@dataclass(frozen=True)
class RecallOptions:
    k: int = 5
    min_score: float = 0.25  # cosine similarity under which a hit is dropped
    hybrid: bool = True
    rrf_k: int = 60
    rerank: bool = False
    rerank_candidates: int = 20
    candidates: int = 50

    @classmethod
    def from_settings(cls, recall: RecallSettings, **overrides) -> RecallOptions:
        base = cls(
            recall.k,
            recall.min_score,
            recall.hybrid,
            recall.rrf_k,
            recall.rerank,
            recall.rerank_candidates,
            recall.candidates,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class Hit:
    message: StoredMessage
    similarity: float  # cosine of query and message in the read space
    score: float  # what the order is by: similarity, fused RRF score or reranker probability
    space_id: int
    rerank_score: float | None = None


class Recaller:
    def __init__(self, store: SQLiteStore, catalog: IndexCatalog, services: EmbeddingServices, reranker=None) -> None:
        self.store = store
        self.catalog = catalog
        self.services = services
        self.reranker = reranker

    async def read_space(self, guild_id: int, channel_id: int) -> SpaceRecord | None:
        state = await self.store.get_channel(guild_id, channel_id)
        return None if state is None else await self.store.get_space(state.read_space_id)

    async def recall(
        self,
        guild_id: int,
        channel_id: int,
        query: str,
        options: RecallOptions = RecallOptions(),
        space: SpaceRecord | None = None,
    ) -> list[Hit]:
        """Best earlier messages of one channel for ``query``; ``space`` forces a space (A/B comparison)."""
        space = space or await self.read_space(guild_id, channel_id)
        if space is None or not query.strip():
            return []
        service = self.services.get(space.spec)
        query_vector = (await service.aencode_queries([query]))[0]
        dense = await self.catalog.search(space, guild_id, channel_id, query_vector, options.candidates)
        if options.hybrid:
            lexical = await self.store.search_text(guild_id, channel_id, query, options.candidates)
            fused = reciprocal_rank_fusion([[i for i, _ in dense], [i for i, _ in lexical]], options.rrf_k)
        else:
            fused = dense
        candidates = fused[: max(options.k, options.rerank_candidates if options.rerank else options.k)]
        similarity = await self._similarities(space, [i for i, _ in candidates], query_vector, dict(dense))
        messages = await self.store.get_messages([i for i, _ in candidates])
        hits = [
            Hit(messages[i], similarity[i], score, space.id)
            for i, score in candidates
            if i in messages
            and messages[i].guild_id == guild_id
            and messages[i].channel_id == channel_id
            and similarity.get(i, -1.0) >= options.min_score
        ]
        if options.rerank and self.reranker is not None and hits:
            scores = await self.reranker.ascore(query, [h.message.content for h in hits])
            hits = sorted(
                (replace(h, score=float(s), rerank_score=float(s)) for h, s in zip(hits, scores)),
                key=lambda h: -h.score,
            )
        return hits[: options.k]

    async def _similarities(
        self, space: SpaceRecord, ids: list[int], query_vector: np.ndarray, known: dict[int, float]
    ) -> dict[int, float]:
        """Cosine of the query with each candidate; lexical-only candidates are scored from stored vectors."""
        missing = [i for i in ids if i not in known]
        result = {i: known[i] for i in ids if i in known}
        if missing:
            for message_id, vector in (await self.store.get_vectors(space.id, missing)).items():
                result[message_id] = float(vector @ query_vector)
        return result
