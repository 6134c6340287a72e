"""settings.json: the example loads, every bad input is one SettingsError naming the file and the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qwen3_memory.errors import SettingsError
from qwen3_memory.models.profiles import QWEN3_EMBEDDING
from qwen3_memory.settings import (
    DIMENSION_KEYS,
    PROFILES,
    RANGES,
    MemorySystem,
    MigrationSettings,
    ModelOverrides,
    load_settings,
    resolve_profile,
)
from qwen3_memory.space import qwen3_query_prompt
from tests.factories import make_unwritable

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "settings_qwen3_example.json"


def write(tmp_path: Path, content, name: str = "settings.json") -> Path:
    """Write ``content`` (a JSON value, or raw text when a str) to a settings file and return its path."""
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2), encoding="utf-8")
    return path


def settings_error(path: Path) -> SettingsError:
    """Load ``path`` expecting exactly one SettingsError; check it is presentable (one line, no chained traceback)."""
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    err = info.value
    message = str(err)
    assert str(path) in message, f"the message must name the file: {message}"
    assert "\n" not in message, f"the message must be one line: {message!r}"
    assert err.__cause__ is None, "a settings error is not chained to the exception that revealed it"
    assert err.__context__ is None or err.__suppress_context__, "no 'During handling...' traceback"
    return err


def memory_system(**keys) -> dict:
    return {"memory_system": keys}


# ----------------------------------------------------------------------------------------------- good files


def test_the_example_settings_file_loads():
    settings = load_settings(EXAMPLE)

    assert settings.memory.profile == "qwen3_medium_performance"
    assert settings.space.model == QWEN3_EMBEDDING
    assert settings.space.dimension == 1024
    assert settings.space.pooling == "lasttoken"
    assert settings.space.query_prompt == qwen3_query_prompt()
    assert settings.batch_size == PROFILES["qwen3_medium_performance"].batch_size  # 0: the profile's
    assert settings.source == EXAMPLE.resolve()


def test_an_empty_memory_system_means_every_default(tmp_path):
    settings = load_settings(write(tmp_path, memory_system()))

    assert settings.memory.profile == "offline_default"
    assert settings.memory.recall.k == 5
    assert settings.memory.hardware_detection.fallback_to_cpu is True


def test_keys_starting_with_an_underscore_are_comments(tmp_path):
    path = write(tmp_path, {"_comment": "top", "memory_system": {"_note": "x", "performance": {"_why": 1}}})

    assert load_settings(path).memory.performance.batch_size == 0


# ----------------------------------------------------------------------------------------------- unreadable


def test_invalid_json_names_the_file_line_and_column(tmp_path):
    path = write(tmp_path, '{\n  "memory_system": {\n    "profile": "offline_default",\n  }\n}\n')

    message = str(settings_error(path))

    assert "invalid JSON" in message
    assert "line 4, column 3" in message  # the '}' after the trailing comma


def test_a_missing_file_says_how_to_create_one(tmp_path):
    message = str(settings_error(tmp_path / "settings.json"))

    assert "not found" in message
    assert "settings_qwen3_example.json" in message


@pytest.mark.parametrize("top", ["[1, 2]", '"memory_system"', "42", "null"])
def test_the_top_level_must_be_an_object(tmp_path, top):
    message = str(settings_error(write(tmp_path, top)))

    assert "top level must be an object" in message


def test_the_memory_system_key_is_required(tmp_path):
    assert "'memory_system'" in str(settings_error(write(tmp_path, {})))


# ----------------------------------------------------------------------------------------------- unknown keys


def test_an_unknown_top_level_key_is_named(tmp_path):
    message = str(settings_error(write(tmp_path, {"memory_system": {}, "memory_sytem": {}})))

    assert "unknown key 'memory_sytem'" in message


def test_an_unknown_key_in_memory_system_is_named(tmp_path):
    message = str(settings_error(write(tmp_path, memory_system(profil="offline_default"))))

    assert "unknown key memory_system.profil" in message
    assert "profile" in message.split("known keys:")[1]


def test_an_unknown_nested_key_is_named_with_its_full_path_and_the_known_keys(tmp_path):
    message = str(settings_error(write(tmp_path, memory_system(performance={"batchsize": 32}))))

    assert "unknown key memory_system.performance.batchsize" in message
    assert "known keys: batch_size, max_concurrent_queries" in message


# ----------------------------------------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    ("keys", "where", "expected"),
    [
        ({"performance": {"batch_size": "32"}}, "memory_system.performance.batch_size", 'an integer, got "32"'),
        ({"cpu_only_mode": 1}, "memory_system.cpu_only_mode", "true or false, got 1"),
        ({"performance": {"batch_size": True}}, "memory_system.performance.batch_size", "an integer, got true"),
        ({"memory_threshold_mb": 4096.5}, "memory_system.memory_threshold_mb", "an integer, got 4096.5"),
        ({"recall": {"min_score": "high"}}, "memory_system.recall.min_score", 'a number or null, got "high"'),
        ({"profile": None}, "memory_system.profile", "a string, got null"),
    ],
    ids=["string-for-int", "int-for-bool", "bool-for-int", "float-for-int", "string-for-float", "null-for-string"],
)
def test_a_wrong_type_names_the_key_and_the_expected_type(tmp_path, keys, where, expected):
    message = str(settings_error(write(tmp_path, memory_system(**keys))))

    assert f"{where} must be {expected}" in message


def test_a_section_that_is_not_an_object_is_named(tmp_path):
    message = str(settings_error(write(tmp_path, memory_system(performance=[64]))))

    assert "memory_system.performance must be an object" in message


def test_a_number_is_accepted_where_a_float_is_expected(tmp_path):
    assert load_settings(write(tmp_path, memory_system(recall={"min_score": 0}))).memory.recall.min_score == 0.0


# ----------------------------------------------------------------------------------------------- impossible values


@pytest.mark.parametrize(
    ("keys", "where", "says"),
    [
        ({"hardware_detection": {"gpu_memory_limit_mb": -1}}, "hardware_detection.gpu_memory_limit_mb", "0 (no cap)"),
        ({"performance": {"batch_size": 100000}}, "performance.batch_size", "between 1 and 4096"),
        ({"performance": {"max_concurrent_queries": 0}}, "performance.max_concurrent_queries", "between 1 and 256"),
        ({"profile": "qwen4_turbo"}, "profile", "choose one of: qwen3_medium_performance"),
        ({"permissions": {"admin_permission": "owner"}}, "permissions.admin_permission", "manage_guild"),
        ({"migration": {"target_profile": "nope"}}, "migration.target_profile", "choose one of"),
        ({"backend": "mysql"}, "backend", "'sqlite' or 'postgres'"),
        ({"memory_threshold_mb": 10}, "memory_threshold_mb", "at least 256"),
        ({"recall": {"k": 5, "candidates": 3}}, "recall.candidates", ">= recall.k"),
        (
            {"profile": "legacy_all_minilm_l6", "model_overrides": {"embedding_dimension": 128}},
            "model_overrides.embedding_dimension",
            "only its own dimension 384",
        ),
        (
            {"profile": "qwen3_medium_performance", "model_overrides": {"embedding_dimension": 1536}},
            "model_overrides.embedding_dimension",
            "between 32 and 1024",
        ),
        (
            {"profile": "qwen3_high_performance", "model_overrides": {"embedding_dimension": 16}},
            "model_overrides.embedding_dimension",
            "between 32 and 1024",
        ),
        # numbers out of their documented range (RANGES), infinite or not a number
        ({"recall": {"user_cooldown_seconds": float("inf")}}, "recall.user_cooldown_seconds", "a finite number"),
        ({"recall": {"min_score": float("nan")}}, "recall.min_score", "a finite number"),
        ({"recall": {"user_cooldown_seconds": 1e9}}, "recall.user_cooldown_seconds", "between 0 and 86400"),
        ({"index": {"hnsw_ef_search": 10**20}}, "index.hnsw_ef_search", "between 16 and 4096"),
        ({"index": {"approximate_threshold": 10**30}}, "index.approximate_threshold", "between 1000 and 1000000000"),
        ({"recall": {"candidates": 10**9}}, "recall.candidates", "between 1 and 1000"),
        ({"capture": {"min_length": -1}}, "capture.min_length", "between 0 and 4000"),
        ({"migration": {"verify_sample": 10**12}}, "migration.verify_sample", "between 1 and 100000"),
        (
            {"profile": "qwen3_medium_performance", "model_overrides": {"embedding_dimension": -3}},
            "model_overrides.embedding_dimension",
            "between 32 and 1024",
        ),
        ({"migration": {"target_embedding_dimension": -3}}, "migration.target_embedding_dimension", "between 32"),
        ({"migration": {"target_embedding_dimension": 16}}, "migration.target_embedding_dimension", "and 1024"),
    ],
    ids=[
        "negative-gpu-limit",
        "huge-batch",
        "zero-concurrency",
        "unknown-profile",
        "unknown-admin-permission",
        "unknown-target-profile",
        "unknown-backend",
        "tiny-memory-threshold",
        "candidates-below-k",
        "matryoshka-on-non-matryoshka",
        "qwen3-dimension-above-1024",
        "qwen3-dimension-below-32",
        "infinite-cooldown",
        "nan-score",
        "cooldown-of-31-years",
        "ef-search-1e20",
        "threshold-1e30",
        "a-billion-candidates",
        "negative-min-length",
        "huge-verify-sample",
        "negative-dimension",
        "negative-target-dimension",
        "target-dimension-below-32",
    ],
)
def test_an_impossible_value_names_the_key_and_the_allowed_values(tmp_path, keys, where, says):
    message = str(settings_error(write(tmp_path, memory_system(**keys))))

    assert f"memory_system.{where}" in message
    assert says in message


def test_every_numeric_setting_has_a_documented_range_that_holds_its_default():
    numeric: dict[str, float] = {}

    def walk(section, prefix: str) -> None:
        for name, value in vars(section).items():
            key = f"{prefix}{name}"
            if hasattr(value, "__dataclass_fields__"):
                walk(value, f"{key}.")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                numeric[key] = value
            elif value is None:  # an optional number (null: a default computed elsewhere)
                numeric[key] = 0

    walk(MemorySystem(), "")

    assert set(numeric) == set(RANGES) | set(DIMENSION_KEYS)
    assert all(RANGES[key].allows(value) for key, value in numeric.items() if key in RANGES)


def test_a_dimension_the_model_cannot_give_is_refused_when_resolving_a_profile():
    with pytest.raises(SettingsError, match=r"^--target-dimension is -3: it must be between 32 and 1024"):
        resolve_profile("qwen3_medium_performance", ModelOverrides(embedding_dimension=-3), "--target-dimension")
    with pytest.raises(SettingsError, match="model_overrides.embedding_dimension is 16: .*between 32 and 1024"):
        resolve_profile("qwen3_medium_performance", ModelOverrides(embedding_dimension=16))
    with pytest.raises(SettingsError, match="between 1 and 384 for sentence-transformers/all-MiniLM-L6-v2"):
        resolve_profile("legacy_all_minilm_l6", ModelOverrides(embedding_dimension=500), force=True)
    assert resolve_profile("qwen3_medium_performance", ModelOverrides(embedding_dimension=32)).embedding.dimension == 32


@pytest.mark.parametrize("dimension", [128, 500])
def test_settings_flags_and_eval_refuse_a_cut_of_a_non_matryoshka_model_alike(tmp_path, dimension):
    """One rule: the settings key, the --target-dimension flag and eval --dimension say the same thing."""
    import argparse

    from qwen3_memory.evaluation import _settings as eval_settings
    from qwen3_memory.evaluation import add_arguments

    expected = "is not a Matryoshka model, so only its own dimension 384"
    in_file = settings_error(
        write(
            tmp_path,
            memory_system(
                migration={"target_profile": "legacy_all_minilm_l6", "target_embedding_dimension": dimension}
            ),
        )
    )
    assert expected in str(in_file)
    with pytest.raises(SettingsError, match=expected):
        MigrationSettings(target_profile="legacy_all_minilm_l6").target(dimension=dimension, dimension_flag="--x")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--dataset", "x", "--profile", "legacy_all_minilm_l6", "--dimension", str(dimension)])
    with pytest.raises(SettingsError, match=expected):
        eval_settings(args, tmp_path)
    forced = MigrationSettings(target_profile="legacy_all_minilm_l6").target(dimension=128, force=True)
    assert forced.embedding.dimension == 128 and forced.embedding.own_dimension == 384


def test_a_json_file_nested_too_deeply_is_a_settings_error_naming_the_file(tmp_path):
    depth = 100_000
    message = str(settings_error(write(tmp_path, '{"memory_system": ' + "[" * depth + "]" * depth + "}")))

    assert "nested too deeply" in message


def test_an_unwritable_data_directory_is_named_with_what_to_do(tmp_path, monkeypatch):
    locked = make_unwritable(tmp_path / "locked", monkeypatch)
    path = write(tmp_path, memory_system(paths={"data_dir": "locked/data"}))

    with pytest.raises(SettingsError) as info:
        load_settings(path).check_writable()

    message = str(info.value)
    assert "\n" not in message
    assert f"{locked} is not writable" in message
    assert "memory_system.paths.data_dir" in message and "chmod" in message


def test_a_writable_data_directory_passes_and_creates_nothing(tmp_path):
    settings = load_settings(write(tmp_path, memory_system(paths={"data_dir": "data"})))

    settings.check_writable()

    assert not settings.data_dir.exists()


def test_the_models_own_dimension_is_allowed_on_a_non_matryoshka_profile(tmp_path):
    path = write(tmp_path, memory_system(profile="legacy_all_minilm_l6", model_overrides={"embedding_dimension": 384}))

    assert load_settings(path).space.dimension == 384


# ----------------------------------------------------------------------------------------------- profiles


def test_a_qwen3_profile_resolves_with_a_matryoshka_dimension_and_a_local_model(tmp_path):
    model_dir = tmp_path / "models" / "qwen3"
    model_dir.mkdir(parents=True)
    path = write(
        tmp_path,
        memory_system(
            profile="qwen3_high_performance",
            model_overrides={"embedding_path": str(model_dir), "embedding_dimension": 256, "reranker_path": "/r"},
        ),
    )

    settings = load_settings(path)

    assert settings.space.dimension == 256
    assert settings.space.model == QWEN3_EMBEDDING  # still Qwen3's space, just cut to 256
    assert settings.space.load_source == str(model_dir)
    assert settings.space.max_seq_length == 1024  # the high-performance profile's context
    assert settings.reranker is not None and settings.reranker.load_source == "/r"
    assert settings.batch_size == PROFILES["qwen3_high_performance"].batch_size


def test_a_matryoshka_cut_is_another_space_but_a_new_model_location_is_not():
    native = resolve_profile("qwen3_medium_performance").embedding
    cut = resolve_profile("qwen3_medium_performance", ModelOverrides(embedding_dimension=256)).embedding
    moved = resolve_profile("qwen3_medium_performance", ModelOverrides(embedding_path="/models/q3")).embedding

    assert cut.key != native.key
    assert moved.key == native.key and moved == native


def test_an_explicit_batch_size_wins_over_the_profiles(tmp_path):
    path = write(tmp_path, memory_system(profile="qwen3_medium_performance", performance={"batch_size": 8}))

    assert load_settings(path).batch_size == 8


def test_resolving_an_unknown_profile_is_a_settings_error():
    with pytest.raises(SettingsError, match="unknown profile 'nope'"):
        resolve_profile("nope")


def test_device_policy_follows_the_hardware_settings(tmp_path):
    path = write(
        tmp_path,
        memory_system(cpu_only_mode=True, hardware_detection={"gpu_memory_limit_mb": 2048, "fallback_to_cpu": False}),
    )

    policy = load_settings(path).device_policy

    assert (policy.cpu_only, policy.gpu_memory_limit_mb, policy.fallback_to_cpu) == (True, 2048, False)


# ----------------------------------------------------------------------------------------------- paths


def test_relative_paths_are_relative_to_the_settings_file_not_the_working_directory(tmp_path, monkeypatch):
    config_dir = tmp_path / "bot"
    config_dir.mkdir()
    path = write(config_dir, memory_system(paths={"data_dir": "state", "database": "db/mem.db"}))
    monkeypatch.chdir(tmp_path)  # the bot started from elsewhere

    settings = load_settings(Path("bot") / "settings.json")

    assert settings.data_dir == config_dir.resolve() / "state"
    assert settings.database_path == config_dir.resolve() / "db" / "mem.db"
    assert settings.vectors_dir == config_dir.resolve() / "state" / "memory" / "vectors"
    assert settings.backups_dir == config_dir.resolve() / "state" / "backups"
    assert path.exists()


def test_absolute_paths_are_kept(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    path = write(tmp_path, memory_system(paths={"data_dir": "data", "vectors_dir": str(elsewhere)}))

    assert load_settings(path).vectors_dir == elsewhere


def test_a_relative_model_directory_is_relative_to_the_settings_file(tmp_path, monkeypatch):
    config_dir = tmp_path / "bot"
    (config_dir / "models" / "qwen3").mkdir(parents=True)
    (config_dir / "models" / "reranker").mkdir(parents=True)
    overrides = {"embedding_path": "models/qwen3", "reranker_path": "models/reranker"}
    write(config_dir, memory_system(profile="qwen3_medium_performance", model_overrides=overrides))
    monkeypatch.chdir(tmp_path)

    settings = load_settings(Path("bot") / "settings.json")

    assert Path(settings.space.load_source) == config_dir.resolve() / "models" / "qwen3"
    assert settings.reranker is not None
    assert Path(settings.reranker.load_source) == config_dir.resolve() / "models" / "reranker"


def test_a_hub_id_as_model_path_is_left_alone(tmp_path):
    path = write(
        tmp_path, memory_system(profile="qwen3_medium_performance", model_overrides={"embedding_path": "me/my-qwen3"})
    )

    assert load_settings(path).space.load_source == "me/my-qwen3"


# ----------------------------------------------------------------------------------------------- never a traceback


def test_the_command_line_reports_a_bad_settings_file_in_one_line_without_a_traceback(tmp_path):
    path = write(tmp_path, memory_system(performance={"batchsize": 32}))

    result = subprocess.run(
        [sys.executable, "-m", "qwen3_memory.migration", "--settings", str(path), "status"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and "memory_system.performance.batchsize" in lines[0]


def test_recall_min_score_is_null_by_default_and_a_number_overrides_every_space(tmp_path):
    """null (the default): each space's calibrated floor; a number: that floor for every space."""
    assert load_settings(write(tmp_path, memory_system())).memory.recall.min_score is None
    assert load_settings(write(tmp_path, memory_system(recall={"min_score": None}))).memory.recall.min_score is None
    assert load_settings(write(tmp_path, memory_system(recall={"min_score": 0.3}))).memory.recall.min_score == 0.3
    assert "must be a number or null" in str(settings_error(write(tmp_path, memory_system(recall={"min_score": "x"}))))
