"""The migration engine: resumable per-channel jobs that move a live memory to a new embedding space.

The engine owns jobs: it creates them (after a backup), claims and runs them one channel at a time
through :class:`~qwen3_memory.migration.runner.ChannelRunner` (dual-write, backfill, catch-up,
verify), and moves read pointers: swap, rollback, finalize. Pause, resume and cancel act at batch
boundaries; a killed process resumes from the cursor. The old space keeps receiving new messages
until ``finalize``, so ``rollback`` is instant. Both faces (the admin cog and the command line)
call only the public methods here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from qwen3_memory.errors import DiskFull, UserFacingError, disk_full, disk_full_is_a_warning
from qwen3_memory.memory import Memory
from qwen3_memory.migration import jobs as J
from qwen3_memory.migration.backup import BackupError
from qwen3_memory.migration.calibrate import calibrate_after_verify
from qwen3_memory.migration.gate import FAIL, GateRefused, verdict_of
from qwen3_memory.migration.jobs import ChannelJob, Job, JobNotFound, JobStateError, JobStore
from qwen3_memory.migration.plan import unknown_channels_message
from qwen3_memory.migration.report import JobStatus
from qwen3_memory.migration.runner import BatchSizer, ChannelRunner, JobWork, MigrationFailed, Progress, work_units
from qwen3_memory.migration.source import migration_source
from qwen3_memory.migration.strategies import validate_strategy
from qwen3_memory.migration.transform_sample import check_sample_size
from qwen3_memory.migration.verify import VerifyReport, agreement_shares, verify_channel
from qwen3_memory.recall.floors import NOISE_QUERIES_PER_CHANNEL
from qwen3_memory.recall.pipeline import Hit
from qwen3_memory.records import SpaceRecord
from qwen3_memory.space import EmbeddingSpace

log = logging.getLogger(__name__)

__all__ = ["BackupDiskFull", "JobStatus", "MigrationEngine", "MigrationFailed", "Preflight"]

# The error of a job whose task was cancelled (the bot shut down): paused, but not by an admin, so a
# restart resumes it like a crashed one (see interrupted_jobs).
SHUTDOWN_PAUSE = "interrupted (bot shutting down); resume continues here"


# What a job that paused itself on a full disk says after the disk's own message ("free ..., then").
DISK_FULL_PAUSE = "resume: the migration paused itself and continues where it stopped"

P = ParamSpec("P")
R = TypeVar("R")


class BackupDiskFull(BackupError, DiskFull):
    """The disk of the backups filled up while the backup before a migration was written."""


def disk_full_is_typed(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """A command that meets a full disk raises :class:`DiskFull` naming the file and its disk (SQLite only says
    "database or disk is full", file writes ``OSError`` 28), not the raw error."""

    @functools.wraps(method)
    async def typed(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except DiskFull:
            raise
        except Exception as exc:
            full = disk_full(exc, args[0].store.where)  # args[0]: the engine
            if full is None:
                raise
            raise full from exc

    return typed


class _JobLogFile(logging.FileHandler):
    """A job's log file: a record that finds its disk full is dropped quietly (it still reaches the process's
    own log), instead of a "--- Logging error ---" traceback on stderr."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        error = sys.exc_info()[1]  # called inside the handler's ``except``
        if error is None or disk_full(error) is None:
            super().handleError(record)


POSTGRES_BACKUP_NOTE = (
    "no file backup: the memory is on a shared Postgres server, covered by its own backups (pg_dump, "
    "point-in-time recovery); nothing is deleted before finalize, and rollback stays instant until then"
)


@dataclass
class Preflight:
    """What :meth:`MigrationEngine.preflight` found: the source space, warnings and (guild, channel, count)."""

    source: SpaceRecord
    warnings: list[str]
    channels: list[tuple[int, int, int]]


class MigrationEngine:
    """One per process; the admin cog and the command line are thin faces over it."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.store = memory.store
        self.jobs = JobStore(memory.store)
        self.runner = ChannelRunner(memory, self.jobs)
        self._tasks: dict[int, asyncio.Task] = {}
        self._progress: dict[int, Progress] = {}
        self._loggers: dict[int, logging.Logger] = {}

    # ------------------------------------------------------------------ creating a job
    async def preflight(
        self,
        target: EmbeddingSpace,
        strategy: str = "regenerate",
        *,
        source: EmbeddingSpace | None = None,
        guild_id: int | None = None,
        channel_ids: list[int] | None = None,
        force: bool = False,
        transform_sample: int = 0,
    ) -> Preflight:
        """What :meth:`start` would refuse, checked without creating anything (a face asks before confirming).

        Raises :class:`StrategyRefused` for a meaningless strategy and :class:`JobStateError` for an
        unfinished job in the same scope or no channel to migrate; returns the strategy's warnings and
        the channels in the order they would run.
        """
        if source is not None:
            source_space, left_out = await self.store.ensure_space(source), []
        else:  # what the channels read now: after a swap the profile setting may still name the old model
            source_space, left_out = await migration_source(
                self.store, target, guild_id, channel_ids, self.memory.settings.space
            )
        warnings = [*validate_strategy(strategy, source_space.spec, target, force), *left_out]
        unfinished = [
            j for j in await self.jobs.with_status(*J.UNFINISHED) if guild_id is None or j.guild_id in (None, guild_id)
        ]
        if unfinished:
            raise JobStateError(f"migration #{unfinished[0].id} is {unfinished[0].status}; resume or cancel it first")
        channels = await self._select_channels(source_space.id, guild_id, channel_ids)
        if not channels:
            raise JobStateError(
                f"no channel reads from {source_space.spec.key}"
                + (" in this server" if guild_id else "")
                + ": nothing to migrate"
            )
        if strategy == "transform":
            available = sum(n for *_, n in channels)
            _, short = check_sample_size(transform_sample, available, source_space.dimension, force)
            warnings += short
        return Preflight(source_space, warnings, channels)

    @disk_full_is_typed
    async def start(
        self,
        target: EmbeddingSpace,
        strategy: str = "regenerate",
        *,
        source: EmbeddingSpace | None = None,
        guild_id: int | None = None,
        channel_ids: list[int] | None = None,
        force: bool = False,
        auto_swap: bool = True,
        backup: bool = True,
        batch_size: int | None = None,
        transform_sample: int = 0,
        eval_path: Path | None = None,
        options: dict[str, Any] | None = None,
    ) -> Job:
        """Take a backup and create a job; :meth:`run` or :meth:`launch` then does the work.

        ``options``: extra values kept with the job (e.g. the channel where the admin cog reports);
        ``eval_path``: a labelled set each channel's verify scores old vs new on (the gate and the floor use it);
        ``transform_sample``: messages the transform fits on (0: the measured minimum for the source dimension).
        The backup comes first: when it fails (:class:`BackupError`, a full disk included) no job exists.
        """
        checked = await self.preflight(
            target, strategy, source=source, guild_id=guild_id, channel_ids=channel_ids, force=force,
            transform_sample=transform_sample,
        )  # fmt: skip
        source_space, warnings, channels = checked.source, checked.warnings, checked.channels
        target_space = await self.store.ensure_space(target)
        backup_path = None
        if backup and not self.store.file_backups:
            warnings = [*warnings, POSTGRES_BACKUP_NOTE]
        elif backup:
            backup_path = await self._backup()
        options = {
            **(options or {}),
            "force": force,
            "auto_swap": auto_swap,
            "batch_size": batch_size or self.memory.settings.batch_size,
            "transform_sample": transform_sample,
            "warnings": warnings,
            **({"eval_path": str(eval_path)} if eval_path is not None else {}),
        }
        job = await self.jobs.create(source_space.id, target_space.id, strategy, guild_id, options, channels)
        log_path = self._log_path()
        fields: dict[str, Any] = {"log_path": str(log_path)}
        if backup_path is not None:
            fields["backup_path"] = str(backup_path)
        await self.jobs.set_status(job.id, J.PENDING, **fields)
        logger = self._logger(job.id, log_path)
        logger.info(
            "migration #%d created: %s -> %s, strategy %s, %d channels, %d messages",
            job.id,
            source_space.spec.key,
            target_space.spec.key,
            strategy,
            len(channels),
            sum(n for *_, n in channels),
        )
        for warning in warnings:
            logger.warning(warning)
        if backup_path is not None:
            logger.info("backup written to %s", backup_path)
        return await self.jobs.get(job.id)

    async def _backup(self) -> Path:
        """A consistent backup before anything changes; file-system failures become :class:`BackupError`
        (:class:`BackupDiskFull` when the disk is full)."""
        from qwen3_memory.migration.backup import create_backup

        backups_dir = self.memory.settings.backups_dir
        await self.store.flush()
        try:
            return await create_backup(self.memory.settings)
        except BackupError:
            raise
        except OSError as exc:
            where = exc.filename or backups_dir
            full = disk_full(exc, where)
            if full is not None:
                raise BackupDiskFull(
                    f"the disk is full: the backup could not be written to {full.path} (the disk mounted at "
                    f"{full.mount}, {full.free} free). Nothing was started",
                    f"Free some space there (old backups in {backups_dir}) or point memory_system.paths.backups_dir "
                    "at a larger disk",
                    full.path,
                    full.mount,
                    full.free,
                    then="start again",
                ) from exc
            raise BackupError(
                f"the backup could not be written to {where} ({exc.strerror or exc}). Nothing was started; "
                "check memory_system.paths.backups_dir, then start again"
            ) from exc

    async def _select_channels(
        self, source_id: int, guild_id: int | None, channel_ids: list[int] | None
    ) -> list[tuple[int, int, int]]:
        """(guild, channel, count) of channels reading from the source, smallest first."""
        counts = {(g, c): n for g, c, n in await self.store.message_channels()}
        selected = []
        states = await self.store.list_channels(guild_id)
        for state in states:
            if state.read_space_id != source_id or (channel_ids and state.channel_id not in channel_ids):
                continue
            selected.append((state.guild_id, state.channel_id, counts.get((state.guild_id, state.channel_id), 0)))
        if channel_ids:
            known = {s.channel_id for s in states} | {c for g, c in counts if guild_id is None or g == guild_id}
            unknown = sorted(set(channel_ids) - known)
            if unknown:
                raise JobStateError(unknown_channels_message(unknown, guild_id))
            missing = set(channel_ids) - {c for _, c, _ in selected}
            if missing:
                raise JobStateError(
                    f"channel(s) {', '.join(map(str, sorted(missing)))} do not read from the source "
                    "space (memory disabled there, or already migrated)"
                )
        return sorted(selected, key=lambda item: (item[2], item[0], item[1]))

    def _log_path(self) -> Path:
        logs = self.memory.settings.logs_dir
        logs.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
        path, n = logs / f"qwen3_migration_{stamp}.log", 1
        while path.exists():
            path, n = logs / f"qwen3_migration_{stamp}_{n}.log", n + 1
        return path

    def _logger(self, job_id: int, path: Path | str | None) -> logging.Logger:
        logger = self._loggers.get(job_id)
        if logger is None:
            logger = logging.getLogger(f"{__name__}.job{job_id}")
            logger.setLevel(logging.INFO)
            if path:
                handler = _JobLogFile(path, encoding="utf-8")
                handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
                logger.addHandler(handler)
            self._loggers[job_id] = logger
        return logger

    # ------------------------------------------------------------------ running
    def launch(self, job_id: int) -> asyncio.Task:
        """Run the job in the background (the bot's way); returns the task."""
        task = self._tasks.get(job_id)
        if task is None or task.done():
            task = asyncio.create_task(self.run(job_id), name=f"migration-{job_id}")
            self._tasks[job_id] = task
        return task

    def is_running(self, job_id: int) -> bool:
        task = self._tasks.get(job_id)
        return task is not None and not task.done()

    async def run(self, job_id: int) -> Job:
        """Work until every channel is done, or a pause/cancel request, or a failure. Resumable.

        Only the process holding the job's claim works on it; elsewhere this returns the job as it is
        (its progress is in the job tables, visible from every process).
        """
        job = await self.jobs.get(job_id)
        if job.status in J.STOPPED:  # paused or cancelled before the task got here
            return job
        if not await self.memory.claims.try_claim("job", job_id):
            holder = await self.memory.claims.holder("job", job_id)
            where = holder.describe() if holder is not None else "another process"
            log.info("migration #%d is being run by %s; not starting it here", job_id, where)
            return job
        try:
            await self.jobs.log_event(job_id, "claimed", f"{socket.gethostname()} pid {os.getpid()}")
            return await self._run_claimed(job_id)
        except Exception as exc:
            full = disk_full(exc, self.store.where)
            if full is None:
                raise
            return await self._pause_on_full_disk(job_id, full)
        finally:
            with disk_full_is_a_warning(log, "migration #%d: claim not released (no space left); it expires", job_id):
                await self.memory.claims.release("job", job_id)

    async def _pause_on_full_disk(self, job_id: int, full: DiskFull) -> Job:
        """Pause the job with the disk's message; resumable like any pause. If even that cannot be recorded,
        the job stays marked running with no runner, which ``resume`` (and a restart) continues as well."""
        job = await self.jobs.get(job_id)
        reason = full.then(DISK_FULL_PAUSE)
        # one line, without the advice: every face shows the job's error, which has it
        self._logger(job_id, job.log_path).info("migration #%d paused itself: no space left on %s", job_id, full.path)
        progress = self._progress.get(job_id)
        if progress is not None:
            progress.update(phase=J.PAUSED)
        try:
            await self.jobs.set_status(job_id, J.PAUSED, reason, unless=(J.CANCELLED, J.COMPLETED))
        except Exception as exc:
            if disk_full(exc) is None:
                raise
            log.warning("migration #%d: the pause could not be recorded (the disk is still full)", job_id)
            return replace(job, status=J.PAUSED, error=reason)
        return await self.jobs.get(job_id)

    def runs_elsewhere(self, job: Job) -> bool:
        """Marked running, but not by a task of this process."""
        return job.status == J.RUNNING and not self.is_running(job.id)

    async def adopt_orphans(self) -> list[int]:
        """Launch every running job that no process holds (its runner died); returns their ids.

        Shard processes call this now and then; the claim decides which one of them resumes a job.
        """
        adopted = []
        for job in await self.jobs.with_status(J.RUNNING):
            if self.is_running(job.id):
                continue
            if await self._claim_is_free(job.id):  # its runner is gone
                log.warning("migration #%d has no live runner; resuming it in this process", job.id)
                self.launch(job.id)
                adopted.append(job.id)
        return adopted

    async def _run_claimed(self, job_id: int) -> Job:
        job = await self.jobs.get(job_id)
        if job.status in J.STOPPED:  # finished or stopped elsewhere meanwhile
            return job
        logger = self._logger(job_id, job.log_path)
        source, target = (
            await self.store.get_space(job.source_space_id),
            await self.store.get_space(job.target_space_id),
        )
        channels = await self.jobs.channels(job_id)
        progress = self._progress[job_id] = Progress(
            job_id, total=sum(c.total for c in channels), done=sum(c.done for c in channels)
        )
        if not await self.jobs.set_status(job_id, J.RUNNING, unless=J.STOPPED):
            return await self.jobs.get(job_id)  # paused or cancelled while this task was starting
        resumed = [c for c in channels if c.status not in (J.PENDING, *J.CHANNEL_DONE)]
        if resumed:
            c = resumed[0]
            logger.info(
                "resuming migration #%d at channel %d (%s, cursor %d, %d/%d done)",
                job_id,
                c.channel_id,
                c.status,
                c.cursor,
                c.done,
                c.total,
            )
        try:
            strategy = await self.runner.prepare_strategy(job, source, target, logger)
            sizer = BatchSizer(
                int(job.options.get("batch_size") or 32), self.memory.settings.memory.memory_threshold_mb
            )
            sizes = [c.total for c in channels]  # fixed when the job was created: the same shares on resume
            shares = {id(c): n for c, n in zip(channels, agreement_shares(sizes))}
            units = work_units([c for c in channels if c.status not in J.CHANNEL_DONE])
            work = JobWork(strategy, source, target, sizer, progress, logger)
            finished = await self._run_units(job, units, work, shares)
            if finished is not None:
                status = (await self.jobs.get(job_id)).status
                logger.info("migration #%d %s at channel %d", job_id, status, finished[0].channel_id)
                return await self.jobs.get(job_id)
            stopped = await self.runner.stop_requested(job_id)  # asked during the last channel's catch-up or verify
            if stopped or not await self.jobs.set_status(job_id, J.COMPLETED, unless=(J.PAUSED, J.CANCELLED)):
                logger.info("migration #%d paused after its last channel; resume completes it", job_id)
                return await self.jobs.get(job_id)
            logger.info("migration #%d completed", job_id)
        except asyncio.CancelledError:
            await self.jobs.set_status(job_id, J.PAUSED, SHUTDOWN_PAUSE, unless=(J.CANCELLED, J.COMPLETED, J.FAILED))
            raise
        except Exception as exc:
            if disk_full(exc) is not None:
                raise  # run() pauses the job: a full disk is not the migration's failure
            message = str(exc) if isinstance(exc, UserFacingError) else f"{type(exc).__name__}: {exc}"
            logger.exception("migration #%d failed: %s", job_id, message)
            await self.jobs.set_status(job_id, J.FAILED, message, unless=(J.CANCELLED, J.COMPLETED))
            progress.update(phase="failed")
            if not isinstance(exc, UserFacingError):
                raise
        finally:
            progress.update(phase=(await self.jobs.get(job_id)).status)
        return await self.jobs.get(job_id)

    async def _run_units(
        self, job: Job, units: list[list[ChannelJob]], work: JobWork, shares: dict[int, int]
    ) -> list[ChannelJob] | None:
        """Every unit in order, each swapped once verified; the unit it stopped at when paused or cancelled,
        None when all are done. A group's catch-up, verify and swap (database and index work, little model
        work) run while the next group is encoded, so on thousands of small channels the model does not wait
        for them; at most one group is finishing at a time, and swaps keep the units' order."""
        target, logger = work.target, work.logger
        finishing: asyncio.Task | None = None
        finishing_unit: list[ChannelJob] = []

        async def settle() -> list[ChannelJob] | None:
            nonlocal finishing
            task, finishing = finishing, None
            return None if task is None or await task else finishing_unit

        async def finish_and_swap(unit: list[ChannelJob]) -> bool:
            if not await self.runner.finish_group(job, unit, work, [shares[id(c)] for c in unit]):
                return False
            await self._swap_unit(job, unit, target.id, logger)
            return True

        try:
            for unit in units:
                if len(unit) == 1:
                    if (stopped := await settle()) is not None:
                        return stopped
                    if not await self.runner.run_channel(job, unit[0], *work.fields(), shares[id(unit[0])]):
                        return unit
                    await self._swap_unit(job, unit, target.id, logger)
                    continue
                backfilled = await self.runner.backfill_group(job, unit, work)
                if (stopped := await settle()) is not None:
                    return stopped
                if not backfilled:
                    return unit
                finishing, finishing_unit = asyncio.create_task(finish_and_swap(unit)), unit
            return await settle()
        finally:
            if finishing is not None:  # a failure or a shutdown interrupted the unit after it
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    finishing.cancel()
                await asyncio.gather(finishing, return_exceptions=True)

    async def _swap_unit(self, job: Job, unit: list[ChannelJob], target_id: int, logger: logging.Logger) -> None:
        """Swap the unit's verified channels that pass the quality gate (with auto_swap on)."""
        if not job.options.get("auto_swap", True):
            return
        # another process may be swapping it now if this one lost the job's claim; a job cancelled meanwhile (a
        # small channel can go from backfill to verified in one model call) never swaps
        if not await self.memory.claims.holds("job", job.id) or (await self.jobs.get(job.id)).status == J.CANCELLED:
            return
        for channel in unit:
            if await self._passes_gate(job, channel, logger):
                await self._swap_channel(job, channel.guild_id, channel.channel_id, target_id, logger)

    # ------------------------------------------------------------------ control
    @disk_full_is_typed
    async def pause(self, job_id: int, guild_id: int | None = None) -> Job:
        job = await self.jobs.get(job_id, guild_id)
        if job.status not in (J.RUNNING, J.PENDING):
            raise JobStateError(f"migration #{job_id} is {job.status}, not running")
        await self.jobs.set_status(job_id, J.PAUSED)
        return await self.jobs.get(job_id)

    @disk_full_is_typed
    async def cancel(self, job_id: int, guild_id: int | None = None) -> Job:
        """Stop for good: dual-write to the target ends for channels not swapped; nothing is deleted."""
        job = await self.jobs.get(job_id, guild_id)
        if job.status in (J.COMPLETED, J.CANCELLED):
            raise JobStateError(f"migration #{job_id} is already {job.status}")
        await self.jobs.set_status(job_id, J.CANCELLED)
        task = self._tasks.get(job_id)
        if task is not None and not task.done():
            await asyncio.wait_for(asyncio.shield(task), timeout=120)
        for ch in await self.jobs.channels(job_id):
            if ch.status not in (J.SWAPPED, J.FINALIZED):
                await self.store.remove_write_space(ch.guild_id, ch.channel_id, job.target_space_id)
        return await self.jobs.get(job_id)

    @disk_full_is_typed
    async def resume(self, job_id: int, guild_id: int | None = None, background: bool = True) -> Job:
        job = await self.jobs.get(job_id, guild_id)
        if job.status not in (J.PAUSED, J.FAILED, J.RUNNING, J.PENDING):
            raise JobStateError(
                f"migration #{job_id} is {job.status}; only paused, failed or interrupted migrations can resume"
            )
        if self.is_running(job_id):
            raise JobStateError(f"migration #{job_id} is already running")
        if job.status == J.RUNNING and not await self._claim_is_free(job_id):
            holder = await self.memory.claims.holder("job", job_id)
            where = holder.describe() if holder is not None else "another bot process"
            raise JobStateError(f"migration #{job_id} is running in {where}; its status shows progress")
        for ch in await self.jobs.channels(job_id):
            if ch.status == J.FAILED:  # retry a failed channel from its catch-up step (its cursor is kept)
                await self.jobs.update_channel(
                    job_id, ch.guild_id, ch.channel_id, "retry", status=J.CATCHUP, error=None
                )
        await self.jobs.set_status(job_id, J.RUNNING)
        if background:
            self.launch(job_id)
            return await self.jobs.get(job_id)
        return await self.run(job_id)

    async def _claim_is_free(self, job_id: int) -> bool:
        if not await self.memory.claims.try_claim("job", job_id):
            return False
        await self.memory.claims.release("job", job_id)
        return True

    async def interrupted_jobs(self) -> list[Job]:
        """Jobs a crash or a shutdown interrupted: marked running with no task in this process, or paused
        by the shutdown itself (not by an admin). A job another live process runs is not interrupted."""
        found = []
        for j in await self.jobs.with_status(J.RUNNING, J.PAUSED):
            if self.is_running(j.id) or not (j.status == J.RUNNING or j.error == SHUTDOWN_PAUSE):
                continue
            if j.status == J.RUNNING and not await self._claim_is_free(j.id):
                continue
            found.append(j)
        return found

    async def resolve_job(self, job_id: int | None = None, guild_id: int | None = None) -> Job:
        """The job named (in ``guild_id``'s scope, when given), or the latest one: what every face means
        by "the migration" when an admin names none."""
        if job_id is not None:
            return await self.jobs.get(job_id, guild_id)
        latest = await self.jobs.latest(guild_id)
        if latest is None:
            where = " in this server" if guild_id is not None else ""
            raise JobNotFound(f"there is no migration{where} yet; plan one, then start it")
        return latest

    def progress(self, job_id: int) -> dict[str, Any] | None:
        """The live numbers of the job's runner in this process (last ones, once it stopped); None if it never
        ran here. A snapshot: batch size, phase, channel, rate, ETA, memory."""
        live = self._progress.get(job_id)
        return live.snapshot() if live is not None else None

    async def status(self, job_id: int | None = None, guild_id: int | None = None) -> JobStatus:
        """The job (or the latest one) as one record both faces render."""
        job = await self.resolve_job(job_id, guild_id)
        running = self.is_running(job.id)
        return JobStatus(
            job,
            await self.jobs.channels(job.id),
            self.progress(job.id) if running else None,
            await self.store.get_space(job.source_space_id),
            await self.store.get_space(job.target_space_id),
            running=running,
        )

    # ------------------------------------------------------------------ verify, swap, rollback, finalize
    @disk_full_is_typed
    async def verify(
        self, job_id: int, channel_id: int | None = None, guild_id: int | None = None, eval_path: Path | None = None
    ) -> list[VerifyReport]:
        job = await self.jobs.get(job_id, guild_id)
        source, target = (
            await self.store.get_space(job.source_space_id),
            await self.store.get_space(job.target_space_id),
        )
        reports = []
        channels = await self._channels(job, channel_id)
        for ch, share in zip(channels, agreement_shares([c.total for c in channels])):
            report = await verify_channel(
                self.memory,
                source,
                target,
                ch.guild_id,
                ch.channel_id,
                sample=self.memory.settings.memory.migration.verify_sample,
                agreement_queries=share,
                eval_path=eval_path,
                strategy=job.strategy,
                noise_queries=NOISE_QUERIES_PER_CHANNEL,
            )
            await calibrate_after_verify(self.memory, target, ch.guild_id, ch.channel_id, report.noise, eval_path)
            await self.jobs.update_channel(
                job_id,
                ch.guild_id,
                ch.channel_id,
                "verify",
                "passed" if report.passed else "; ".join(report.problems),
                report=report.to_dict(),
            )
            reports.append(report)
        return reports

    async def _channels(self, job: Job, channel_id: int | None) -> list[ChannelJob]:
        channels = await self.jobs.channels(job.id)
        if channel_id is None:
            return channels
        chosen = [c for c in channels if c.channel_id == channel_id]
        if not chosen:
            raise JobNotFound(f"channel {channel_id} is not part of migration #{job.id}")
        return chosen

    @disk_full_is_typed
    async def swap(
        self, job_id: int, channel_id: int | None = None, guild_id: int | None = None, force: bool = False
    ) -> list[int]:
        """Point verified channels (one, or all) at the target space; returns the channels swapped.

        A channel whose verdict is fail is not swapped unless ``force``: the others are, then
        :class:`GateRefused` names the refused ones with their numbers."""
        job = await self.jobs.get(job_id, guild_id)
        logger = self._logger(job_id, job.log_path)
        swapped, refused = [], []
        for ch in await self._channels(job, channel_id):
            if ch.status in (J.VERIFIED, J.ROLLED_BACK):
                verdict = verdict_of(ch.report)
                if verdict is not None and verdict.level == FAIL and not force:
                    refused.append(f"channel {ch.channel_id}: {verdict.describe()}")
                    continue
                await self._swap_channel(job, ch.guild_id, ch.channel_id, job.target_space_id, logger)
                swapped.append(ch.channel_id)
            elif channel_id is not None and ch.status != J.SWAPPED:
                raise JobStateError(f"channel {channel_id} is {ch.status}: only verified channels can be swapped")
        if refused:
            done = f"swapped {len(swapped)} channel(s); " if swapped else ""
            raise GateRefused(
                f"{done}the quality gate refused {len(refused)}: {' | '.join(refused)}. They still read the old "
                "space; migrate them with regenerate, or swap with --force to accept the loss"
            )
        return swapped

    async def _passes_gate(self, job: Job, channel: ChannelJob, logger: logging.Logger) -> bool:
        """The automatic swap's check: a channel whose verdict is fail stays on the old space (swap --force)."""
        verdict = verdict_of((await self.jobs.channel(job.id, channel.guild_id, channel.channel_id)).report)
        if verdict is None or verdict.level != FAIL:
            return True
        logger.warning("channel %d not swapped, the quality gate says %s", channel.channel_id, verdict.describe())
        await self.jobs.log_event(job.id, "held back", f"channel {channel.channel_id}: {verdict.describe()}")
        return False

    async def _swap_channel(self, job: Job, g: int, c: int, space_id: int, logger: logging.Logger) -> None:
        await self.store.set_read_space(g, c, space_id)
        await self.jobs.update_channel(job.id, g, c, "swapped", status=J.SWAPPED)
        logger.info("channel %d now reads from space %d", c, space_id)

    @disk_full_is_typed
    async def rollback(self, job_id: int, channel_id: int | None = None, guild_id: int | None = None) -> list[int]:
        """Point swapped channels back at the source space (instant: it was kept up to date)."""
        job = await self.jobs.get(job_id, guild_id)
        logger = self._logger(job_id, job.log_path)
        rolled = []
        for ch in await self._channels(job, channel_id):
            if ch.status == J.FINALIZED:
                raise JobStateError(
                    f"channel {ch.channel_id} was finalized: its old vectors are gone; restore the "
                    f"backup ({job.backup_path}) instead"
                )
            if ch.status == J.SWAPPED:
                await self.store.set_read_space(ch.guild_id, ch.channel_id, job.source_space_id)
                await self.jobs.update_channel(job_id, ch.guild_id, ch.channel_id, "rolled back", status=J.ROLLED_BACK)
                logger.info("channel %d rolled back to space %d", ch.channel_id, job.source_space_id)
                rolled.append(ch.channel_id)
        return rolled

    async def check_finalize(self, job_id: int, guild_id: int | None = None) -> Job:
        """The job, if every channel is swapped (or finalized) after a passing verify; else JobStateError."""
        job = await self.jobs.get(job_id, guild_id)
        not_ready = [
            c
            for c in await self.jobs.channels(job_id)
            if c.status not in (J.SWAPPED, J.FINALIZED) or not (c.report or {}).get("passed")
        ]
        if not_ready:
            c = not_ready[0]
            raise JobStateError(
                f"channel {c.channel_id} is {c.status}"
                f"{'' if (c.report or {}).get('passed') else ' without a passing verify'}; "
                "verify and swap every channel before finalizing"
            )
        return job

    @disk_full_is_typed
    async def finalize(self, job_id: int, confirm: bool, guild_id: int | None = None) -> list[int]:
        """Delete the old space's vectors and index files of swapped channels, after a passing verify."""
        if not confirm:
            raise JobStateError("finalize deletes the old vectors for good; confirm it explicitly (--yes)")
        job = await self.check_finalize(job_id, guild_id)
        channels = await self.jobs.channels(job_id)
        logger = self._logger(job_id, job.log_path)
        source = await self.store.get_space(job.source_space_id)
        done = []
        for ch in channels:
            if ch.status == J.FINALIZED:
                continue
            await self.store.remove_write_space(ch.guild_id, ch.channel_id, source.id)
            removed = await self.store.delete_space_vectors(source.id, ch.guild_id, ch.channel_id)
            await self.jobs.update_channel(
                job_id, ch.guild_id, ch.channel_id, "finalized", f"{removed} old vectors", status=J.FINALIZED
            )
            logger.info("channel %d finalized: %d old vectors deleted", ch.channel_id, removed)
            done.append(ch.channel_id)
        return done

    async def compare(
        self, job_id: int, guild_id: int, channel_id: int, query: str, k: int = 5
    ) -> tuple[list[Hit], list[Hit]]:
        """Top results of the old and the new space side by side, for an A/B judgement before swapping."""
        job = await self.jobs.get(job_id)
        if job.guild_id not in (None, guild_id):  # another guild's job: as if it did not exist
            raise JobNotFound(f"no migration #{job_id} in this server")
        await self.jobs.channel(job_id, guild_id, channel_id)  # the channel must be part of this job
        options = self.memory.recall_options(k=k, hybrid=False, rerank=False, min_score=-1.0)
        recaller = self.memory.recaller
        old = await recaller.recall(
            guild_id, channel_id, query, options, space=await self.store.get_space(job.source_space_id)
        )
        new = await recaller.recall(
            guild_id, channel_id, query, options, space=await self.store.get_space(job.target_space_id)
        )
        return old, new
