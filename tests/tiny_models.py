"""Tiny, randomly initialised models saved in the file layout of the real ones, for fast offline tests.

The Qwen3 builders produce genuine ``Qwen3Model`` / ``Qwen3ForCausalLM`` checkpoints (2 layers, a
hidden size of 64 by default) with a small byte-level BPE tokenizer that follows Qwen's own recipe
(NFC, Qwen's pre-tokenizer regex, byte-level alphabet, the chat special tokens, ``yes`` and ``no``
as single tokens). Each directory looks like its Hugging Face repository:

* embedder (``Qwen/Qwen3-Embedding-0.6B``): ``config.json`` + ``model.safetensors``, a
  ``tokenizer.json`` whose post-processor appends ``<|endoftext|>``, ``modules.json``
  (Transformer -> ``1_Pooling`` (last token, prompt included) -> ``2_Normalize``) and
  ``config_sentence_transformers.json`` with the genuine query prompt and an empty document prompt;
* reranker (``Qwen/Qwen3-Reranker-0.6B``): a causal LM whose tokenizer appends nothing.

The models have no semantic quality: use them to exercise code paths (loading, prompts, padding,
truncation, pooling, batching), never relevance. Everything is built locally in well under a
second; the tokenizer is trained once per process. These are plain functions: ``conftest.py``
wraps them into fixtures.
"""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3Model,
)

__all__ = [
    "END_OF_TEXT",
    "IM_END",
    "IM_START",
    "QWEN3_EMBEDDING_QUERY_PROMPT",
    "build_tiny_bert_cross_encoder",
    "build_tiny_qwen3_embedder",
    "build_tiny_qwen3_reranker",
]

END_OF_TEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
THINK = "<think>"
THINK_END = "</think>"

#: The pre-tokenizer split pattern of Qwen2/Qwen3's tokenizer.json.
QWEN_PRETOKENIZE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: The query prompt of Qwen3-Embedding's config_sentence_transformers.json, written out literally so that
#: a wrong prompt in the project's code cannot hide behind the fixture.
QWEN3_EMBEDDING_QUERY_PROMPT = (
    "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
)

_BPE_VOCAB_SIZE = 1000
_CORPUS_WORDS = (
    "the cat dog bot user server channel message memory discord play game music talk about said today tomorrow "
    "remember what when where who likes hates python code bug fix deploy query document instruct judge whether "
    "meets requirements answer relevant passages search web retrieve given alice bob paris capital france berlin "
    "weather rain sunny hello thanks please help"
)
# Lines that must become single BPE tokens in the vocabulary (not added tokens, as in the real tokenizer).
_REQUIRED_TOKENS = ("yes", "no")
_TEMPLATE_LINES = (
    "yes",
    "no",
    "yes\n",
    "no\n",
    "<Instruct>: x\n<Query>: y\n<Document>: z",
    "system user assistant",
)


def _training_corpus(lines: int = 400) -> list[str]:
    rnd = random.Random(0)
    words = _CORPUS_WORDS.split()
    text = [" ".join(rnd.choice(words) for _ in range(rnd.randint(4, 12))) for _ in range(lines)]
    return text + list(_TEMPLATE_LINES) * 100


@functools.lru_cache(maxsize=1)
def _qwen_style_bpe_json() -> str:
    """Train the byte-level BPE once per process; returned as JSON so each caller gets its own copy."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_PATTERN), "isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_BPE_VOCAB_SIZE,
        show_progress=False,
        special_tokens=[END_OF_TEXT, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_training_corpus(), trainer)
    tok.add_tokens([THINK, THINK_END])  # added, non-special tokens, as in the real tokenizer
    for word in _REQUIRED_TOKENS:
        if tok.token_to_id(word) is None:
            raise AssertionError(f"tiny BPE failed to learn {word!r} as a single token")
    return tok.to_str()


def _qwen_tokenizer(*, append_end_of_text: bool) -> Tokenizer:
    tok = Tokenizer.from_str(_qwen_style_bpe_json())
    post: list[processors.PostProcessor] = [processors.ByteLevel(trim_offsets=False)]
    if append_end_of_text:
        # Qwen3-Embedding's tokenizer.json ends every input with <|endoftext|>; last-token pooling reads it.
        eot = tok.token_to_id(END_OF_TEXT)
        post.append(
            processors.TemplateProcessing(
                single=f"$A {END_OF_TEXT}", pair=f"$A $B {END_OF_TEXT}", special_tokens=[(END_OF_TEXT, eot)]
            )
        )
    tok.post_processor = processors.Sequence(post)
    return tok


def _save_qwen_tokenizer(tok: Tokenizer, directory: Path) -> None:
    PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=END_OF_TEXT, model_max_length=32768
    ).save_pretrained(directory)
    # Mirror the keys of the genuine tokenizer_config.json, so the same tokenizer class is used on load.
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) | {
        "tokenizer_class": "Qwen2Tokenizer",
        "bos_token": None,
        "unk_token": None,
        "add_bos_token": False,
        "add_prefix_space": False,
    }
    _write_json(config_path, config)


def _qwen3_config(tok: Tokenizer, hidden_size: int) -> Qwen3Config:
    if hidden_size % 8:
        raise ValueError(f"hidden_size must be a multiple of 8, got {hidden_size}")
    eot = tok.token_to_id(END_OF_TEXT)
    return Qwen3Config(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden_size // 4,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        dtype="float32",
    )


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def build_tiny_qwen3_embedder(path: Path, hidden_size: int = 64, seed: int = 0) -> Path:
    """Write a random Qwen3-Embedding look-alike (``hidden_size``-d vectors) to ``path`` and return it.

    Load it like the real one: ``SentenceTransformer(path, processor_kwargs={"padding_side": "left"})``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = _qwen_tokenizer(append_end_of_text=True)
    _save_qwen_tokenizer(tok, path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        Qwen3Model(_qwen3_config(tok, hidden_size)).eval().save_pretrained(path)
    _write_json(
        path / "modules.json",
        [  # the genuine repository's module list, legacy type paths included
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(
        path / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hidden_size,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": False,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": True,
            "include_prompt": True,
        },
    )
    _write_json(
        path / "config_sentence_transformers.json",
        {
            "prompts": {"query": QWEN3_EMBEDDING_QUERY_PROMPT, "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    return path


def build_tiny_qwen3_reranker(path: Path, seed: int = 0) -> Path:
    """Write a random Qwen3-Reranker look-alike (a causal LM scored on ``yes``/``no``) to ``path``.

    Like the genuine repository, the tokenizer adds no end-of-text token and there are no
    sentence-transformers files: the official recipe builds the prompt itself.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = _qwen_tokenizer(append_end_of_text=False)
    _save_qwen_tokenizer(tok, path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        Qwen3ForCausalLM(_qwen3_config(tok, 64)).eval().save_pretrained(path)
    return path


@functools.lru_cache(maxsize=1)
def _wordpiece_json() -> str:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=500, show_progress=False, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    tok.train_from_iterator(_training_corpus(), trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok.to_str()


def build_tiny_bert_cross_encoder(path: Path, seed: int = 0) -> Path:
    """Write a random BERT cross-encoder (``BertForSequenceClassification``, one label) to ``path``.

    The layout of ``cross-encoder/ms-marco-*`` models, loadable with sentence-transformers' ``CrossEncoder``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_str(_wordpiece_json())
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    ).save_pretrained(path)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
        pad_token_id=tok.token_to_id("[PAD]"),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BertForSequenceClassification(config).eval().save_pretrained(path)
    return path
