"""Errors a user or an operator can cause; each carries the message they see.

The cogs turn these into short ephemeral replies and the command line into one line on stderr,
so the message must say what went wrong *and* what to do next.
"""

from __future__ import annotations


class UserFacingError(Exception):
    """Base of every error the project raises on purpose (never shown with a traceback)."""


class SettingsError(UserFacingError):
    """settings.json is unreadable, malformed or has an invalid value; the message names file and key."""


class ModelUnavailable(UserFacingError):
    """A model cannot be loaded (unknown name offline, missing files, wrong architecture)."""


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
