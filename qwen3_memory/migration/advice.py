"""What an admin is told when a migration command fails: what went wrong, then what to do next.

One table for both faces. The error's own message says what went wrong; the next step names the
face's commands (``/migrate resume`` in Discord, ``python -m qwen3_memory.migration resume`` in a
terminal), so the admin cog and the command line give the same advice in their own words. A full disk
(:class:`DiskFull`, or the raw ``OSError`` 28 or SQLite "database or disk is full" behind an error) is
one message that names the file, its disk and what to free. An error that is not in the table and not a
full disk is unexpected: the faces log it instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwen3_memory.errors import EncodeOutOfMemory, ModelUnavailable, StoreLocked, UserFacingError, disk_full
from qwen3_memory.migration.backup import BackupError
from qwen3_memory.migration.jobs import JobNotFound, JobStateError
from qwen3_memory.migration.runner import MigrationFailed
from qwen3_memory.migration.strategies import StrategyRefused


@dataclass(frozen=True)
class Face:
    """How one face names its commands and the things around them, for the next-step texts."""

    command: str  # the prefix of every migration command
    scope: str  # whose migrations the admin sees
    force: str  # how to accept a strategy's risk
    other_writer: str  # who else may hold the database's write lock


SLASH_COMMANDS = Face(
    command="/migrate",
    scope="this server's",
    force="the `force` option of `/migrate start` is the --force the message mentions",
    other_writer="a `python -m qwen3_memory.migration` command?",
)
COMMAND_LINE = Face(
    command="python -m qwen3_memory.migration",
    scope="the",
    force="`migrate --force` accepts the risk",
    other_writer="the bot, or another command?",
)

# What to do next, per error class (the message itself says what went wrong).
NEXT_STEPS: dict[type[BaseException], str] = {
    JobNotFound: "`{command} status` shows {scope} latest migration.",
    JobStateError: "`{command} status` shows where {scope} migration stands.",
    StrategyRefused: "`{command} plan` shows each strategy's risks; {force}.",
    MigrationFailed: "`{command} status` shows the failing channel; `{command} resume` retries it, "
    "`{command} cancel` stops the migration.",
    EncodeOutOfMemory: "Lower memory_system.performance.batch_size or free some memory, then `{command} resume`.",
    ModelUnavailable: "Fix memory_system.migration.target_embedding_path (or pick another target profile), then "
    "run `{command} check`.",
    StoreLocked: "Another process writes to the memory database ({other_writer}): let it finish, then try again.",
    BackupError: "`{command} check` shows the free disk space.",
}


@dataclass(frozen=True)
class Advice:
    message: str  # what went wrong
    next_step: str  # what to do about it ("" when the message says it all)
    disk_full: bool = False


def next_step(error: BaseException, face: Face) -> str:
    for cls in type(error).__mro__:
        if cls in NEXT_STEPS:
            return NEXT_STEPS[cls].format(**vars(face))
    return ""


def advise(error: BaseException, face: Face) -> Advice | None:
    """The advice for an error an admin can act on; None for an unexpected one (a bug: log it)."""
    full = disk_full(error)
    if full is not None:  # its message says what to free and what to do then
        return Advice(str(full), "", disk_full=True)
    if isinstance(error, UserFacingError):
        return Advice(str(error), next_step(error, face))
    return None
