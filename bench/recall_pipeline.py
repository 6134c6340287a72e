"""Latency of each recall stage and of the whole pipeline in one large channel, and quality vs latency.

1. Per channel size (default 10k and 100k messages): a channel is generated from the sample chat
   (``data/samples/chat_sample.jsonl``) by repeating its texts with small perturbations (a prefix, a
   suffix, a dropped or swapped word) under unique, increasing ids. Vectors: the unique sample texts
   are encoded once by the packaged all-MiniLM-L6-v2 (the offline_default profile); each copy reuses
   its text's vector plus small Gaussian noise, re-normalised. Messages (with their FTS5 terms) and
   vectors are written through the real ``SQLiteStore`` and ``ChannelIndexes`` into a fresh database
   per size, and the indexes flushed (a channel past 50k vectors switches to HNSW, as in the bot).
   Then, for chat questions from the demo set and the labelled set, each stage is timed alone:
   embed the query, dense search (50 candidates), BM25 (50), weighted RRF fusion, cosine floor and
   fetch (the stored vectors of BM25-only candidates, the messages), rerank (the packaged ONNX
   cross-encoder on the default ``rerank_candidates``), and the whole ``Recaller.recall`` with the
   default settings, without and with reranking, and with filters (one author, the newest tenth, both, a
   recency preference: an exact search of the filtered subset) and the excerpts read around the hits.
   p50 and p99 in ms.
2. The quality/latency trade-off on the labelled set ``tests/data/eval_chat.jsonl`` through the
   evaluation harness: nDCG@10, recall@5 and p50/p99 latency of dense, bm25, hybrid, hybrid+rerank.

Prints, asserts nothing. Run: ``.venv/bin/python bench/recall_pipeline.py [--sizes 10000 100000]
[--queries 200] [--skip-eval]``. A few minutes on 2 CPU cores; data lives in a temp directory.
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
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from qwen3_memory import evaluation  # noqa: E402
from qwen3_memory.filters import RecallFilters  # noqa: E402
from qwen3_memory.memory import Memory  # noqa: E402
from qwen3_memory.models.device import DevicePolicy  # noqa: E402
from qwen3_memory.models.embedding import EmbeddingServices  # noqa: E402
from qwen3_memory.models.rerank import Reranker  # noqa: E402
from qwen3_memory.recall.conversation import in_conversation  # noqa: E402
from qwen3_memory.recall.weighting import LexicalWeighting  # noqa: E402
from qwen3_memory.records import StoredMessage  # noqa: E402
from qwen3_memory.settings import default_settings  # noqa: E402

SAMPLE = REPO / "data" / "samples" / "chat_sample.jsonl"
DEMO_QUESTIONS = REPO / "data" / "samples" / "demo_questions.json"
EVAL_SET = REPO / "tests" / "data" / "eval_chat.jsonl"
GUILD, CHANNEL = 1, 10
FIRST_ID = 1_345_307_535_212_675_072
WRITE_BATCH = 2000
NOISE = 0.01  # per-dimension sigma of the noise added to a copy's vector (cosine to the original ~0.98)
PREFIXES = ("", "", "btw ", "ok so ", "lol ", "hmm ", "fwiw ", "yeah ", "哈哈 ", "其实 ")
SUFFIXES = ("", "", " lol", " !!", " (edited)", " 😂", " imo", " 吧", " right?", " tbh")
STAGES = (
    "embed query",
    "dense search",
    "bm25",
    "conversation",
    "fusion",
    "floor + fetch",
    "rerank",
    "pipeline",
    "pipeline+rerank",
    "pipeline, no conv.",
)
# The whole pipeline with filters (no rerank): one author of 37 (~2.7% of the channel), the newest tenth of the
# channel by time, both, and the recency preference alone; then the excerpts around the hits (neighbours read).
FILTERED = ("+ author", "+ newest 10%", "+ author, newest 10%", "+ recent first", "excerpts of hits")


def log(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(np.ceil(q / 100 * len(ordered))) - 1)]


# ----------------------------------------------------------------------------------------- the channel


def sample_texts() -> list[str]:
    texts = [json.loads(line)["content"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    return list(dict.fromkeys(t for t in texts if t.strip()))


def perturb(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    if len(words) > 3 and rng.random() < 0.3:
        del words[rng.randrange(len(words))]
    if len(words) > 3 and rng.random() < 0.3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return rng.choice(PREFIXES) + " ".join(words) + rng.choice(SUFFIXES)


def channel_rows(size: int, n_texts: int, seed: int) -> tuple[list[StoredMessage], np.ndarray]:
    """``size`` messages of one channel (first the unique texts, then perturbed copies) and their text rows."""
    rng = random.Random(seed)
    base = sample_texts()[:n_texts]
    messages, rows = [], np.empty(size, dtype=np.int64)
    for n in range(size):
        row = n if n < len(base) else rng.randrange(len(base))
        text = base[row] if n < len(base) else perturb(base[row], rng)
        message_id = FIRST_ID + n * 4096
        messages.append(StoredMessage(message_id, GUILD, CHANNEL, 100 + n % 37, f"user{n % 37}", text, 1.74e9 + n))
        rows[n] = row
    return messages, rows


async def fill_channel(memory: Memory, size: int, base_vectors: np.ndarray, seed: int) -> float:
    """Write ``size`` messages and their vectors through the store (rows and index); returns seconds."""
    from tqdm import tqdm

    messages, rows = channel_rows(size, len(base_vectors), seed)
    rng = np.random.default_rng(seed)
    space = memory.default_space
    started = time.perf_counter()
    await memory.store.ensure_channel(GUILD, CHANNEL, space.id)
    with tqdm(total=size, desc=f"writing {size:,}", unit="msg", leave=False, disable=not sys.stderr.isatty()) as bar:
        for start in range(0, size, WRITE_BATCH):
            batch = messages[start : start + WRITE_BATCH]
            vectors = base_vectors[rows[start : start + WRITE_BATCH]].copy()
            copies = np.arange(start, start + len(batch)) >= len(base_vectors)
            vectors[copies] += rng.normal(0.0, NOISE, size=(int(copies.sum()), vectors.shape[1])).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            await memory.store.add_messages(batch)
            await memory.store.put_vectors(space, batch, vectors)
            bar.update(len(batch))
    await memory.store.flush()  # persists, and switches a large channel to HNSW
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------- timing


def bench_queries(n: int) -> list[str]:
    demo = [q["question"] for q in json.loads(DEMO_QUESTIONS.read_text(encoding="utf-8"))]
    labelled = [q.text for q in evaluation.load_eval_set(EVAL_SET).queries]
    step = max(1, len(labelled) // max(1, n - len(demo)))
    return (demo + labelled[::step])[:n]


async def time_stages(memory: Memory, queries: list[str]) -> dict[str, list[float]]:
    recaller = memory.recaller
    space = memory.default_space
    options = memory.recall_options()
    rerank_options = memory.recall_options(rerank=True)
    before_options = memory.recall_options(conversation=False, bm25_weight_power=0)  # the pipeline before both
    depth = options.search_depth
    times: dict[str, list[float]] = {stage: [] for stage in STAGES + FILTERED}
    size = await memory.store.count_messages(GUILD, CHANNEL)
    newest = RecallFilters.of(after=1.74e9 + 0.9 * size)
    filters = {
        "+ author": RecallFilters.of(authors=[117]),
        "+ newest 10%": newest,
        "+ author, newest 10%": RecallFilters.of(authors=[117], after=newest.after),
        "+ recent first": RecallFilters.of(prefer_recent=True),
    }

    def lap(stage: str, started: float) -> float:
        now = time.perf_counter()
        times[stage].append((now - started) * 1000)
        return now

    for query in queries:
        t = time.perf_counter()
        vector = await recaller.embed_query(space, query)
        t = lap("embed query", t)
        dense = await recaller.dense_candidates(space, GUILD, CHANNEL, vector, depth)
        cosines = dict(dense)  # the dense list's own scores: after the carry they are no cosines
        t = lap("dense search", t)
        lexical = await recaller.lexical_candidates(GUILD, CHANNEL, query, depth)
        t = lap("bm25", t)
        carried = await in_conversation(
            memory.store, space.id, GUILD, CHANNEL, vector, dense, lexical, options.conversation_options
        )
        dense, lexical = carried.dense, carried.lexical
        t = lap("conversation", t)
        weight = LexicalWeighting(options.bm25_weight, options.bm25_weight_power).for_query(list(cosines.values()))
        fused = recaller.fuse(dense, lexical, options.rrf_k, weight)
        t = lap("fusion", t)
        floor = options.min_score if options.min_score is not None else await recaller.floors.floor(space.id)
        similarity = await recaller._similarities(space, [i for i, _ in fused], vector, cosines)
        kept = [i for i, _ in fused if similarity.get(i, -2.0) >= floor]
        messages = await memory.store.get_messages(kept[: rerank_options.rerank_depth])
        t = lap("floor + fetch", t)
        documents = [messages[i].content for i in kept[: rerank_options.rerank_depth] if i in messages]
        if documents:
            await memory.reranker.ascore(query, documents)
            lap("rerank", t)
        t = time.perf_counter()
        await recaller.recall(GUILD, CHANNEL, query, options)
        t = lap("pipeline", t)
        hits = await recaller.recall(GUILD, CHANNEL, query, rerank_options)
        t = lap("pipeline+rerank", t)
        await recaller.recall(GUILD, CHANNEL, query, before_options)
        lap("pipeline, no conv.", t)
        for stage, chosen in filters.items():
            t = time.perf_counter()
            await recaller.recall(GUILD, CHANNEL, query, options, filters=chosen)
            lap(stage, t)
        t = time.perf_counter()
        await memory.excerpts(GUILD, CHANNEL, hits[: options.k])
        lap("excerpts of hits", t)
    return times


def stage_table(results: dict[int, tuple[str, dict[str, list[float]]]]) -> str:
    sizes = sorted(results)
    header = f"{'stage':<20}" + "".join(f"  {f'{s:,} p50':>11}  {f'{s:,} p99':>11}" for s in sizes)
    lines = [header, "-" * len(header)]
    for stage in STAGES + FILTERED:
        cells = []
        for size in sizes:
            values = results[size][1][stage]
            if values:
                cells.append(f"  {percentile(values, 50):>11.2f}  {percentile(values, 99):>11.2f}")
            else:
                cells.append(f"  {'-':>11}  {'-':>11}")
        lines.append(f"{stage:<20}" + "".join(cells))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main


async def main(args: argparse.Namespace) -> None:
    print(
        f"recall pipeline bench: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"profile offline_default (all-MiniLM-L6-v2 384-d, ONNX ms-marco-MiniLM-L-12-v2 reranker)"
    )
    services = EmbeddingServices(DevicePolicy(cpu_only=True))
    root = Path(tempfile.mkdtemp(prefix="recall-bench-"))
    reranker = None
    try:
        settings = default_settings(paths={"data_dir": str(root / "probe")})
        reranker = Reranker(settings.reranker, settings.device_policy)
        service = services.get(settings.space)
        started = time.perf_counter()
        await service.aload()
        await asyncio.to_thread(reranker.load)
        log(f"models loaded in {time.perf_counter() - started:.1f}s")
        texts = sample_texts()[: args.unique]
        started = time.perf_counter()
        base_vectors = await service.aencode_documents(texts, batch_size=64)
        encode_seconds = time.perf_counter() - started
        print(
            f"encoded {len(texts):,} unique sample texts in {encode_seconds:.1f}s "
            f"({len(texts) / encode_seconds:.0f} texts/s); copies reuse them with noise sigma {NOISE}"
        )
        queries = bench_queries(args.queries)
        results: dict[int, tuple[str, dict[str, list[float]]]] = {}
        for size in args.sizes:
            settings = default_settings(paths={"data_dir": str(root / f"channel-{size}")})
            memory = await Memory.open(settings, start_capture=False, services=services)
            memory.recaller.reranker = memory.reranker = reranker
            try:
                seconds = await fill_channel(memory, size, base_vectors, seed=size)
                index = await memory.store.index_info(memory.default_space, GUILD, CHANNEL)
                db_mb = settings.database_path.stat().st_size / 2**20
                print(
                    f"{size:,} messages written through the store in {seconds:.1f}s "
                    f"({size / seconds:,.0f}/s), index {index.kind}, database {db_mb:.0f} MiB"
                )
                await time_stages(memory, queries[:5])  # warm up caches and thread pools
                results[size] = (index.kind, await time_stages(memory, queries))
            finally:
                await memory.close()
        options = default_settings().memory.recall
        print(
            f"\nper-stage latency in ms over {len(queries)} queries (k {options.k}, candidates {options.candidates}, "
            f"rrf_k {options.rrf_k}, bm25_weight {options.bm25_weight}, min_score {options.min_score}, "
            f"rerank {options.rerank_candidates} candidates, conversation {options.conversation}); pipeline = "
            "Recaller.recall with the default settings; 'no conv.' = without the conversation carry and with a "
            "fixed bm25_weight (the pipeline before them)"
        )
        print(f"indexes: {', '.join(f'{s:,}: {kind}' for s, (kind, _) in sorted(results.items()))}")
        print(stage_table(results))
        if not args.skip_eval:
            await trade_off(services, reranker, root)
    finally:
        services.close()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


async def trade_off(services: EmbeddingServices, reranker: Reranker, root: Path) -> None:
    eval_set = evaluation.load_eval_set(EVAL_SET)
    settings = default_settings(paths={"data_dir": str(root / "eval")})
    started = time.perf_counter()
    memory = await evaluation.build_memory(eval_set, settings, services=services, progress=False)
    memory.recaller.reranker = memory.reranker = reranker
    try:
        log(f"labelled set embedded in {time.perf_counter() - started:.1f}s")
        stages = ("dense", "bm25", "hybrid", "hybrid+rerank")
        results = await evaluation.evaluate(memory, eval_set.queries, stages, progress=sys.stderr.isatty())
    finally:
        await memory.close()
    print(
        f"\nquality vs latency on {EVAL_SET.relative_to(REPO)} ({len(eval_set.messages):,} messages in "
        f"{len(eval_set.channels())} channels, {len(eval_set.queries)} queries, en + zh; floors off, 10 results)"
    )
    header = f"{'stage':<14}  {'nDCG@10':>7}  {'R@5':>5}  {'MRR':>5}  {'p50 ms':>7}  {'p99 ms':>7}"
    print(header + "\n" + "-" * len(header))
    for stage, summary in results.items():
        m = summary["all"]
        print(
            f"{stage:<14}  {m['ndcg@10']:>7.3f}  {m['recall@5']:>5.3f}  {m['mrr']:>5.3f}  "
            f"{m['p50_ms']:>7.1f}  {m['p99_ms']:>7.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200, help="queries timed per channel size")
    parser.add_argument("--unique", type=int, default=4000, help="at most this many unique sample texts to encode")
    parser.add_argument("--skip-eval", action="store_true", help="skip the quality/latency table on the labelled set")
    started = time.perf_counter()
    asyncio.run(main(parser.parse_args()))
    print(f"\ntotal {time.perf_counter() - started:.0f}s")
