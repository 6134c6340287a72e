"""Recall: query -> dense and/or BM25 (fused by reciprocal rank) -> cosine floor -> optional rerank -> top k.

The query is embedded by the model of the space the channel *reads* from, never another, and
every lookup is scoped to one guild and one channel: a result from elsewhere is impossible by
construction (the index and the BM25 query are per channel) and is filtered again before returning.

Stages, each switchable in settings (``memory_system.recall``) and per query (:class:`RecallOptions`):

1. **dense**: the ``candidates`` nearest messages in the read space's FAISS index of the channel;
2. **BM25** (``hybrid``): the ``candidates`` best FTS5 matches of the channel's text. With dense on,
   the two ranked lists are fused by weighted reciprocal rank (``rrf_k``, ``bm25_weight``); with dense
   off it is BM25 alone.
   Fusion uses ranks only, so no score of one model is ever compared with a score of another,
   and the lexical list is text, not vectors: hybrid never mixes embedding spaces;
3. **cosine floor** (the read space's own calibrated floor, see :mod:`.floors`; ``min_score`` when
   set overrides it): every candidate's cosine with the query *in the read space*
   (candidates found only by BM25 are scored from their stored read-space vectors) must reach
   the floor; a candidate with no vector in the read space yet is skipped. This is the same
   number whatever the later stages do, so one threshold keeps its meaning. With dense off no
   query vector exists: the floor does not apply and ``similarity`` is NaN;
4. **rerank**: the best ``max(k, rerank_candidates)`` survivors are scored by the reranker and
   re-ordered by its probability; ``min_rerank_score`` (0: off) then drops those it judges
   irrelevant. A reranker that cannot load is switched off with one logged error, and recall
   carries on with the fused order rather than failing every query.

:class:`~qwen3_memory.filters.RecallFilters` (authors, a time range) apply inside the dense and the
BM25 search, so both lists hold only passing messages (an exact dense search of the passing subset:
a narrow filter still yields k results); an optional recency preference re-orders the survivors of
the floor by score times the decay of their age (:mod:`.recency`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from qwen3_memory.backends import Store
from qwen3_memory.errors import ModelUnavailable, ReadSpaceMoved, UserFacingError
from qwen3_memory.filters import NO_FILTERS, RecallFilters
from qwen3_memory.models.embedding import EmbeddingServices
from qwen3_memory.recall.conversation import ConversationOptions, in_conversation
from qwen3_memory.recall.floors import FloorCache
from qwen3_memory.recall.fusion import reciprocal_rank_fusion
from qwen3_memory.recall.recency import prefer_recent
from qwen3_memory.recall.weighting import LexicalWeighting
from qwen3_memory.records import SpaceRecord, StoredMessage
from qwen3_memory.settings import RecallSettings

log = logging.getLogger(__name__)

#: Stage names understood by :meth:`RecallOptions.for_stage` (the evaluation's ``--stages``).
STAGES = ("dense", "bm25", "hybrid", "dense+rerank", "bm25+rerank", "hybrid+rerank")


@dataclass(frozen=True)
class RecallOptions:
    """How one query is answered. Defaults equal :class:`~.config.RecallSettings`' defaults."""

    k: int = 5
    min_score: float | None = None  # cosine floor in the read space; -1 keeps everything; None: the space's own
    dense: bool = True  # search the read space's vector index
    hybrid: bool = True  # also BM25 (FTS5), fused with dense by reciprocal rank; with dense off: BM25 alone
    rrf_k: int = 1  # reciprocal-rank fusion constant: score = sum of weight / (rrf_k + rank)
    bm25_weight: float = 0.7  # weight of the BM25 list in the fusion (the dense list weighs 1) ...
    bm25_weight_power: float = 1.0  # ... times max(1, (0.2 / dense spread) ** power), at most x4 (0: fixed)
    rerank: bool = False
    rerank_candidates: int = 10  # how many of the best candidates the reranker sees (at least k)
    min_rerank_score: float = 0.0  # reranker probability floor, only when reranking; 0 keeps everything
    candidates: int = 50  # depth of the dense and of the BM25 list before fusion
    conversation: bool = True  # asking lines pass their match on to the lines that follow (recall.conversation)
    conversation_carry: float = 1.0  # share of an asking line's score that its followers inherit
    conversation_lines: int = 8  # how many following lines inherit it
    conversation_gap_seconds: float = 1200.0  # within this long after the asking line
    rerank_with_question: bool = True  # the reranker reads an answer after the asking line it follows

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if not (self.dense or self.hybrid):
            raise ValueError("recall needs the dense or the BM25 stage: dense and hybrid are both off")
        if self.candidates < 1 or self.rerank_candidates < 1 or self.rrf_k < 1:
            raise ValueError("candidates, rerank_candidates and rrf_k must be at least 1")
        if not self.bm25_weight > 0:
            raise ValueError(f"bm25_weight must be above 0, got {self.bm25_weight}")
        if self.min_score is not None and not -1.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score is a cosine, between -1 and 1; got {self.min_score}")
        if not 0.0 <= self.min_rerank_score <= 1.0:
            raise ValueError(f"min_rerank_score is a probability, between 0 and 1; got {self.min_rerank_score}")

    @classmethod
    def from_settings(cls, recall: RecallSettings, **overrides) -> RecallOptions:
        """The settings' options, with per-query ``overrides`` (``None`` values mean: keep the setting)."""
        base = cls(
            k=recall.k,
            min_score=recall.min_score,
            dense=recall.dense,
            hybrid=recall.hybrid,
            rrf_k=recall.rrf_k,
            bm25_weight=recall.bm25_weight,
            bm25_weight_power=recall.bm25_weight_power,
            rerank=recall.rerank,
            rerank_candidates=recall.rerank_candidates,
            min_rerank_score=recall.min_rerank_score,
            candidates=recall.candidates,
            conversation=recall.conversation,
            conversation_carry=recall.conversation_carry,
            conversation_lines=recall.conversation_lines,
            conversation_gap_seconds=recall.conversation_gap_seconds,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def stage(self) -> str:
        """The pipeline as a name of :data:`STAGES`: ``dense``, ``bm25`` or ``hybrid``, plus ``+rerank``."""
        retrieval = "hybrid" if self.dense and self.hybrid else "dense" if self.dense else "bm25"
        return retrieval + ("+rerank" if self.rerank else "")

    def for_stage(self, stage: str) -> RecallOptions:
        """These options with the stage switches set for ``stage`` (one of :data:`STAGES`)."""
        if stage not in STAGES:
            raise ValueError(f"unknown recall stage {stage!r}; choose from {', '.join(STAGES)}")
        retrieval, _, rerank = stage.partition("+")
        return replace(self, dense=retrieval != "bm25", hybrid=retrieval != "dense", rerank=bool(rerank))

    @property
    def conversation_options(self) -> ConversationOptions | None:
        """How far a question's match carries to its answers, or None when that is off."""
        if not self.conversation:
            return None
        return ConversationOptions(
            lines=self.conversation_lines, gap_seconds=self.conversation_gap_seconds, carry=self.conversation_carry
        )

    @property
    def rerank_depth(self) -> int:
        return max(self.k, self.rerank_candidates)

    @property
    def search_depth(self) -> int:
        """How many results the dense and the BM25 search each return."""
        return max(self.candidates, self.k, self.rerank_depth if self.rerank else 0)


@dataclass(frozen=True)
class Hit:
    message: StoredMessage
    similarity: float  # cosine of query and message in the read space (NaN when the dense stage is off)
    score: float  # what the order is by: similarity, fused RRF score, BM25 score or reranker probability
    space_id: int
    rerank_score: float | None = None  # the reranker's probability, when the hit was reranked


class Recaller:
    """Runs :class:`RecallOptions` against one store; each stage is a method so it can be timed alone."""

    def __init__(self, store: Store, services: EmbeddingServices, reranker=None) -> None:
        self.store = store
        self.services = services
        self.reranker = reranker
        self.reranker_error: str | None = None  # why reranking was switched off, if it was
        self.floors = FloorCache(store)
        self._warned_no_reranker = False

    async def read_space(self, guild_id: int, channel_id: int) -> SpaceRecord | None:
        state = await self.store.get_channel(guild_id, channel_id)
        return None if state is None else await self.store.get_space(state.read_space_id)

    # ------------------------------------------------------------------ stages
    async def embed_query(self, space: SpaceRecord, query: str) -> np.ndarray:
        """The query's vector in ``space``, by that space's model and query prompt."""
        vector = (await self.services.get(space.spec).aencode_queries([query]))[0]
        if vector.shape != (space.dimension,):  # pragma: no cover - the service checks its model at load
            raise ValueError(f"query vector of shape {vector.shape} for a {space.dimension}-d space")
        return vector

    async def dense_candidates(
        self,
        space: SpaceRecord,
        guild_id: int,
        channel_id: int,
        query_vector: np.ndarray,
        n: int,
        check_pointer: bool = False,
        filters: RecallFilters = NO_FILTERS,
    ) -> list[tuple[int, float]]:
        """(message id, cosine) of the channel's ``n`` nearest messages in ``space`` passing ``filters``, best
        first; ``check_pointer`` raises :class:`ReadSpaceMoved` if the channel no longer reads ``space``."""
        return await self.store.search(
            space, guild_id, channel_id, query_vector, n, expect_read_space=check_pointer, filters=filters
        )

    async def lexical_candidates(
        self, guild_id: int, channel_id: int, query: str, n: int, filters: RecallFilters = NO_FILTERS
    ) -> list[tuple[int, float]]:
        """(message id, BM25 score) of the channel's ``n`` best text matches passing ``filters``, best first."""
        return await self.store.search_text(guild_id, channel_id, query, n, filters=filters)

    @staticmethod
    def fuse(
        dense: Sequence[tuple[int, float]] | None,
        lexical: Sequence[tuple[int, float]] | None,
        rrf_k: int,
        bm25_weight: float = 1.0,
    ) -> list[tuple[int, float]]:
        """One ranked list: weighted reciprocal-rank fusion when both stages ran, else the one that did.

        score(d) = 1 / (rrf_k + dense rank) + bm25_weight / (rrf_k + BM25 rank), ranks from 1; ties keep
        the order of first appearance (dense first). With weight 1 this is plain RRF.
        """
        if dense is None or lexical is None:
            return list(dense if dense is not None else lexical or [])
        dense_ids, lexical_ids = [i for i, _ in dense], [i for i, _ in lexical]
        if bm25_weight == 1.0:
            return reciprocal_rank_fusion([dense_ids, lexical_ids], rrf_k)
        scores: dict[int, float] = {}
        for ids, weight in ((dense_ids, 1.0), (lexical_ids, bm25_weight)):
            for item, score in reciprocal_rank_fusion([ids], rrf_k):
                scores[item] = scores.get(item, 0.0) + weight * score
        order = {item: n for n, item in enumerate(scores)}
        return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))

    async def rerank(
        self, query: str, hits: Sequence[Hit], options: RecallOptions, asked: dict[int, str] | None = None
    ) -> list[Hit]:
        """The first ``rerank_depth`` hits ordered by the reranker, under ``min_rerank_score`` dropped.

        ``asked``: for a hit that follows an asking line, that line's text, which the reranker reads
        first (question, then answer). Without a usable reranker the hits come back in their order, unscored.
        """
        pool = list(hits[: options.rerank_depth])
        if not pool or not self._reranker_usable():
            return pool
        try:
            documents = [_with_question(h.message.content, (asked or {}).get(h.message.id)) for h in pool]
            scores = await self.reranker.ascore(query, documents)
        except ModelUnavailable as exc:
            self.reranker_error = str(exc)
            log.error("reranking is off until restart: %s", exc)
            return pool
        except UserFacingError as exc:  # out of memory even one pair at a time: skip it for this query
            log.warning("reranking skipped for one query: %s", exc)
            return pool
        reranked = [replace(h, score=float(s), rerank_score=float(s)) for h, s in zip(pool, scores)]
        reranked.sort(key=lambda h: -h.score)  # stable: equal probabilities keep the fused order
        return [h for h in reranked if h.score >= options.min_rerank_score]

    def _reranker_usable(self) -> bool:
        if self.reranker is None:
            if not self._warned_no_reranker:
                log.warning("reranking was asked for, but the profile has no reranker; results are not reranked")
                self._warned_no_reranker = True
            return False
        return self.reranker_error is None

    # ------------------------------------------------------------------ the pipeline
    async def recall(
        self,
        guild_id: int,
        channel_id: int,
        query: str,
        options: RecallOptions = RecallOptions(),
        space: SpaceRecord | None = None,
        filters: RecallFilters = NO_FILTERS,
    ) -> list[Hit]:
        """Best earlier messages of one channel for ``query`` that pass ``filters`` (authors, a time range, a
        preference for recent ones); ``space`` forces a space (A/B comparison).

        Without a forced space the dense search checks, in its own transaction, that the channel still
        reads the space the query was embedded for; a swap in between (by another process) means one
        more round with the new space, never a query of one model against vectors of another.
        """
        forced = space is not None
        for attempt in range(3):
            space = space if forced else await self.read_space(guild_id, channel_id)
            if space is None or not query.strip():
                return []
            try:
                return await self._recall_in(space, guild_id, channel_id, query, options, not forced, filters)
            except ReadSpaceMoved:
                log.info("channel %d moved to another space during a recall; retrying (%d)", channel_id, attempt + 1)
        return []

    async def _recall_in(
        self,
        space: SpaceRecord,
        guild_id: int,
        channel_id: int,
        query: str,
        options: RecallOptions,
        check_pointer: bool,
        filters: RecallFilters = NO_FILTERS,
    ) -> list[Hit]:
        depth = options.search_depth
        query_vector = dense = lexical = None
        if options.dense:
            query_vector = await self.embed_query(space, query)
            dense = await self.dense_candidates(
                space, guild_id, channel_id, query_vector, depth, check_pointer, filters
            )
        if options.hybrid:
            lexical = await self.lexical_candidates(guild_id, channel_id, query, depth, filters)
        weighting = LexicalWeighting(options.bm25_weight, options.bm25_weight_power)
        bm25_weight = weighting.for_query([s for _, s in dense or ()])
        asked: dict[int, str] = {}
        cosines = dict(dense or ())  # the dense list's own scores: after the carry they are no cosines
        if (conversation := options.conversation_options) is not None:
            carried = await in_conversation(
                self.store, space.id, guild_id, channel_id, query_vector, dense, lexical, conversation, filters
            )
            dense, lexical, asked = carried.dense, carried.lexical, carried.asked
        ranked = self.fuse(dense, lexical, options.rrf_k, bm25_weight)
        if query_vector is not None:
            floor = options.min_score if options.min_score is not None else await self.floors.floor(space.id)
            similarity = await self._similarities(space, [i for i, _ in ranked], query_vector, cosines)
            ranked = [(i, s) for i, s in ranked if i in similarity and similarity[i] >= floor]
        else:
            similarity = {}
        if filters.recency_half_life_days is not None:
            ranked = await prefer_recent(self.store, ranked, filters.recency_half_life_days)
        wanted = ranked[: options.rerank_depth if options.rerank else options.k]
        messages = await self.store.get_messages([i for i, _ in wanted])
        hits = [
            Hit(messages[i], similarity.get(i, math.nan), score, space.id)
            for i, score in wanted
            if i in messages and messages[i].guild_id == guild_id and messages[i].channel_id == channel_id
        ]
        if options.rerank:
            hits = await self.rerank(query, hits, options, asked if options.rerank_with_question else {})
        return hits[: options.k]

    async def _similarities(
        self, space: SpaceRecord, ids: list[int], query_vector: np.ndarray, known: dict[int, float]
    ) -> dict[int, float]:
        """Cosine of the query with each candidate in ``space``; BM25-only candidates are scored from
        their stored vectors, and a message with no vector in ``space`` (not embedded yet) gets none."""
        result = {i: known[i] for i in ids if i in known}
        missing = [i for i in ids if i not in known]
        if missing:
            for message_id, vector in (await self.store.get_vectors(space.id, missing)).items():
                result[message_id] = float(vector @ query_vector)
        return result


def _with_question(content: str, question: str | None) -> str:
    """What the reranker reads of a hit: the asking line it follows first, when it follows one."""
    return content if question is None else f"{question}\n{content}"
