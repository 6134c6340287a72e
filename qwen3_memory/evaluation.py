"""Retrieval evaluation: recall@1/5/10, MRR and nDCG@10 of a labelled chat set, per recall stage.

``python -m qwen3_memory eval --dataset tests/data/eval_chat.jsonl`` loads the set's messages into a
fresh memory in a temporary directory (the real store, indexes and models of ``--profile``), asks
every query in its own guild and channel through :meth:`Recaller.recall` with each stage switched
on in turn, and prints a table per stage and per language and kind of query.

Ranking metrics are measured with the cosine and reranker floors *off* (``min_score`` -1,
``min_rerank_score`` 0): a floor only ever removes results, so it is judged separately by the
threshold study (``--thresholds``), which also asks every query in another channel of its guild,
where it has no answer, to show how often a floor lets noise through.

The migration verifier uses :func:`evaluate_channel_spaces` to score an old and a new embedding
space side by side on the queries of one channel; :func:`evaluate_space` scores any one space.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from qwen3_memory.errors import UserFacingError
from qwen3_memory.memory import Memory
from qwen3_memory.models.embedding import EmbeddingServices
from qwen3_memory.ranking_metrics import ndcg_at_k, recall_at_k, reciprocal_rank
from qwen3_memory.recall.pipeline import STAGES, RecallOptions
from qwen3_memory.records import SpaceRecord, StoredMessage
from qwen3_memory.settings import Settings, default_settings

DEFAULT_STAGES = ("dense", "bm25", "hybrid", "hybrid+rerank")
#: Stages the migration verifier compares per space (reranking does not depend on the space).
SPACE_STAGES = ("dense", "hybrid")
CUTOFFS = (1, 5, 10)
DEPTH = max(CUTOFFS)  # results asked for per query: every metric is computed from the first 10
METRICS = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")
DEFAULT_THRESHOLDS = (-1.0, 0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


# ----------------------------------------------------------------------------------------------- the set


@dataclass(frozen=True)
class EvalQuery:
    id: str
    guild_id: int
    channel_id: int
    text: str
    relevant: tuple[int, ...]
    lang: str = ""
    kind: str = ""
    split: str = ""  # "tune" or "check" where the set has splits: choose settings on one, confirm on the other


@dataclass(frozen=True)
class EvalSet:
    messages: list[StoredMessage]
    queries: list[EvalQuery]
    path: Path | None = None

    def channels(self) -> list[tuple[int, int]]:
        return sorted({(m.guild_id, m.channel_id) for m in self.messages})


def load_eval_set(path: str | Path) -> EvalSet:
    """Messages and queries of a JSONL set (see tests/data/README.md); a bad line is a ValueError naming it."""
    path = Path(path)
    messages: list[StoredMessage] = []
    queries: list[EvalQuery] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FileNotFoundError(f"{path}: cannot read the evaluation set ({exc.strerror or exc})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if row["type"] == "message":
                created = row["created_at"]
                created = datetime.fromisoformat(created).timestamp() if isinstance(created, str) else float(created)
                messages.append(
                    StoredMessage(
                        int(row["id"]),
                        int(row["guild_id"]),
                        int(row["channel_id"]),
                        int(row.get("author_id", 0)),
                        str(row.get("author_name", "")),
                        str(row["content"]),
                        created,
                    )
                )
            elif row["type"] == "query":
                queries.append(
                    EvalQuery(
                        str(row["id"]),
                        int(row["guild_id"]),
                        int(row["channel_id"]),
                        str(row["query"]),
                        tuple(int(i) for i in row["relevant"]),
                        str(row.get("lang", "")),
                        str(row.get("kind", "")),
                        str(row.get("split", "")),
                    )
                )
            else:
                raise ValueError(f"unknown type {row['type']!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a message or query line ({type(exc).__name__}: {exc})") from None
    where = {m.id: (m.guild_id, m.channel_id) for m in messages}
    for query in queries:
        if not query.relevant:
            raise ValueError(f"{path}: query {query.id} lists no relevant message")
        for message_id in query.relevant:
            if where.get(message_id, (query.guild_id, query.channel_id)) != (query.guild_id, query.channel_id):
                raise ValueError(f"{path}: query {query.id}: relevant message {message_id} is in another channel")
    return EvalSet(messages, queries, path)


def spread_subset(queries: Sequence[EvalQuery], n: int | None) -> list[EvalQuery]:
    """``n`` queries evenly spaced through the set (every channel, language and kind keeps its share)."""
    if n is None or n >= len(queries):
        return list(queries)
    if n < 1:
        return []
    return [queries[(i * len(queries)) // n] for i in range(n)]


# --------------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class QueryRun:
    query: EvalQuery
    ranked: tuple[int, ...]
    seconds: float


def score_runs(runs: Sequence[QueryRun]) -> dict[str, float]:
    """Mean metrics and latency percentiles of some runs (one stage)."""
    if not runs:
        return {"n": 0}
    result: dict[str, float] = {"n": len(runs)}
    for k in CUTOFFS:
        result[f"recall@{k}"] = statistics.fmean(recall_at_k(r.ranked, r.query.relevant, k) for r in runs)
    result["mrr"] = statistics.fmean(reciprocal_rank(r.ranked, r.query.relevant, DEPTH) for r in runs)
    result["ndcg@10"] = statistics.fmean(ndcg_at_k(r.ranked, r.query.relevant, 10) for r in runs)
    latencies = sorted(r.seconds * 1000 for r in runs)
    result["p50_ms"] = _percentile(latencies, 50)
    result["p95_ms"] = _percentile(latencies, 95)
    result["p99_ms"] = _percentile(latencies, 99)
    return result


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def summarize(runs: Sequence[QueryRun]) -> dict[str, Any]:
    """Metrics over all runs, and per language, per kind and per language/kind of query (and per split
    and split/language where the set has splits)."""
    groups: dict[str, dict[str, list[QueryRun]]] = {"lang": {}, "kind": {}, "lang_kind": {}}
    for run in runs:
        q = run.query
        if q.split:
            groups.setdefault("split", {}).setdefault(q.split, []).append(run)
            groups.setdefault("split_lang", {}).setdefault(f"{q.split}/{q.lang or '?'}", []).append(run)
        groups["lang"].setdefault(q.lang or "?", []).append(run)
        groups["kind"].setdefault(q.kind or "?", []).append(run)
        groups["lang_kind"].setdefault(f"{q.lang or '?'}/{q.kind or '?'}", []).append(run)
    summary: dict[str, Any] = {"all": score_runs(runs)}
    for name, by_value in groups.items():
        summary[name] = {value: score_runs(group) for value, group in sorted(by_value.items())}
    return summary


# ------------------------------------------------------------------------------------------ running queries


def ranking_options(base: RecallOptions, stage: str) -> RecallOptions:
    """``base`` switched to ``stage``, asking for the metric depth with both floors off."""
    return replace(base.for_stage(stage), k=DEPTH, min_score=-1.0, min_rerank_score=0.0)


async def run_queries(
    memory: Memory,
    queries: Sequence[EvalQuery],
    options: RecallOptions,
    space: SpaceRecord | None = None,
    progress: bool = False,
    desc: str = "",
) -> list[QueryRun]:
    """Each query through the real recall pipeline, in its own guild and channel, timed."""
    from tqdm import tqdm

    runs = []
    for query in tqdm(queries, desc=desc or options.stage, unit="q", disable=not progress, leave=False):
        started = time.perf_counter()
        hits = await memory.recaller.recall(query.guild_id, query.channel_id, query.text, options, space=space)
        runs.append(QueryRun(query, tuple(h.message.id for h in hits), time.perf_counter() - started))
    return runs


async def evaluate(
    memory: Memory,
    queries: Sequence[EvalQuery],
    stages: Iterable[str] = DEFAULT_STAGES,
    base: RecallOptions | None = None,
    space: SpaceRecord | None = None,
    progress: bool = False,
    log_stages: bool = False,
) -> dict[str, dict[str, Any]]:
    """Stage -> :func:`summarize` of every query; ``space`` forces one space, else each channel's read space.

    ``log_stages``: a line on stderr after each stage (the command line off a terminal, where no bar shows)."""
    base = base or memory.recall_options()
    results = {}
    for stage in stages:
        started = time.perf_counter()
        runs = await run_queries(memory, queries, ranking_options(base, stage), space, progress, desc=stage)
        results[stage] = summarize(runs)
        if log_stages:  # off a terminal there is no bar: one line per stage says it is alive
            print(f"{stage}: {len(runs)} queries in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return results


async def evaluate_space(
    memory: Memory,
    space: SpaceRecord,
    queries: Sequence[EvalQuery],
    stages: Iterable[str] = SPACE_STAGES,
    base: RecallOptions | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of ``queries`` answered from ``space`` (embedded by its model), whatever the channels read.

    Run it for the old and the new space of a migration on the same queries to compare them.
    """
    return await evaluate(memory, queries, stages, base, space=space)


async def queries_in_memory(memory: Memory, queries: Sequence[EvalQuery]) -> tuple[list[EvalQuery], int]:
    """The queries whose relevant messages are all stored in ``memory`` (in their channel), and how many were not."""
    wanted = sorted({i for q in queries for i in q.relevant})
    stored = await memory.store.get_messages(wanted)
    kept = [
        q
        for q in queries
        if all(
            i in stored and (stored[i].guild_id, stored[i].channel_id) == (q.guild_id, q.channel_id) for i in q.relevant
        )
    ]
    return kept, len(queries) - len(kept)


async def channel_queries_in_memory(
    memory: Memory, eval_path: str | Path, guild_id: int, channel_id: int
) -> tuple[list[EvalQuery], int]:
    """One channel's labelled queries whose relevant messages are stored, and how many were not; the set is
    read and parsed in a worker thread (a migration verifies channels on the bot's event loop)."""
    eval_set = await asyncio.to_thread(load_eval_set, eval_path)
    channel = [q for q in eval_set.queries if (q.guild_id, q.channel_id) == (guild_id, channel_id)]
    return await queries_in_memory(memory, channel)


async def evaluate_channel_spaces(
    memory: Memory,
    eval_path: str | Path,
    guild_id: int,
    channel_id: int,
    spaces: Sequence[SpaceRecord],
    stages: Sequence[str] = SPACE_STAGES,
) -> dict[str, Any]:
    """Old vs new: the labelled queries of one channel answered from each of ``spaces``, side by side.

    Only queries of this guild and channel whose relevant messages are all in ``memory`` are asked
    (the others are counted as ``skipped``). The result is plain JSON: per space its metrics per
    stage (over all kept queries and per kind), and with two or more spaces the change from the
    first to the last (``delta``, positive: the last space is better).
    """
    queries, skipped = await channel_queries_in_memory(memory, eval_path, guild_id, channel_id)
    report: dict[str, Any] = {
        "dataset": str(eval_path),
        "guild_id": guild_id,
        "channel_id": channel_id,
        "queries": len(queries),
        "skipped": skipped,
        "stages": list(stages),
        "spaces": [],
    }
    for space in spaces:
        entry: dict[str, Any] = {
            "space_id": space.id,
            "key": space.spec.key,
            "model": space.spec.model,
            "dimension": space.dimension,
            "metrics": {},
        }
        if queries:
            results = await evaluate_space(memory, space, queries, stages)
            entry["metrics"] = {stage: {"all": r["all"], "kind": r["kind"]} for stage, r in results.items()}
        report["spaces"].append(entry)
    if queries and len(spaces) >= 2:
        first, last = report["spaces"][0]["metrics"], report["spaces"][-1]["metrics"]
        report["delta"] = {
            stage: {m: last[stage]["all"][m] - first[stage]["all"][m] for m in METRICS} for stage in stages
        }
    return report


def format_channel_evaluation(report: dict[str, Any]) -> str:
    """:func:`evaluate_channel_spaces`' result as a small text table (one row per space and stage)."""
    head = f"labelled queries of channel {report['channel_id']}: {report['queries']} asked, {report['skipped']} skipped"
    if not report["queries"]:
        return head + " (none of the set's queries of this channel have their messages in this memory)"
    rows = []
    for space in report["spaces"]:
        for stage, metrics in space["metrics"].items():
            rows.append((f"{space['model']} ({space['dimension']}-d)", stage, metrics["all"]))
    return head + "\n" + _table(rows, first="space")


# ----------------------------------------------------------------------------------------- threshold study


async def threshold_study(
    memory: Memory,
    queries: Sequence[EvalQuery],
    base: RecallOptions,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    k: int = 5,
    progress: bool = False,
) -> list[dict[str, float]]:
    """What a cosine floor costs and buys, for the stage of ``base`` without reranking.

    Every query is asked in its own channel and in the next channel of its guild (where its answer
    is not). Per threshold: recall@k and nDCG@10 of the answerable queries with the floor applied,
    how often an answerable query gets no result at all, and how often the off-channel query still
    gets one (what the bot would show instead of "nothing found"). One unfloored run per query
    is enough: the pipeline applies the floor to the fused list before cutting it to k.
    """
    options = replace(base, rerank=False, min_score=-1.0, k=max(base.search_depth * 2, DEPTH))
    by_guild: dict[int, list[int]] = {}
    for guild_id, channel_id in sorted({(q.guild_id, q.channel_id) for q in queries}):
        by_guild.setdefault(guild_id, []).append(channel_id)
    own, foreign = [], []
    from tqdm import tqdm

    for query in tqdm(queries, desc="thresholds", unit="q", disable=not progress, leave=False):
        hits = await memory.recaller.recall(query.guild_id, query.channel_id, query.text, options)
        own.append((query, [(h.message.id, h.similarity) for h in hits]))
        channels = by_guild[query.guild_id]
        if len(channels) > 1:
            other = channels[(channels.index(query.channel_id) + 1) % len(channels)]
            hits = await memory.recaller.recall(query.guild_id, other, query.text, options)
            foreign.append([h.similarity for h in hits])
    rows = []
    for t in thresholds:
        kept = [(q, [i for i, s in hits if s >= t]) for q, hits in own]
        rows.append(
            {
                "min_score": t,
                f"recall@{k}": statistics.fmean(recall_at_k(ids, q.relevant, k) for q, ids in kept),
                "ndcg@10": statistics.fmean(ndcg_at_k(ids, q.relevant, 10) for q, ids in kept),
                "answerable_empty": statistics.fmean(not ids for _, ids in kept),
                "off_channel_answered": statistics.fmean(any(s >= t for s in f) for f in foreign) if foreign else 0.0,
            }
        )
    return rows


# ------------------------------------------------------------------------------------------ building a memory


async def build_memory(
    eval_set: EvalSet,
    settings: Settings,
    services: EmbeddingServices | None = None,
    progress: bool = True,
    batch: int = 256,
) -> Memory:
    """A memory opened with ``settings`` holding every message of the set, embedded and indexed."""
    from tqdm import tqdm

    memory = await Memory.open(settings, start_capture=False, services=services)
    try:
        await memory.services.get(memory.default_space.spec).aload()  # a model that cannot load fails here, once
        with tqdm(total=len(eval_set.messages), unit="msg", desc="embedding", disable=not progress) as bar:
            for start in range(0, len(eval_set.messages), batch):
                chunk = eval_set.messages[start : start + batch]
                await memory.capture.write(chunk)
                bar.update(len(chunk))
        if memory.capture.failures:
            raise UserFacingError(
                f"{memory.capture.failures} batches of the evaluation set could not be embedded (see the log)"
            )
        await memory.store.flush()
    except BaseException:
        await memory.close()
        raise
    return memory


# ---------------------------------------------------------------------------------------------- printing


def _table(rows: Sequence[tuple[str, str, dict[str, float]]], first: str = "slice") -> str:
    width = max([len(first)] + [len(r[0]) for r in rows])
    stage_width = max([len("stage")] + [len(r[1]) for r in rows])
    header = (
        f"{first:<{width}}  {'stage':<{stage_width}}  {'n':>4}  {'R@1':>5}  {'R@5':>5}  {'R@10':>5}  "
        f"{'MRR':>5}  {'nDCG@10':>7}  {'p50 ms':>7}"
    )
    lines = [header, "-" * len(header)]
    for name, stage, m in rows:
        if not m.get("n"):
            lines.append(f"{name:<{width}}  {stage:<{stage_width}}  {0:>4}")
            continue
        lines.append(
            f"{name:<{width}}  {stage:<{stage_width}}  {m['n']:>4}  {m['recall@1']:>5.3f}  {m['recall@5']:>5.3f}  "
            f"{m['recall@10']:>5.3f}  {m['mrr']:>5.3f}  {m['ndcg@10']:>7.3f}  {m['p50_ms']:>7.1f}"
        )
    return "\n".join(lines)


def format_results(results: dict[str, dict[str, Any]]) -> str:
    """Per slice (all, each language, each kind, each language/kind) one row per stage."""
    first = next(iter(results.values()))
    slices = [("all", ("all",))]
    for group in ("lang", "kind", "lang_kind", "split", "split_lang"):
        slices.extend((value, (group, value)) for value in first.get(group, ()))
    rows = []
    for name, path in slices:
        for stage, summary in results.items():
            node = summary
            for part in path:
                node = node.get(part, {})
            rows.append((name, stage, node))
    return _table(rows)


def format_thresholds(rows: Sequence[dict[str, float]]) -> str:
    recall_key = next(key for key in rows[0] if key.startswith("recall@"))
    header = (
        f"{'min_score':>9}  {recall_key:>9}  {'nDCG@10':>7}  {'answerable, nothing shown':>25}  "
        f"{'off-channel, something shown':>28}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['min_score']:>9.2f}  {row[recall_key]:>9.3f}  {row['ndcg@10']:>7.3f}  "
            f"{row['answerable_empty']:>25.1%}  {row['off_channel_answered']:>28.1%}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, required=True, help="labelled JSONL set (tests/data/eval_chat.jsonl)")
    parser.add_argument("--profile", default="offline_default", help="model profile to embed and rerank with")
    parser.add_argument(
        "--stages",
        default=",".join(DEFAULT_STAGES),
        help=f"comma-separated stages to measure, from: {', '.join(STAGES)} (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--limit", type=int, default=None, help="ask only this many queries, evenly spread")
    parser.add_argument("--split", default="", help="ask only the queries of this split (tune or check), if any")
    parser.add_argument("--embedding-path", default="", help="load the profile's embedding model from this directory")
    parser.add_argument(
        "--model",
        default="",
        help="evaluate a model no profile describes (profile custom): its name; --embedding-path says where it is",
    )
    parser.add_argument("--model-dimension", type=int, default=0, help="with --model: its own output dimension")
    parser.add_argument("--pooling", default="mean", help="with --model: mean, cls, lasttoken or max")
    parser.add_argument("--dimension", type=int, default=0, help="Matryoshka dimension (Qwen3 profiles)")
    parser.add_argument("--reranker-path", default="", help="load the profile's reranker from this directory")
    parser.add_argument("--cpu", action="store_true", help="never use a GPU")
    parser.add_argument("--candidates", type=int, default=None, help="dense and BM25 depth before fusion")
    parser.add_argument("--rrf-k", type=int, default=None, help="reciprocal-rank fusion constant")
    parser.add_argument("--bm25-weight", type=float, default=None, help="weight of the BM25 list in the fusion")
    parser.add_argument(
        "--bm25-weight-power", type=float, default=None, help="per-query raise of the BM25 weight (0: a fixed weight)"
    )
    parser.add_argument("--rerank-candidates", type=int, default=None, help="candidates the reranker re-orders")
    parser.add_argument(
        "--no-conversation", action="store_true", help="rank each message by its own words only (no carry to answers)"
    )
    parser.add_argument(
        "--rerank-alone", action="store_true", help="the reranker reads an answer without the question it follows"
    )
    parser.add_argument("--conversation-carry", type=float, default=None, help="share a question passes to its answers")
    parser.add_argument("--conversation-lines", type=int, default=None, help="how many following lines inherit it")
    parser.add_argument("--conversation-gap", type=float, default=None, help="within this many seconds of the question")
    parser.add_argument(
        "--thresholds",
        default=None,
        nargs="?",
        const=",".join(str(t) for t in DEFAULT_THRESHOLDS),
        help="also study cosine floors (comma-separated; bare flag: %(const)s) on the hybrid stage",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="build the memory here (default: a temp dir)")
    parser.add_argument(
        "--database-url",
        default="",
        help="build the memory in this (empty) PostgreSQL + pgvector database instead of SQLite + FAISS",
    )


def _settings(args: argparse.Namespace, data_dir: Path) -> Settings:
    overrides = {}
    if args.embedding_path:
        overrides["embedding_path"] = str(Path(args.embedding_path).expanduser().resolve())
    if args.dimension:
        overrides["embedding_dimension"] = args.dimension
    if args.reranker_path:
        overrides["reranker_path"] = str(Path(args.reranker_path).expanduser().resolve())
    backend = {"backend": "postgres", "database_url": args.database_url} if args.database_url else {}
    if args.model:  # a custom model: its own name and space, never the profile's
        backend["custom_model"] = {
            "model": args.model,
            "path": overrides.pop("embedding_path", ""),
            "dimension": args.model_dimension,
            "pooling": args.pooling,
        }
    return default_settings(
        profile="custom" if args.model else args.profile,
        cpu_only_mode=bool(args.cpu),
        paths={"data_dir": str(data_dir)},
        model_overrides=overrides,
        **backend,
    )


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise UserFacingError(f"unknown stage {unknown[0] if unknown else '(none)'}; choose from {', '.join(STAGES)}")
    thresholds = [float(t) for t in args.thresholds.split(",")] if args.thresholds else []
    eval_set = load_eval_set(args.dataset)
    queries = [q for q in eval_set.queries if not args.split or q.split == args.split]
    if not queries:
        raise UserFacingError(f"{args.dataset}: no query in split {args.split!r}")
    queries = spread_subset(queries, args.limit)
    owned = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="qwen3-memory-eval-")) if owned else args.data_dir
    progress = sys.stderr.isatty()
    try:
        settings = _settings(args, data_dir)
        started = time.perf_counter()
        if not progress:
            print(f"embedding {len(eval_set.messages)} messages with {settings.space.model} ...", file=sys.stderr)
        memory = await build_memory(eval_set, settings, progress=progress)
        build_seconds = time.perf_counter() - started
        try:
            base = memory.recall_options(
                candidates=args.candidates,
                rrf_k=args.rrf_k,
                bm25_weight=args.bm25_weight,
                bm25_weight_power=args.bm25_weight_power,
                rerank_candidates=args.rerank_candidates,
                conversation=False if args.no_conversation else None,
                rerank_with_question=False if args.rerank_alone else None,
                conversation_carry=args.conversation_carry,
                conversation_lines=args.conversation_lines,
                conversation_gap_seconds=args.conversation_gap,
            )
            results = await evaluate(memory, queries, stages, base, progress=progress, log_stages=not progress)
            report: dict[str, Any] = {
                "dataset": str(args.dataset),
                "profile": args.profile,
                "embedding": {"model": settings.space.model, "dimension": settings.space.dimension},
                "reranker": settings.reranker.model if settings.reranker else None,
                "messages": len(eval_set.messages),
                "queries": len(queries),
                "build_seconds": round(build_seconds, 2),
                "options": {k: v for k, v in asdict(base).items() if k not in ("dense", "hybrid", "rerank")},
                "floors": "off for the ranking metrics (min_score -1, min_rerank_score 0)",
                "stages": results,
            }
            if thresholds:
                report["thresholds"] = await threshold_study(
                    memory, queries, base.for_stage("hybrid"), thresholds, progress=progress
                )
            if "rerank" in args.stages and memory.recaller.reranker_error:
                report["reranker_error"] = memory.recaller.reranker_error
        finally:
            await memory.close()
    finally:
        if owned:
            shutil.rmtree(data_dir, ignore_errors=True)
    return report


def run(args: argparse.Namespace) -> int:
    try:
        report = asyncio.run(_main(args))
    except (UserFacingError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    embedding = report["embedding"]
    print(
        f"{report['dataset']}: {report['messages']} messages, {report['queries']} queries; profile {report['profile']} "
        f"({embedding['model']}, {embedding['dimension']}-d; reranker {report['reranker'] or 'none'}); "
        f"memory built in {report['build_seconds']:.1f}s"
    )
    options = report["options"]
    print(
        f"candidates {options['candidates']}, rrf_k {options['rrf_k']}, bm25_weight {options['bm25_weight']}, "
        f"bm25_weight_power {options['bm25_weight_power']}, rerank_candidates {options['rerank_candidates']}; "
        f"conversation {options['conversation']} (carry {options['conversation_carry']}, lines "
        f"{options['conversation_lines']}, gap {options['conversation_gap_seconds']:.0f}s); {report['floors']}\n"
    )
    print(format_results(report["stages"]))
    if "thresholds" in report:
        print("\ncosine floor (min_score) on the hybrid stage, k = 5:")
        print(format_thresholds(report["thresholds"]))
    if "reranker_error" in report:
        print(f"\nwarning: the reranker could not be used: {report['reranker_error']}")
    return 0
