"""The command-line face: the old scripts' flags, exit codes, JSON output and a whole cycle."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from qwen3_memory.migration.cli import main, translate_legacy
from tests.factories import populate, write_settings

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
