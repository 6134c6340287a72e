"""SQLite + FAISS against PostgreSQL + pgvector at 100k messages: load, recall latency, migration throughput.

One run builds the same memory twice, once on each backend, and prints every number as a ratio
Postgres / SQLite beside the raw numbers (for latencies above 1 means Postgres is slower; for
throughputs below 1 means Postgres is slower).

* **Data**: ``--messages`` (100k) real chat lines from ``data/samples/chat_sample.jsonl``, scaled as
  ``bench/recall_pipeline.py`` does: each distinct line once, then perturbed copies (a prefix, a suffix,
  a dropped or swapped word). They are spread over 20 channels of Zipf-like sizes (the largest ~30% of
  all, the smallest ~1%) in two guilds, interleaved in time, so every search is a per-channel filtered
  one. Vectors: the distinct lines are encoded once by the packaged all-MiniLM-L6-v2 (offline_default,
  384-d); each copy reuses its line's vector plus small Gaussian noise, re-normalised. Both backends get
  exactly these messages and vectors through ``store.add_messages`` + ``store.put_vectors`` (+
  ``put_vectors``, then ``flush()``) in batches of 2,000: the write path, timed per backend
  (SQLite rows + FTS5 + FAISS vs executemany + GIN + binary COPY + pgvector HNSW maintenance).
* **Recall latency** over ``--queries`` (200) queries (the demo questions, then chat lines), each in a
  channel drawn proportionally to channel size, after a warm-up of one query per channel: the whole
  ``Recaller.recall`` with the settings' default options (hybrid: dense + BM25, cosine floor), the
  dense-only and the BM25-only stages (``for_stage("dense")``, ``for_stage("bm25")``: FTS5 vs
  tsvector + GIN + ``ts_rank``), and the raw vector search alone (``store.search`` at the
  dense stage's depth, query vectors embedded beforehand: FAISS vs pgvector without the shared model
  cost). Backends alternate per query, so a busy moment of the machine weighs on both. p50 and p99.
  Beside them, the top 10 and the top 50 of that search (k 50, as recall runs it) against the exact numpy
  top 10 and top 50 of the channel: recall@10 and @50 (SQLite's channels are all under the 50k
  exact-search threshold; pgvector's one HNSW index spans every channel of the space and is scanned
  iteratively under the channel filter). Vector search and recall@10 are also grouped by the index
  Postgres's planner picks for the channel's search at that k (EXPLAIN, same settings): the HNSW index
  (approximate), or the channel btree followed by an exact sort. The choice follows the planner's row
  estimate for the channel and the LIMIT, so it differs between channels of similar size and between k.
* **Migration**: the real ``MigrationEngine`` (``regenerate``, no backup, auto-swap, verify included)
  to a tiny random genuine-architecture Qwen3 embedder (64-d), cheap next to the real model so that the
  storage path weighs, on each backend in turn, with a 10 ms ticker measuring event-loop lag (and the
  migration phase of the worst tick). The raw encode throughput of that model on the same texts and
  batch size, in the same executor, is measured before and after (mean), and each backend's migration
  rate is printed as a fraction of it: what the storage path costs on top of encoding.
  ``--migrate-messages`` (default 20,000) migrates whole channels summing to at most that many messages,
  the largest that still fit (at 100k: 14,617 + 5,335). Why a subset: on 2 CPU cores even the tiny
  model encodes only ~150-250 chat lines/s (batches of 64 pad to their longest line), so all 100k
  would cost ~8 minutes per pass and this bench needs four (raw before, two migrations, raw after):
  far past its ~15 minute budget. At 20k the four passes take ~7 minutes and the whole run ~12; the
  rates are per message, and two channels of 5k-15k show the per-channel costs (verify, swap) as a
  real migration would. ``--migrate-messages 0`` migrates everything.

``--dsn`` uses an existing server (an admin DSN: a fresh database is created from ``qm_template`` and
dropped at the end) instead of starting a private durable one in a temp dir under /tmp. ``--json``
prints one JSON object instead of the tables. Prints, asserts nothing. Run::

    .venv/bin/python bench/backends.py [--messages 100000] [--queries 200] [--migrate-messages 20000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("MEMORY_DATABASE_URL", None)  # the bench chooses its own database; the variable would win
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.migration import LagProbe  # noqa: E402
from bench.recall_pipeline import perturb, sample_texts  # noqa: E402  (the same 100k-message corpus)
from qwen3_memory.memory import Memory  # noqa: E402
from qwen3_memory.migration.engine import MigrationEngine  # noqa: E402
from qwen3_memory.models.device import DevicePolicy  # noqa: E402
from qwen3_memory.models.embedding import EmbeddingServices  # noqa: E402
from qwen3_memory.records import StoredMessage  # noqa: E402
from qwen3_memory.settings import ModelOverrides, default_settings, resolve_profile  # noqa: E402
from tests.tiny_models import build_tiny_qwen3_embedder  # noqa: E402

SAMPLE = REPO / "data" / "samples" / "chat_sample.jsonl"
DEMO_QUESTIONS = REPO / "data" / "samples" / "demo_questions.json"
BACKENDS = ("sqlite", "postgres")
GUILDS = (1, 2)
CHANNELS = 20
ZIPF = 1.1  # channel i (from 1) holds a share proportional to 1 / i**ZIPF: the largest ~31%, the smallest ~1%
FIRST_ID = 1_345_307_535_212_675_072
WRITE_BATCH = 2000
NOISE = 0.01  # per-dimension sigma of the noise added to a copy's vector (cosine to the original ~0.98)
TICK = 0.010
LATENCIES = ("pipeline", "dense", "bm25", "vector search")


def log(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(np.ceil(q / 100 * len(ordered))) - 1)] if ordered else float("nan")


# ----------------------------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Channel:
    guild_id: int
    channel_id: int
    size: int


def channel_layout(n: int) -> list[Channel]:
    """20 channels of Zipf-like sizes summing to ``n``, largest first, alternating between the two guilds."""
    weights = 1.0 / np.arange(1, CHANNELS + 1) ** ZIPF
    sizes = np.floor(n * weights / weights.sum()).astype(int)
    sizes[0] += n - sizes.sum()
    return [Channel(GUILDS[i % 2], 100 + i, int(s)) for i, s in enumerate(sizes)]


@dataclass
class Corpus:
    channels: list[Channel]
    messages: list[StoredMessage]
    vectors: np.ndarray  # (n, 384) float32, row i belongs to messages[i]
    rows: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # channel -> its rows, by id

    def __post_init__(self) -> None:
        guilds = np.fromiter((m.guild_id for m in self.messages), np.int64, len(self.messages))
        channels = np.fromiter((m.channel_id for m in self.messages), np.int64, len(self.messages))
        for ch in self.channels:
            self.rows[(ch.guild_id, ch.channel_id)] = np.flatnonzero(
                (guilds == ch.guild_id) & (channels == ch.channel_id)
            )
        self.ids = np.fromiter((m.id for m in self.messages), np.int64, len(self.messages))

    def exact_top(self, guild_id: int, channel_id: int, query: np.ndarray, k: int) -> set[int]:
        rows = self.rows[(guild_id, channel_id)]
        scores = self.vectors[rows] @ query
        best = np.argpartition(-scores, min(k, len(rows)) - 1)[:k]
        return set(self.ids[rows[best]].tolist())


def build_corpus(n: int, base_texts: list[str], base_vectors: np.ndarray, seed: int = 7) -> Corpus:
    """``n`` messages in time order (channels interleaved): the distinct texts first, then perturbed copies."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    channels = channel_layout(n)
    where = np.repeat(np.arange(len(channels)), [c.size for c in channels])
    nrng.shuffle(where)
    messages, rows = [], np.empty(n, dtype=np.int64)
    for i in range(n):
        ch = channels[where[i]]
        row = i if i < len(base_texts) else rng.randrange(len(base_texts))
        text = base_texts[row] if i < len(base_texts) else perturb(base_texts[row], rng)
        author = i % 37
        message_id, created = FIRST_ID + i * 4096, 1.74e9 + i
        messages.append(
            StoredMessage(message_id, ch.guild_id, ch.channel_id, 100 + author, f"user{author}", text, created)
        )
        rows[i] = row
    vectors = base_vectors[rows].copy()
    copies = np.arange(n) >= len(base_texts)
    vectors[copies] += nrng.normal(0.0, NOISE, size=(int(copies.sum()), vectors.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Corpus(channels, messages, np.ascontiguousarray(vectors, dtype=np.float32))


def bench_queries(corpus: Corpus, n: int, base_texts: list[str], seed: int = 11) -> list[tuple[int, int, str]]:
    """(guild, channel, text): the demo questions, then chat lines; channels drawn proportionally to size."""
    rng = np.random.default_rng(seed)
    demo = [q["question"] for q in json.loads(DEMO_QUESTIONS.read_text(encoding="utf-8"))]
    chat = [base_texts[i] for i in rng.choice(len(base_texts), size=max(0, n - len(demo)), replace=False)]
    sizes = np.array([c.size for c in corpus.channels], dtype=float)
    picks = rng.choice(len(corpus.channels), size=n, p=sizes / sizes.sum())
    chosen = [corpus.channels[i] for i in picks]
    return [(ch.guild_id, ch.channel_id, text) for ch, text in zip(chosen, (demo + chat)[:n])]


# ----------------------------------------------------------------------------------------------- postgres


class PrivateServer:
    """A durable Postgres under a temp dir in /tmp (the server runs as an unprivileged user), or ``--dsn``'s."""

    def __init__(self, admin_dsn: str | None) -> None:
        self.admin_dsn = admin_dsn
        self.root: Path | None = None
        self.database = f"bench_backends_{os.getpid()}"
        self.stopped = False

    def start(self) -> str:
        from tests import pg_server

        if self.admin_dsn:
            pg_server.make_template(self.admin_dsn)
        else:
            self.root = Path(tempfile.mkdtemp(prefix="bench-backends-pg-", dir="/tmp"))
            self.admin_dsn = pg_server.start(self.root, durable=True)
        self._admin(f"CREATE DATABASE {self.database} TEMPLATE {pg_server.TEMPLATE_DB}")
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.admin_dsn, dbname=self.database)

    def settings(self) -> dict[str, str]:
        names = ["server_version", "shared_buffers", "maintenance_work_mem", "synchronous_commit", "fsync"]
        return dict(self._admin("SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", (names,)))

    def _admin(self, query: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        """Drop the database (a given server) or stop the server and remove its dir; a second call does nothing."""
        from tests import pg_server

        if self.stopped:
            return
        self.stopped = True
        try:
            if self.root is None and self.admin_dsn:
                self._admin(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        finally:
            if self.root is not None:
                try:
                    pg_server.stop(self.root)
                finally:
                    shutil.rmtree(self.root, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- measuring


async def load(memory: Memory, corpus: Corpus) -> dict[str, float]:
    """Write every message and vector through the store, in batches.

    Returns the seconds in all, and of its two halves: the messages (``add_messages``: rows and text
    index) and the vectors (``put_vectors`` + the final ``flush``: rows and vector index).
    """
    space = memory.default_space
    started = time.perf_counter()
    message_s = 0.0
    for ch in corpus.channels:
        await memory.store.ensure_channel(ch.guild_id, ch.channel_id, space.id)
    for start in range(0, len(corpus.messages), WRITE_BATCH):
        batch = corpus.messages[start : start + WRITE_BATCH]
        vectors = corpus.vectors[start : start + WRITE_BATCH]
        t = time.perf_counter()
        await memory.store.add_messages(batch)
        message_s += time.perf_counter() - t
        accepted = await memory.store.put_vectors(space, batch, vectors)
        assert len(accepted) == len(batch), (len(accepted), len(batch))
        if start // WRITE_BATCH % 10 == 9:
            log(f"{start + len(batch):,} written, {time.perf_counter() - started:.0f}s")
    await memory.store.flush()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "messages_s": message_s, "vectors_s": seconds - message_s}


async def pg_plan_indexes(memory: Memory, ch: Channel, query: np.ndarray, k: int) -> list[str]:
    """The indexes Postgres's planner picks for the dense search of one channel (EXPLAIN, same settings)."""
    import psycopg
    from pgvector.psycopg import register_vector_async

    table = f"space_vectors_{memory.default_space.id}"
    async with await psycopg.AsyncConnection.connect(memory.settings.database_url) as conn:
        await register_vector_async(conn)
        await conn.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)",
            (str(max(memory.settings.memory.index.hnsw_ef_search, k)),),
        )
        cur = await conn.execute(
            f"EXPLAIN (FORMAT JSON) SELECT message_id, 1 - (embedding <=> %s::vector) FROM {table} "
            "WHERE guild_id = %s AND channel_id = %s ORDER BY embedding <=> %s::vector LIMIT %s",
            (query, ch.guild_id, ch.channel_id, query, k),
        )
        plan = (await cur.fetchone())[0][0]["Plan"]
    found, nodes = [], [plan]
    while nodes:
        node = nodes.pop()
        if "Index Name" in node:
            found.append(node["Index Name"].removeprefix(table + "_"))
        nodes.extend(node.get("Plans", []))
    return found or ["seq scan"]


async def time_recall(
    memories: dict[str, Memory], corpus: Corpus, queries: list[tuple[int, int, str]], query_vectors: np.ndarray
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, list[float]]]]:
    """Per backend and latency kind, the ms of each query; per backend, each query's recall@10 and @depth."""
    times = {b: {kind: [] for kind in LATENCIES} for b in memories}
    overlap = {b: {"recall@10": [], "recall@depth": []} for b in memories}
    for n, ((g, c, text), vector) in enumerate(zip(queries, query_vectors)):
        order = list(memories) if n % 2 == 0 else list(reversed(memories))
        for backend in order:
            memory = memories[backend]
            options = memory.recall_options()
            depth = options.search_depth
            started = time.perf_counter()
            await memory.recaller.recall(g, c, text, options)
            t1 = time.perf_counter()
            await memory.recaller.recall(g, c, text, options.for_stage("dense"))
            t2 = time.perf_counter()
            await memory.recaller.recall(g, c, text, options.for_stage("bm25"))
            t3 = time.perf_counter()
            hits = await memory.store.search(memory.default_space, g, c, vector, depth)
            t4 = time.perf_counter()
            for kind, seconds in zip(LATENCIES, (t1 - started, t2 - t1, t3 - t2, t4 - t3)):
                times[backend][kind].append(seconds * 1000)
            top10 = {i for i, _ in hits[:10]}  # what the pipeline fuses: its top 10, found by a search at its depth
            overlap[backend]["recall@10"].append(len(top10 & corpus.exact_top(g, c, vector, 10)) / 10)
            exact = corpus.exact_top(g, c, vector, depth)
            overlap[backend]["recall@depth"].append(len({i for i, _ in hits} & exact) / len(exact))
    return times, overlap


def migration_channels(corpus: Corpus, budget: int) -> list[Channel]:
    """Whole channels summing to at most ``budget`` messages, taking the largest that still fit (0: all)."""
    if budget <= 0 or budget >= len(corpus.messages):
        return list(corpus.channels)
    chosen, left = [], budget
    for ch in sorted(corpus.channels, key=lambda c: -c.size):
        if ch.size <= left:
            chosen.append(ch)
            left -= ch.size
    return chosen or [min(corpus.channels, key=lambda c: c.size)]


async def migrate(memory: Memory, target, channels: list[Channel], batch_size: int) -> dict[str, float]:
    engine = MigrationEngine(memory)
    job = await engine.start(target, backup=False, batch_size=batch_size, channel_ids=[c.channel_id for c in channels])
    probe = LagProbe(TICK, lambda: (engine.progress(job.id) or {"phase": "starting"})["phase"])
    probe.start()
    started = time.perf_counter()
    job = await engine.run(job.id)
    seconds = time.perf_counter() - started
    await probe.stop()
    assert job.status == "completed", (job.status, job.error)
    migrated = sum(c.size for c in channels)
    return {
        "messages": migrated,
        "seconds": seconds,
        "msgs_per_s": migrated / seconds,
        "lag_p50_ms": percentile(probe.lags_ms, 50),
        "lag_p99_ms": percentile(probe.lags_ms, 99),
        "lag_max_ms": probe.worst()[0],
        "lag_max_phase": probe.worst()[1],
        "ticks": len(probe.lags_ms),
    }


def raw_encode_seconds(service, texts: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        service.encode_documents(texts[start : start + batch_size], batch_size=batch_size)
    return time.perf_counter() - started


def latency_summary(times: dict[str, dict[str, list[float]]]) -> dict[str, dict]:
    out = {}
    for kind in LATENCIES:
        row = {b: {"p50": percentile(times[b][kind], 50), "p99": percentile(times[b][kind], 99)} for b in BACKENDS}
        row["ratio_p50"] = row["postgres"]["p50"] / row["sqlite"]["p50"]
        row["ratio_p99"] = row["postgres"]["p99"] / row["sqlite"]["p99"]
        out[kind] = row
    return out


def by_plan(
    corpus: Corpus,
    queries: list[tuple[int, int, str]],
    times: dict[str, dict[str, list[float]]],
    overlap: dict[str, dict[str, list[float]]],
    plan_of: dict[tuple[int, int], str],
) -> dict[str, dict]:
    """Vector search latency and recall@10 of the queries in channels where Postgres plans the same index."""
    out = {}
    for plan in sorted(set(plan_of.values())):
        rows = [i for i, (g, c, _) in enumerate(queries) if plan_of[(g, c)] == plan]
        channels = [ch for ch in corpus.channels if plan_of[(ch.guild_id, ch.channel_id)] == plan]
        search = {b: [times[b]["vector search"][i] for i in rows] for b in BACKENDS}
        out[plan] = {
            "channels": len(channels),
            "channel_sizes": [min(ch.size for ch in channels), max(ch.size for ch in channels)],
            "queries": len(rows),
            "vector_search_p50_ms": {b: percentile(search[b], 50) for b in BACKENDS},
            "vector_search_p99_ms": {b: percentile(search[b], 99) for b in BACKENDS},
            "recall@10": {
                b: float(np.mean([overlap[b]["recall@10"][i] for i in rows])) if rows else None for b in BACKENDS
            },
        }
    return out


# ------------------------------------------------------------------------------------------------ main


async def run(args: argparse.Namespace, server: PrivateServer, root: Path) -> dict:
    wall = time.perf_counter()
    services = EmbeddingServices(DevicePolicy(cpu_only=True))
    memories: dict[str, Memory] = {}
    result: dict = {}
    try:
        log("starting Postgres" if not args.dsn else "creating a database on the given server")
        dsn = server.start()
        pg = server.settings()
        settings = {
            "sqlite": default_settings(paths={"data_dir": str(root / "sqlite")}),
            "postgres": default_settings(paths={"data_dir": str(root / "pg")}, backend="postgres", database_url=dsn),
        }
        service = services.get(settings["sqlite"].space)
        await service.aload()
        base_texts = sample_texts()
        started = time.perf_counter()
        base_vectors = await service.aencode_documents(base_texts, batch_size=64)
        log(f"encoded {len(base_texts):,} distinct sample texts in {time.perf_counter() - started:.1f}s")
        corpus = build_corpus(args.messages, base_texts, base_vectors)

        load_s = {}
        for backend in BACKENDS:
            memories[backend] = await Memory.open(settings[backend], start_capture=False, services=services)
            log(f"loading {len(corpus.messages):,} messages into {backend}")
            load_s[backend] = await load(memories[backend], corpus)
            log(f"{backend}: loaded in {load_s[backend]['seconds']:.1f}s")
        space = memories["sqlite"].default_space
        sqlite_store = memories["sqlite"].store
        kinds = [(await sqlite_store.index_info(space, c.guild_id, c.channel_id)).kind for c in corpus.channels]
        for backend, size in {
            "sqlite": settings["sqlite"].database_path.stat().st_size
            + sum(p.stat().st_size for p in settings["sqlite"].vectors_dir.rglob("*") if p.is_file()),
            "postgres": (await memories["postgres"].store.fetchone("SELECT pg_database_size(current_database())"))[0],
        }.items():
            load_s[backend]["bytes"] = size

        queries = bench_queries(corpus, args.queries, base_texts)
        query_vectors = await service.aencode_queries([t for _, _, t in queries])
        warm = [(c.guild_id, c.channel_id, base_texts[i]) for i, c in enumerate(corpus.channels)]
        log(f"warm-up ({len(warm)} queries, one per channel), then {len(queries)} timed queries per backend")
        await time_recall(memories, corpus, warm, await service.aencode_queries([t for _, _, t in warm]))
        times, overlap = await time_recall(memories, corpus, queries, query_vectors)
        options = memories["postgres"].recall_options()
        depth = options.search_depth
        plan_of = {
            (ch.guild_id, ch.channel_id): " + ".join(
                await pg_plan_indexes(memories["postgres"], ch, query_vectors[0], depth)
            )
            for ch in corpus.channels
        }

        tiny_dir = build_tiny_qwen3_embedder(root / "tiny-qwen3")
        target = resolve_profile("qwen3_medium_performance", ModelOverrides(str(tiny_dir), 64)).embedding
        tiny = services.get(target)
        await tiny.aload()
        chosen = migration_channels(corpus, args.migrate_messages)
        texts = [corpus.messages[r].content for c in chosen for r in corpus.rows[(c.guild_id, c.channel_id)]]
        tiny.encode_documents(texts[: args.batch_size], batch_size=args.batch_size)  # warm-up
        log(f"raw encode of {len(texts):,} texts by the tiny Qwen3")
        raw_before = await tiny.run(raw_encode_seconds, tiny, texts, args.batch_size)  # where migrations encode
        migration = {}
        for backend in BACKENDS:
            log(f"migrating {len(texts):,} messages in {len(chosen)} channels on {backend}")
            migration[backend] = await migrate(memories[backend], target, chosen, args.batch_size)
            log(f"{backend}: migrated in {migration[backend]['seconds']:.1f}s")
        raw_after = await tiny.run(raw_encode_seconds, tiny, texts, args.batch_size)
        raw_rate = len(texts) / ((raw_before + raw_after) / 2)
        for backend in BACKENDS:
            migration[backend]["vs_raw_encode"] = migration[backend]["msgs_per_s"] / raw_rate

        result = {
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
            "postgres": {"server": "private, durable" if not args.dsn else "given by --dsn", **pg},
            "data": {
                "messages": len(corpus.messages),
                "distinct_sample_texts": len(base_texts),
                "guilds": len(GUILDS),
                "channels": len(corpus.channels),
                "largest_channel": corpus.channels[0].size,
                "smallest_channel": corpus.channels[-1].size,
                "sqlite_index_kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
            },
            "load": {
                **{b: {**load_s[b], "msgs_per_s": len(corpus.messages) / load_s[b]["seconds"]} for b in BACKENDS},
                "ratio_throughput": load_s["sqlite"]["seconds"] / load_s["postgres"]["seconds"],
            },
            "recall": {
                "queries": len(queries),
                "options": {**vars(options), "stage": options.stage},
                "latency_ms": latency_summary(times),
                "accuracy_vs_exact": {b: {k: float(np.mean(v)) for k, v in overlap[b].items()} for b in BACKENDS},
                "by_postgres_plan": by_plan(corpus, queries, times, overlap, plan_of),
            },
            "migration": {
                "strategy": "regenerate",
                "target": f"{target.model} (tiny random, {target.dimension}-d)",
                "batch_size": args.batch_size,
                "messages": len(texts),
                "channels": [c.size for c in chosen],
                "raw_encode_per_s": raw_rate,
                **migration,
                "ratio_throughput": migration["postgres"]["msgs_per_s"] / migration["sqlite"]["msgs_per_s"],
            },
        }
    finally:
        try:
            for memory in memories.values():
                await memory.close()
            services.close()
        finally:
            server.stop()  # also on error: the server, its temp dir, or the database on --dsn's server
            shutil.rmtree(root, ignore_errors=True)
    result["wall_s"] = time.perf_counter() - wall
    return result


def print_tables(r: dict) -> None:
    data, load_r, rec, mig, pg = r["data"], r["load"], r["recall"], r["migration"], r["postgres"]
    o = rec["options"]
    print(
        f"backends bench: {r['machine']['cpu']}, {r['machine']['cores']} CPU cores; Postgres {pg['server_version']} "
        f"({pg['server']}, shared_buffers {pg.get('shared_buffers', '?')}, synchronous_commit "
        f"{pg.get('synchronous_commit', '?')}) + pgvector, one HNSW index (m=16, ef_construction=64) per space"
    )
    kinds = ", ".join(f"{n} {k}" for k, n in data["sqlite_index_kinds"].items())
    print(
        f"{data['messages']:,} messages ({data['distinct_sample_texts']:,} distinct sample lines, then perturbed "
        f"copies) in {data['channels']} channels of {data['guilds']} guilds, {data['smallest_channel']:,} to "
        f"{data['largest_channel']:,} per channel; SQLite FAISS indexes: {kinds}"
    )
    print("\nratio = Postgres / SQLite (latency: > 1 is Postgres slower; throughput: < 1 is Postgres slower)\n")

    def row(label: str, sqlite: float, postgres: float, fmt: str, ratio: float | None = None) -> None:
        cell = f"{ratio:>8.2f}" if ratio is not None else ""
        print(f"{label:<34}{sqlite:>14{fmt}}{postgres:>14{fmt}}{cell}")

    header = f"{'':<34}{'SQLite+FAISS':>14}{'Postgres':>14}{'ratio':>8}"
    print(header + "\n" + "-" * len(header))
    s, p = load_r["sqlite"], load_r["postgres"]
    row("load (msgs/s)", s["msgs_per_s"], p["msgs_per_s"], ",.0f", load_r["ratio_throughput"])
    row("  load seconds", s["seconds"], p["seconds"], ".1f", p["seconds"] / s["seconds"])
    row("    messages: add_messages", s["messages_s"], p["messages_s"], ".1f", p["messages_s"] / s["messages_s"])
    row("    vectors: put_vectors + index", s["vectors_s"], p["vectors_s"], ".1f", p["vectors_s"] / s["vectors_s"])
    row("  on disk (MiB)", s["bytes"] / 2**20, p["bytes"] / 2**20, ".0f")
    for kind, lat in rec["latency_ms"].items():
        for q in ("p50", "p99"):
            row(f"{kind} {q} (ms)", lat["sqlite"][q], lat["postgres"][q], ".2f", lat[f"ratio_{q}"])
    acc = rec["accuracy_vs_exact"]
    row("recall@10 vs exact top 10", acc["sqlite"]["recall@10"], acc["postgres"]["recall@10"], ".3f")
    row(f"recall@{o['candidates']} vs exact", acc["sqlite"]["recall@depth"], acc["postgres"]["recall@depth"], ".3f")
    for plan, group in rec["by_postgres_plan"].items():
        lo, hi = group["channel_sizes"]
        print(f"  Postgres plans {plan}: {group['channels']} channels of {lo:,}-{hi:,}, {group['queries']} queries")
        for q in ("p50", "p99"):
            v = group[f"vector_search_{q}_ms"]
            row(f"    vector search {q} (ms)", v["sqlite"], v["postgres"], ".2f", v["postgres"] / v["sqlite"])
        if group["queries"]:
            row("    recall@10 vs exact top 10", group["recall@10"]["sqlite"], group["recall@10"]["postgres"], ".3f")
    s, p = mig["sqlite"], mig["postgres"]
    row("migration (msgs/s)", s["msgs_per_s"], p["msgs_per_s"], ",.0f", mig["ratio_throughput"])
    row("  migration seconds", s["seconds"], p["seconds"], ".1f", p["seconds"] / s["seconds"])
    row("  migration / raw encode", s["vs_raw_encode"], p["vs_raw_encode"], ".2f")
    for q in ("p50", "p99", "max"):
        row(f"  event-loop lag {q} (ms)", s[f"lag_{q}_ms"], p[f"lag_{q}_ms"], ".1f")
    print(f"{'    worst tick during':<34}{s['lag_max_phase']:>14}{p['lag_max_phase']:>14}")
    print(
        f"\nrecall: {rec['queries']} queries (demo questions, then chat lines) in channels drawn by size, after one "
        f"warm-up query per channel. pipeline = Recaller.recall with the default options ({o['stage']}, k {o['k']}, "
        f"candidates {o['candidates']}, min_score {o['min_score']}); dense, bm25 = for_stage('dense'), "
        f"for_stage('bm25'); vector search = store.search (k {o['candidates']}) of a query vector embedded "
        "beforehand. recall@k: a backend's top k "
        f"against the exact numpy top k of the channel (recall@10: the top 10 of the k {o['candidates']} search). By "
        f"plan: the index Postgres's planner picks for the channel's search at k {o['candidates']} (EXPLAIN)."
    )
    print(
        f"migration: {mig['messages']:,} of {data['messages']:,} messages (whole channels of "
        f"{', '.join(f'{n:,}' for n in mig['channels'])}) with {mig['strategy']} to {mig['target']}, batch "
        f"{mig['batch_size']}, verify and swap included; raw encode of the same texts by the same model: "
        f"{mig['raw_encode_per_s']:,.0f} texts/s (mean of a run before and after); lag: a {TICK * 1000:.0f} ms ticker."
    )
    print(f"\ntotal {r['wall_s']:.0f}s")


def interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="timed queries per backend (p99 needs >= 100)")
    parser.add_argument(
        "--migrate-messages",
        type=int,
        default=20_000,
        help="migrate whole channels summing to at most this many messages (0: all); see the docstring",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="migration batch size (the profile's default)")
    parser.add_argument("--dsn", help="admin DSN of an existing server; a fresh database is made and dropped there")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)  # killed: clean up as on Ctrl-C
    server, root = PrivateServer(args.dsn), Path(tempfile.mkdtemp(prefix="bench-backends-", dir="/tmp"))
    try:
        result = asyncio.run(run(args, server, root))
    finally:  # run() cleans up itself; this covers a run torn down before its own cleanup could
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_tables(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
