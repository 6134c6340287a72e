"""Embedding spaces: the identity of a vector (model + dimension + pooling + prompt + normalisation).

Vectors of different spaces are never compared. A space also says how to load its model, so a
query can always be embedded by exactly the model that produced the channel's stored vectors.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import asdict, dataclass, field, replace

MATRYOSHKA_POOLINGS = ("lasttoken",)  # Qwen3-Embedding is trained for truncation; mean-pooled MiniLMs are not
MATRYOSHKA_MIN_DIMENSION = 32  # Qwen3-Embedding: any output dimension from 32 to the model's own (1024)

QWEN3_EMBEDDING_TASK = "Given a web search query, retrieve relevant passages that answer the query"


def qwen3_query_prompt(task: str = QWEN3_EMBEDDING_TASK) -> str:
    """Qwen3-Embedding's query prompt: no space after 'Query:' (the query follows directly)."""
    return f"Instruct: {task}\nQuery:"


@dataclass(frozen=True)
class EmbeddingSpace:
    """Everything that makes two vectors comparable, plus where to load the model from.

    ``model`` is the model's public id (e.g. ``Qwen/Qwen3-Embedding-0.6B``); ``source`` is what
    the loader opens: the same id, a local directory, or ``pkg:<module>`` for a model shipped in
    a Python package (resolved through the module's ``get_model_path()``). ``source``,
    ``max_seq_length`` and ``backend`` do not change the vectors' meaning, so they are not part of the
    key. ``native_dimension`` is the model's own output size (0: ``dimension``): a folder that holds
    a model of another size is another model, refused at load (see models.embedding).
    """

    model: str
    dimension: int
    pooling: str = "mean"
    query_prompt: str = ""
    document_prompt: str = ""
    normalize: bool = True
    revision: str = ""
    padded: bool = False  # vectors are the model's own plus zeros up to ``dimension`` (the pad strategy)
    source: str = field(default="", compare=False)
    max_seq_length: int = field(default=512, compare=False)
    padding_side: str = field(default="right", compare=False)
    native_dimension: int = field(default=0, compare=False)
    matryoshka_trained: bool = field(default=False, compare=False)  # a custom model declared Matryoshka
    backend: str = field(default="torch", compare=False)  # sentence-transformers backend: torch or onnx

    @property
    def key(self) -> str:
        """Stable identity of the space: a short hash of the fields that change vectors."""
        ident = {
            "model": self.model,
            "revision": self.revision,
            "dimension": self.dimension,
            "pooling": self.pooling,
            "query_prompt": self.query_prompt,
            "document_prompt": self.document_prompt,
            "normalize": self.normalize,
        }
        if self.padded:
            ident["padded"] = True
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.short_name}-{self.dimension}{'-padded' if self.padded else ''}-{digest}"

    @property
    def short_name(self) -> str:
        return self.model.rstrip("/").split("/")[-1]

    @property
    def load_source(self) -> str:
        return self.source or self.model

    @property
    def matryoshka(self) -> bool:
        """Whether the model was trained so that a prefix of its vector is a good vector (Matryoshka)."""
        return self.pooling in MATRYOSHKA_POOLINGS or self.matryoshka_trained

    @property
    def own_dimension(self) -> int:
        """The model's own output dimension (before any Matryoshka cut)."""
        return self.native_dimension or self.dimension

    def dimension_range(self, force: bool = False) -> tuple[int, int]:
        """The output dimensions this space's model can give: 32..own for Matryoshka models, else only its own
        (1..own with ``force``: a truncation the admin insisted on)."""
        own = self.own_dimension
        if self.matryoshka:
            return MATRYOSHKA_MIN_DIMENSION, own
        return (1 if force else own), own

    def dimension_problem(self, dimension: int, force: bool = False) -> str:
        """Why ``dimension`` is no output dimension of this space's model (what follows "KEY "), or ''.

        The one rule for settings, command-line flags and ``eval``: Matryoshka models 32..own, other
        models only their own dimension unless forced (cutting them loses quality unpredictably)."""
        low, high = self.dimension_range(force)
        if low <= dimension <= high:
            return ""
        if self.matryoshka or low < high:
            kind = "a Matryoshka model" if self.matryoshka else "forced"
            return (
                f"is {dimension}: it must be between {low} and {high} for {self.model} ({kind}; {high} is its own "
                "dimension), or 0 for the model's own"
            )
        return (
            f"is {dimension}: {self.model} is not a Matryoshka model, so only its own dimension {high} (or 0) is "
            "allowed: fewer dimensions lose quality unpredictably (the truncate strategy can cut it with --force)"
        )

    def with_dimension(self, dimension: int) -> EmbeddingSpace:
        return replace(self, dimension=dimension, native_dimension=self.own_dimension)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EmbeddingSpace:
        return cls(**json.loads(text))


def resolve_source(source: str) -> str:
    """Turn ``pkg:<module>`` into the model directory that package ships; other values pass through."""
    if not source.startswith("pkg:"):
        return source
    module_name = source[4:]
    module = importlib.import_module(module_name)
    return str(module.get_model_path())
