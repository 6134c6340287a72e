"""Encode throughput and recall latency: exact vs approximate (HNSW) search in one large channel.

1. Raw encode throughput of the packaged all-MiniLM-L6-v2 (the offline_default profile) in texts per
   second, batch 64, over ~1,000 real chat messages from ``data/samples/chat_sample.jsonl`` (generated
   sentences when the sample is missing).
2. Recall latency in one channel holding 10k and 100k vectors. The vectors are random 384-d unit vectors
   drawn around 200 topics (how sentence embeddings of a chat are spread), written through the real
   ``SQLiteStore`` and indexed by the real ``ChannelIndexes``: once with exact inner-product search and
   once with HNSW at the bot's default parameters. Each query is a real chat line embedded by the
   model's query path, then searched with ``ChannelIndexes.search`` (k=10), exactly what recall does before
   fusion. Printed per index: encode-only, search-only and end-to-end (encode + search) p50/p99 in ms,
   the ratio approximate/exact of the p50s, and HNSW's recall@10 against exact on the same queries
   (the chat queries, and new vectors drawn from the stored topics: "near" queries).

Run: ``.venv/bin/python bench/encode_recall.py [--sizes 10000 100000] [--queries 200]``. About 2-4
minutes on 2 CPU cores; everything lives in a temp directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from qwen3_memory.backends.sqlite.index import EXACT, HNSW, IndexParams  # noqa: E402
from qwen3_memory.backends.sqlite.indexes import ChannelIndexes  # noqa: E402
from qwen3_memory.backends.sqlite.store import SQLiteStore  # noqa: E402
from qwen3_memory.models.device import DevicePolicy  # noqa: E402
from qwen3_memory.models.embedding import EmbeddingService  # noqa: E402
from qwen3_memory.models.profiles import PROFILES  # noqa: E402
from qwen3_memory.records import StoredMessage  # noqa: E402

SAMPLE = REPO / "data" / "samples" / "chat_sample.jsonl"
ENCODE_TEXTS = 1000
ENCODE_BATCH = 64
K = 10
GUILD = 1
WRITE_BATCH = 2000


def log(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- inputs


def chat_texts(n: int) -> tuple[list[str], str]:
    """Up to ``n`` distinct non-empty chat messages from the sample, else generated sentences."""
    texts: list[str] = []
    if SAMPLE.exists():
        seen: set[str] = set()
        with SAMPLE.open(encoding="utf-8") as fh:
            for line in fh:
                content = json.loads(line).get("content", "").strip()
                if content and content not in seen:
                    seen.add(content)
                    texts.append(content)
        if len(texts) >= n:
            return texts[:n], f"{SAMPLE.relative_to(REPO)}"
    return generated_sentences(n), "generated sentences"


def generated_sentences(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    subjects = [
        "the release",
        "our picnic",
        "the login bug",
        "the budget",
        "the printer",
        "the new intern",
        "the database migration",
        "Friday's demo",
        "the design review",
        "the on-call rota",
    ]
    verbs = ["moved to", "is blocked by", "needs", "was fixed by", "depends on", "is scheduled after"]
    objects = [
        "Thursday afternoon",
        "a second reviewer",
        "the staging cluster",
        "more coffee",
        "room 4",
        "the vendor's answer",
        "a rollback plan",
        "the quarterly report",
        "a quick sync",
    ]
    lines = []
    for i in range(n):
        clauses = [
            f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}"
            for _ in range(rng.choice([1, 1, 2, 3, 5]))
        ]
        lines.append(f"{' and '.join(clauses).capitalize()} (#{i})")
    return lines


def topic_centers(dimension: int, rng: np.random.Generator, clusters: int = 200) -> np.ndarray:
    centers = rng.standard_normal((clusters, dimension)).astype(np.float32)
    return centers / np.linalg.norm(centers, axis=1, keepdims=True)


def clustered_unit_vectors(n: int, centers: np.ndarray, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """Unit vectors around random topic directions (nearest-neighbour cosine about 0.6, like chat embeddings)."""
    out = centers[rng.integers(0, len(centers), n)]
    out = out + noise * rng.standard_normal(out.shape).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return np.ascontiguousarray(out, dtype=np.float32)


# ----------------------------------------------------------------------------------------------- measuring


def p50_p99(samples_ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples_ms, 50)), float(np.percentile(samples_ms, 99))


async def fill_channel(
    store: SQLiteStore, space, channel_id: int, n: int, first_id: int, centers: np.ndarray, rng: np.random.Generator
) -> float:
    """Write ``n`` messages and their vectors into one channel through the store; returns seconds."""
    started = time.perf_counter()
    for start in range(0, n, WRITE_BATCH):
        size = min(WRITE_BATCH, n - start)
        messages = [
            StoredMessage(
                first_id + start + i,
                GUILD,
                channel_id,
                100 + i % 50,
                "bench",
                f"message {start + i}",
                1_700_000_000.0 + start + i,
            )
            for i in range(size)
        ]
        await store.add_messages(messages)
        written = await store.put_vectors(space, messages, clustered_unit_vectors(size, centers, rng))
        assert len(written) == size
    return time.perf_counter() - started


@dataclass
class Row:
    vectors: int
    kind: str
    build_s: float
    encode: tuple[float, float]
    search: tuple[float, float]
    recall: tuple[float, float]
    top_ids: list[list[int]]  # per chat query
    top_ids_near: list[list[int]]  # per in-distribution query
    top1_cos: float
    top1_cos_near: float


async def measure(
    service: EmbeddingService,
    indexes: ChannelIndexes,
    space,
    channel_id: int,
    n: int,
    kind: str,
    queries: list[str],
    query_vectors: np.ndarray,
    near_vectors: np.ndarray,
) -> Row:
    started = time.perf_counter()
    index = await indexes.get(space, GUILD, channel_id)  # built from SQLite and persisted, as after a restart
    build_s = time.perf_counter() - started
    assert index.kind == kind and len(index) == n, (index.kind, len(index))
    for q in query_vectors[:5]:  # warm-up: thread pool, FAISS, SQLite page cache
        await indexes.search(space, GUILD, channel_id, q, K)

    encode_ms, search_ms, recall_ms, top_ids, top_ids_near, top1, top1_near = [], [], [], [], [], [], []
    for text, vector in zip(queries, query_vectors):  # interleaved, so a busy moment weighs on all three alike
        t0 = time.perf_counter()
        await service.aencode_queries([text])
        t1 = time.perf_counter()
        hits = await indexes.search(space, GUILD, channel_id, vector, K)
        t2 = time.perf_counter()
        embedded = (await service.aencode_queries([text]))[0]  # end to end: embed by the read space's model,
        await indexes.search(space, GUILD, channel_id, embedded, K)  # then search
        t3 = time.perf_counter()
        encode_ms.append((t1 - t0) * 1000)
        search_ms.append((t2 - t1) * 1000)
        recall_ms.append((t3 - t2) * 1000)
        top_ids.append([i for i, _ in hits])
        top1.append(hits[0][1])
    for vector in near_vectors:  # not timed: accuracy of HNSW where messages are near the query
        hits = await indexes.search(space, GUILD, channel_id, vector, K)
        top_ids_near.append([i for i, _ in hits])
        top1_near.append(hits[0][1])
    return Row(
        n,
        kind,
        build_s,
        p50_p99(encode_ms),
        p50_p99(search_ms),
        p50_p99(recall_ms),
        top_ids,
        top_ids_near,
        float(np.mean(top1)),
        float(np.mean(top1_near)),
    )


def recall_at_k(truth: list[list[int]], found: list[list[int]]) -> float:
    return float(np.mean([len(set(t) & set(f)) / max(len(t), 1) for t, f in zip(truth, found)]))


# ----------------------------------------------------------------------------------------------- main


async def run(sizes: list[int], n_queries: int) -> None:
    wall = time.perf_counter()
    spec = PROFILES["offline_default"].embedding
    service = EmbeddingService(spec, DevicePolicy(cpu_only=True), max_concurrent=1, batch_size=ENCODE_BATCH)
    defaults = IndexParams()
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        threads = 0
    print("encode + recall benchmark")
    print(
        f"  machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch threads {threads}, "
        f"python {platform.python_version()}"
    )
    print(f"  model:   {spec.model} ({spec.dimension}-d, packaged: {spec.source}), CPU")
    print(
        f"  HNSW:    M={defaults.hnsw_m} efConstruction={defaults.hnsw_ef_construction} "
        f"efSearch={defaults.hnsw_ef_search} (the bot's defaults)"
    )

    log("loading the model")
    started = time.perf_counter()
    service.load()
    load_s = time.perf_counter() - started
    texts, source = chat_texts(ENCODE_TEXTS + n_queries)
    corpus, queries = texts[:ENCODE_TEXTS], texts[ENCODE_TEXTS : ENCODE_TEXTS + n_queries]
    if len(queries) < n_queries:
        queries = generated_sentences(n_queries, seed=11)
    service.encode_documents(corpus[:ENCODE_BATCH], batch_size=ENCODE_BATCH)  # warm-up
    log(f"encoding {len(corpus)} texts")
    started = time.perf_counter()
    service.encode_documents(corpus, batch_size=ENCODE_BATCH)
    encode_s = time.perf_counter() - started
    mean_chars = sum(len(t) for t in corpus) / len(corpus)

    print()
    print("Raw encode throughput")
    print(
        f"  {len(corpus)} texts from {source} (mean {mean_chars:.0f} chars), batch {ENCODE_BATCH}: "
        f"{len(corpus) / encode_s:,.0f} texts/s ({encode_s:.2f} s; model load {load_s:.1f} s)"
    )

    query_vectors = service.encode_queries(queries)
    rows: list[Row] = []
    fill_s: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-encode-recall-") as tmp:
        store = await SQLiteStore.open(Path(tmp) / "memory.db")
        try:
            space = await store.ensure_space(spec)
            first_id = 1
            for channel_id, n in enumerate(sizes, start=10):
                rng = np.random.default_rng(channel_id)
                centers = topic_centers(space.dimension, rng)
                log(f"writing {n:,} messages + vectors into channel {channel_id}")
                fill_s[n] = await fill_channel(store, space, channel_id, n, first_id, centers, rng)
                near_vectors = clustered_unit_vectors(len(queries), centers, rng)  # new points, same topics
                first_id += n
                for kind, params in (
                    (EXACT, IndexParams(approximate_threshold=10**12)),
                    (HNSW, IndexParams(approximate_threshold=1)),
                ):
                    log(f"{n:,} vectors: building the {kind} index and timing {len(queries)} queries")
                    indexes = ChannelIndexes(store, Path(tmp) / f"vectors-{kind}", params)
                    rows.append(
                        await measure(
                            service, indexes, space, channel_id, n, kind, queries, query_vectors, near_vectors
                        )
                    )
                    indexes.forget(space.id, GUILD, channel_id)  # free the memory of this index
        finally:
            await store.close()
    service.close()

    print()
    print(f"Recall latency, one channel, k={K}, {len(queries)} queries (real chat lines), milliseconds")
    header = (
        f"  {'vectors':>8}  {'index':<6} {'build s':>8}  {'encode p50':>10} {'p99':>7}  "
        f"{'search p50':>10} {'p99':>7}  {'encode+search p50':>17} {'p99':>7}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for r in rows:
        print(
            f"  {r.vectors:>8,}  {r.kind:<6} {r.build_s:>8.1f}  {r.encode[0]:>10.2f} {r.encode[1]:>7.2f}  "
            f"{r.search[0]:>10.2f} {r.search[1]:>7.2f}  {r.recall[0]:>17.2f} {r.recall[1]:>7.2f}"
        )
    print("  encode = the query through the model in the embedding executor; search = indexes.search (generation")
    print("  check + FAISS in a worker thread); build = read from SQLite, index, persist")

    print()
    print("Approximate (HNSW) / exact")
    print(
        f"  {'vectors':>8}  {'search p50':>10}  {'encode+search p50':>17}  "
        f"{'recall@10 chat queries':>22}  {'recall@10 near queries':>22}"
    )
    for n in sizes:
        exact = next(r for r in rows if r.vectors == n and r.kind == EXACT)
        approx = next(r for r in rows if r.vectors == n and r.kind == HNSW)
        chat = recall_at_k(exact.top_ids, approx.top_ids)
        near = recall_at_k(exact.top_ids_near, approx.top_ids_near)
        print(
            f"  {n:>8,}  {approx.search[0] / exact.search[0]:>10.3f}  {approx.recall[0] / exact.recall[0]:>17.3f}  "
            f"{chat:>13.3f} (cos {exact.top1_cos:.2f})  {near:>13.3f} (cos {exact.top1_cos_near:.2f})"
        )
    print("  ratios of p50s; recall@10 of HNSW against exact on the same queries, with the mean top-1 cosine:")
    print("  chat queries have no real neighbours among these random vectors: their hits are near-ties at a low")
    print("  cosine, which HNSW orders loosely; near queries are new points of the stored topics, as questions")
    print("  about what was said in a channel are.")
    print("  writing the vectors through SQLiteStore took " + ", ".join(f"{fill_s[n]:.1f} s for {n:,}" for n in sizes))
    print()
    print(f"total wall time {time.perf_counter() - wall:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="vectors per channel")
    parser.add_argument("--queries", type=int, default=200, help="queries timed per index (p99 needs >= 100)")
    args = parser.parse_args(argv)
    asyncio.run(run(args.sizes, args.queries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
