"""One table of advice for failed migration commands, worded for each face."""

from __future__ import annotations

import errno

from cogs.migration.errors import known_error_text
from qwen3_memory.errors import StoreLocked
from qwen3_memory.migration.advice import COMMAND_LINE, NEXT_STEPS, SLASH_COMMANDS, advise
from qwen3_memory.migration.jobs import JobNotFound
from qwen3_memory.migration.runner import MigrationFailed
from qwen3_memory.migration.strategies import StrategyRefused


def test_both_faces_give_the_same_advice_in_their_own_commands():
    error = MigrationFailed("channel 10 failed verification")

    slash, terminal = advise(error, SLASH_COMMANDS), advise(error, COMMAND_LINE)

    assert slash.message == terminal.message == "channel 10 failed verification"
    assert "`/migrate resume` retries it" in slash.next_step
    assert "`python -m qwen3_memory.migration resume` retries it" in terminal.next_step
    assert slash.next_step.replace("/migrate", "X") == terminal.next_step.replace(
        "python -m qwen3_memory.migration", "X"
    )


def test_every_next_step_names_only_placeholders_a_face_fills():
    for error_class, template in NEXT_STEPS.items():
        for face in (SLASH_COMMANDS, COMMAND_LINE):
            assert "{" not in template.format(**vars(face)), error_class


def test_subclasses_get_their_parents_advice_and_unexpected_errors_get_none():
    class NarrowRefusal(StrategyRefused):
        pass

    assert "plan` shows each strategy's risks" in advise(NarrowRefusal("no"), COMMAND_LINE).next_step
    assert advise(KeyError("bug"), SLASH_COMMANDS) is None
    assert advise(OSError(errno.EACCES, "denied"), SLASH_COMMANDS) is None


def test_a_full_disk_is_advice_without_a_command():
    advice = advise(OSError(errno.ENOSPC, "No space left on device", "/data/backups"), COMMAND_LINE)
    assert advice.disk_full and advice.next_step == ""
    assert advice.message.startswith("the disk is full: /data/backups could not be written (the disk mounted at /")
    assert "Free space on that disk" in advice.message


def test_the_cog_renders_the_advice_with_its_icons():
    assert known_error_text(JobNotFound("no migration #9 in this server")) == (
        "⚠️ no migration #9 in this server\n➡️ `/migrate status` shows this server's latest migration."
    )
    assert "(a `python -m qwen3_memory.migration` command?)" in known_error_text(StoreLocked("locked"))
    assert known_error_text(RuntimeError("bug")) is None


def test_the_command_line_prints_the_message_then_the_next_step(tmp_path, capsys):
    from qwen3_memory.migration.cli import main

    settings = tmp_path / "settings.json"
    settings.write_text('{"memory_system": {"paths": {"data_dir": "%s"}}}' % (tmp_path / "data"))

    assert main(["--settings", str(settings), "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: there is no migration yet")
    assert "next: `python -m qwen3_memory.migration status` shows the latest migration." in err
