"""The quality gate: a verdict per channel (pass, warn, fail) before its read pointer may move.

Structure decides first (a verify problem is a fail). Quality then, from what was measured:

- **labelled** (a labelled set was given): dense nDCG@10 of the channel's queries answered from
  the new space, as a share of the old space's (*retention*);
- **transform** (label-free): the vectors a linear map produced are approximations, so a sample
  of the channel's messages is embedded exactly (as regenerate would) and each exact vector must
  find its message among the channel's top 10 in the new index (*regenerated top-10*).

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
REGENERATED_FAIL_BELOW = 0.80  # transform: exact vectors that miss their own message in the top 10
REGENERATED_WARN_BELOW = 0.95
REGENERATED_SAMPLE = 20


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
    problems: list[str], evaluation: dict[str, Any] | None, regenerated_top10: float | None, regenerated_sample: int
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
    if regenerated_top10 is not None:
        said = (
            f"{regenerated_top10:.0%} of {regenerated_sample} messages embedded exactly find themselves in the "
            "transformed top 10"
        )
        if regenerated_top10 < REGENERATED_FAIL_BELOW:
            level, said = FAIL, f"{said}; below {REGENERATED_FAIL_BELOW:.0%}: the linear map does not fit here"
        elif regenerated_top10 < REGENERATED_WARN_BELOW and level != FAIL:
            level, said = WARN, f"{said}; below {REGENERATED_WARN_BELOW:.0%}"
        reasons.append(said)
    if retention is None and regenerated_top10 is None:
        reasons.append("structure only: no labelled queries in this channel (verify --eval adds old vs new)")
    return Verdict(level, tuple(reasons))


async def regenerated_top10(
    memory, target, guild_id: int, channel_id: int, n: int = REGENERATED_SAMPLE
) -> float | None:
    """Share of ``n`` sampled messages whose exact target vector (what regenerate makes) finds the message in the
    channel's top 10 of ``target`` (where the transform's approximate vectors are)."""
    chosen = [m for m in await memory.store.sample_messages(guild_id, channel_id, n) if m.content.strip()]
    if not chosen:
        return None
    exact = await memory.services.get(target.spec).aencode_documents([m.content for m in chosen])
    _, hits = await memory.store.search_many(target, guild_id, channel_id, exact, 10)
    found = [m.id in set(int(i) for i in row) for m, row in zip(chosen, np.asarray(hits))]
    return float(np.mean(found))


def verdict_of(report: dict[str, Any] | None) -> Verdict | None:
    """The verdict stored in a channel's verify report (None before this gate existed or before verify)."""
    if not report or "verdict" not in report:
        return None
    return Verdict(report["verdict"], tuple(report.get("verdict_reasons", ())))
