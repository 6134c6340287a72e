"""Job and channel statuses of a migration, and the one table of which change is allowed.

The values are the strings stored in the job tables (``StrEnum`` members compare equal to them).
:class:`~qwen3_memory.migration.jobs.JobStore` checks every status change against these tables in
the transaction that makes it, so no face and no code path can, say, resume a cancelled job or
swap a channel that was never verified.
"""

from __future__ import annotations

from enum import StrEnum

from qwen3_memory.errors import UserFacingError


class JobStateError(UserFacingError):
    """The operation does not fit the job's current state (e.g. finalize before verify)."""


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"


class ChannelPhase(StrEnum):
    """Where one channel of a job stands, in the order it goes through them."""

    PENDING = "pending"
    BACKFILL = "backfill"
    CATCHUP = "catchup"
    VERIFIED = "verified"
    SWAPPED = "swapped"
    ROLLED_BACK = "rolled_back"
    FINALIZED = "finalized"
    FAILED = "failed"


UNFINISHED = (JobState.PENDING, JobState.RUNNING, JobState.PAUSED)  # a job that still holds its scope
STOPPED = (JobState.COMPLETED, JobState.CANCELLED, JobState.PAUSED)  # nothing for a runner to do
CHANNEL_DONE = (ChannelPhase.VERIFIED, ChannelPhase.SWAPPED, ChannelPhase.ROLLED_BACK, ChannelPhase.FINALIZED)

JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset(
        {JobState.PENDING, JobState.RUNNING, JobState.PAUSED, JobState.CANCELLED, JobState.FAILED}
    ),
    # running -> running: a resume of a job whose runner died
    JobState.RUNNING: frozenset(
        {JobState.RUNNING, JobState.PAUSED, JobState.CANCELLED, JobState.FAILED, JobState.COMPLETED}
    ),
    # paused -> failed: a batch that was already under way when the pause came failed
    JobState.PAUSED: frozenset({JobState.PAUSED, JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.FAILED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.CANCELLED: frozenset(),
    JobState.COMPLETED: frozenset(),
}

CHANNEL_TRANSITIONS: dict[ChannelPhase, frozenset[ChannelPhase]] = {
    ChannelPhase.PENDING: frozenset({ChannelPhase.BACKFILL}),
    ChannelPhase.BACKFILL: frozenset({ChannelPhase.CATCHUP, ChannelPhase.FAILED}),
    ChannelPhase.CATCHUP: frozenset({ChannelPhase.VERIFIED, ChannelPhase.FAILED}),
    ChannelPhase.VERIFIED: frozenset({ChannelPhase.SWAPPED}),
    ChannelPhase.SWAPPED: frozenset({ChannelPhase.ROLLED_BACK, ChannelPhase.FINALIZED}),
    ChannelPhase.ROLLED_BACK: frozenset({ChannelPhase.SWAPPED}),
    ChannelPhase.FINALIZED: frozenset(),
    ChannelPhase.FAILED: frozenset({ChannelPhase.CATCHUP}),  # a resume retries from the catch-up
}


def check_job_transition(job_id: int, current: str, new: str) -> None:
    """Raise :class:`JobStateError` unless a job may go from ``current`` to ``new``."""
    if JobState(new) not in JOB_TRANSITIONS[JobState(current)]:
        raise JobStateError(f"migration #{job_id} is {current}; it cannot become {new}")


def check_channel_transition(job_id: int, channel_id: int, current: str, new: str) -> None:
    """Raise :class:`JobStateError` unless a channel of a job may go from ``current`` to ``new``."""
    if current != new and ChannelPhase(new) not in CHANNEL_TRANSITIONS[ChannelPhase(current)]:
        raise JobStateError(f"channel {channel_id} of migration #{job_id} is {current}; it cannot become {new}")
