"""check and dry-run: real checks on this machine, clear failures, plans measured on a real small memory."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from qwen3_memory.backends import open_store
from qwen3_memory.memory import Memory
from qwen3_memory.migration.checks import STATUSES, Check, checks_to_dicts, render_checks, run_checks, worst_status
from qwen3_memory.migration.plan import make_plan, render_plan
from qwen3_memory.models.profiles import PROFILES, Profile
from qwen3_memory.settings import Settings
from qwen3_memory.space import EmbeddingSpace
from tests.factories import message

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on SQLite + FAISS and on Postgres

OFFLINE = PROFILES["offline_default"]
# the packaged model with a query prompt: another space (another key), the same fast model to load
PROMPTED = replace(OFFLINE.embedding, query_prompt="query: ")


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


async def _fill(memory: Memory, sizes: dict[int, int]) -> None:
    """``sizes[channel] = n`` messages per channel, stored and embedded through the capture path."""
    next_id = 1
    for channel_id, n in sizes.items():
        for _ in range(n):
            await memory.capture.submit(message(next_id, f"message {next_id} about gardening and bread", 1, channel_id))
            next_id += 1
    await memory.capture.drain()
    await memory.store.flush()


@pytest.mark.slow
async def test_checks_on_this_machine_make_a_json_able_table(memory: Memory) -> None:
    await _fill(memory, {10: 3})

    checks = await run_checks(memory.settings, OFFLINE, store=memory.store)

    by_name = _by_name(checks)
    assert {"ram", "swap", "gpu", "package torch", "package transformers", "settings", "database", "model"} <= set(
        by_name
    )
    assert {"model load", "disk"} <= set(by_name)
    assert all(c.status in STATUSES for c in checks)
    assert by_name["database"].status == "pass" and by_name["model load"].status == "pass"
    assert "384-d" in by_name["model load"].detail
    table = render_checks(checks)
    rows = table.splitlines()[1:-1]
    assert len(rows) == len(checks)
    detail_column = {row.index(c.detail) for row, c in zip(rows, checks)}
    assert len(detail_column) == 1  # aligned
    assert json.loads(json.dumps(checks_to_dicts(checks)))[0].keys() == {"name", "status", "detail"}
    assert worst_status(checks) in STATUSES


async def test_missing_local_model_path_fails_naming_the_path(make_settings, tmp_path: Path) -> None:
    missing = tmp_path / "models" / "Qwen3-Embedding-0.6B"
    target = replace(OFFLINE, embedding=replace(OFFLINE.embedding, source=str(missing)))

    checks = _by_name(await run_checks(make_settings(), target))

    assert checks["model"].status == "fail" and str(missing) in checks["model"].detail
    assert checks["model load"].status == "fail"


async def test_hub_model_missing_offline_fails_with_what_to_do(make_settings, tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    checks = _by_name(await run_checks(make_settings(), PROFILES["qwen3_medium_performance"], load_model=False))

    model = checks["model"]
    assert model.status == "fail"
    assert "HF_HUB_OFFLINE" in model.detail and "embedding_path" in model.detail
    assert "model load" not in checks


@pytest.mark.slow
async def test_model_with_the_wrong_dimension_fails_the_load_check(make_settings) -> None:
    target: Profile = replace(OFFLINE, embedding=OFFLINE.embedding.with_dimension(512))

    check = _by_name(await run_checks(make_settings(), target))["model load"]

    assert check.status == "fail" and "512" in check.detail


@pytest.mark.sqlite_only  # a SQLite memory is a file, and opening it would create it
async def test_checks_before_the_first_run_warn_and_create_no_database(make_settings) -> None:
    settings: Settings = make_settings()

    checks = _by_name(await run_checks(settings, OFFLINE, load_model=False))

    assert checks["database"].status == "warn" and "nothing to migrate" in checks["database"].detail
    assert "disk" in checks
    assert not settings.database_path.exists()


async def test_checks_without_a_store_open_the_configured_one(make_settings) -> None:
    settings: Settings = make_settings()
    store = await open_store(settings)
    where = store.where
    await store.close()

    checks = _by_name(await run_checks(settings, OFFLINE, load_model=False))

    assert checks["database"].status == "pass" and where in checks["database"].detail
    assert "disk" in checks


@pytest.mark.sqlite_only  # damages the SQLite file
@pytest.mark.slow
@pytest.mark.parametrize("damage", ["header", "pages"])
async def test_damaged_database_fails_the_integrity_check(make_settings, tmp_path: Path, damage: str) -> None:
    settings: Settings = make_settings()
    memory = await Memory.open(settings, start_capture=False)
    await memory.capture.write([message(i, f"text number {i} " * 20) for i in range(1, 200)])
    await memory.close()
    copy = tmp_path / "damaged.db"
    shutil.copyfile(settings.database_path, copy)
    data = bytearray(copy.read_bytes())
    start = 0 if damage == "header" else 4096 * 2  # the file header, or b-tree pages past the schema
    data[start : start + 4096 * 3] = b"\x5a" * (4096 * 3)
    copy.write_bytes(bytes(data))
    damaged = make_settings(paths={"data_dir": str(tmp_path / "data"), "database": str(copy)})

    check = _by_name(await run_checks(damaged, OFFLINE, load_model=False))["database"]

    assert check.status == "fail"
    assert str(copy) in check.detail and "backup" in check.detail


@pytest.mark.slow
async def test_plan_orders_channels_smallest_first_with_a_measured_rate(memory: Memory) -> None:
    await _fill(memory, {30: 9, 10: 5, 20: 2})

    plan = await make_plan(memory, PROMPTED, "regenerate", benchmark_texts=16)

    assert [(c.channel_id, c.messages) for c in plan.channels] == [(20, 2), (10, 5), (30, 9)]
    assert all(c.to_migrate == c.messages and c.read_space == memory.default_space.spec.key for c in plan.channels)
    assert plan.benchmark is not None and plan.benchmark.sample == "stored messages"
    assert plan.benchmark.texts == 16 and plan.benchmark.texts_per_second > 0
    assert plan.eta_seconds is not None and plan.eta_seconds > 0
    assert plan.peak_memory_bytes > 0 and plan.disk_needed_bytes > 0
    assert [s.name for s in plan.steps] == [
        "backup",
        "dual-write",
        "backfill",
        "catch-up",
        "verify",
        "swap",
        "keep old",
    ]
    assert plan.ok
    text = render_plan(plan)
    assert text.index("  1  1      20") < text.index("  3  1      30")
    assert "texts/s" in text
    assert json.loads(json.dumps(plan.to_dict()))["total_messages"] == 16


@pytest.mark.slow
async def test_plan_scopes_to_guild_and_channels(memory: Memory) -> None:
    await _fill(memory, {10: 3, 11: 4})
    await memory.capture.submit(message(500, "another guild", guild_id=2, channel_id=99))
    await memory.capture.drain()

    plan = await make_plan(memory, PROMPTED, "regenerate", guild_id=1, channels=[11, 12], benchmark_texts=4)

    assert [(c.guild_id, c.channel_id) for c in plan.channels] == [(1, 11)]
    assert any("12" in note for note in plan.notes)


async def test_plan_names_unknown_channel_ids_instead_of_an_empty_memory(memory: Memory) -> None:
    await _fill(memory, {10: 3})

    plan = await make_plan(memory, PROMPTED, "regenerate", guild_id=1, channels=[404, 405], benchmark_texts=4)

    assert plan.channels == () and not plan.ok
    assert plan.blockers[0].startswith("unknown channel id(s) 404, 405: the memory holds no messages")
    assert not any("holds no text yet" in note for note in plan.notes)
    assert "404, 405" in render_plan(plan)


@pytest.mark.slow
async def test_plan_pad_across_models_lists_the_risk_loudly(memory: Memory) -> None:
    await _fill(memory, {10: 3})
    mpnet = EmbeddingSpace("sentence-transformers/all-mpnet-base-v2", 768)

    plan = await make_plan(memory, mpnet, "pad")

    assert any(r.startswith("DANGER: pad across different models") for r in plan.risks)
    assert plan.benchmark is None  # pad runs no model
    assert not plan.ok and plan.blockers  # and the strategy rules refuse it without force
    text = render_plan(plan)
    assert "DANGER" in text and "REFUSED" in text


@pytest.mark.slow
async def test_plan_on_an_empty_memory_measures_sample_texts_and_flags_empty_messages(memory: Memory) -> None:
    plan = await make_plan(memory, PROMPTED, "regenerate", benchmark_texts=8)
    assert plan.channels == () and plan.benchmark is not None and plan.benchmark.sample == "sample texts"

    await memory.capture.submit(message(1, "", channel_id=10))
    await memory.capture.submit(message(2, "some text", channel_id=10))
    await memory.capture.drain()
    plan = await make_plan(memory, PROMPTED, "regenerate", benchmark_texts=8)
    assert plan.channels[0].empty == 1
    assert any("no text" in r for r in plan.risks)


async def test_a_folder_with_only_onnx_weights_fails_the_check_and_says_to_declare_the_backend(make_settings, tmp_path):
    from qwen3_memory.settings import CustomModel

    folder = tmp_path / "onnx-only"
    (folder / "onnx").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "onnx" / "model.onnx").write_bytes(b"\0" * 16)
    target = CustomModel("acme/small-onnx", str(folder), 384).profile()

    checks = _by_name(await run_checks(make_settings(), target, load_model=False))

    assert checks["model"].status == "fail" and "only ONNX weights" in checks["model"].detail
    assert "backend onnx" in checks["model"].detail


def test_the_rehearsal_settings_declare_mpnet_as_a_custom_target(tmp_path):
    from qwen3_memory.rehearsal import MPNET, write_settings
    from qwen3_memory.settings import load_settings

    settings = load_settings(write_settings(tmp_path, tmp_path / "mpnet"))
    target = settings.memory.migration.target().embedding
    assert settings.space.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert target.model == MPNET and target.dimension == 768 and target.key.startswith("all-mpnet-base-v2-768-")
    assert target.load_source == str(tmp_path / "mpnet") and settings.data_dir == tmp_path
