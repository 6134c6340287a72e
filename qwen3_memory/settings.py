"""settings.json: schema, defaults, profile resolution and validation with errors that name the key.

Every section is a frozen dataclass; :func:`parse_section` walks the JSON against the dataclass
fields, so an unknown key, a wrong type or an impossible value becomes one :class:`SettingsError`
naming ``file: memory_system.section.key`` instead of a traceback deep in the bot.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qwen3_memory.errors import SettingsError
from qwen3_memory.models.device import DevicePolicy
from qwen3_memory.models.profiles import PROFILES, Profile, RerankerSpec
from qwen3_memory.space import EmbeddingSpace

ADMIN_PERMISSIONS = ("administrator", "manage_guild", "manage_channels", "manage_messages")


@dataclass(frozen=True)
class Performance:
    batch_size: int = 0  # 0: the profile's batch size
    max_concurrent_queries: int = 4


@dataclass(frozen=True)
class HardwareDetection:
    gpu_memory_limit_mb: int = 0
    fallback_to_cpu: bool = True


@dataclass(frozen=True)
class Paths:
    data_dir: str = "data"
    database: str = ""  # default: <data_dir>/memory/memory.db
    vectors_dir: str = ""  # default: <data_dir>/memory/vectors
    backups_dir: str = ""  # default: <data_dir>/backups
    logs_dir: str = ""  # default: <data_dir>/logs


@dataclass(frozen=True)
class ModelOverrides:
    embedding_path: str = ""  # load the profile's embedding model from this directory
    embedding_dimension: int = 0  # Matryoshka output dimension (Qwen3: 32..1024); 0: the model's own
    reranker_path: str = ""


@dataclass(frozen=True)
class IndexSettings:
    approximate_threshold: int = 50_000  # vectors in one channel past which HNSW replaces exact search
    hnsw_m: int = 32
    hnsw_ef_search: int = 128


@dataclass(frozen=True)
class RecallSettings:
    """Query pipeline defaults; each stage can also be switched per query (see recall.RecallOptions)."""

    k: int = 5
    min_score: float = 0.25  # cosine floor on the dense similarity in the read space; -1: off
    dense: bool = True  # vector search in the channel's read space
    hybrid: bool = True  # also FTS5 BM25, fused by reciprocal rank; with dense off: BM25 alone
    rrf_k: int = 1  # fusion: score = 1 / (rrf_k + dense rank) + bm25_weight / (rrf_k + BM25 rank)
    bm25_weight: float = 0.7
    rerank: bool = False
    rerank_candidates: int = 10  # the best candidates the reranker re-orders (at least k of them)
    min_rerank_score: float = 0.0  # reranker probability floor, applied only when reranking; 0: off
    candidates: int = 50
    user_cooldown_seconds: float = 5.0


@dataclass(frozen=True)
class CaptureSettings:
    enabled_by_default: bool = True
    allow_dms: bool = False
    queue_size: int = 10_000
    batch_size: int = 256  # measured: 64 embeds at half the model's speed (padding)
    min_length: int = 1


@dataclass(frozen=True)
class PermissionSettings:
    admin_permission: str = "manage_guild"


@dataclass(frozen=True)
class MigrationSettings:
    resume_on_startup: bool = True
    target_profile: str = "qwen3_medium_performance"
    target_embedding_path: str = ""  # load the target model from this directory (no download)
    target_embedding_dimension: int = 0  # Matryoshka output dimension of the target; 0: the model's own
    verify_sample: int = 200

    def target(self, profile: str | None = None, embedding_path: str = "", dimension: int | None = None) -> Profile:
        """The profile migrations go to, with its own model overrides; what an admin names (a command option,
        a command-line flag) wins over these settings, value by value. One rule for both faces."""
        return resolve_profile(
            profile or self.target_profile,
            ModelOverrides(embedding_path or self.target_embedding_path, dimension or self.target_embedding_dimension),
        )


@dataclass(frozen=True)
class MemorySystem:
    profile: str = "offline_default"
    backend: str = "sqlite"
    database_url: str = ""  # postgres DSN; MEMORY_DATABASE_URL wins when set
    cpu_only_mode: bool = False
    memory_threshold_mb: int = 4096
    performance: Performance = field(default_factory=Performance)
    hardware_detection: HardwareDetection = field(default_factory=HardwareDetection)
    paths: Paths = field(default_factory=Paths)
    model_overrides: ModelOverrides = field(default_factory=ModelOverrides)
    index: IndexSettings = field(default_factory=IndexSettings)
    recall: RecallSettings = field(default_factory=RecallSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    permissions: PermissionSettings = field(default_factory=PermissionSettings)
    migration: MigrationSettings = field(default_factory=MigrationSettings)


@dataclass(frozen=True)
class Settings:
    """Validated settings plus what follows from them (resolved paths, the chosen profile)."""

    memory: MemorySystem
    source: Path | None = None

    @property
    def profile(self) -> Profile:
        overrides = self.memory.model_overrides
        overrides = replace(
            overrides,
            embedding_path=self._model_path(overrides.embedding_path),
            reranker_path=self._model_path(overrides.reranker_path),
        )
        return resolve_profile(self.memory.profile, overrides)

    def _model_path(self, value: str) -> str:
        """A relative model directory is relative to the settings file, like ``paths``; a hub id stays as is."""
        if not value or self.source is None or value.startswith("pkg:") or Path(value).is_absolute():
            return value
        local = self.source.parent / value
        return str(local) if local.is_dir() else value

    @property
    def space(self) -> EmbeddingSpace:
        return self.profile.embedding

    @property
    def reranker(self) -> RerankerSpec | None:
        return self.profile.reranker

    @property
    def device_policy(self) -> DevicePolicy:
        hw = self.memory.hardware_detection
        return DevicePolicy(self.memory.cpu_only_mode, hw.gpu_memory_limit_mb, hw.fallback_to_cpu)

    @property
    def batch_size(self) -> int:
        return self.memory.performance.batch_size or self.profile.batch_size

    def _path(self, value: str, default: str) -> Path:
        base = self.source.parent if self.source else Path.cwd()
        p = Path(value or default)
        return p if p.is_absolute() else base / p

    @property
    def data_dir(self) -> Path:
        return self._path(self.memory.paths.data_dir, "data")

    @property
    def database_path(self) -> Path:
        return self._path(self.memory.paths.database, str(self.data_dir / "memory" / "memory.db"))

    @property
    def vectors_dir(self) -> Path:
        return self._path(self.memory.paths.vectors_dir, str(self.data_dir / "memory" / "vectors"))

    @property
    def backups_dir(self) -> Path:
        return self._path(self.memory.paths.backups_dir, str(self.data_dir / "backups"))

    @property
    def logs_dir(self) -> Path:
        return self._path(self.memory.paths.logs_dir, str(self.data_dir / "logs"))

    @property
    def database_url(self) -> str:
        return os.environ.get("MEMORY_DATABASE_URL") or self.memory.database_url


def resolve_profile(name: str, overrides: ModelOverrides = ModelOverrides()) -> Profile:
    """The named built-in profile with the operator's model overrides applied."""
    if name not in PROFILES:
        raise SettingsError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    profile = PROFILES[name]
    space = profile.embedding
    if overrides.embedding_path:
        space = replace(space, source=overrides.embedding_path)
    if overrides.embedding_dimension:
        space = space.with_dimension(overrides.embedding_dimension)
    reranker = profile.reranker
    if reranker and overrides.reranker_path:
        reranker = replace(reranker, source=overrides.reranker_path)
    return replace(profile, embedding=space, reranker=reranker)


def default_settings(**memory_fields: Any) -> Settings:
    """Settings as if read from a file that sets only ``memory_fields`` (used by the demo and tests)."""
    return Settings(parse_section(MemorySystem, memory_fields, "memory_system", "<defaults>"))


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and validate ``path``; every problem is a SettingsError naming the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(
            f"{path}: file not found; copy settings_qwen3_example.json to {path.name} and edit it"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read ({exc})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: the top level must be an object with a 'memory_system' key")
    unknown = sorted(k for k in raw if k != "memory_system" and not k.startswith("_"))
    if unknown:
        raise SettingsError(f"{path}: unknown key {unknown[0]!r} at the top level (expected 'memory_system')")
    if "memory_system" not in raw:
        raise SettingsError(f"{path}: missing key 'memory_system'")
    memory = parse_section(MemorySystem, raw["memory_system"], "memory_system", str(path))
    return Settings(memory, source=path.resolve())


def parse_section(cls: type, raw: Any, where: str, file: str) -> Any:
    """Build dataclass ``cls`` from ``raw``, refusing unknown keys and wrong types, then check values."""
    if not isinstance(raw, dict):
        raise SettingsError(f"{file}: {where} must be an object, not {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith("_"):  # "_comment" keys document the example file
            continue
        if key not in fields:
            raise SettingsError(f"{file}: unknown key {where}.{key}; known keys: {', '.join(fields)}")
        values[key] = _coerce(hints[key], value, f"{where}.{key}", file)
    section = cls(**values)
    _check_values(section, where, file)
    return section


def _coerce(hint: Any, value: Any, where: str, file: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return parse_section(hint, value, where, file)
    expected = _type_name(hint)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(hint)
    if ok is None:  # pragma: no cover - only the types above are used in the schema
        raise TypeError(f"unsupported settings type {hint!r}")
    if not ok:
        raise SettingsError(f"{file}: {where} must be {expected}, got {json.dumps(value)}")
    return float(value) if hint is float else value


def _type_name(hint: Any) -> str:
    if isinstance(hint, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _require(ok: bool, file: str, where: str, message: str) -> None:
    if not ok:
        raise SettingsError(f"{file}: {where} {message}")


def _check_values(section: Any, where: str, file: str) -> None:
    """Impossible values: each check names the key and the allowed range."""
    if isinstance(section, MemorySystem):
        _require(
            section.profile in PROFILES,
            file,
            f"{where}.profile",
            f"is {section.profile!r}; choose one of: {', '.join(PROFILES)}",
        )
        _require(section.backend in ("sqlite", "postgres"), file, f"{where}.backend", "must be 'sqlite' or 'postgres'")
        _require(section.memory_threshold_mb >= 256, file, f"{where}.memory_threshold_mb", "must be at least 256")
        dim = section.model_overrides.embedding_dimension
        if dim:
            native = PROFILES[section.profile].embedding.dimension
            _require(
                32 <= dim <= native,
                file,
                f"{where}.model_overrides.embedding_dimension",
                f"must be between 32 and {native} (the model's own dimension) for profile {section.profile}",
            )
            _require(
                dim == native or PROFILES[section.profile].embedding.pooling == "lasttoken",
                file,
                f"{where}.model_overrides.embedding_dimension",
                f"can only differ from {native} for Matryoshka models (Qwen3 profiles)",
            )
    elif isinstance(section, Performance):
        _require(
            0 <= section.batch_size <= 4096, file, f"{where}.batch_size", "must be between 1 and 4096 (0: profile)"
        )
        _require(
            1 <= section.max_concurrent_queries <= 256,
            file,
            f"{where}.max_concurrent_queries",
            "must be between 1 and 256",
        )
    elif isinstance(section, HardwareDetection):
        _require(section.gpu_memory_limit_mb >= 0, file, f"{where}.gpu_memory_limit_mb", "must be 0 (no cap) or more")
    elif isinstance(section, IndexSettings):
        _require(section.approximate_threshold >= 1000, file, f"{where}.approximate_threshold", "must be >= 1000")
        _require(4 <= section.hnsw_m <= 128, file, f"{where}.hnsw_m", "must be between 4 and 128")
        _require(section.hnsw_ef_search >= 16, file, f"{where}.hnsw_ef_search", "must be >= 16")
    elif isinstance(section, RecallSettings):
        _require(1 <= section.k <= 25, file, f"{where}.k", "must be between 1 and 25")
        _require(-1.0 <= section.min_score <= 1.0, file, f"{where}.min_score", "must be between -1 and 1")
        _require(section.rrf_k >= 1, file, f"{where}.rrf_k", "must be >= 1")
        _require(0 < section.bm25_weight <= 10, file, f"{where}.bm25_weight", "must be above 0 and at most 10")
        _require(section.candidates >= section.k, file, f"{where}.candidates", "must be >= recall.k")
        _require(section.rerank_candidates >= 1, file, f"{where}.rerank_candidates", "must be >= 1")
        _require(
            0.0 <= section.min_rerank_score <= 1.0,
            file,
            f"{where}.min_rerank_score",
            "must be between 0 and 1 (a reranker probability; 0: off)",
        )
        _require(
            section.dense or section.hybrid,
            file,
            f"{where}.dense",
            "and recall.hybrid are both false: turn on dense search, BM25 (hybrid) or both",
        )
        _require(section.user_cooldown_seconds >= 0, file, f"{where}.user_cooldown_seconds", "must be >= 0")
    elif isinstance(section, CaptureSettings):
        _require(section.queue_size >= 100, file, f"{where}.queue_size", "must be >= 100")
        _require(1 <= section.batch_size <= 1024, file, f"{where}.batch_size", "must be between 1 and 1024")
    elif isinstance(section, PermissionSettings):
        _require(
            section.admin_permission in ADMIN_PERMISSIONS,
            file,
            f"{where}.admin_permission",
            f"must be one of: {', '.join(ADMIN_PERMISSIONS)}",
        )
    elif isinstance(section, MigrationSettings):
        _require(
            section.target_profile in PROFILES,
            file,
            f"{where}.target_profile",
            f"is {section.target_profile!r}; choose one of: {', '.join(PROFILES)}",
        )
        _require(section.verify_sample >= 1, file, f"{where}.verify_sample", "must be >= 1")
        if section.target_embedding_dimension and section.target_profile in PROFILES:
            target = PROFILES[section.target_profile].embedding
            _require(
                32 <= section.target_embedding_dimension <= target.dimension and target.pooling == "lasttoken",
                file,
                f"{where}.target_embedding_dimension",
                f"must be between 32 and {target.dimension} and needs a Matryoshka (Qwen3) target profile",
            )
