"""Embedding service: one loaded model per embedding space, encoding off the event loop.

Generic sentence-transformers models and Qwen3-Embedding go through the same loader; the space
decides what differs (pooling, padding side, query prompt, Matryoshka dimension). For Qwen3 the
loader checks the facts the vectors depend on: last-token pooling, left padding and an
``<|endoftext|>`` appended by the tokenizer (the token whose hidden state is the embedding).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from qwen3_memory.errors import DimensionMismatch, EncodeOutOfMemory, ModelUnavailable, SpaceModelMismatch
from qwen3_memory.models.device import DevicePolicy, choose_device, is_out_of_memory
from qwen3_memory.space import EmbeddingSpace, resolve_source
from qwen3_memory.space_identity import StoredSample, identity_problem

log = logging.getLogger(__name__)

QWEN3_END_OF_TEXT = "<|endoftext|>"


def _pooling_mode(model) -> str:
    """The pooling of a loaded SentenceTransformer ('mean', 'lasttoken', 'cls', ...)."""
    for module in model:
        mode = getattr(module, "pooling_mode", None)
        if isinstance(mode, str):
            return mode
    return "unknown"


def _model_type(model) -> str:
    auto_model = getattr(model[0], "auto_model", None) or getattr(model[0], "model", None)
    config = getattr(auto_model, "config", None)
    return str(getattr(config, "model_type", ""))


class EmbeddingService:
    """Encodes documents and queries of one space. ``encode_*`` block (call them in a worker);
    ``aencode_*`` run them on the service's executor with at most ``max_concurrent`` jobs at once."""

    def __init__(
        self,
        space: EmbeddingSpace,
        policy: DevicePolicy = DevicePolicy(),
        max_concurrent: int = 2,
        batch_size: int = 32,
    ) -> None:
        self.space = space
        self.policy = policy
        self.batch_size = batch_size
        self.device = "cpu"
        self._model = None
        self._native_dimension = 0
        self._refused: SpaceModelMismatch | None = None  # another model than the space's: never retried
        self.expected: StoredSample | None = None  # stored vectors of this space the model must reproduce
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix=f"embed-{space.short_name}")
        # one semaphore per event loop: a service shared by memories on several loops (tests, benchmarks)
        # must not bind to the first loop that had to wait on it
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._max_concurrent = max_concurrent

    # ------------------------------------------------------------------ loading
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self):
        """Load the model once (thread-safe) and check it produces vectors of this space."""
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._refused is not None:
                raise self._refused
            if self._model is None:
                started = time.perf_counter()
                model = self._load_checked()
                self.confirm(model)
                self._model = model
                log.info("loaded %s on %s in %.1fs", self.space.model, self.device, time.perf_counter() - started)
        return self._model

    def confirm(self, model=None) -> None:
        """Refuse a model that does not reproduce the vectors the space already holds (``expected``): a space
        never holds two models' vectors. Blocking; runs at load, and again when expectations arrive later."""
        sample = self.expected
        model = model or self._model
        if sample is None or model is None:
            return
        vectors = self._encode_with(model, list(sample.texts), self.space.document_prompt, None)
        problem = identity_problem(self.space, sample, vectors)
        if problem:
            self._refused = SpaceModelMismatch(
                f"{problem} (loaded from {resolve_source(self.space.load_source)!r}). Point the setting back at the "
                "model that made them, or declare the new model as a custom model (memory_system.custom_model / "
                "migration.target_custom_model) and migrate to it"
            )
            self._model = None
            raise self._refused

    def _load_checked(self):
        from sentence_transformers import SentenceTransformer

        source = resolve_source(self.space.load_source)
        local = Path(source).expanduser().is_dir()
        self.device = choose_device(self.policy)
        try:
            model = SentenceTransformer(
                source,
                device=self.device,
                local_files_only=local or os.environ.get("HF_HUB_OFFLINE") == "1",
                processor_kwargs={"padding_side": self.space.padding_side},
                **({"backend": self.space.backend} if self.space.backend != "torch" else {}),
            )
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError('qwen3') ...
            # only the architecture, not a path that merely contains "Qwen3", means transformers is too old
            unknown_qwen3 = (isinstance(exc, KeyError) and exc.args == ("qwen3",)) or "model type `qwen3`" in str(exc)
            hint = (
                "transformers >= 4.51 is needed for Qwen3"
                if unknown_qwen3
                else "with no internet, download it elsewhere and point the setting that names this model's path "
                "at its directory (model_overrides.embedding_path for the bot's profile, "
                "migration.target_embedding_path for a migration target, the path of a custom model), or use the "
                "offline_default profile"
            )
            raise ModelUnavailable(
                f"cannot load embedding model {self.space.model!r} from {source!r}: {type(exc).__name__}: {exc}. {hint}"
            ) from None
        model.max_seq_length = self.space.max_seq_length
        self._native_dimension = int(model.get_embedding_dimension())
        self._check(model)
        return model

    def _check(self, model) -> None:
        space = self.space
        if space.dimension > self._native_dimension and not space.padded:
            raise DimensionMismatch(
                f"{space.model} produces {self._native_dimension}-d vectors but the space wants {space.dimension}-d; "
                f"set the dimension to {self._native_dimension} or less"
            )
        if space.native_dimension and not space.matryoshka and self._native_dimension != space.native_dimension:
            raise SpaceModelMismatch(
                f"{resolve_source(space.load_source)!r} holds a {self._native_dimension}-d model, but the space "
                f"{space.key} is {space.model}, a {space.native_dimension}-d model: it is another model, and its "
                "vectors would be cut to fit a space that is not theirs. Declare it as a custom model "
                "(memory_system.custom_model, or migration.target_custom_model to migrate to it) instead of "
                "pointing this profile's path at it"
            )
        pooling = _pooling_mode(model)
        if pooling != space.pooling:
            raise ModelUnavailable(
                f"{space.model} uses {pooling} pooling but its space says {space.pooling}; this is another model "
                "than the space was built with (check model_overrides.embedding_path)"
            )
        if _model_type(model) == "qwen3" or space.pooling == "lasttoken":
            tokenizer = model.tokenizer
            if tokenizer.padding_side != "left":
                raise ModelUnavailable(
                    f"{space.model}: last-token pooling needs left padding (got "
                    f"{tokenizer.padding_side}); set the space's padding_side to 'left'"
                )
            eot = tokenizer.convert_tokens_to_ids(QWEN3_END_OF_TEXT)
            last = tokenizer(["hello"])["input_ids"][0][-1]
            if _model_type(model) == "qwen3" and last != eot:
                raise ModelUnavailable(
                    f"{space.model}: the tokenizer does not append {QWEN3_END_OF_TEXT}, so last-token pooling "
                    "would embed the wrong token; use the model's own tokenizer.json (transformers >= 4.51)"
                )

    @property
    def native_dimension(self) -> int:
        self.load()
        return self._native_dimension

    def fall_back_to_cpu(self) -> bool:
        """Move the model to the CPU after a CUDA OOM, if the policy allows; True if it moved."""
        if self.device == "cpu" or not self.policy.fallback_to_cpu:
            return False
        import torch

        log.warning("CUDA out of memory: moving %s to the CPU (hardware_detection.fallback_to_cpu)", self.space.model)
        self._model.to("cpu")
        self.device = "cpu"
        torch.cuda.empty_cache()
        return True

    # ------------------------------------------------------------------ encoding
    def encode_documents(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return self._encode(texts, self.space.document_prompt, batch_size)

    def encode_queries(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return self._encode(texts, self.space.query_prompt, batch_size)

    def _encode(self, texts: Sequence[str], prompt: str, batch_size: int | None) -> np.ndarray:
        return self._encode_with(self.load(), texts, prompt, batch_size)

    def _encode_with(self, model, texts: Sequence[str], prompt: str, batch_size: int | None) -> np.ndarray:
        if not texts:
            return np.empty((0, self.space.dimension), dtype=np.float32)
        try:
            vectors = model.encode(
                list(texts),
                prompt=prompt or None,
                batch_size=batch_size or self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            )
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            if self.device != "cpu":
                import torch

                torch.cuda.empty_cache()
            raise EncodeOutOfMemory(
                f"out of memory encoding {len(texts)} texts with {self.space.model} on {self.device}; lower "
                "memory_system.performance.batch_size or enable hardware_detection.fallback_to_cpu"
            ) from exc
        return self._finish(np.asarray(vectors, dtype=np.float32))

    def _finish(self, vectors: np.ndarray) -> np.ndarray:
        """Matryoshka truncation first, then L2 normalisation (Qwen3's rule; a no-op cut otherwise)."""
        vectors = vectors[:, : self.space.dimension]
        if self.space.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        if vectors.shape[1] < self.space.dimension:  # the pad strategy's space: zeros after the model's own
            vectors = np.pad(vectors, ((0, 0), (0, self.space.dimension - vectors.shape[1])))
        return np.ascontiguousarray(vectors, dtype=np.float32)

    async def run(self, fn, *args):
        """Run a blocking call that uses this model on its executor, within the concurrency bound."""
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self._max_concurrent)
        async with semaphore:
            return await loop.run_in_executor(self._executor, fn, *args)

    async def aencode_documents(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return await self.run(self.encode_documents, list(texts), batch_size)

    async def aencode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return await self.run(self.encode_queries, list(texts), None)

    async def aload(self) -> None:
        await self.run(self.load)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class EmbeddingServices:
    """One :class:`EmbeddingService` per space key, created on first use and then reused."""

    def __init__(self, policy: DevicePolicy = DevicePolicy(), max_concurrent: int = 2, batch_size: int = 32) -> None:
        self.policy = policy
        self.max_concurrent = max_concurrent
        self.batch_size = batch_size
        self._services: dict[str, EmbeddingService] = {}
        self._expected: dict[str, StoredSample] = {}
        self._lock = threading.Lock()

    def get(self, space: EmbeddingSpace) -> EmbeddingService:
        with self._lock:
            service = self._services.get(space.key)
            if service is None:
                service = EmbeddingService(space, self.policy, self.max_concurrent, self.batch_size)
                service.expected = self._expected.get(space.key)
                self._services[space.key] = service
            return service

    async def expect(self, space: EmbeddingSpace, sample: StoredSample) -> None:
        """Vectors ``space`` already holds: its model must reproduce them (checked at load, or now if loaded)."""
        with self._lock:
            self._expected[space.key] = sample
        service = self.get(space)
        service.expected = sample
        if service.loaded:
            await service.run(service.confirm)

    def close(self) -> None:
        for service in self._services.values():
            service.close()
