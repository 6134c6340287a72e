"""Shared fixtures: real settings, a real store + indexes in a temp dir, the packaged model, tiny Qwen3."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from cogs.memory.config import Settings, default_settings  # noqa: E402
from cogs.memory.memory import Memory  # noqa: E402


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings whose data lives under this test's tmp dir; keyword args set memory_system keys."""

    def make(**memory_fields) -> Settings:
        memory_fields.setdefault("paths", {"data_dir": str(tmp_path / "data")})
        return default_settings(**memory_fields)

    return make


@pytest.fixture
async def memory(make_settings) -> Memory:
    """A running Memory on the packaged all-MiniLM-L6-v2 model (offline_default profile)."""
    mem = await Memory.open(make_settings())
    yield mem
    await mem.close()


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory) -> Path:
    """A random genuine-architecture Qwen3 embedder in the real repo layout (64-d)."""
    from tests.tiny_models import build_tiny_qwen3_embedder

    return build_tiny_qwen3_embedder(tmp_path_factory.mktemp("tiny-qwen3-embedding"))


@pytest.fixture
def qwen3_settings(make_settings, tiny_qwen3_dir) -> Settings:
    """The real qwen3_medium_performance profile, pointed at the tiny model (64-d Matryoshka cut)."""
    return make_settings(
        profile="qwen3_medium_performance",
        model_overrides={"embedding_path": str(tiny_qwen3_dir), "embedding_dimension": 64},
    )
