"""What an admin sees for an error they can act on: the message, then the next step."""

from __future__ import annotations

import errno

from cogs.migration.embeds import MESSAGE_LIMIT
from qwen3_memory.errors import EncodeOutOfMemory, ModelUnavailable, StoreLocked, UserFacingError
from qwen3_memory.migration.backup import BackupError
from qwen3_memory.migration.jobs import JobNotFound, JobStateError
from qwen3_memory.migration.runner import MigrationFailed
from qwen3_memory.migration.strategies import StrategyRefused

# What to do next, per error class (the message itself says what went wrong).
NEXT_STEPS: dict[type[BaseException], str] = {
    JobNotFound: "`/migrate status` shows this server's latest migration.",
    JobStateError: "`/migrate status` shows where this server's migration stands.",
    StrategyRefused: "`/migrate plan` shows each strategy's risks; the `force` option of `/migrate start` is the "
    "--force the message mentions.",
    MigrationFailed: "`/migrate status` shows the failing channel; `/migrate resume` retries it, "
    "`/migrate cancel` stops the migration.",
    EncodeOutOfMemory: "Lower memory_system.performance.batch_size or free some memory, then `/migrate resume`.",
    ModelUnavailable: "Fix memory_system.migration.target_embedding_path (or pick another target profile), then "
    "run `/migrate check`.",
    StoreLocked: "Another process writes to the memory database (a `python -m qwen3_memory.migration` command?): "
    "let it finish, then try again.",
    BackupError: "`/migrate check` shows the free disk space.",
}


def next_step(error: BaseException) -> str:
    for cls in type(error).__mro__:
        if cls in NEXT_STEPS:
            return NEXT_STEPS[cls]
    return ""


def known_error_text(error: BaseException) -> str | None:
    """The message an admin sees for an error they can act on; None for an unexpected one."""
    if isinstance(error, UserFacingError):
        hint = next_step(error)
        text = f"⚠️ {error}" + (f"\n➡️ {hint}" if hint else "")
    elif isinstance(error, OSError) and error.errno == errno.ENOSPC:
        text = (
            f"💾 The disk is full ({error.filename or 'no space left on device'}). Nothing more was written; free "
            "some space (or move memory_system.paths.backups_dir to a larger disk), then try again."
        )
    else:
        return None
    return text[:MESSAGE_LIMIT]
