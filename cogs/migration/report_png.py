"""The verification plot attached to ``/migrate verify``: old vs new scores, old/new agreement per channel."""

from __future__ import annotations

import io
from collections.abc import Sequence

from qwen3_memory.migration.verify import VerifyReport


def render_verify_png(reports: Sequence[VerifyReport], labels: Sequence[str]) -> bytes:
    """Old vs new similarity distributions and the old/new agreement per channel (blocking: call in a thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    scores, agreement = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    old = [s for r in reports for s in r.scores_old]
    new = [s for r in reports for s in r.scores_new]
    if old or new:
        scores.hist([old, new], bins=20, label=["old space", "new space"], color=["#8c8c8c", "#5865f2"])
        scores.legend()
    else:
        scores.text(0.5, 0.5, "no sampled queries", ha="center", va="center")
    scores.set_title("top-k similarity scores")
    scores.set_xlabel("cosine similarity")
    scores.set_ylabel("results")
    values = [r.agreement_at_k or 0.0 for r in reports]
    agreement.bar(range(len(values)), values, color="#57f287")
    agreement.set_xticks(range(len(values)), [label[:14] for label in labels], rotation=30, ha="right")
    agreement.set_ylim(0, 1)
    agreement.set_title("old/new top-k agreement per channel")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
