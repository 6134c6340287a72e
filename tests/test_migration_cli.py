"""The command-line face: the old scripts' flags, exit codes, JSON output and a whole cycle."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from qwen3_memory.migration.cli import build_parser, main, translate_legacy
from tests.factories import make_unwritable, populate, write_settings

EVAL_SET = Path(__file__).parent / "data" / "eval_chat.jsonl"


@pytest.fixture
def settings_file(tmp_path, tiny_qwen3_dir) -> Path:
    path = write_settings(tmp_path / "bot", tiny_qwen3_dir)
    asyncio.run(populate(path, {(1, 10): 30, (1, 11): 20}))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_legacy_flags_map_to_subcommands():
    assert translate_legacy(["--settings", "s.json", "--check-only"]) == ["--settings", "s.json", "check"]
    assert translate_legacy(["--dry-run", "--strategy", "pad"]) == ["plan", "--strategy", "pad"]
    assert translate_legacy(["--json", "--migrate"]) == ["--json", "migrate"]
    assert translate_legacy(["--backup-path", "b"]) == ["restore", "--backup-path", "b"]


def test_missing_settings_file_is_one_line_and_exit_2(tmp_path, capsys):
    code, out, err = run(capsys, "--settings", str(tmp_path / "nope.json"), "status")
    assert code == 2 and err.count("\n") == 1 and "settings_qwen3_example.json" in err


def test_check_only_prints_a_table_and_json(settings_file, capsys):
    code, out, _ = run(capsys, "--settings", str(settings_file), "--check-only", "--no-model-load")
    assert code == 0 and "PASS" in out and "overall:" in out
    code, out, _ = run(capsys, "--settings", str(settings_file), "--json", "check")
    checks = json.loads(out)
    assert {c["status"] for c in checks} <= {"pass", "warn", "fail"}
    model_check = [c for c in checks if "64" in c["detail"] and c["status"] == "pass"]
    assert model_check, "the real output dimension of the target model is reported"


def test_dry_run_lists_channels_smallest_first(settings_file, capsys):
    code, out, _ = run(capsys, "--settings", str(settings_file), "--json", "--dry-run")
    plan = json.loads(out)
    assert code == 0
    assert [c["messages"] for c in plan["channels"]] == [20, 30]


def test_migrate_verify_with_an_evaluation_set_rollback_and_finalize(settings_file, capsys):
    settings = ["--settings", str(settings_file)]
    code, out, err = run(capsys, *settings, "--migrate", "--batch-size", "8")
    assert code == 0, err
    assert "completed" in out and "backup:" in out
    code, out, _ = run(capsys, *settings, "--json", "status")
    status = json.loads(out)
    assert status["job"]["status"] == "completed" and status["done"] == 50
    code, out, _ = run(capsys, *settings, "verify", "--eval", str(EVAL_SET))
    assert code == 0 and out.count("PASS") == 2 and "labelled queries of channel" in out
    code, out, _ = run(capsys, *settings, "rollback", "--channel", "10")
    assert code == 0 and "rollback: 1 channel(s) 10" in out
    code, out, err = run(capsys, *settings, "finalize", "--yes")
    assert code == 1 and "without" not in out and "rolled_back" in err  # not every channel is swapped
    run(capsys, *settings, "swap")
    code, out, err = run(capsys, *settings, "finalize")
    assert code == 1 and "--yes" in err
    code, out, _ = run(capsys, *settings, "finalize", "--yes")
    assert code == 0 and "finalized 2 channel(s)" in out


def test_backups_list_and_restore_round_trip(settings_file, capsys):
    settings = ["--settings", str(settings_file)]
    assert run(capsys, *settings, "migrate", "--no-swap")[0] == 0
    code, out, _ = run(capsys, *settings, "--json", "backups")
    backups = json.loads(out)
    assert code == 0 and len(backups) == 1
    backup_path = backups[0]["path"]
    code, out, err = run(capsys, *settings, "--backup-path", backup_path)
    assert code == 0, err
    code, out, err = run(capsys, *settings, "status")
    assert code == 1 and "there is no migration yet" in err  # the backup was taken before the job existed


# ---------------------------------------------------------------- edges: every bad input is one clear line
@pytest.mark.parametrize("value", ["-3", "16", "2048"])
def test_a_target_dimension_the_model_cannot_give_names_the_flag_and_the_range(tmp_path, tiny_qwen3_dir, capsys, value):
    settings = write_settings(tmp_path / "bot", tiny_qwen3_dir)

    code, out, err = run(capsys, "--settings", str(settings), "plan", "--target-dimension", value)

    assert code == 2 and err.count("\n") == 1, err
    assert f"--target-dimension is {value}: it must be between 32 and 1024" in err
    assert not (tmp_path / "bot" / "data").exists()  # refused before the memory opened


@pytest.mark.parametrize(
    ("command", "value", "allowed"),
    [
        ("migrate", "-5", "between 1 and 4096"),
        ("migrate", "0", "between 1 and 4096"),
        ("migrate", "1000000", "between 1 and 4096"),
        ("migrate", "many", "between 1 and 4096"),
        ("move-store", "-5", "between 1 and 100000"),
    ],
)
def test_a_batch_size_out_of_range_names_the_flag_and_the_range(capsys, command, value, allowed):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--batch-size", value])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --batch-size" in err and allowed in err


def test_an_unwritable_data_directory_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    locked = make_unwritable(tmp_path / "locked", monkeypatch)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"memory_system": {"paths": {"data_dir": "locked/data"}}}))

    code, out, err = run(capsys, "--settings", str(settings), "status")

    assert code == 2 and err.count("\n") == 1, err
    assert f"{locked} is not writable" in err and "memory_system.paths.data_dir" in err


def test_plan_and_migrate_name_unknown_channel_ids(settings_file, capsys):
    code, out, _ = run(capsys, "--settings", str(settings_file), "plan", "--channels", "404", "405")
    assert code == 0
    assert "unknown channel id(s) 404, 405" in out and "REFUSED" in out
    assert "holds no text yet" not in out  # it holds 50 messages, none in those channels

    code, out, err = run(capsys, "--settings", str(settings_file), "migrate", "--channels", "10", "404")
    assert code == 1 and "unknown channel id(s) 404:" in err
