"""Embedding spaces: the identity of a vector (model + dimension + pooling + prompt + normalisation).

Vectors of different spaces are never compared. A space also says how to load its model, so a
query can always be embedded by exactly the model that produced the channel's stored vectors.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import asdict, dataclass, field, replace

QWEN3_EMBEDDING_TASK = "Given a web search query, retrieve relevant passages that answer the query"


def qwen3_query_prompt(task: str = QWEN3_EMBEDDING_TASK) -> str:
    """Qwen3-Embedding's query prompt: no space after 'Query:' (the query follows directly)."""
    return f"Instruct: {task}\nQuery:"


@dataclass(frozen=True)
class EmbeddingSpace:
    """Everything that makes two vectors comparable, plus where to load the model from.

    ``model`` is the model's public id (e.g. ``Qwen/Qwen3-Embedding-0.6B``); ``source`` is what
    the loader opens: the same id, a local directory, or ``pkg:<module>`` for a model shipped in
    a Python package (resolved through the module's ``get_model_path()``). ``source`` and
    ``max_seq_length`` do not change the vectors' meaning, so they are not part of the key.
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

    def with_dimension(self, dimension: int) -> EmbeddingSpace:
        return replace(self, dimension=dimension)

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
