"""What makes a swap safe, measured with two real models on the shipped labelled set.

all-MiniLM-L6-v2 (384-d, the offline_default space) and all-mpnet-base-v2 (768-d, assembled from
its PyPI parts) embed every message and query of ``tests/data/eval_chat.jsonl`` once (cached in
``~/.cache/qwen3-memory/bench/``); then, with numpy only (dense search per channel, exact):

- dense nDCG@10 overall and per channel for each model, and for transform maps fitted the old way
  (the first 1,000 messages of the smallest channels) and on spread samples of several sizes;
- each space's labelled floor (the rule of qwen3_memory.recall.floors) and the quantiles of the
  label-free noise (messages of other channels asked where they have no answer);
- the gate's label-free transform check (top-5 neighbour overlap of exact vs transformed vectors in
  a 40-message sample per channel), next to each channel's labelled nDCG retention.

``python bench/swap_safety.py`` (mpnet encodes ~2,700 texts the first time: minutes on a laptop CPU).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qwen3_memory.evaluation import load_eval_set  # noqa: E402
from qwen3_memory.migration.strategies import fit_linear_map  # noqa: E402
from qwen3_memory.models.embedding import EmbeddingService  # noqa: E402
from qwen3_memory.models.packaged_mpnet import assemble, cache_dir  # noqa: E402
from qwen3_memory.ranking_metrics import ndcg_at_k  # noqa: E402
from qwen3_memory.recall.floors import NEAR_DUPLICATE, labelled_floor  # noqa: E402
from qwen3_memory.settings import CustomModel, default_settings  # noqa: E402

DATASET = Path(__file__).resolve().parents[1] / "tests" / "data" / "eval_chat.jsonl"


def embeddings(name: str, space, texts: list[str], queries: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Documents and queries of the set in ``space``, through the project's embedding service (cached)."""
    folder = cache_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    docs_file, queries_file = folder / f"{name}_docs.npy", folder / f"{name}_queries.npy"
    if not docs_file.exists():
        service = EmbeddingService(space, batch_size=64)
        np.save(docs_file, service.encode_documents(texts))
        np.save(queries_file, service.encode_queries(queries))
        service.close()
    return np.load(docs_file), np.load(queries_file)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    eval_set = load_eval_set(DATASET)
    messages, queries = eval_set.messages, eval_set.queries
    ids = np.array([m.id for m in messages])
    channel_of = np.array([hash((m.guild_id, m.channel_id)) for m in messages])
    query_channel = np.array([hash((q.guild_id, q.channel_id)) for q in queries])
    channels = sorted(set(channel_of.tolist()), key=lambda c: (channel_of == c).sum())  # smallest first
    texts, query_texts = [m.content for m in messages], [q.text for q in queries]
    minilm = embeddings("minilm", default_settings().space, texts, query_texts)
    mpnet_space = CustomModel("sentence-transformers/all-mpnet-base-v2", str(assemble()), 768).space()
    mpnet = embeddings("mpnet", mpnet_space, texts, query_texts)
    rng = np.random.default_rng(0)

    def evaluate(docs: np.ndarray, query_vectors: np.ndarray) -> tuple[float, list[float], float]:
        per: dict[int, list[float]] = {}
        found, relevant = [], []
        for n, query in enumerate(queries):
            rows = np.where(channel_of == query_channel[n])[0]
            scores = docs[rows] @ query_vectors[n]
            order = np.argsort(-scores)[:10]
            ranked = [int(ids[rows[j]]) for j in order]
            per.setdefault(query_channel[n], []).append(ndcg_at_k(ranked, query.relevant, 10))
            found.append([float(scores[j]) for j in order[:5] if int(ids[rows[j]]) in query.relevant])
            relevant.append(len(query.relevant))
        overall = float(np.mean([v for values in per.values() for v in values]))
        return overall, [float(np.mean(per[c])) for c in channels], labelled_floor(found, relevant)

    def noise(docs: np.ndarray, per_channel: int = 16) -> np.ndarray:
        best = []
        for c in channels:
            rows, others = np.where(channel_of == c)[0], np.where(channel_of != c)[0]
            asked = rng.choice(others, per_channel, replace=False)
            best += [s for s in (docs[asked] @ docs[rows].T).max(axis=1) if s < NEAR_DUPLICATE]
        return np.array(best)

    def overlap(transformed: np.ndarray, exact: np.ndarray, k: int = 5, n: int = 40) -> list[float]:
        result = []
        for c in channels:
            pick = rng.choice(np.where(channel_of == c)[0], n, replace=False)
            truth, approx = exact[pick] @ exact[pick].T, exact[pick] @ transformed[pick].T
            np.fill_diagonal(truth, -np.inf)
            np.fill_diagonal(approx, -np.inf)
            a, b = np.argsort(-truth, axis=1)[:, :k], np.argsort(-approx, axis=1)[:, :k]
            result.append(float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a.tolist(), b.tolist())])))
        return result

    def row(label: str, overall: float, per: list[float], extra: str = "") -> None:
        print(f"{label:<34} {overall:.3f}  " + " ".join(f"{v:.3f}" for v in per) + (f"  {extra}" if extra else ""))

    print(f"{len(messages)} messages in {len(channels)} channels (smallest first), {len(queries)} queries")
    print(f"{'dense nDCG@10':<34} {'all':>5}  per channel")
    old_all, old_per, old_floor = evaluate(*minilm)
    new_all, new_per, new_floor = evaluate(*mpnet)
    row("all-MiniLM-L6-v2 (old)", old_all, old_per)
    row("all-mpnet-base-v2 (regenerate)", new_all, new_per)
    biased: list[int] = []
    for c in channels:  # the old engine's sample: the first messages of the smallest channels
        biased += list(np.where(channel_of == c)[0])
        if len(biased) >= 1000:
            break
    samples = [("transform, first 1,000 (old way)", np.array(biased[:1000]))]
    samples += [(f"transform, spread {n:,}", rng.choice(len(messages), n, replace=False)) for n in (500, 1000, 1920)]
    samples += [("transform, all 2,300", np.arange(len(messages)))]
    for label, rows in samples:
        fitted = fit_linear_map(minilm[0][rows], mpnet[0][rows])
        transformed = fitted.apply(minilm[0])
        overall, per, _ = evaluate(transformed, mpnet[1])
        row(label, overall, per, f"held-out cos {fitted.heldout_cosine:.3f}")
        print(f"{'':<34} {'':>5}  " + " ".join(f"{v / o:5.0%}" for v, o in zip(per, old_per)) + "  of the old nDCG")
        print(f"{'':<34} {'':>5}  " + " ".join(f"{v:.3f}" for v in overlap(transformed, mpnet[0])) + "  overlap@5")
    for label, (docs, _), floor in (("all-MiniLM-L6-v2", minilm, old_floor), ("all-mpnet-base-v2", mpnet, new_floor)):
        q = np.quantile(noise(docs), [0.1, 0.25, 0.5, 0.75])
        print(f"{label}: labelled floor {floor:.2f}; no-answer best cosine quantiles 10/25/50/75%: "
              + " / ".join(f"{v:.3f}" for v in q))  # fmt: skip


if __name__ == "__main__":
    main()
