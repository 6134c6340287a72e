"""settings.json: schema, defaults, profile resolution and validation with errors that name the key.

Every section is a frozen dataclass; :func:`parse_section` walks the JSON against the dataclass
fields, so an unknown key, a wrong type or an impossible value becomes one :class:`SettingsError`
naming ``file: memory_system.section.key`` instead of a traceback deep in the bot.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qwen3_memory.errors import SettingsError
from qwen3_memory.models.device import DevicePolicy
from qwen3_memory.models.profiles import BACKENDS, CUSTOM_PROFILE, POOLINGS, PROFILES, Profile, RerankerSpec
from qwen3_memory.space import EmbeddingSpace

ADMIN_PERMISSIONS = ("administrator", "manage_guild", "manage_channels", "manage_messages")


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a numeric setting; ``says`` is what its error says after "must be"."""

    low: float
    high: float
    says: str = ""
    above_low: bool = False  # low itself is not allowed

    def allows(self, value: float) -> bool:
        return (self.low < value if self.above_low else self.low <= value) and value <= self.high

    def describe(self) -> str:
        return self.says or f"between {_number(self.low)} and {_number(self.high)}"


def _number(value: float) -> str:
    """A number as an operator writes it: 1000000000, 0.25, inf (never 1e+09)."""
    return str(int(value)) if math.isfinite(value) and value == int(value) else f"{value:g}"


# Every numeric key ("section.key" under memory_system) with its range; the embedding dimensions
# (DIMENSION_KEYS) depend on the profile's model instead (EmbeddingSpace.dimension_range).
RANGES: dict[str, Bounds] = {
    "memory_threshold_mb": Bounds(256, 1_048_576, "at least 256 and at most 1048576 (MiB)"),
    "performance.batch_size": Bounds(0, 4096, "between 1 and 4096 (0: profile)"),
    "performance.max_concurrent_queries": Bounds(1, 256),
    "hardware_detection.gpu_memory_limit_mb": Bounds(0, 1_048_576, "between 0 (no cap) and 1048576 (MiB)"),
    "index.approximate_threshold": Bounds(1000, 1_000_000_000),
    "index.hnsw_m": Bounds(4, 128),
    "index.hnsw_ef_search": Bounds(16, 4096),
    "index.cache_mb": Bounds(16, 1_048_576, "between 16 and 1048576 (MiB)"),
    "recall.k": Bounds(1, 25),
    "recall.min_score": Bounds(-1, 1, "between -1 and 1 (-1: off)"),
    "recall.rrf_k": Bounds(1, 1000),
    "recall.bm25_weight_power": Bounds(0, 4),
    "recall.bm25_weight": Bounds(0, 10, "above 0 and at most 10", above_low=True),
    "recall.rerank_candidates": Bounds(1, 200),
    "recall.min_rerank_score": Bounds(0, 1, "between 0 and 1 (a reranker probability; 0: off)"),
    "recall.candidates": Bounds(1, 1000),
    "recall.conversation_carry": Bounds(0, 2, "above 0 and at most 2", above_low=True),
    "recall.conversation_lines": Bounds(1, 50),
    "recall.conversation_gap_seconds": Bounds(1, 86_400, "between 1 and 86400 (seconds)"),
    "recall.user_cooldown_seconds": Bounds(0, 86_400, "between 0 and 86400 (seconds; 0: no cooldown)"),
    "capture.queue_size": Bounds(100, 10_000_000),
    "capture.batch_size": Bounds(1, 1024),
    "capture.min_length": Bounds(0, 4000, "between 0 and 4000 (characters; 0 counts as 1)"),
    "migration.verify_sample": Bounds(1, 100_000),
    "history.gap_fill_max_messages": Bounds(1, 1_000_000),
    "history.channels_per_guild": Bounds(1, 16),
    "history.guilds_at_once": Bounds(1, 64),
    "history.pages_in_flight": Bounds(1, 64),
    "migration.transform_sample": Bounds(0, 1_000_000, "between 0 (the measured minimum) and 1000000"),
}
for _custom in ("custom_model", "migration.target_custom_model"):
    RANGES[f"{_custom}.dimension"] = Bounds(0, 65_536, "between 1 and 65536 (the model's own output dimension)")
    RANGES[f"{_custom}.max_seq_length"] = Bounds(1, 131_072)
    RANGES[f"{_custom}.batch_size"] = Bounds(1, 4096)
DIMENSION_KEYS = ("model_overrides.embedding_dimension", "migration.target_embedding_dimension")
PROFILE_NAMES = (*PROFILES, CUSTOM_PROFILE)


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
class CustomModel:
    """A model no built-in profile describes, used with ``profile: "custom"``: its name is the space's identity,
    so its vectors never share a space with another model's."""

    model: str = ""  # the model's name (a hub id, or any stable name for a local model)
    path: str = ""  # load it from this directory (empty: by name)
    dimension: int = 0  # its own output dimension (required)
    pooling: str = "mean"  # mean, cls, lasttoken or max: what the folder's pooling config says
    normalize: bool = True
    query_prompt: str = ""  # put before every query (e.g. "query: " for E5)
    document_prompt: str = ""  # put before every stored message
    matryoshka: bool = False  # trained so that its vectors may be cut (then 32..dimension are allowed)
    backend: str = "torch"  # torch or onnx (onnx needs onnxruntime and optimum)
    max_seq_length: int = 512
    batch_size: int = 32

    def space(self, source: str = "") -> EmbeddingSpace:
        return EmbeddingSpace(
            model=self.model,
            dimension=self.dimension,
            pooling=self.pooling,
            query_prompt=self.query_prompt,
            document_prompt=self.document_prompt,
            normalize=self.normalize,
            source=source or self.path,
            max_seq_length=self.max_seq_length,
            padding_side="left" if self.pooling == "lasttoken" else "right",
            native_dimension=self.dimension,
            matryoshka_trained=self.matryoshka,
            backend=self.backend,
        )

    def profile(self, source: str = "") -> Profile:
        return Profile(
            CUSTOM_PROFILE, f"{self.model} ({self.dimension}-d), declared in the settings", self.space(source), None,
            batch_size=self.batch_size, min_ram_mb=1024, recommended_gpu_mb=0,
        )  # fmt: skip


@dataclass(frozen=True)
class IndexSettings:
    approximate_threshold: int = 50_000  # vectors in one channel past which HNSW replaces exact search
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    cache_mb: int = 512  # loaded channel indexes past this are dropped, least recently used first


@dataclass(frozen=True)
class RecallSettings:
    """Query pipeline defaults; each stage can also be switched per query (see recall.RecallOptions)."""

    k: int = 5
    min_score: float | None = None  # cosine floor for every space (-1: off); null: each space's calibrated floor
    dense: bool = True  # vector search in the channel's read space
    hybrid: bool = True  # also FTS5 BM25, fused by reciprocal rank; with dense off: BM25 alone
    rrf_k: int = 1  # fusion: score = 1 / (rrf_k + dense rank) + bm25_weight / (rrf_k + BM25 rank)
    bm25_weight: float = 0.7  # raised per query where the dense list is flat; see recall/weighting.py
    bm25_weight_power: float = 1.0  # per query: bm25_weight * max(1, (0.2 / spread) ** power), at most x4; 0: fixed
    rerank: bool = False
    rerank_candidates: int = 10  # the best candidates the reranker re-orders (at least k of them)
    min_rerank_score: float = 0.0  # reranker probability floor, applied only when reranking; 0: off
    candidates: int = 50
    conversation: bool = True  # an asking line's match carries to the lines after it (see recall/conversation.py)
    conversation_carry: float = 1.0
    conversation_lines: int = 8
    conversation_gap_seconds: float = 1200.0
    user_cooldown_seconds: float = 5.0


@dataclass(frozen=True)
class CaptureSettings:
    enabled_by_default: bool = True
    allow_dms: bool = False
    queue_size: int = 10_000
    batch_size: int = 256  # measured: 64 embeds at half the model's speed (padding)
    min_length: int = 1


@dataclass(frozen=True)
class HistorySettings:
    """Importing Discord history (``/memory import``) and filling the gap a downtime left."""

    gap_fill: bool = True  # at startup and after a reconnect, fetch what enabled channels missed
    gap_fill_max_messages: int = 5_000  # per channel and gap; older missed messages need /memory import
    channels_per_guild: int = 1  # channels read at once per guild (live capture shares the writer)
    guilds_at_once: int = 2  # guilds importing (or filling a gap) at once; the others wait, queued, in order
    pages_in_flight: int = 12  # pages of 100 queued per channel (behind live events) before the reader waits


@dataclass(frozen=True)
class PermissionSettings:
    admin_permission: str = "manage_guild"


@dataclass(frozen=True)
class MigrationSettings:
    resume_on_startup: bool = True
    target_profile: str = "qwen3_medium_performance"
    target_embedding_path: str = ""  # load the target model from this directory (no download)
    target_embedding_dimension: int = 0  # Matryoshka output dimension of the target; 0: the model's own
    target_custom_model: CustomModel = field(default_factory=CustomModel)  # with target_profile "custom"
    verify_sample: int = 200
    transform_sample: int = 0  # messages the transform strategy fits on; 0: its measured minimum

    def target(
        self,
        profile: str | None = None,
        embedding_path: str = "",
        dimension: int | None = None,
        dimension_flag: str = "the dimension option",
        force: bool = False,
    ) -> Profile:
        """The profile migrations go to, with its own model overrides; what an admin names (a command option,
        a command-line flag) wins over these settings, value by value. One rule for both faces.

        ``dimension_flag``: how the face names ``dimension`` (``--target-dimension``) in the error that
        refuses a dimension the target model cannot give; ``force`` allows cutting a non-Matryoshka model."""
        return resolve_profile(
            profile or self.target_profile,
            ModelOverrides(embedding_path or self.target_embedding_path, dimension or self.target_embedding_dimension),
            dimension_key=dimension_flag if dimension else "memory_system.migration.target_embedding_dimension",
            custom=self.target_custom_model,
            force=force,
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
    custom_model: CustomModel = field(default_factory=CustomModel)  # with profile "custom"
    index: IndexSettings = field(default_factory=IndexSettings)
    recall: RecallSettings = field(default_factory=RecallSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
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
        custom = self.memory.custom_model
        return resolve_profile(
            self.memory.profile, overrides, custom=replace(custom, path=self._model_path(custom.path))
        )

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

    def migration_batch_size(self, target: Profile) -> int:
        """A migration's batch: the setting when set, else the *target* profile's (it is the model that encodes)."""
        return self.memory.performance.batch_size or target.batch_size

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

    def check_writable(self) -> None:
        """Refuse, in one line, a memory directory this process can neither create nor write.

        Run before the memory opens (bot start, command line): the directory that blocks it, the key
        that chose it and what to do, instead of a traceback from deep in the store."""
        if self.memory.backend != "sqlite":
            return  # the memory is on the server; files are written only for backups and logs
        paths = self.memory.paths
        for directory, key in (
            (self.database_path.parent, "paths.database" if paths.database else "paths.data_dir"),
            (self.vectors_dir, "paths.vectors_dir" if paths.vectors_dir else "paths.data_dir"),
        ):
            blocked = _blocking_dir(directory)
            if blocked is None:
                continue
            where = str(self.source) if self.source else "<settings>"
            problem = "is a file, not a directory" if blocked.exists() and not blocked.is_dir() else "is not writable"
            user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "this user"
            raise SettingsError(
                f"{blocked} {problem} for this process ({user}), so the memory cannot be kept in {directory}: "
                f"make it writable for {user} (chown or chmod) or point memory_system.{key} in {where} "
                "at a writable directory"
            )


def _blocking_dir(directory: Path) -> Path | None:
    """The path that keeps ``directory`` from being created or written by this process, or None.

    That is ``directory`` itself when it exists, else its nearest existing ancestor (where it would
    be created); os.access also reports a read-only file system."""
    probe = directory
    while not os.path.exists(probe) and probe.parent != probe:
        probe = probe.parent
    if not os.path.isdir(probe):
        return probe
    return None if os.access(probe, os.W_OK | os.X_OK) else probe


def resolve_profile(
    name: str,
    overrides: ModelOverrides = ModelOverrides(),
    dimension_key: str = "memory_system.model_overrides.embedding_dimension",
    custom: CustomModel | None = None,
    force: bool = False,
) -> Profile:
    """The named built-in profile (or ``custom``: the declared ``custom`` model) with the operator's model
    overrides applied.

    A dimension the model cannot give (EmbeddingSpace.dimension_problem: the same rule for settings, flags
    and eval) is a SettingsError naming ``dimension_key`` (the settings key, or a face's flag) and the range."""
    if name == CUSTOM_PROFILE:
        problem = custom_model_problem(custom or CustomModel())
        if problem:
            raise SettingsError(f"profile 'custom' needs a declared model: {problem}")
        profile = (custom or CustomModel()).profile()
    elif name not in PROFILES:
        raise SettingsError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILE_NAMES)}")
    else:
        profile = PROFILES[name]
    space = profile.embedding
    if overrides.embedding_path:
        space = replace(space, source=overrides.embedding_path)
    if overrides.embedding_dimension:
        problem = space.dimension_problem(overrides.embedding_dimension, force)
        if problem:
            raise SettingsError(f"{dimension_key} {problem}")
        space = space.with_dimension(overrides.embedding_dimension)
    reranker = profile.reranker
    if reranker and overrides.reranker_path:
        reranker = replace(reranker, source=overrides.reranker_path)
    return replace(profile, embedding=space, reranker=reranker)


def custom_model_problem(custom: CustomModel, where: str = "custom_model") -> str:
    """What a ``custom`` model declaration lacks or gets wrong ('' when it is usable)."""
    if not custom.model.strip():
        return f"{where}.model is empty: name the model (its hub id, or a stable name for a local folder)"
    if custom.dimension < 1:
        return f"{where}.dimension is missing: give the model's own output dimension (e.g. 768)"
    if custom.pooling not in POOLINGS:
        return f"{where}.pooling is {custom.pooling!r}; choose one of: {', '.join(POOLINGS)}"
    if custom.backend not in BACKENDS:
        return f"{where}.backend is {custom.backend!r}; choose one of: {', '.join(BACKENDS)}"
    return ""


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
    except RecursionError:
        raise SettingsError(
            f"{path}: nested too deeply to read (settings are objects a few levels deep; "
            "compare with settings_qwen3_example.json)"
        ) from None
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
    if isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint):  # an optional number
        if value is None:
            return None
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
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
    if hint is float and not math.isfinite(value):
        raise SettingsError(f"{file}: {where} must be a finite number, got {json.dumps(value)}")
    return float(value) if hint is float else value


def _type_name(hint: Any) -> str:
    if isinstance(hint, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    return names.get(hint, str(hint))


def _require(ok: bool, file: str, where: str, message: str) -> None:
    if not ok:
        raise SettingsError(f"{file}: {where} {message}")


def _check_ranges(section: Any, where: str, file: str) -> None:
    """Every numeric key of ``section`` within its range in RANGES (the error names the key and the range)."""
    prefix = where.partition(".")[2]
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        key = f"{prefix}.{f.name}" if prefix else f.name
        bounds = RANGES.get(key)
        if bounds is not None:
            _require(
                bounds.allows(value), file, f"{where}.{f.name}", f"must be {bounds.describe()}, got {_number(value)}"
            )


def _check_values(section: Any, where: str, file: str) -> None:
    """Impossible values: each check names the key and the allowed range (numbers: RANGES, then the rules
    that relate keys to each other or to the profile)."""
    _check_ranges(section, where, file)
    if isinstance(section, MemorySystem):
        _require(
            section.profile in PROFILE_NAMES,
            file,
            f"{where}.profile",
            f"is {section.profile!r}; choose one of: {', '.join(PROFILE_NAMES)}",
        )
        _require(section.backend in ("sqlite", "postgres"), file, f"{where}.backend", "must be 'sqlite' or 'postgres'")
        _check_custom(section.profile, section.custom_model, f"{where}.custom_model", file)
        dim = section.model_overrides.embedding_dimension
        if dim:
            own = _profile_space(section.profile, section.custom_model)
            key = f"{where}.model_overrides.embedding_dimension"
            _require(
                not own.dimension_problem(dim), file, key, f"{own.dimension_problem(dim)} (profile {section.profile})"
            )
    elif isinstance(section, RecallSettings):
        _require(section.candidates >= section.k, file, f"{where}.candidates", "must be >= recall.k")
        _require(
            section.dense or section.hybrid,
            file,
            f"{where}.dense",
            "and recall.hybrid are both false: turn on dense search, BM25 (hybrid) or both",
        )
    elif isinstance(section, PermissionSettings):
        _require(
            section.admin_permission in ADMIN_PERMISSIONS,
            file,
            f"{where}.admin_permission",
            f"must be one of: {', '.join(ADMIN_PERMISSIONS)}",
        )
    elif isinstance(section, MigrationSettings):
        _require(
            section.target_profile in PROFILE_NAMES,
            file,
            f"{where}.target_profile",
            f"is {section.target_profile!r}; choose one of: {', '.join(PROFILE_NAMES)}",
        )
        _check_custom(section.target_profile, section.target_custom_model, f"{where}.target_custom_model", file)
        dim = section.target_embedding_dimension
        if dim:
            target = _profile_space(section.target_profile, section.target_custom_model)
            key = f"{where}.target_embedding_dimension"
            _require(not target.dimension_problem(dim), file, key, target.dimension_problem(dim))


def _profile_space(profile: str, custom: CustomModel) -> EmbeddingSpace:
    return custom.space() if profile == CUSTOM_PROFILE else PROFILES[profile].embedding


def _check_custom(profile: str, custom: CustomModel, where: str, file: str) -> None:
    """A ``custom`` profile needs a complete declaration; a declaration is checked whenever it is given."""
    if profile == CUSTOM_PROFILE or custom != CustomModel():
        problem = custom_model_problem(custom, where)
        _require(not problem, file, problem.split(" ", 1)[0], problem.split(" ", 1)[1] if problem else "")
