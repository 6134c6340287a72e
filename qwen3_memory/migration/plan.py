"""The ``dry-run`` of a migration: which channels in which order, the steps, measured estimates, risks.

Both faces (the command line and the admin cog) call :func:`make_plan` and show :func:`render_plan`
or :meth:`Plan.to_dict`, so an operator sees the same plan wherever they ask. Nothing here writes to
the memory: the target model is loaded into a throwaway service (the bot does not keep a second
model resident because someone asked for a plan), and time estimates come from encoding real stored
messages on this machine, not from a table. The environment checks are in
:mod:`qwen3_memory.migration.checks`.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from qwen3_memory.backends import Store
from qwen3_memory.memory import Memory
from qwen3_memory.migration.channel_probe import probe_channel_seconds
from qwen3_memory.migration.checks import (
    existing_ancestor,
    is_qwen3,
    model_location,
    model_weights_bytes,
    new_vectors_bytes,
)
from qwen3_memory.migration.transform_sample import minimum_sample, transform_outlook
from qwen3_memory.models.embedding import EmbeddingService
from qwen3_memory.records import SpaceRecord
from qwen3_memory.settings import Settings
from qwen3_memory.space import EmbeddingSpace
from qwen3_memory.units import human_bytes, human_duration

HALFVEC_DIMENSION = 2000  # pgvector's HNSW limit for `vector`; `halfvec` goes to 4000
ENCODING_STRATEGIES = ("regenerate", "transform")
TRANSFORM_FIT_SAMPLE = minimum_sample(1024)  # the fit sample of a 1024-d source: the largest the ETA assumes
ASSUMED_STORE_RATE = 20_000.0  # vectors/s stored + indexed when no model runs (pad, truncate): assumed, not measured
# Storing and indexing on top of the measured encode time: none, since the migration stores a batch while it
# encodes the next (pipelined). Fitted with bench/many_channels.py on 1 x 50,000 (the job ran at 1.2x the
# benchmark's rate, which encodes smaller calls; 1.2 before, when storing followed encoding).
STORE_OVERHEAD = 1.0
# The benchmark encodes its texts again until this long has passed: one pass of a small model takes ~60 ms, and
# such a pass varied by +-13% between runs (a slow model's one pass is longer than this anyway).
MIN_BENCHMARK_SECONDS = 0.5
ACTIVATION_FACTOR = 12  # live activation tensors per token and hidden unit during inference (rough)
LONG_MIGRATION_S = 3600.0
LARGE_MODEL_BYTES = 300 * 2**20
SAMPLE_TEXTS = (
    "anyone up for a game tonight?",
    "the build failed again on the CI runner, looking into it",
    "here is the recipe I promised: flour, water, salt and a lot of patience",
    "welcome to the server! read the rules channel first",
    "does anyone know how to reset the router without losing the settings",
    "meeting moved to thursday at 3pm, same room",
    "lol that was the best raid we have had in weeks",
    "can someone explain how embeddings are compared with cosine similarity",
)


@dataclass(frozen=True)
class ChannelPlan:
    guild_id: int
    channel_id: int
    messages: int
    read_space: str  # key of the space the channel reads from now
    to_migrate: int  # messages without a vector in the target space yet
    empty: int = 0  # messages with no text to embed
    missing_source: int = 0  # messages without a vector in the read space


@dataclass(frozen=True)
class PlanStep:
    name: str
    detail: str


@dataclass(frozen=True)
class Benchmark:
    """A short measured encode run of the target model on this machine (after a warm-up)."""

    texts: int
    seconds: float
    texts_per_second: float
    device: str
    batch_size: int
    load_seconds: float
    warmup_seconds: float
    sample: str  # "stored messages" or "sample texts" (the memory is empty)
    mean_chars: float
    parameter_bytes: int = 0
    hidden_size: int = 0


@dataclass(frozen=True)
class Plan:
    strategy: str
    target: EmbeddingSpace
    channels: tuple[ChannelPlan, ...]
    steps: tuple[PlanStep, ...]
    benchmark: Benchmark | None
    eta_seconds: float | None
    eta_basis: str
    peak_memory_bytes: int
    disk_needed_bytes: int
    risks: tuple[str, ...] = ()
    blockers: tuple[str, ...] = ()  # why the engine would refuse to start (StrategyRefused, ...)
    notes: tuple[str, ...] = field(default=())
    channel_seconds: float = 0.0  # the fixed seconds the ETA adds per channel (measured probe x its factor)

    @property
    def total_messages(self) -> int:
        return sum(c.messages for c in self.channels)

    @property
    def to_migrate(self) -> int:
        return sum(c.to_migrate for c in self.channels)

    @property
    def ok(self) -> bool:
        return not self.blockers

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "target": {"key": self.target.key, "model": self.target.model, "dimension": self.target.dimension},
            "channels": [asdict(c) for c in self.channels],
            "total_messages": self.total_messages,
            "to_migrate": self.to_migrate,
            "steps": [asdict(s) for s in self.steps],
            "benchmark": asdict(self.benchmark) if self.benchmark else None,
            "eta_seconds": self.eta_seconds,
            "eta_basis": self.eta_basis,
            "peak_memory_bytes": self.peak_memory_bytes,
            "disk_needed_bytes": self.disk_needed_bytes,
            "risks": list(self.risks),
            "blockers": list(self.blockers),
            "notes": list(self.notes),
            "ok": self.ok,
        }


async def make_plan(
    memory: Memory,
    target_space: EmbeddingSpace,
    strategy: str,
    *,
    guild_id: int | None = None,
    channels: list[int] | None = None,
    benchmark_texts: int = 64,
    force: bool = False,
) -> Plan:
    """The dry-run: which channels in which order, the steps, measured time, memory, disk and the risks."""
    store = memory.store
    spaces = {s.id: s for s in await store.list_spaces()}
    target_id = next((s.id for s in spaces.values() if s.spec.key == target_space.key), None)
    plans = await _channel_plans(store, spaces, target_id, guild_id, channels)
    sources = _source_spaces(plans, spaces, target_space)
    risks, blockers = _strategy_risks(strategy, sources, target_space, force)
    blockers = _unknown_blockers(plans, channels, guild_id) + blockers
    bench = None
    if strategy in ENCODING_STRATEGIES and benchmark_texts > 0:
        texts, kind = await _benchmark_texts(store, plans, benchmark_texts)
        bench = await benchmark_model(memory.settings, target_space, texts, kind)
    eta, basis = _eta(strategy, plans, bench)
    channel_seconds = await _probe(store, spaces, plans, sources)
    if eta is not None and channel_seconds:
        eta += channel_seconds * sum(1 for p in plans if p.to_migrate)
        basis += f"; +{channel_seconds * 1000:.1f} ms per channel (measured probe of its fixed work)"
    peak = _peak_memory_bytes(strategy, target_space, bench, memory.settings.batch_size, plans, sources)
    backup = (await store.disk_footprint()).total_bytes  # what a backup copies; 0 when the server keeps it
    disk = backup + new_vectors_bytes(sum(p.to_migrate for p in plans), target_space.dimension)
    risks += _data_risks(strategy, plans, target_space)
    risks += _resource_risks(target_space, bench, eta, peak, disk, memory.settings)
    steps = _steps(memory.settings, store.file_backups, strategy, target_space, plans, sources, eta, backup)
    notes = _notes(plans, channels, bench)
    if strategy == "transform" and sources:
        notes.append(transform_outlook(sources[0].dimension, sum(p.to_migrate for p in plans), bench))
    return Plan(
        strategy, target_space, tuple(plans), tuple(steps), bench, eta, basis, peak, disk,
        tuple(dict.fromkeys(risks)), tuple(dict.fromkeys(blockers)), tuple(notes), channel_seconds,
    )  # fmt: skip


# ------------------------------------------------------------------------------------ channels
async def _channel_plans(
    store: Store,
    spaces: dict[int, SpaceRecord],
    target_id: int | None,
    guild_id: int | None,
    only: list[int] | None,
) -> list[ChannelPlan]:
    """Every channel with a memory (in the guild, among ``only``), smallest first."""
    counts = {(g, c): n for g, c, n in await store.message_channels()}
    states = {(s.guild_id, s.channel_id): s for s in await store.list_channels(guild_id)}
    stats = await store.channel_stats(target_id or -1)
    plans = []
    for key in sorted(set(counts) | set(states)):
        g, c = key
        if (guild_id is not None and g != guild_id) or (only is not None and c not in only):
            continue
        state = states.get(key)
        read = spaces[state.read_space_id].spec.key if state and state.read_space_id in spaces else "(none)"
        empty, missing_source, in_target = stats.get(key, (0, 0, 0))
        n = counts.get(key, 0)
        plans.append(ChannelPlan(g, c, n, read, max(n - in_target, 0), empty, missing_source))
    return sorted(plans, key=lambda p: (p.messages, p.guild_id, p.channel_id))


def _source_spaces(
    plans: list[ChannelPlan], spaces: dict[int, SpaceRecord], target: EmbeddingSpace
) -> list[EmbeddingSpace]:
    """The distinct spaces the planned channels read from now (the migration's sources), target excluded."""
    keys = {p.read_space for p in plans} - {target.key}
    return [s.spec for s in spaces.values() if s.spec.key in keys]


async def _probe(
    store: Store, spaces: dict[int, SpaceRecord], plans: list[ChannelPlan], sources: list[EmbeddingSpace]
) -> float:
    """The fixed seconds one channel adds to the migration, measured on the smallest planned channels."""
    source = next((s.id for s in spaces.values() if sources and s.spec.key == sources[0].key), None)
    todo = [(p.guild_id, p.channel_id) for p in plans if p.to_migrate]
    return await probe_channel_seconds(store, todo, source) if source is not None else 0.0


# ------------------------------------------------------------------------------------ benchmark
async def _benchmark_texts(store: Store, plans: list[ChannelPlan], n: int) -> tuple[list[str], str]:
    """Up to ``n`` real stored texts (largest channels first: they dominate the time), else sample texts."""
    texts: list[str] = []
    for plan in sorted(plans, key=lambda p: -p.messages):
        if len(texts) >= n:
            break
        batch = await store.scroll_messages(plan.guild_id, plan.channel_id, limit=n - len(texts) + plan.empty)
        texts += [m.content for m in batch if m.content.strip()][: n - len(texts)]
    if texts:
        return texts, "stored messages"
    return [SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)] for i in range(n)], "sample texts"


async def benchmark_model(settings: Settings, space: EmbeddingSpace, texts: list[str], sample: str) -> Benchmark:
    """Load the model into a throwaway service, warm it up, time ``encode_documents`` on ``texts``."""
    service = EmbeddingService(space, settings.device_policy, max_concurrent=1, batch_size=settings.batch_size)
    try:
        return await asyncio.to_thread(_run_benchmark, service, texts, sample)
    finally:
        service.close()


def _run_benchmark(service: EmbeddingService, texts: list[str], sample: str) -> Benchmark:
    started = time.perf_counter()
    model = service.load()
    load = time.perf_counter() - started
    started = time.perf_counter()
    service.encode_documents(texts[: min(len(texts), 8)])
    warmup = time.perf_counter() - started
    started, passes = time.perf_counter(), 0
    while passes == 0 or time.perf_counter() - started < MIN_BENCHMARK_SECONDS:  # a fast model: several passes
        service.encode_documents(texts)
        passes += 1
    seconds = max((time.perf_counter() - started) / passes, 1e-6)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    hidden = getattr(getattr(getattr(model[0], "auto_model", None), "config", None), "hidden_size", 0) or 0
    return Benchmark(
        len(texts), seconds, len(texts) / seconds, service.device, service.batch_size, load, warmup, sample,
        sum(len(t) for t in texts) / max(len(texts), 1), int(params), int(hidden),
    )  # fmt: skip


# ------------------------------------------------------------------------------------ estimates
def _eta(strategy: str, plans: list[ChannelPlan], bench: Benchmark | None) -> tuple[float | None, str]:
    """Seconds for backfill + catch-up, and what the number rests on."""
    todo = sum(p.to_migrate for p in plans)
    if strategy in ENCODING_STRATEGIES:
        if bench is None:
            return None, "not measured (benchmark skipped)"
        encoded = todo if strategy == "regenerate" else min(todo, TRANSFORM_FIT_SAMPLE)
        seconds = bench.load_seconds + encoded / bench.texts_per_second * STORE_OVERHEAD
        if strategy == "transform":
            seconds += todo / ASSUMED_STORE_RATE
        return seconds, (
            f"measured {bench.texts_per_second:.1f} texts/s on {bench.device} ({bench.texts} {bench.sample}, "
            f"batch {bench.batch_size}, after a warm-up)"
            + (f", +{STORE_OVERHEAD - 1:.0%} for storing and indexing" if STORE_OVERHEAD != 1 else "")
            + (f"; transform encodes a fit sample of up to {TRANSFORM_FIT_SAMPLE}" if strategy == "transform" else "")
        )
    return todo / ASSUMED_STORE_RATE, f"no model runs; assumed {ASSUMED_STORE_RATE:.0f} vectors/s stored (not measured)"


def _peak_memory_bytes(
    strategy: str,
    target: EmbeddingSpace,
    bench: Benchmark | None,
    batch_size: int,
    plans: list[ChannelPlan],
    sources: list[EmbeddingSpace],
) -> int:
    """Model weights x 1.2 + one batch's activations (rough) + old and new indexes of the planned channels.

    pad and truncate run no target model, so only the indexes count for them.
    """
    model = 0
    if strategy in ENCODING_STRATEGIES:
        location = model_location(target)
        weights = (model_weights_bytes(location) if location else 0) or (bench.parameter_bytes if bench else 0)
        hidden = (bench.hidden_size if bench else 0) or 1024
        model = int(weights * 1.2) + batch_size * target.max_seq_length * hidden * 4 * ACTIVATION_FACTOR
    source_dim = max((s.dimension for s in sources), default=0)
    indexes = sum(p.messages for p in plans) * (target.dimension + source_dim) * 4
    return model + indexes


# ------------------------------------------------------------------------------------ risks
def _strategy_risks(
    strategy: str, sources: list[EmbeddingSpace], target: EmbeddingSpace, force: bool
) -> tuple[list[str], list[str]]:
    """(risks, blockers): our own loud warnings plus the strategy module's rules, when it is installed."""
    risks: list[str] = []
    for source in sources:
        if strategy in ("pad", "truncate") and source.model != target.model:
            risks.append(
                f"DANGER: {strategy} across different models ({source.model} -> {target.model}): the vectors stay "
                f"in {source.model}'s space and are NOT comparable with {target.model} queries; recall would "
                "return unrelated messages. Use regenerate (exact) or transform (fitted approximation)"
            )
    try:
        from qwen3_memory.migration.strategies import StrategyRefused, validate_strategy
    except ImportError:
        return risks, []
    blockers: list[str] = []
    for source in sources:
        try:
            risks += validate_strategy(strategy, source, target, force)
        except StrategyRefused as exc:
            blockers.append(f"{source.key}: {exc}")
    return risks, blockers


def _data_risks(strategy: str, plans: list[ChannelPlan], target: EmbeddingSpace) -> list[str]:
    risks = []
    empty = sum(p.empty for p in plans)
    if empty and strategy in ENCODING_STRATEGIES:
        risks.append(
            f"{empty} message(s) have no text (empty content): there is nothing to embed again, so they keep no "
            "vector in the target space and verify reports them"
        )
    missing = sum(p.missing_source for p in plans)
    if missing and strategy not in ("regenerate",):
        risks.append(
            f"{missing} message(s) have no vector in their current space: {strategy} derives target vectors from "
            "the old ones, so run a repair first or they stay unmigrated"
        )
    if target.dimension > HALFVEC_DIMENSION:
        risks.append(
            f"the target has {target.dimension} dimensions: pgvector's HNSW index takes at most "
            f"{HALFVEC_DIMENSION} for `vector`; the postgres backend needs `halfvec` (up to 4000)"
        )
    reading = {p.read_space for p in plans if p.read_space != target.key}
    if len(reading) > 1:
        risks.append(f"the channels read from {len(reading)} different spaces ({', '.join(sorted(reading))})")
    return risks


def _resource_risks(
    target: EmbeddingSpace, bench: Benchmark | None, eta: float | None, peak: int, disk: int, settings: Settings
) -> list[str]:
    import psutil

    risks = []
    location = model_location(target)
    weights = model_weights_bytes(location) if location else (bench.parameter_bytes if bench else 0)
    if bench and bench.device == "cpu" and (weights > LARGE_MODEL_BYTES or is_qwen3(target)):
        risks.append(
            f"CPU only with a large model ({target.model}, {human_bytes(weights)}): {bench.texts_per_second:.1f} "
            "texts/s here; a GPU would be many times faster"
        )
    if eta is not None and eta > LONG_MIGRATION_S:
        risks.append(
            f"long migration: ~{human_duration(eta)}; it runs in the background and resumes after a restart, "
            "but the bot shares the machine meanwhile"
        )
    available = psutil.virtual_memory().available
    if peak > available:
        risks.append(
            f"peak memory ~{human_bytes(peak)} exceeds the {human_bytes(available)} available: lower "
            "memory_system.performance.batch_size or migrate fewer channels at once"
        )
    free = shutil.disk_usage(existing_ancestor(settings.data_dir)).free
    if disk > free:
        risks.append(f"needs ~{human_bytes(disk)} of disk, {human_bytes(free)} free under {settings.data_dir}")
    return risks


def unknown_channels(plans: list[ChannelPlan], only: list[int] | None) -> list[int]:
    """The channel ids named in ``only`` that the memory knows nothing about (in the planned scope)."""
    return sorted(set(only or ()) - {p.channel_id for p in plans})


def unknown_channels_message(unknown: list[int], guild_id: int | None) -> str:
    """What both the plan and the engine say about channel ids the memory knows nothing about."""
    return (
        f"unknown channel id(s) {', '.join(map(str, unknown))}: the memory holds no messages and no settings for "
        + ("them in this server" if guild_id is not None else "them")
        + "; check the ids, or leave the channel list out for every channel"
    )


def _unknown_blockers(plans: list[ChannelPlan], only: list[int] | None, guild_id: int | None) -> list[str]:
    unknown = unknown_channels(plans, only)
    return [unknown_channels_message(unknown, guild_id)] if unknown else []


def _notes(plans: list[ChannelPlan], only: list[int] | None, bench: Benchmark | None) -> list[str]:
    notes = []
    unknown = unknown_channels(plans, only)
    if unknown:
        notes.append(f"left out of the plan: unknown channel id(s) {', '.join(map(str, unknown))}")
    if bench and bench.sample == "sample texts":
        holds = "the channels named hold no text" if only else "the memory holds no text yet"
        notes.append(f"{holds}: the rate was measured on built-in sample texts")
    return notes


# ------------------------------------------------------------------------------------ steps
def _steps(
    settings: Settings,
    file_backups: bool,
    strategy: str,
    target: EmbeddingSpace,
    plans: list[ChannelPlan],
    sources: list[EmbeddingSpace],
    eta: float | None,
    backup: int,
) -> list[PlanStep]:
    todo = sum(p.to_migrate for p in plans)
    old = sum(p.messages for p in plans) * max((s.dimension for s in sources), default=0) * 4
    when = f"~{human_duration(eta)}" if eta is not None else "time not measured"
    return [
        PlanStep("backup", f"consistent online backup (~{human_bytes(backup)}) into {settings.backups_dir}")
        if file_backups
        else PlanStep(
            "backup",
            "none made here: the memory is on a shared Postgres server, covered by its own backups (pg_dump, "
            "point-in-time recovery); nothing is deleted before finalize",
        ),
        PlanStep("dual-write", f"new messages are embedded into {target.key} too, from the start"),
        PlanStep(
            "backfill",
            f"{strategy}: {todo} message(s) in {len(plans)} channel(s), smallest first, batches of "
            f"{settings.batch_size} with a committed cursor; {when}",
        ),
        PlanStep("catch-up", "messages that arrived during the backfill (past the cursor) get their vector"),
        PlanStep(
            "verify",
            f"counts, dimension, no NaN, index size, self-retrieval; old vs new top-k agreement on "
            f"{settings.memory.migration.verify_sample} sampled messages",
        ),
        PlanStep("swap", "each verified channel's read pointer moves to the target in one transaction"),
        PlanStep("keep old", f"the old vectors (~{human_bytes(old)}) stay until finalize: rollback stays instant"),
    ]


# ------------------------------------------------------------------------------------ rendering
def render_plan(plan: Plan, max_channels: int = 25) -> str:
    """The dry-run as text: channels (smallest first), steps, estimates, risks, refusals."""
    t = plan.target
    lines = [f"Migration plan: {plan.strategy} -> {t.key} ({t.model}, {t.dimension}-d)", ""]
    lines += _render_channels(plan, max_channels)
    lines += ["", "Steps:"] + [f"  {i}. {s.name:<10}  {s.detail}" for i, s in enumerate(plan.steps, 1)]
    eta = human_duration(plan.eta_seconds) if plan.eta_seconds is not None else "unknown"
    lines += [
        "",
        "Estimates:",
        f"  time         ~{eta} ({plan.eta_basis})",
        f"  peak memory  ~{human_bytes(plan.peak_memory_bytes)} (model x 1.2 + batch activations + indexes, rough)",
        f"  disk         ~{human_bytes(plan.disk_needed_bytes)} (backup + new vectors)",
    ]
    if plan.risks:
        lines += ["", "Risks:"] + [f"  ! {r}" for r in plan.risks]
    if plan.notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in plan.notes]
    if plan.blockers:
        lines += ["", "REFUSED (the migration will not start as planned):"] + [f"  x {b}" for b in plan.blockers]
    return "\n".join(lines)


def _render_channels(plan: Plan, max_channels: int) -> list[str]:
    rows = [
        (str(i), str(c.guild_id), str(c.channel_id), str(c.messages), str(c.to_migrate), c.read_space)
        for i, c in enumerate(plan.channels, 1)
    ]
    head = ("#", "guild", "channel", "messages", "to migrate", "reads from")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [
        f"Channels ({len(plan.channels)}, {plan.total_messages} messages, smallest first):",
        fmt.format(*head).rstrip(),
    ]
    lines += [fmt.format(*r).rstrip() for r in rows[:max_channels]]
    if len(rows) > max_channels:
        lines.append(f"  ... and {len(rows) - max_channels} more channel(s)")
    return lines
