"""A space never holds two models' vectors: a model that is not the space's is refused before it writes."""

from __future__ import annotations

import pytest

from qwen3_memory.errors import SpaceModelMismatch
from qwen3_memory.memory import Memory
from qwen3_memory.models.embedding import EmbeddingService
from qwen3_memory.settings import CustomModel
from tests.factories import TOPICS, message
from tests.tiny_models import build_tiny_qwen3_embedder


def test_a_768d_model_behind_the_minilm_profile_is_refused_not_cut_to_384(make_settings, mpnet_dir):
    space = make_settings(model_overrides={"embedding_path": str(mpnet_dir)}).space
    service = EmbeddingService(space)
    try:
        with pytest.raises(SpaceModelMismatch, match="holds a 768-d model.*all-MiniLM-L6-v2, a 384-d model"):
            service.load()
        with pytest.raises(SpaceModelMismatch):  # refused for good: not loaded again for every batch
            service.encode_documents(["hello"])
    finally:
        service.close()


async def test_another_model_behind_a_space_that_holds_vectors_is_refused(make_settings, tmp_path):
    """Same profile, same space key, another folder (as when an override changes or is dropped)."""
    first = build_tiny_qwen3_embedder(tmp_path / "first", seed=0)
    other = build_tiny_qwen3_embedder(tmp_path / "other", seed=1)

    def settings(path):
        return make_settings(
            profile="qwen3_medium_performance",
            model_overrides={"embedding_path": str(path), "embedding_dimension": 64},
        )

    memory = await Memory.open(settings(first), start_capture=False)
    await memory.capture.write([message(i, TOPICS[i % len(TOPICS)]) for i in range(1, 13)])
    space = memory.default_space
    assert await memory.store.count_vectors(space.id, 1, 10) == 12
    await memory.close()

    memory = await Memory.open(settings(other), start_capture=False)
    try:
        assert memory.default_space.spec.key == space.spec.key  # the key alone cannot tell them apart
        with pytest.raises(SpaceModelMismatch, match="does not reproduce the vectors stored there"):
            await memory.recaller.recall(1, 10, "pizza tonight?")
        await memory.capture.write([message(99, "a new message")])
        assert memory.capture.failures  # not written with the wrong model
        assert await memory.store.count_vectors(space.id, 1, 10) == 12
    finally:
        await memory.close()

    memory = await Memory.open(settings(first), start_capture=False)  # the right folder again: all fine
    try:
        assert await memory.recaller.recall(1, 10, "pizza tonight?")
    finally:
        await memory.close()


def test_a_custom_model_is_a_space_of_its_own(make_settings, tiny_qwen3_dir):
    custom = {"model": "acme/chat-embedder", "path": str(tiny_qwen3_dir), "dimension": 64, "pooling": "lasttoken"}
    settings = make_settings(profile="custom", custom_model=custom)
    space = settings.space
    assert space.model == "acme/chat-embedder" and space.dimension == 64 and space.padding_side == "left"
    assert space.key.startswith("chat-embedder-64-")
    assert space.key != make_settings().space.key
    target = make_settings(migration={"target_profile": "custom", "target_custom_model": custom})
    assert target.memory.migration.target().embedding.key == space.key


def test_a_custom_profile_without_a_declared_model_names_what_is_missing(make_settings):
    from qwen3_memory.errors import SettingsError

    with pytest.raises(SettingsError, match="custom_model.model is empty"):
        make_settings(profile="custom")
    with pytest.raises(SettingsError, match="custom_model.dimension is missing"):
        make_settings(profile="custom", custom_model={"model": "acme/x"})
    assert CustomModel().dimension == 0
