"""Discord's shape against one big channel: capture, migration and recall costs that follow the channel count.

    .venv/bin/python bench/many_channels.py [--channels 2000] [--per-channel 25] [--big 50000]

Two memories are built the same way, one of many small channels (default 2,000 x 25) and one of
a single big channel (default 1 x 50,000): messages from data/samples arrive interleaved across the
channels through the real capture queue into a tiny random Qwen3 space (the "old" model), then the
real engine migrates them with ``regenerate`` into a second tiny Qwen3 space. Each figure is its
own pass in this one run, after a warm-up pass of the same model:

* capture / raw encode: messages per second through capture (queue, store, embed, index, and the
  index flush that writes every changed channel index) over the model alone encoding the same
  texts with the same batch size;
* migration / raw encode: the whole job (dual-write, backfill, catch-up, verify, swap) over the
  target model alone encoding the same texts;
* recall p50/p99 per stage (query embedding, dense search, BM25, the whole pipeline) on channels
  whose index is loaded, and the dense stage on channels whose index is not (cold load);
* the BM25 stage alone (back to back, after other queries) of the same channels here and in a database 10x smaller;
* `plan`'s time estimate against the migration's measured time;
* resident memory, the index cache's bytes, and the event loop's lag p99 during capture and
  migration (a ticker sleeping 5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import psutil  # noqa: E402

from bench.migration import LagProbe  # noqa: E402
from qwen3_memory.backends.sqlite.store import SQLiteStore  # noqa: E402
from qwen3_memory.memory import Memory  # noqa: E402
from qwen3_memory.migration.channel_probe import PROBE_TO_CHANNEL  # noqa: E402
from qwen3_memory.migration.engine import MigrationEngine  # noqa: E402
from qwen3_memory.migration.plan import STORE_OVERHEAD, make_plan  # noqa: E402
from qwen3_memory.records import StoredMessage  # noqa: E402
from qwen3_memory.settings import Settings, default_settings  # noqa: E402
from tests.tiny_models import build_tiny_qwen3_embedder  # noqa: E402

GUILD = 1
FIRST_CHANNEL = 1000
STAGES = ("embed query", "dense", "bm25", "whole recall", "dense, cold index")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def sample_rows() -> list[dict]:
    return [json.loads(line) for line in (REPO / "data/samples/chat_sample.jsonl").read_text().splitlines()]


def messages_of(channels: int, per_channel: int, seed: int = 3) -> list[StoredMessage]:
    """``channels`` x ``per_channel`` chat lines, arriving interleaved across the channels in random order."""
    rows = sample_rows()
    order = [c for c in range(channels) for _ in range(per_channel)]
    random.Random(seed).shuffle(order)
    messages = []
    for i, channel in enumerate(order):
        row = rows[i % len(rows)]
        text = row["content"] if i < len(rows) else f"{row['content']} ({i // len(rows)})"
        messages.append(
            StoredMessage(
                10_000 + i, GUILD, FIRST_CHANNEL + channel, row["author_id"], row["author_name"], text, 1.7e9 + i
            )
        )
    return messages


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def p50_p99(values: list[float]) -> str:
    return f"{percentile(values, 50):.2f} / {percentile(values, 99):.2f}"


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def raw_encode_seconds(service, texts: list[str], batch_size: int) -> float:
    """The model alone on ``texts`` in their order, one batch of ``batch_size`` per call in a worker thread (as
    bench/migration.py measures it; a single call over all texts would sort them all by length first)."""

    def encode() -> None:
        for start in range(0, len(texts), batch_size):
            service.encode_documents(texts[start : start + batch_size], batch_size)

    started = time.perf_counter()
    await asyncio.to_thread(encode)
    return time.perf_counter() - started


@dataclass
class ShapeResult:
    name: str
    messages: int
    capture_raw: float = 0.0  # texts/s
    capture: float = 0.0
    capture_lag_p99: float = 0.0
    migration_raw: float = 0.0
    migration: float = 0.0
    migration_lag_p99: float = 0.0
    migration_seconds: float = 0.0
    plan_eta: float = 0.0  # what `plan` estimated for the migration, measured just before it
    plan_parts: tuple[float, float, float, int] = (0.0, 0.0, 0.0, 0)  # load s, texts/s, s per channel, channels
    stages: dict[str, list[float]] = field(default_factory=dict)
    bm25_here: list[float] = field(default_factory=list)  # the BM25 stage alone, back to back, in this database
    bm25_small_db: list[float] = field(default_factory=list)
    rss_after_capture: float = 0.0
    rss_after_migration: float = 0.0
    cache_mb: float = 0.0
    notes: list[str] = field(default_factory=list)


def settings_for(root: Path, old_model: Path) -> Settings:
    return default_settings(
        profile="qwen3_medium_performance",
        paths={"data_dir": str(root / "data")},
        model_overrides={"embedding_path": str(old_model), "embedding_dimension": 64},
    )


async def capture_pass(memory: Memory, messages: list[StoredMessage], result: ShapeResult) -> None:
    """Every message through the capture queue, then the index flush; raw encode of the same texts first."""
    service = memory.services.get(memory.default_space.spec)
    await service.aload()
    texts = [m.content for m in messages]
    batch = memory.settings.batch_size
    await raw_encode_seconds(service, texts[:4096], batch)  # warm-up: a fresh model's first pass is slower
    result.capture_raw = len(texts) / await raw_encode_seconds(service, texts, batch)
    probe = LagProbe()
    probe.start()
    started = time.perf_counter()
    for message in messages:
        await memory.capture.submit(message)
    await memory.capture.drain()
    await memory.store.flush()
    result.capture = len(messages) / (time.perf_counter() - started)
    await probe.stop()
    result.capture_lag_p99 = probe.quantile(0.99)
    result.rss_after_capture = rss_mb()


async def migration_pass(memory: Memory, target_model: Path, result: ShapeResult, texts: list[str]) -> None:
    """The whole job into the target space; raw encode of the same texts by the target model first."""
    target = memory.settings.memory.migration.target(embedding_path=str(target_model), dimension=32).embedding
    service = memory.services.get(target)
    await service.aload()
    batch = memory.settings.batch_size
    await raw_encode_seconds(service, texts[:4096], batch)  # warm-up
    result.migration_raw = len(texts) / await raw_encode_seconds(service, texts, batch)
    plan = await make_plan(memory, target, "regenerate")
    result.plan_eta = plan.eta_seconds or 0.0
    result.plan_parts = (
        plan.benchmark.load_seconds if plan.benchmark else 0.0,
        plan.benchmark.texts_per_second if plan.benchmark else 0.0,
        plan.channel_seconds,
        sum(1 for p in plan.channels if p.to_migrate),
    )
    engine = MigrationEngine(memory)
    job = await engine.start(target, backup=False, batch_size=batch)
    probe = LagProbe()
    probe.start()
    started = time.perf_counter()
    job = await engine.run(job.id)
    result.migration_seconds = time.perf_counter() - started
    result.migration = len(texts) / result.migration_seconds
    await probe.stop()
    assert job.status == "completed", job.error
    result.migration_lag_p99 = probe.quantile(0.99)
    result.rss_after_migration = rss_mb()


def recall_queries(n: int, seed: int = 11) -> list[str]:
    rows = sample_rows()
    rng = random.Random(seed)
    return [rng.choice(rows)["content"] for _ in range(n)]


async def recall_pass(memory: Memory, channels: list[int], cold: list[int], result: ShapeResult) -> None:
    """Per-stage latency on ``channels`` (their indexes loaded by a first query) and on ``cold`` ones (not loaded)."""
    recaller, store = memory.recaller, memory.store
    options = memory.recall_options()
    queries = recall_queries(len(channels))
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for channel, query in zip(channels, recall_queries(len(channels), seed=12)):  # other queries: a running bot's
        await recaller.lexical_candidates(GUILD, channel, query, options.search_depth)  # caches, not these queries'
    for channel, query in zip(channels, queries):
        space = await recaller.read_space(GUILD, channel)
        await store.search(space, GUILD, channel, await recaller.embed_query(space, query), 1)  # load the index
        started = time.perf_counter()
        vector = await recaller.embed_query(space, query)
        lap = time.perf_counter()
        times["embed query"].append((lap - started) * 1000)
        await recaller.dense_candidates(space, GUILD, channel, vector, options.search_depth)
        times["dense"].append((time.perf_counter() - lap) * 1000)
        lap = time.perf_counter()
        await recaller.lexical_candidates(GUILD, channel, query, options.search_depth)
        times["bm25"].append((time.perf_counter() - lap) * 1000)
        lap = time.perf_counter()
        await recaller.recall(GUILD, channel, query, options)
        times["whole recall"].append((time.perf_counter() - lap) * 1000)
    for channel, query in zip(cold, queries):
        space = await recaller.read_space(GUILD, channel)
        vector = await recaller.embed_query(space, query)
        started = time.perf_counter()
        await recaller.dense_candidates(space, GUILD, channel, vector, options.search_depth)
        times["dense, cold index"].append((time.perf_counter() - started) * 1000)
    result.stages = times


async def bm25_times(store: SQLiteStore, channels: list[int]) -> list[float]:
    """BM25 latencies (ms) of ``channels``, back to back, after a pass of other queries (a running bot's caches)."""
    for channel, query in zip(channels, recall_queries(len(channels), seed=12)):
        await store.search_text(GUILD, channel, query, 20)
    times = []
    for channel, query in zip(channels, recall_queries(len(channels))):
        started = time.perf_counter()
        await store.search_text(GUILD, channel, query, 20)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def bm25_here_and_in_smaller_database(
    root: Path, database: Path, messages: list[StoredMessage], channels: list[int], shrink: int = 10
) -> tuple[list[float], list[float]]:
    """The BM25 stage of ``channels`` measured the same way in this database and in one holding 1/``shrink`` of
    its channels (the recall pass interleaves model calls, which would make the two incomparable)."""
    store = await SQLiteStore.open(database)
    try:
        here = await bm25_times(store, channels)
    finally:
        await store.close()
    keep_channels = sorted({m.channel_id for m in messages})[: max(len(channels), len(messages) // shrink)]
    kept = set(keep_channels) | set(channels)
    small = [m for m in messages if m.channel_id in kept]
    target = len(messages) // shrink
    small = small[: max(target, 1)] if len(kept) == 1 else small  # one big channel: its first tenth
    store = await SQLiteStore.open(root / "small.sqlite3")
    try:
        for start in range(0, len(small), 1000):
            await store.add_messages(small[start : start + 1000])
        return here, await bm25_times(store, channels)
    finally:
        await store.close()


async def run_shape(
    name: str, channels: int, per_channel: int, models: tuple[Path, Path], root: Path, n_queries: int
) -> ShapeResult:
    messages = messages_of(channels, per_channel)
    result = ShapeResult(name, len(messages))
    shape_root = root / name.replace(" ", "_")
    log(f"[{name}] capture of {len(messages):,} messages in {channels:,} channel(s)")
    memory = await Memory.open(settings_for(shape_root, models[0]))
    try:
        await capture_pass(memory, messages, result)
        log(f"[{name}] migration")
        await migration_pass(memory, models[1], result, [m.content for m in messages])
        result.cache_mb = memory.store.indexes.cached_bytes / 2**20
    finally:
        await memory.close()
    log(f"[{name}] recall")
    ids = [FIRST_CHANNEL + c for c in range(channels)]
    rng = random.Random(5)
    warm = [rng.choice(ids) for _ in range(n_queries)]
    cold_pool = [c for c in ids if c not in set(warm)] or ids
    cold = rng.sample(cold_pool, min(n_queries, len(cold_pool)))
    memory = await Memory.open(settings_for(shape_root, models[0]), start_capture=False)
    try:
        await recall_pass(memory, warm, cold, result)
    finally:
        await memory.close()
    database = settings_for(shape_root, models[0]).database_path
    result.bm25_here, result.bm25_small_db = await bm25_here_and_in_smaller_database(
        shape_root, database, messages, warm
    )
    return result


def report(results: list[ShapeResult], load: str) -> None:
    print(f"\nmany channels vs one big channel; tiny Qwen3 -> tiny Qwen3, {os.cpu_count()} CPUs, load {load}")
    print(f"{'shape':<22}{'capture/raw':>12}{'migration/raw':>15}{'lag p99 cap/mig':>18}{'RSS MiB':>9}")
    for r in results:
        print(
            f"{r.name:<22}{r.capture / r.capture_raw:>12.2f}{r.migration / r.migration_raw:>15.2f}"
            f"{f'{r.capture_lag_p99:.1f}/{r.migration_lag_p99:.1f} ms':>18}{r.rss_after_migration:>9.0f}"
        )
    for r in results:
        print(
            f"  {r.name}: capture {r.capture:,.0f} msgs/s vs raw {r.capture_raw:,.0f}; migration {r.migration:,.0f} "
            f"msgs/s vs raw {r.migration_raw:,.0f}; RSS {r.rss_after_capture:.0f} MiB after capture, "
            f"{r.rss_after_migration:.0f} after migration; index cache {r.cache_mb:.1f} MiB"
        )
        print(
            f"  {r.name}: plan estimated {r.plan_eta:.1f} s, the migration took {r.migration_seconds:.1f} s: "
            f"estimate / actual {r.plan_eta / r.migration_seconds:.2f} (target 0.75-1.25)"
        )
        load, rate, per_channel, channels = r.plan_parts
        print(
            f"    plan parts: model load {load:.1f} s, benchmark {rate:,.0f} texts/s (x {STORE_OVERHEAD} for storing), "
            f"{per_channel * 1000:.2f} ms fixed per channel x {channels:,} channels (probe x {PROBE_TO_CHANNEL})"
        )
    print(f"\nrecall latency, ms (p50 / p99){'':<4}" + "".join(f"{r.name:>24}" for r in results))
    for stage in STAGES:
        print(
            f"  {stage:<32}"
            + "".join(
                f"{f'{percentile(r.stages[stage], 50):.2f} / {percentile(r.stages[stage], 99):.2f}':>24}"
                for r in results
            )
        )
    for r in results:
        big, small = percentile(r.bm25_here, 50), percentile(r.bm25_small_db, 50)
        print(
            f"  {r.name}: BM25 p50 {big:.2f} ms here, {small:.2f} ms for the same channels in a database 10x "
            f"smaller: ratio {big / small:.2f} (target <= 1.5)"
        )


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-many-channels-"))
    models = (
        build_tiny_qwen3_embedder(root / "tiny-old", seed=0),
        build_tiny_qwen3_embedder(root / "tiny-new", seed=1),
    )
    results = []
    shapes = [
        (f"{args.channels:,} x {args.per_channel}", args.channels, args.per_channel),
        (f"1 x {args.big:,}", 1, args.big),
    ]
    for name, channels, per_channel in shapes:
        if channels * per_channel:
            results.append(await run_shape(name, channels, per_channel, models, root, args.queries))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report(results, load)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, default=2000)
    parser.add_argument("--per-channel", type=int, default=25)
    parser.add_argument("--big", type=int, default=50_000, help="messages of the one big channel (0: skip)")
    parser.add_argument("--queries", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
