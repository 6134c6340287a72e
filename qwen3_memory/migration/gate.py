"""The quality gate: a verdict per channel (pass, warn, fail) before its read pointer may move.

Structure decides first (a verify problem is a fail). Quality then, from what was measured:

- **labelled** (a labelled set was given): dense nDCG@10 of the channel's queries answered from
  the new space, as a share of the old space's (*retention*);
- **transform** (label-free): the vectors a linear map produced are approximations, so a sample
  of the channel's messages is embedded exactly (as regenerate would); each exact vector, used as
  a query, ranks the sample's exact vectors and the sample's transformed vectors, and the two top 5
  must agree (*neighbour overlap*: 1 for regenerate itself).

A failing channel is not swapped: neither by the automatic swap after verify nor by ``swap``,
unless forced (``swap --force``, or a confirmation in Discord). Thresholds: README, measured on the
shipped labelled set with all-MiniLM-L6-v2 -> all-mpnet-base-v2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qwen3_memory.errors import UserFacingError

PASS, WARN, FAIL = "pass", "warn", "fail"
VERDICTS = (PASS, WARN, FAIL)
RETENTION_FAIL_BELOW = 0.90  # new dense nDCG@10 under 90% of the old one: recall got worse, visibly
RETENTION_WARN_BELOW = 0.97
MIN_LABELLED_QUERIES = 5  # fewer labelled queries in a channel say nothing about it
# transform, label-free: top-5 overlap of exact vs transformed neighbours in a sample (measured, README: a fit on
# the first 1,000 messages of the smallest channels gave 0.49-0.61 in the three channels where its nDCG@10 fell to
# 26-63% of the old model's; spread fits of 1,920 or more gave 0.68-0.87 and kept 88-108% of it)
OVERLAP_FAIL_BELOW = 0.65
OVERLAP_WARN_BELOW = 0.72
OVERLAP_SAMPLE = 40
OVERLAP_K = 5


class GateRefused(UserFacingError):
    """The quality gate refused to move a channel's read pointer (its verdict is fail)."""


@dataclass(frozen=True)
class Verdict:
    level: str
    reasons: tuple[str, ...]

    def describe(self) -> str:
        return self.level.upper() + (f": {'; '.join(self.reasons)}" if self.reasons else "")


def labelled_retention(evaluation: dict[str, Any] | None) -> tuple[float, float, float, int] | None:
    """(old nDCG@10, new nDCG@10, new / old, queries) of the dense stage, when enough labelled queries were asked."""
    if not evaluation or evaluation.get("queries", 0) < MIN_LABELLED_QUERIES or len(evaluation["spaces"]) < 2:
        return None
    old = evaluation["spaces"][0]["metrics"].get("dense", {}).get("all", {}).get("ndcg@10")
    new = evaluation["spaces"][-1]["metrics"].get("dense", {}).get("all", {}).get("ndcg@10")
    if old is None or new is None or old <= 0:
        return None
    return old, new, new / old, int(evaluation["queries"])


def judge(
    problems: list[str], evaluation: dict[str, Any] | None, overlap: float | None, overlap_sample: int
) -> Verdict:
    """The channel's verdict from its verify report's numbers (the worst finding decides)."""
    if problems:
        return Verdict(FAIL, tuple(problems))
    level, reasons = PASS, []
    retention = labelled_retention(evaluation)
    if retention is not None:
        old, new, ratio, n = retention
        said = f"dense nDCG@10 {new:.3f} vs {old:.3f} before ({ratio:.0%} retained, {n} labelled queries)"
        if ratio < RETENTION_FAIL_BELOW:
            level, said = FAIL, f"{said}; below {RETENTION_FAIL_BELOW:.0%}"
        elif ratio < RETENTION_WARN_BELOW:
            level, said = WARN, f"{said}; below {RETENTION_WARN_BELOW:.0%}"
        reasons.append(said)
    if overlap is not None:
        said = (
            f"top-{OVERLAP_K} neighbours of {overlap_sample} messages embedded exactly: {overlap:.0%} the same among "
            "the transformed vectors"
        )
        if overlap < OVERLAP_FAIL_BELOW:
            level, said = FAIL, f"{said}; below {OVERLAP_FAIL_BELOW:.0%}: the linear map does not fit this channel"
        elif overlap < OVERLAP_WARN_BELOW and level != FAIL:
            level, said = WARN, f"{said}; below {OVERLAP_WARN_BELOW:.0%}"
        reasons.append(said)
    if retention is None and overlap is None:
        reasons.append("structure only: no labelled queries in this channel (verify --eval adds old vs new)")
    return Verdict(level, tuple(reasons))


async def neighbour_overlap(memory, target, guild_id: int, channel_id: int) -> tuple[float | None, int]:
    """Top-k agreement of exact and transformed neighbours within a sample of the channel (and the sample size).

    Each sampled message's exact vector (what regenerate makes) is a query: it ranks the other sampled messages
    by their exact vectors and by their stored (transformed) vectors; the overlap of the two top k, averaged."""
    chosen = [m for m in await memory.store.sample_messages(guild_id, channel_id, OVERLAP_SAMPLE) if m.content.strip()]
    stored = await memory.store.get_vectors(target.id, [m.id for m in chosen])
    chosen = [m for m in chosen if m.id in stored]
    if len(chosen) <= OVERLAP_K:
        return None, len(chosen)
    exact = await memory.services.get(target.spec).aencode_documents([m.content for m in chosen])
    transformed = np.stack([stored[m.id] for m in chosen])
    truth, approx = exact @ exact.T, exact @ transformed.T
    np.fill_diagonal(truth, -np.inf)  # a message is not its own neighbour
    np.fill_diagonal(approx, -np.inf)
    top_truth = np.argsort(-truth, axis=1)[:, :OVERLAP_K]
    top_approx = np.argsort(-approx, axis=1)[:, :OVERLAP_K]
    overlap = [len(set(a) & set(b)) / OVERLAP_K for a, b in zip(top_truth.tolist(), top_approx.tolist())]
    return float(np.mean(overlap)), len(chosen)


def verdict_of(report: dict[str, Any] | None) -> Verdict | None:
    """The verdict stored in a channel's verify report (None before this gate existed or before verify)."""
    if not report or "verdict" not in report:
        return None
    return Verdict(report["verdict"], tuple(report.get("verdict_reasons", ())))
