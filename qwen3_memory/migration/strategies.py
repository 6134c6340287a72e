"""How target vectors are made: regenerate, transform, truncate, pad.

Each strategy validates itself against the source and target spaces first, refusing what makes
no sense (with the reason and what to do instead) and returning loud warnings for what is
allowed but risky. ``vectors`` runs in an executor thread: it may encode or multiply matrices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from qwen3_memory.errors import UserFacingError
from qwen3_memory.models.embedding import EmbeddingService
from qwen3_memory.records import StoredMessage
from qwen3_memory.space import MATRYOSHKA_POOLINGS, EmbeddingSpace

log = logging.getLogger(__name__)

STRATEGIES = ("regenerate", "transform", "truncate", "pad")
MIN_TRANSFORM_SAMPLE = 32


class StrategyRefused(UserFacingError):
    """The strategy cannot produce meaningful vectors for this source -> target pair."""


def _same_family(source: EmbeddingSpace, target: EmbeddingSpace) -> bool:
    return (source.model, source.revision, source.pooling, source.query_prompt, source.document_prompt) == (
        target.model,
        target.revision,
        target.pooling,
        target.query_prompt,
        target.document_prompt,
    )


def validate_strategy(strategy: str, source: EmbeddingSpace, target: EmbeddingSpace, force: bool = False) -> list[str]:
    """Warnings for a valid choice; :class:`StrategyRefused` for a meaningless one."""
    if strategy not in STRATEGIES:
        raise StrategyRefused(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    if target.dimension < 1:
        raise StrategyRefused(f"the target dimension must be positive, not {target.dimension}")
    if source.key == target.key:
        raise StrategyRefused("source and target are the same embedding space: there is nothing to migrate")
    if strategy == "regenerate":
        return []
    if strategy == "transform":
        warnings = [
            "transform approximates the target model with a linear map fitted on a sample: recall quality "
            "depends on the fit reported after fitting; regenerate is exact"
        ]
        if _same_family(source, target):
            warnings.append("source and target are the same model: truncate or regenerate is simpler")
        return warnings
    if strategy == "truncate":
        if not _same_family(source, target):
            raise StrategyRefused(
                f"truncate keeps the first dimensions of the same model's vectors, but {source.model} and "
                f"{target.model} are different models (their vectors are not comparable); use regenerate or transform"
            )
        if target.dimension >= source.dimension:
            raise StrategyRefused(
                f"truncate needs a smaller target dimension ({target.dimension} >= "
                f"{source.dimension}); use pad to grow (not recommended) or regenerate"
            )
        if source.pooling not in MATRYOSHKA_POOLINGS:
            if not force:
                raise StrategyRefused(
                    f"{source.model} is not a Matryoshka model: its truncated vectors lose "
                    "quality unpredictably; use regenerate, or --force to truncate anyway"
                )
            return [f"LOUD WARNING: {source.model} was not trained for truncation; recall quality will drop"]
        return []
    # pad
    if target.dimension <= source.dimension:
        raise StrategyRefused(f"pad needs a larger target dimension ({target.dimension} <= {source.dimension})")
    if not force:
        raise StrategyRefused(
            "pad only appends zeros: the vectors stay in the old model's space, so they are NOT comparable with "
            f"{target.model} vectors or queries. It is allowed only with --force (e.g. to fit a fixed-width column)"
        )
    return [
        "LOUD WARNING: padded vectors are the old model's vectors plus zeros; queries must keep using the "
        f"old model ({source.model}); this is not a migration to a new model"
    ]


def padded_space(source: EmbeddingSpace, dimension: int) -> EmbeddingSpace:
    """The space of pad's output: the source model, zero-padded to ``dimension`` (queries are padded too)."""
    from dataclasses import replace

    return replace(source, dimension=dimension, padded=True)


@dataclass
class LinearMap:
    """target ~= normalise(source @ weight + bias), fitted by ridge regression."""

    weight: np.ndarray
    bias: np.ndarray
    train_cosine: float = 0.0
    heldout_cosine: float = 0.0
    heldout_size: int = 0
    samples: int = 0
    heldout_top1: float = 0.0  # held-out regenerated vectors whose nearest transformed vector is their own message

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        out = vectors @ self.weight + self.bias
        return _normalise(out.astype(np.float32))

    def to_bytes(self) -> bytes:
        import io

        buffer = io.BytesIO()
        np.savez(
            buffer,
            weight=self.weight,
            bias=self.bias,
            stats=np.array(
                [self.train_cosine, self.heldout_cosine, self.heldout_size, self.samples, self.heldout_top1],
                dtype=np.float64,
            ),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearMap:
        import io

        with np.load(io.BytesIO(data)) as npz:
            stats = npz["stats"]
            top1 = float(stats[4]) if len(stats) > 4 else 0.0  # maps fitted before it was measured
            return cls(npz["weight"], npz["bias"], float(stats[0]), float(stats[1]), int(stats[2]), int(stats[3]), top1)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def fit_linear_map(
    source: np.ndarray, target: np.ndarray, ridge: float = 1e-2, heldout: float = 0.2, seed: int = 0
) -> LinearMap:
    """Ridge least squares source -> target on a sample; cosine of prediction and truth on a held-out part."""
    n = source.shape[0]
    if n < MIN_TRANSFORM_SAMPLE:
        raise StrategyRefused(
            f"transform needs at least {MIN_TRANSFORM_SAMPLE} messages embedded by both models, "
            f"got {n}; use regenerate for a memory this small"
        )
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(n * heldout))
    test, train = order[:n_test], order[n_test:]

    def solve(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.hstack([source[rows], np.ones((rows.size, 1), dtype=np.float32)]).astype(np.float64)
        reg = ridge * np.eye(x.shape[1])
        reg[-1, -1] = 0.0  # do not shrink the bias
        w = np.linalg.solve(x.T @ x + reg, x.T @ target[rows].astype(np.float64))
        return w[:-1].astype(np.float32), w[-1].astype(np.float32)

    def mean_cosine(weight, bias, rows) -> float:
        pred = _normalise(source[rows] @ weight + bias)
        return float(np.mean(np.sum(pred * _normalise(target[rows]), axis=1)))

    def top1(weight, bias, rows) -> float:
        """Regenerated (exact) vectors finding their own transformed message first among the held-out ones."""
        pred = _normalise(source[rows] @ weight + bias)
        return float(np.mean(np.argmax(_normalise(target[rows]) @ pred.T, axis=1) == np.arange(rows.size)))

    weight, bias = solve(train)
    result = LinearMap(
        weight, bias, mean_cosine(weight, bias, train), mean_cosine(weight, bias, test), int(n_test), n,
        top1(weight, bias, test),
    )  # fmt: skip
    full_w, full_b = solve(order)  # the map applied uses every sample; the held-out score is reported
    result.weight, result.bias = full_w, full_b
    return result


@dataclass
class Strategy:
    """Makes target vectors for a batch of messages (and their source vectors, when it needs them)."""

    name: str
    source: EmbeddingSpace
    target: EmbeddingSpace
    target_service: EmbeddingService | None = None
    linear_map: LinearMap | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def needs_source_vectors(self) -> bool:
        return self.name in ("transform", "truncate", "pad")

    def vectors(self, messages: list[StoredMessage], source_vectors: np.ndarray | None, batch_size: int) -> np.ndarray:
        """Target vectors for ``messages`` (blocking: call in an executor)."""
        if self.name == "regenerate":
            assert self.target_service is not None
            return self.target_service.encode_documents([m.content for m in messages], batch_size=batch_size)
        assert source_vectors is not None
        if self.name == "transform":
            assert self.linear_map is not None
            return self.linear_map.apply(source_vectors)
        if self.name == "truncate":
            return _normalise(source_vectors[:, : self.target.dimension])
        padded = np.zeros((source_vectors.shape[0], self.target.dimension), dtype=np.float32)
        padded[:, : source_vectors.shape[1]] = source_vectors
        return padded
