"""Errors a user or an operator can cause; each carries the message they see.

The cogs turn these into short ephemeral replies and the command line into one line on stderr,
so the message must say what went wrong *and* what to do next.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator

from qwen3_memory.units import human_bytes


class UserFacingError(Exception):
    """Base of every error the project raises on purpose (never shown with a traceback)."""


class SettingsError(UserFacingError):
    """settings.json is unreadable, malformed or has an invalid value; the message names file and key."""


class ModelUnavailable(UserFacingError):
    """A model cannot be loaded (unknown name offline, missing files, wrong architecture)."""


class SpaceModelMismatch(ModelUnavailable):
    """The model loaded for a space is not the model whose vectors the space holds (a space never mixes models)."""


class DimensionMismatch(UserFacingError):
    """Vectors of one dimension were offered to a space or index of another."""


class StoreLocked(UserFacingError):
    """The database stayed locked by another process past the busy timeout."""


class StoreError(UserFacingError):
    """The database is damaged, from a newer version, or otherwise unusable."""


class EncodeOutOfMemory(UserFacingError):
    """Encoding ran out of memory even at the smallest batch (and CPU fallback was not allowed)."""


class ReadSpaceMoved(StoreError):
    """The channel's read pointer moved (a swap or rollback by another process) between resolving it and searching."""


class DiskFull(UserFacingError):
    """A write found no space left: the message names the file or database, the disk it lives on and what to
    free. ``path`` is that file (or the redacted database address on a server); ``mount`` its disk's mount point."""

    def __init__(
        self, problem: str, remedy: str, path: str = "", mount: str = "", free: str = "", then: str = "try again"
    ) -> None:
        super().__init__(f"{problem}. {remedy}, then {then}")
        self.problem = problem  # what filled up, where
        self.remedy = remedy  # what to free
        self.path = path
        self.mount = mount
        self.free = free

    def then(self, next_step: str) -> str:
        """The message with another next step than "try again" (``next_step`` follows "then")."""
        return f"{self.problem}. {self.remedy}, then {next_step}"


SQLITE_FULL = 13  # sqlite3's "database or disk is full"
_NO_SPACE_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SERVER_DISK_FULL = "53100"  # PostgreSQL's SQLSTATE disk_full


def mount_point(path: str | os.PathLike[str]) -> str:
    """The mount point of the disk that holds ``path`` (or would hold it, when it does not exist yet)."""
    current = os.path.abspath(path)
    while not os.path.ismount(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current


def _no_space(exc: BaseException) -> str | None:
    """'file' when ``exc`` is the file system's "no space left", 'server' for a database server's, else None."""
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS:
        return "file"
    if isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "database or disk is full" in str(exc)
    ):
        return "file"
    if getattr(exc, "sqlstate", None) == _SERVER_DISK_FULL:
        return "server"
    return None


def disk_full(exc: BaseException, where: str | os.PathLike[str] | None = None) -> DiskFull | None:
    """The :class:`DiskFull` that ``exc`` (or an error it was raised from) means, or None when it is not a full
    disk. ``where``: the file or database written, when the error does not name one (SQLite's never does)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        if isinstance(error, DiskFull):
            return error
        kind = _no_space(error)
        if kind == "server":
            target = str(where or "the database server")
            return DiskFull(
                f"the database server's disk is full ({target}): nothing more was written",
                "Free space on the server (or grow its volume)",
                target,
            )
        if kind == "file":
            target = str(getattr(error, "filename", None) or where or os.getcwd())
            mount = mount_point(target)
            free = _free(mount)
            return DiskFull(
                f"the disk is full: {target} could not be written (the disk mounted at {mount}, {free} free)",
                "Free space on that disk (old backups and migration logs are the usual candidates) or move the "
                "memory's paths to a larger disk",
                target,
                mount,
                free,
            )
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _free(mount: str) -> str:
    try:
        return human_bytes(shutil.disk_usage(mount).free)
    except OSError:
        return "unknown space"


@contextlib.contextmanager
def disk_full_is_a_warning(logger: logging.Logger, message: str, *args: object) -> Iterator[None]:
    """Around a step that may be skipped (saving what can be rebuilt, releasing what expires): a full disk
    becomes one warning line, ``message % args``; any other error still raises."""
    try:
        yield
    except Exception as exc:
        if disk_full(exc) is None:
            raise
        logger.warning(message, *args)
