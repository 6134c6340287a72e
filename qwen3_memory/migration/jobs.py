"""Persistent migration jobs: the job row, one row per channel with its cursor, and an event log.

Every status change is one transaction, checked against :mod:`qwen3_memory.migration.status`'s
transition tables in the same statement, so after a crash the tables say exactly where each
channel stood (which phase, and the last message id whose target vector is committed) and no
path can make a change the tables forbid.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from qwen3_memory.backends import Store
from qwen3_memory.errors import UserFacingError
from qwen3_memory.migration.status import (
    CHANNEL_DONE,
    CHANNEL_TRANSITIONS,
    JOB_TRANSITIONS,
    STOPPED,
    UNFINISHED,
    ChannelPhase,
    JobState,
    JobStateError,
    check_channel_transition,
    check_job_transition,
)

# Short names for the statuses, as the engine and the faces write them (``J.RUNNING``).
PENDING, RUNNING, PAUSED = JobState.PENDING, JobState.RUNNING, JobState.PAUSED
CANCELLED, FAILED, COMPLETED = JobState.CANCELLED, JobState.FAILED, JobState.COMPLETED
BACKFILL, CATCHUP, VERIFIED = ChannelPhase.BACKFILL, ChannelPhase.CATCHUP, ChannelPhase.VERIFIED
SWAPPED, ROLLED_BACK, FINALIZED = ChannelPhase.SWAPPED, ChannelPhase.ROLLED_BACK, ChannelPhase.FINALIZED
__all__ = [
    "CHANNEL_DONE",
    "STOPPED",
    "UNFINISHED",
    "ChannelJob",
    "ChannelPhase",
    "Job",
    "JobNotFound",
    "JobState",
    "JobStateError",
    "JobStore",
]


class JobNotFound(UserFacingError):
    """No migration with that id (in this guild)."""


def _sources(table: dict, new: str) -> list[str]:
    """The statuses from which ``new`` may be reached, per a transition table."""
    return [str(old) for old, targets in table.items() if new in targets]


@dataclass
class Job:
    id: int
    source_space_id: int
    target_space_id: int
    strategy: str
    status: JobState
    guild_id: int | None
    options: dict[str, Any]
    backup_path: str | None
    log_path: str | None
    error: str | None
    created_at: float
    updated_at: float


@dataclass
class ChannelJob:
    migration_id: int
    guild_id: int
    channel_id: int
    position: int
    status: ChannelPhase
    cursor: int
    total: int
    done: int
    error: str | None
    report: dict[str, Any] | None = field(default=None)
    started_at: float | None = None
    finished_at: float | None = None


_JOB_COLUMNS = (
    "id, source_space_id, target_space_id, strategy, status, guild_id, options, backup_path, log_path, "
    "error, created_at, updated_at"
)
_CHANNEL_COLUMNS = (
    "migration_id, guild_id, channel_id, position, status, cursor, total, done, error, report, started_at, finished_at"
)


def _job(row) -> Job:
    values = list(row)
    values[4] = JobState(values[4])
    values[6] = json.loads(values[6] or "{}")
    return Job(*values)


def _channel(row) -> ChannelJob:
    values = list(row)
    values[4] = ChannelPhase(values[4])
    values[9] = json.loads(values[9]) if values[9] else None
    return ChannelJob(*values)


async def _refuse_channel_change(db: Any, job_id: int, guild_id: int, channel_id: int, status: str | None) -> None:
    """Why an UPDATE of a channel row changed nothing: not part of the job (:class:`JobNotFound`), or a status
    change the transition table forbids (:class:`JobStateError`)."""
    row = await (
        await db.execute(
            "SELECT status FROM migration_channels WHERE migration_id = ? AND guild_id = ? AND channel_id = ?",
            (job_id, guild_id, channel_id),
        )
    ).fetchone()
    if row is None:
        raise JobNotFound(f"channel {channel_id} is not part of migration #{job_id}")
    if status is not None:
        check_channel_transition(job_id, channel_id, row[0], status)


class JobStore:
    """Reads and writes the migration tables through the memory store's connection.

    The SQL is portable (``?`` placeholders, ``RETURNING``, ``ON CONFLICT``): SQLite runs it as is and
    the Postgres store translates the placeholders, so one job table serves both backends.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(
        self,
        source_space_id: int,
        target_space_id: int,
        strategy: str,
        guild_id: int | None,
        options: dict[str, Any],
        channels: list[tuple[int, int, int]],
    ) -> Job:
        """A new job with its channels ((guild, channel, message count), processed in the given order)."""
        now = time.time()
        async with self.store.transaction() as db:
            cur = await db.execute(
                "INSERT INTO migrations(source_space_id, target_space_id, strategy, status, guild_id, options, "
                "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                (source_space_id, target_space_id, strategy, str(PENDING), guild_id, json.dumps(options), now, now),
            )
            job_id = (await cur.fetchone())[0]
            await db.executemany(
                "INSERT INTO migration_channels(migration_id, guild_id, channel_id, position, status, total) "
                "VALUES (?,?,?,?,?,?)",
                [(job_id, g, c, pos, str(ChannelPhase.PENDING), n) for pos, (g, c, n) in enumerate(channels)],
            )
            await db.execute(
                "INSERT INTO migration_events(migration_id, at, event, detail) VALUES (?,?,?,?)",
                (job_id, now, "created", json.dumps({"strategy": strategy, "channels": len(channels)})),
            )
        return await self.get(job_id)

    async def get(self, job_id: int, guild_id: int | None = None) -> Job:
        """The job; with ``guild_id``, only if it belongs to that guild (admins never see another guild's)."""
        row = await self.store.fetchone(f"SELECT {_JOB_COLUMNS} FROM migrations WHERE id = ?", (job_id,))
        if row is None or (guild_id is not None and row[5] != guild_id):
            raise JobNotFound(f"no migration #{job_id}" + (" in this server" if guild_id is not None else ""))
        return _job(row)

    async def latest(self, guild_id: int | None = None) -> Job | None:
        if guild_id is None:
            row = await self.store.fetchone(f"SELECT {_JOB_COLUMNS} FROM migrations ORDER BY id DESC LIMIT 1")
        else:
            row = await self.store.fetchone(
                f"SELECT {_JOB_COLUMNS} FROM migrations WHERE guild_id = ? ORDER BY id DESC LIMIT 1", (guild_id,)
            )
        return _job(row) if row else None

    async def with_status(self, *statuses: str) -> list[Job]:
        rows = await self.store.fetchall(
            f"SELECT {_JOB_COLUMNS} FROM migrations WHERE status IN ({','.join('?' * len(statuses))}) ORDER BY id",
            [str(s) for s in statuses],
        )
        return [_job(r) for r in rows]

    async def channels(self, job_id: int) -> list[ChannelJob]:
        rows = await self.store.fetchall(
            f"SELECT {_CHANNEL_COLUMNS} FROM migration_channels WHERE migration_id = ? ORDER BY position", (job_id,)
        )
        return [_channel(r) for r in rows]

    async def channel(self, job_id: int, guild_id: int, channel_id: int) -> ChannelJob:
        row = await self.store.fetchone(
            f"SELECT {_CHANNEL_COLUMNS} FROM migration_channels WHERE migration_id = ? AND guild_id = ? "
            "AND channel_id = ?",
            (job_id, guild_id, channel_id),
        )
        if row is None:
            raise JobNotFound(f"channel {channel_id} is not part of migration #{job_id}")
        return _channel(row)

    async def set_status(
        self, job_id: int, status: str, error: str | None = None, *, unless: tuple[str, ...] = (), **fields: Any
    ) -> bool:
        """Change the job's status (and ``fields``) in one transaction, if the transition table allows it.

        With ``unless``, a job whose current status is one of those is left as it is (False): the caller
        lost a race with a pause or cancel. Any other forbidden change raises :class:`JobStateError`.
        Both are checked in the UPDATE itself, so two processes cannot both win.
        """
        sets = ", ".join(f"{k} = ?" for k in fields)
        allowed = [s for s in _sources(JOB_TRANSITIONS, status) if s not in unless]
        async with self.store.transaction() as db:
            cur = await db.execute(
                f"UPDATE migrations SET status = ?, error = ?, updated_at = ?{', ' + sets if sets else ''} "
                f"WHERE id = ? AND status IN ({','.join('?' * len(allowed))})",
                (str(status), error, time.time(), *fields.values(), job_id, *allowed),
            )
            if cur.rowcount == 0:
                row = await (await db.execute("SELECT status FROM migrations WHERE id = ?", (job_id,))).fetchone()
                if row is None:
                    raise JobNotFound(f"no migration #{job_id}")
                if row[0] in unless:
                    return False
                check_job_transition(job_id, row[0], status)
                return False  # pragma: no cover - the check above raises
            await db.execute(
                "INSERT INTO migration_events(migration_id, at, event, detail) VALUES (?,?,?,?)",
                (job_id, time.time(), status, error or ""),
            )
        return True

    async def update_channel(
        self, job_id: int, guild_id: int, channel_id: int, event: str | None = None, detail: str = "", **fields: Any
    ) -> None:
        """Change a channel row (cursor, done, status, ...) and log ``event``, in one transaction.

        A new ``status`` must be allowed by the channel transition table (else :class:`JobStateError`).
        """
        if "report" in fields and fields["report"] is not None:
            fields["report"] = json.dumps(fields["report"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        guard, allowed = "", []
        if "status" in fields:
            fields["status"] = str(fields["status"])
            allowed = [*_sources(CHANNEL_TRANSITIONS, fields["status"]), fields["status"]]
            guard = f" AND status IN ({','.join('?' * len(allowed))})"
        async with self.store.transaction() as db:
            if sets:
                cur = await db.execute(
                    f"UPDATE migration_channels SET {sets} WHERE migration_id = ? AND guild_id = ? AND channel_id = ?"
                    + guard,
                    (*fields.values(), job_id, guild_id, channel_id, *allowed),
                )
                if cur.rowcount == 0:
                    await _refuse_channel_change(db, job_id, guild_id, channel_id, fields.get("status"))
            if event:
                await db.execute(
                    "INSERT INTO migration_events(migration_id, at, guild_id, channel_id, event, detail) "
                    "VALUES (?,?,?,?,?,?)",
                    (job_id, time.time(), guild_id, channel_id, event, detail),
                )

    async def update_channels(
        self, job_id: int, changes: dict[tuple[int, int], dict[str, Any]], event: str | None = None
    ) -> None:
        """:meth:`update_channel` for many channels in one transaction: ``changes`` maps (guild, channel) to its
        fields (the same keys for every channel); a forbidden status change raises and changes nothing."""
        if not changes:
            return
        keys = list(next(iter(changes.values())))
        status = str(changes[next(iter(changes))]["status"]) if "status" in keys else None
        allowed = [*_sources(CHANNEL_TRANSITIONS, status), status] if status is not None else []
        guard = f" AND status IN ({','.join('?' * len(allowed))})" if allowed else ""
        rows = []
        for (g, c), fields in changes.items():
            values = [json.dumps(v) if k == "report" and v is not None else v for k, v in fields.items()]
            rows.append((*[str(v) if k == "status" else v for k, v in zip(fields, values)], job_id, g, c, *allowed))
        now = time.time()
        async with self.store.transaction() as db:
            for row, (g, c) in zip(rows, changes):
                cur = await db.execute(
                    f"UPDATE migration_channels SET {', '.join(f'{k} = ?' for k in keys)} "
                    "WHERE migration_id = ? AND guild_id = ? AND channel_id = ?" + guard,
                    row,
                )
                if cur.rowcount == 0:
                    await _refuse_channel_change(db, job_id, g, c, status)
            if event:
                await db.executemany(
                    "INSERT INTO migration_events(migration_id, at, guild_id, channel_id, event, detail) "
                    "VALUES (?,?,?,?,?,?)",
                    [(job_id, now, g, c, event, "") for g, c in changes],
                )

    async def log_event(self, job_id: int, event: str, detail: str = "") -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO migration_events(migration_id, at, event, detail) VALUES (?,?,?,?)",
                (job_id, time.time(), event, detail),
            )

    async def events(self, job_id: int, limit: int = 50) -> list[tuple[float, int | None, str, str]]:
        rows = await self.store.fetchall(
            "SELECT at, channel_id, event, detail FROM migration_events WHERE migration_id = ? ORDER BY id DESC "
            "LIMIT ?",
            (job_id, limit),
        )
        return [tuple(r) for r in reversed(rows)]

    async def put_artifact(self, job_id: int, name: str, data: bytes) -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO migration_artifacts(migration_id, name, data) VALUES (?,?,?) "
                "ON CONFLICT(migration_id, name) DO UPDATE SET data = excluded.data",
                (job_id, name, data),
            )

    async def artifact(self, job_id: int, name: str) -> bytes | None:
        row = await self.store.fetchone(
            "SELECT data FROM migration_artifacts WHERE migration_id = ? AND name = ?", (job_id, name)
        )
        return bytes(row[0]) if row else None
