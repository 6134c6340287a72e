"""The embedding service: Qwen3 through the production path (tiny real model), and the packaged MiniLM."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from qwen3_memory.errors import DimensionMismatch, ModelUnavailable
from qwen3_memory.models.device import DevicePolicy
from qwen3_memory.models.embedding import QWEN3_END_OF_TEXT, EmbeddingService, EmbeddingServices
from qwen3_memory.models.profiles import PROFILES
from qwen3_memory.settings import ModelOverrides, resolve_profile
from tests.tiny_models import QWEN3_EMBEDDING_QUERY_PROMPT

CPU = DevicePolicy(cpu_only=True)

TEXTS = [
    "hello",
    "the cat likes music today",
    "what did alice say about the python bug in the discord bot channel yesterday",
    "rain",
    "remember when bob said paris is the capital of france and everybody laughed about it",
]


def unit_rows(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def qwen3_space(tiny_qwen3_dir):
    """The real qwen3_medium_performance space, loaded from the tiny model, at its 64 dimensions."""
    overrides = ModelOverrides(embedding_path=str(tiny_qwen3_dir), embedding_dimension=64)
    return resolve_profile("qwen3_medium_performance", overrides).embedding


@pytest.fixture(scope="module")
def qwen3(qwen3_space):
    service = EmbeddingService(qwen3_space, CPU, batch_size=8)
    service.load()
    yield service
    service.close()


# ----------------------------------------------------------------------------------------------- Qwen3


def test_the_qwen3_space_from_settings_is_the_one_under_test(qwen3_settings, qwen3_space):
    assert qwen3_settings.space == qwen3_space
    assert qwen3_space.pooling == "lasttoken" and qwen3_space.padding_side == "left"


def test_qwen3_documents_are_unit_vectors_of_the_space_dimension(qwen3):
    vectors = qwen3.encode_documents(TEXTS)

    assert vectors.shape == (len(TEXTS), 64) and vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert qwen3.native_dimension == 64


def test_no_texts_give_an_empty_matrix_of_the_right_width(qwen3):
    assert qwen3.encode_documents([]).shape == (0, 64)


def test_the_query_prompt_is_qwens_and_is_applied_to_queries_only(qwen3):
    query = "what did alice say about the game"

    as_query = qwen3.encode_queries([query])
    prompted_document = qwen3.encode_documents([QWEN3_EMBEDDING_QUERY_PROMPT + query])
    plain_document = qwen3.encode_documents([query])

    assert qwen3.space.query_prompt == QWEN3_EMBEDDING_QUERY_PROMPT  # no space after "Query:"
    np.testing.assert_allclose(as_query, prompted_document, atol=1e-6)
    assert not np.allclose(as_query, plain_document, atol=1e-3)


def test_the_tokenizer_pads_on_the_left_and_ends_every_input_with_end_of_text(qwen3):
    tokenizer = qwen3.load().tokenizer
    eot = tokenizer.convert_tokens_to_ids(QWEN3_END_OF_TEXT)

    batch = tokenizer(["hi", TEXTS[2]], padding=True)

    assert tokenizer.padding_side == "left"
    assert [ids[-1] for ids in batch["input_ids"]] == [eot, eot]  # the token last-token pooling reads
    short_mask = batch["attention_mask"][0]
    assert short_mask[0] == 0 and short_mask[-1] == 1  # the padding is in front of the short text


def test_the_embedding_is_the_normalised_hidden_state_of_the_end_of_text_token(qwen3, tiny_qwen3_dir):
    """Qwen's own recipe (transformers, left padding, last position) gives the service's vectors."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3_dir, padding_side="left")
    model = AutoModel.from_pretrained(tiny_qwen3_dir).eval()
    texts = [QWEN3_EMBEDDING_QUERY_PROMPT + t for t in TEXTS]
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        hidden = model(**batch).last_hidden_state[:, -1]
    expected = unit_rows(hidden.numpy())

    np.testing.assert_allclose(qwen3.encode_queries(TEXTS), expected, atol=1e-5)


def test_a_tokenizer_that_does_not_append_end_of_text_is_refused(qwen3_space, tiny_qwen3_dir, tmp_path):
    broken = shutil.copytree(tiny_qwen3_dir, tmp_path / "broken-qwen3")
    tokenizer_json = json.loads((broken / "tokenizer.json").read_text())
    processors = tokenizer_json["post_processor"]["processors"]
    tokenizer_json["post_processor"]["processors"] = [p for p in processors if p["type"] != "TemplateProcessing"]
    assert len(tokenizer_json["post_processor"]["processors"]) == len(processors) - 1
    (broken / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    service = EmbeddingService(replace(qwen3_space, source=str(broken)), CPU)

    with pytest.raises(ModelUnavailable, match=f"does not append {QWEN3_END_OF_TEXT}"):
        service.load()
    service.close()


def test_last_token_pooling_with_right_padding_is_refused(qwen3_space):
    service = EmbeddingService(replace(qwen3_space, padding_side="right"), CPU)

    with pytest.raises(ModelUnavailable, match="needs left padding"):
        service.load()
    service.close()


def test_a_matryoshka_dimension_is_the_renormalised_prefix_of_the_full_vector(qwen3, qwen3_space):
    cut = EmbeddingService(qwen3_space.with_dimension(32), CPU)

    small = cut.encode_documents(TEXTS)
    full = qwen3.encode_documents(TEXTS)

    assert small.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(small, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(small, unit_rows(full[:, :32]), atol=1e-5)
    np.testing.assert_allclose(cut.encode_queries(TEXTS[:2]), unit_rows(qwen3.encode_queries(TEXTS[:2])[:, :32]), 1e-5)
    cut.close()


def test_batching_does_not_change_the_vectors(qwen3):
    one_by_one = np.vstack([qwen3.encode_documents([t]) for t in TEXTS])

    batched = qwen3.encode_documents(TEXTS, batch_size=len(TEXTS))
    in_pairs = qwen3.encode_documents(TEXTS, batch_size=2)

    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(in_pairs, one_by_one, atol=1e-5)


def test_a_model_directory_that_does_not_exist_is_model_unavailable_naming_the_path(qwen3_space, tmp_path):
    missing = tmp_path / "models" / "Qwen3-Embedding-0.6B"
    service = EmbeddingService(replace(qwen3_space, source=str(missing)), CPU)

    with pytest.raises(ModelUnavailable) as info:
        service.load()

    assert str(missing) in str(info.value)
    assert "embedding_path" in str(info.value)  # says what to do
    service.close()


def test_a_dimension_larger_than_the_models_is_a_dimension_mismatch(tiny_qwen3_dir):
    native_qwen3 = resolve_profile(
        "qwen3_medium_performance", ModelOverrides(embedding_path=str(tiny_qwen3_dir))
    ).embedding  # 1024-d, as the real model; the tiny one makes 64
    service = EmbeddingService(native_qwen3, CPU)

    with pytest.raises(DimensionMismatch, match="produces 64-d vectors but the space wants 1024-d"):
        service.load()
    service.close()


async def test_async_encoding_runs_off_the_event_loop(qwen3):
    threads: list[str] = []
    encode = qwen3.encode_documents

    def spy(texts, batch_size=None):
        threads.append(threading.current_thread().name)
        return encode(texts, batch_size)

    qwen3.encode_documents = spy
    try:
        vectors = await qwen3.aencode_documents(["hello from the loop"])
    finally:
        del qwen3.encode_documents

    assert threads and threads[0] != threading.current_thread().name
    assert threads[0].startswith("embed-")
    np.testing.assert_allclose(vectors, qwen3.encode_documents(["hello from the loop"]), atol=1e-6)


async def test_async_queries_equal_sync_queries(qwen3):
    np.testing.assert_allclose(await qwen3.aencode_queries(TEXTS[:2]), qwen3.encode_queries(TEXTS[:2]), atol=1e-6)


def test_one_service_serves_one_event_loop_after_another(qwen3):
    """Tests and benchmarks share loaded models between event loops; waiting for a slot must work in each."""

    async def many_at_once():  # more queries than the service runs at a time: some wait
        return await asyncio.gather(*(qwen3.aencode_queries([t]) for t in TEXTS))

    first = asyncio.run(many_at_once())
    second = asyncio.run(many_at_once())

    np.testing.assert_allclose(np.vstack(second), np.vstack(first), atol=1e-6)


def test_there_is_one_service_per_space(qwen3_space):
    services = EmbeddingServices(CPU)

    first = services.get(qwen3_space)

    assert services.get(replace(qwen3_space)) is first
    assert services.get(replace(qwen3_space, max_seq_length=128)) is first  # same vectors: same service
    assert services.get(qwen3_space.with_dimension(32)) is not first
    services.close()


# ----------------------------------------------------------------------------------------------- packaged model


@pytest.fixture(scope="module")
def minilm():
    service = EmbeddingService(PROFILES["offline_default"].embedding, CPU)
    yield service
    service.close()


def test_the_packaged_model_loads_offline_and_makes_384_d_unit_vectors(minilm):
    vectors = minilm.encode_documents(TEXTS)

    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(minilm.encode_queries(TEXTS), vectors, atol=1e-6)  # no query prompt for MiniLM


def test_the_packaged_model_places_a_paraphrase_above_unrelated_messages(minilm):
    documents = [
        "I deployed the new version of the bot to production last night",
        "my cat knocked the plant off the windowsill",
        "Paris is the capital of France",
        "lunch was great, we had ramen",
        "the server crashed after the update",
    ]
    query = "which city is France's capital?"

    similarity = minilm.encode_documents(documents) @ minilm.encode_queries([query])[0]

    order = np.argsort(-similarity)
    assert order[0] == 2
    assert similarity[2] > 0.6 and similarity[2] - similarity[order[1]] > 0.3, similarity
