"""Verification of a channel's vectors in a space, before its read pointer may move there.

Structural checks fail the verification: every message has exactly one finite vector of the
right dimension (unit norm where the space normalises), the FAISS index holds exactly those
vectors, and each sampled vector finds its own message first. The agreement of old and new
top-k results is reported, not judged: two different models are expected to disagree somewhat.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qwen3_memory.memory import Memory
from qwen3_memory.migration import gate
from qwen3_memory.migration.query_bank import ChannelQueries
from qwen3_memory.recall.floors import noise_scores
from qwen3_memory.records import SpaceRecord

SELF_RETRIEVAL_EXACT = 0.99
SELF_RETRIEVAL_APPROXIMATE = 0.95
IN_FLIGHT_ALLOWANCE = 256  # newest messages still in the capture queue when verify ran
COUNT_REREADS = 3  # index and database counts that differ are read again this often before it is a problem
JOB_AGREEMENT_QUERIES = 100  # old-vs-new agreement queries of a whole job, spread over its channels by size


def agreement_shares(sizes: Sequence[int], budget: int = JOB_AGREEMENT_QUERIES) -> list[int]:
    """How many of the job's ``budget`` agreement queries each channel gets, in proportion to its size.

    The check costs two query encodes and two searches per query, whatever the channel's size, so a
    budget per channel would make a job of thousands of small channels spend more model time on it
    than on the messages themselves. Shares are spread evenly (a channel's share is the budget's
    count of steps crossed by its cumulative size), sum to ``min(budget, total)`` and never exceed a
    channel's own size; a channel with share 0 reports no agreement.
    """
    total = sum(sizes)
    if total <= 0:
        return [0] * len(sizes)
    budget = min(budget, total)
    shares, cumulative, given = [], 0, 0
    for size in sizes:
        cumulative += size
        reached = budget * cumulative // total
        shares.append(min(size, reached - given))
        given += shares[-1]
    return shares


@dataclass
class VerifyReport:
    guild_id: int
    channel_id: int
    space_key: str
    messages: int = 0
    vectors: int = 0
    in_flight: int = 0
    non_finite: int = 0
    bad_norm: int = 0
    dimension: int = 0
    index_size: int = 0
    index_kind: str = ""
    self_retrieval: float = 0.0
    self_retrieval_sample: int = 0
    agreement_at_k: float | None = None
    agreement_queries: int = 0
    source_key: str = ""
    evaluation: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    scores_old: list[float] = field(default_factory=list)
    scores_new: list[float] = field(default_factory=list)
    strategy: str = ""
    neighbour_overlap: float | None = None  # transform: exact vs transformed neighbours agree (see gate)
    overlap_sample: int = 0
    noise: list[float] = field(default_factory=list)  # best cosines of queries with no answer here (floors)
    verdict: str = ""  # the quality gate's pass / warn / fail
    verdict_reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        agreement = f", old/new top-10 agreement {self.agreement_at_k:.2f}" if self.agreement_at_k is not None else ""
        return (
            f"{'PASS' if self.passed else 'FAIL'} (verdict {self.verdict or '-'}) {self.vectors}/{self.messages} "
            f"vectors, index {self.index_size} "
            f"({self.index_kind}), self-retrieval {self.self_retrieval:.3f}{agreement}"
            + (f"; problems: {'; '.join(self.problems)}" if self.problems else "")
        )


async def verify_channel(
    memory: Memory,
    source: SpaceRecord | None,
    target: SpaceRecord,
    guild_id: int,
    channel_id: int,
    sample: int = 200,
    k: int = 10,
    agreement_queries: int = 20,
    eval_path: Path | None = None,
    seed: int = 0,
    strategy: str = "",
    noise_queries: int = 0,
    prepared: ChannelQueries | None = None,
) -> VerifyReport:
    """Check (target, channel); compare with ``source`` on sampled queries when given; then the quality gate's
    verdict (``strategy`` transform adds the neighbour-overlap check) and ``noise_queries`` for its floor.
    ``prepared``: the channel's agreement and noise queries, chosen and encoded with its group's (query_bank);
    they replace ``agreement_queries`` and ``noise_queries``."""
    store = memory.store
    report = VerifyReport(
        guild_id, channel_id, target.spec.key, dimension=target.dimension, source_key=source.spec.key if source else ""
    )
    report.messages = await store.count_messages(guild_id, channel_id)
    try:
        ids, vectors, _ = await store.load_vectors(target, guild_id, channel_id)
    except ValueError:
        report.problems.append(f"some stored vectors are not {target.dimension}-d")
        return report
    report.vectors = len(ids)
    missing = await store.messages_missing_vectors(target.id, guild_id, channel_id, 0, IN_FLIGHT_ALLOWANCE + 1)
    newest = int(ids.max()) if len(ids) else 0
    report.in_flight = sum(1 for m in missing if m.id > newest)
    if len(missing) > report.in_flight or len(missing) > IN_FLIGHT_ALLOWANCE:
        report.problems.append(f"{report.messages - report.vectors} messages have no vector")
    finite = np.isfinite(vectors).all(axis=1)
    report.non_finite = int((~finite).sum())
    if report.non_finite:
        report.problems.append(f"{report.non_finite} vectors contain NaN or infinity")
    if target.spec.normalize and len(ids):
        norms = np.linalg.norm(np.where(finite[:, None], vectors, 0), axis=1)
        report.bad_norm = int((np.abs(norms - 1.0) > 1e-3)[finite].sum())
        if report.bad_norm:
            report.problems.append(f"{report.bad_norm} vectors are not unit length")
    index = await memory.store.index_info(target, guild_id, channel_id)  # the one searches use
    report.index_size, report.index_kind = len(index), index.kind
    stored = report.vectors
    for _ in range(COUNT_REREADS):  # live capture may write between the two reads: read both again, back to back
        if report.index_size == stored:
            break
        stored = await store.count_vectors(target.id, guild_id, channel_id)
        report.index_size = len(await memory.store.index_info(target, guild_id, channel_id))
    if report.index_size != stored:
        report.problems.append(f"the index holds {report.index_size} vectors, the database {stored}")
    await _self_retrieval(report, memory, target, ids[finite], vectors[finite], sample, seed)
    if source is not None and report.messages and agreement_queries > 0:
        await _agreement(report, memory, source, target, guild_id, channel_id, k, agreement_queries, prepared)
    if eval_path is not None:
        from qwen3_memory.evaluation import evaluate_channel_spaces

        report.evaluation = await evaluate_channel_spaces(
            memory, eval_path, guild_id, channel_id, [s for s in (source, target) if s is not None]
        )
    await _quality(report, memory, target, strategy, noise_queries, prepared)
    return report


async def _quality(
    report: VerifyReport,
    memory: Memory,
    target: SpaceRecord,
    strategy: str,
    noise: int,
    prepared: ChannelQueries | None = None,
) -> None:
    """The measurements the gate and the floors need, then the verdict."""
    report.strategy = strategy
    g, c = report.guild_id, report.channel_id
    if strategy == "transform" and report.vectors and not report.problems:
        report.neighbour_overlap, report.overlap_sample = await gate.neighbour_overlap(memory, target, g, c)
    if prepared is not None:
        if prepared.noise_texts and report.vectors and not report.problems:
            report.noise = await noise_scores(memory, target, g, c, prepared=(prepared.noise_texts, prepared.noise))
    elif noise and report.vectors and not report.problems:
        report.noise = await noise_scores(memory, target, g, c, noise)
    verdict = gate.judge(report.problems, report.evaluation, report.neighbour_overlap, report.overlap_sample)
    report.verdict, report.verdict_reasons = verdict.level, list(verdict.reasons)


async def _self_retrieval(
    report: VerifyReport,
    memory: Memory,
    target: SpaceRecord,
    ids: np.ndarray,
    vectors: np.ndarray,
    sample: int,
    seed: int,
) -> None:
    """Each sampled vector must come back first for its own message (ties with duplicates count)."""
    if not len(ids):
        return
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(ids), size=min(sample, len(ids)), replace=False)
    scores, hits = await memory.store.search_many(  # one batched search, off the loop
        target, report.guild_id, report.channel_id, vectors[rows], 1
    )
    own = np.einsum("ij,ij->i", vectors[rows], vectors[rows])
    found = int(np.sum((hits[:, 0] == ids[rows]) | ((hits[:, 0] >= 0) & (np.abs(scores[:, 0] - own) < 1e-5))))
    report.self_retrieval = found / len(rows)
    report.self_retrieval_sample = len(rows)
    threshold = SELF_RETRIEVAL_APPROXIMATE if "hnsw" in report.index_kind else SELF_RETRIEVAL_EXACT
    if report.self_retrieval < threshold:
        report.problems.append(
            f"only {report.self_retrieval:.1%} of sampled vectors retrieve their own message "
            f"first (need {threshold:.0%}): the index or the vectors are damaged"
        )


async def _agreement(
    report: VerifyReport,
    memory: Memory,
    source: SpaceRecord,
    target: SpaceRecord,
    guild_id: int,
    channel_id: int,
    k: int,
    queries: int,
    prepared: ChannelQueries | None = None,
) -> None:
    """Overlap of old and new top-k for message texts used as queries (reported, not judged)."""
    if prepared is not None:
        texts, old_q, new_q = prepared.agreement_texts, prepared.old, prepared.new
        if not texts:
            return
    else:
        texts = [m.content for m in await memory.store.sample_messages(guild_id, channel_id, queries)]
        if not texts:
            return
        old_q = await memory.services.get(source.spec).aencode_queries(texts)
        new_q = await memory.services.get(target.spec).aencode_queries(texts)
    old_scores, old_ids = await memory.store.search_many(source, guild_id, channel_id, old_q, k)
    new_scores, new_ids = await memory.store.search_many(target, guild_id, channel_id, new_q, k)
    overlaps = []
    for row in range(len(texts)):
        old_found, new_found = old_ids[row] >= 0, new_ids[row] >= 0
        if old_found.any() and new_found.any():
            shared = set(old_ids[row][old_found].tolist()) & set(new_ids[row][new_found].tolist())
            overlaps.append(len(shared) / min(k, int(new_found.sum())))
            report.scores_old.extend(old_scores[row][old_found].tolist())
            report.scores_new.extend(new_scores[row][new_found].tolist())
    if overlaps:
        report.agreement_at_k = float(np.mean(overlaps))
        report.agreement_queries = len(overlaps)
