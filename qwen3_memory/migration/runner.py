"""The work of a migration on one channel: batches, backfill, catch-up and verify.

:class:`ChannelRunner` takes a channel from its cursor to a verified target space: it scrolls the
channel's messages by id in batches, makes target vectors in the embedding executor (a batch size
that adapts to memory), stores them through the store's single write call, commits the cursor,
then catches up with what capture wrote meanwhile and verifies. The engine decides what runs when
(jobs, claims, swaps); the runner only does the heavy lifting, resumable at every batch.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from qwen3_memory.errors import EncodeOutOfMemory, UserFacingError
from qwen3_memory.memory import Memory
from qwen3_memory.migration import jobs as J
from qwen3_memory.migration.calibrate import calibrate_after_verify, noise_needed, noise_queries_wanted
from qwen3_memory.migration.jobs import ChannelJob, Job, JobStore
from qwen3_memory.migration.query_bank import ChannelQueries, prepare_group_queries
from qwen3_memory.migration.strategies import LinearMap, Strategy, StrategyRefused, fit_linear_map
from qwen3_memory.migration.transform_sample import describe_sample, minimum_sample, spread_sample
from qwen3_memory.migration.verify import VerifyReport, verify_channel
from qwen3_memory.records import SpaceRecord, StoredMessage

log = logging.getLogger(__name__)

TRANSFORM_MAP = "linear_map"  # the job artifact holding a fitted transform


ENCODE_WINDOW = 4  # batches read and encoded per call: the model sorts a call's texts by length, so it pads less
GROUP_MESSAGES = 2048  # small pending channels are migrated together, up to about this many messages at once
GROUP_CHANNELS = 256  # and at most this many channels


def work_units(channels: list[ChannelJob]) -> list[list[ChannelJob]]:
    """The job's channels in order, cut into units of work: consecutive small pending channels together (up to
    :data:`GROUP_MESSAGES` messages, :data:`GROUP_CHANNELS` channels), any other channel alone."""
    units: list[list[ChannelJob]] = []
    group: list[ChannelJob] = []
    for ch in channels:
        small = ch.status == J.PENDING and ch.total < GROUP_MESSAGES // 4
        full = sum(c.total for c in group) + ch.total > GROUP_MESSAGES or len(group) == GROUP_CHANNELS
        if group and (not small or full):
            units.append(group)
            group = []
        if small:
            group.append(ch)
        else:
            units.append([ch])
    if group:
        units.append(group)
    return units


@dataclass(frozen=True)
class JobWork:
    """What every unit of one run of a job shares: its strategy, spaces, batch sizer, progress and log."""

    strategy: Strategy
    source: SpaceRecord
    target: SpaceRecord
    sizer: BatchSizer
    progress: Progress
    logger: logging.Logger

    def fields(self) -> tuple[Strategy, SpaceRecord, SpaceRecord, BatchSizer, Progress, logging.Logger]:
        """In :meth:`ChannelRunner.run_channel`'s parameter order."""
        return self.strategy, self.source, self.target, self.sizer, self.progress, self.logger


class MigrationFailed(UserFacingError):
    """A channel failed (verification, out of memory at batch size 1, ...); the job stops, nothing is lost."""


class BatchSizer:
    """Adaptive batch size: halve on out-of-memory or when RSS passes the threshold; grow back slowly."""

    def __init__(self, initial: int, memory_threshold_mb: int, grow_after: int = 8) -> None:
        self.ceiling = max(1, initial)
        self.size = self.ceiling
        self.memory_threshold_mb = memory_threshold_mb
        self.grow_after = grow_after
        self._successes = 0
        self.shrinks = 0

    def shrink(self, reason: str) -> bool:
        """Halve; False when already at 1 (the caller must fall back or fail)."""
        self._successes = 0
        if self.size == 1:
            return False
        self.size = max(1, self.size // 2)
        self.shrinks += 1
        log.warning("batch size halved to %d (%s)", self.size, reason)
        return True

    def succeeded(self) -> None:
        rss_mb = psutil.Process().memory_info().rss / 2**20
        if rss_mb > self.memory_threshold_mb:
            gc.collect()
            self.shrink(f"RSS {rss_mb:.0f} MiB above memory_threshold_mb {self.memory_threshold_mb}")
            return
        self._successes += 1
        if self._successes >= self.grow_after and self.size < self.ceiling:
            self.size = min(self.ceiling, max(self.size + 1, int(self.size * 1.25)))
            self._successes = 0


@dataclass
class Progress:
    """Live state of a running job, written by the engine and read by status queries (thread-safe)."""

    job_id: int
    total: int = 0
    done: int = 0
    phase: str = "starting"
    channel_id: int | None = None
    batch_size: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)
    run_done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, **fields: Any) -> None:
        with self._lock:
            for key, value in fields.items():
                setattr(self, key, value)

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            self.run_done += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            elapsed = max(1e-6, time.monotonic() - self.started)
            rate = self.run_done / elapsed
            remaining = max(0, self.total - self.done)
            return {
                "job_id": self.job_id,
                "total": self.total,
                "done": self.done,
                "phase": self.phase,
                "channel_id": self.channel_id,
                "batch_size": self.batch_size,
                "errors": self.errors,
                "rate": rate,
                "eta_seconds": remaining / rate if rate > 0 else None,
                "elapsed": elapsed,
                "rss_mb": psutil.Process().memory_info().rss / 2**20,
            }


class ChannelRunner:
    """Runs channels of a job in one process; the engine owns the job, its claim and the swaps."""

    def __init__(self, memory: Memory, jobs: JobStore) -> None:
        self.memory = memory
        self.store = memory.store
        self.jobs = jobs

    async def prepare_strategy(
        self, job: Job, source: SpaceRecord, target: SpaceRecord, logger: logging.Logger
    ) -> Strategy:
        service = self.memory.services.get(target.spec)
        await service.aload()
        strategy = Strategy(job.strategy, source.spec, target.spec, service)
        if job.strategy == "transform":
            data = await self.jobs.artifact(job.id, TRANSFORM_MAP)
            if data is None:
                strategy.linear_map = await self._fit_transform(job, source, target, service, logger)
                await self.jobs.put_artifact(job.id, TRANSFORM_MAP, strategy.linear_map.to_bytes())
            else:
                strategy.linear_map = LinearMap.from_bytes(data)
        return strategy

    async def _fit_transform(
        self, job: Job, source: SpaceRecord, target: SpaceRecord, service, logger: logging.Logger
    ) -> LinearMap:
        """Embed a sample with the target model and fit old -> new on it (held-out fit reported)."""
        channels = [(c.guild_id, c.channel_id, c.total) for c in await self.jobs.channels(job.id)]
        wanted = int(job.options.get("transform_sample") or minimum_sample(source.dimension))
        sample = await spread_sample(self.store, channels, wanted)  # every channel, over its whole history
        logger.info("transform sample: %s", describe_sample(sample))
        old = await self.store.get_vectors(source.id, [m.id for m in sample]) if sample else {}
        sample = [m for m in sample if m.id in old and m.content.strip()]
        if not sample:
            raise StrategyRefused(
                "transform needs messages that have both their text and an old vector; none do. Use regenerate"
            )
        new = await service.aencode_documents([m.content for m in sample])
        fitted = await asyncio.to_thread(fit_linear_map, np.stack([old[m.id] for m in sample]), new)
        logger.info(
            "transform fitted on %d messages: mean cosine train %.3f, held-out %.3f (%d messages); held-out "
            "retention vs regenerate: %.0f%% of regenerated vectors find their transformed message first",
            fitted.samples,
            fitted.train_cosine,
            fitted.heldout_cosine,
            fitted.heldout_size,
            100 * fitted.heldout_top1,
        )
        return fitted

    async def stop_requested(self, job_id: int) -> bool:
        """Paused or cancelled by an admin, or this process no longer holds the job (another adopts it)."""
        if not await self.memory.claims.holds("job", job_id):
            log.warning("migration #%d: this process lost its claim; stopping here for whoever adopts it", job_id)
            return True
        status = (await self.jobs.get(job_id)).status
        return status in (J.PAUSED, J.CANCELLED)

    async def run_channel(
        self,
        job: Job,
        ch: ChannelJob,
        strategy: Strategy,
        source: SpaceRecord,
        target: SpaceRecord,
        sizer: BatchSizer,
        progress: Progress,
        logger: logging.Logger,
        agreement_queries: int = 0,
    ) -> bool:
        """Take one channel through backfill, catch-up and verify; False when paused or cancelled on the way.

        ``agreement_queries``: the channel's share of the job's old-vs-new agreement queries."""
        g, c = ch.guild_id, ch.channel_id
        progress.update(channel_id=c)
        if ch.status == J.PENDING:
            await self.store.add_write_space(g, c, target.id)  # dual-write starts before the backfill
            await self.jobs.update_channel(job.id, g, c, "backfill", status=J.BACKFILL, started_at=time.time())
            logger.info("channel %d: dual-write on, backfill of %d messages", c, ch.total)
            ch.status = J.BACKFILL
        if ch.status == J.BACKFILL:
            progress.update(phase="backfill")
            steps = await self._channel_cursor(job, ch)
            if not await self._pipelined(job, *steps, strategy, source, target, sizer, progress):
                return False
            await self.jobs.update_channel(job.id, g, c, "catch-up", status=J.CATCHUP)
            ch.status = J.CATCHUP
        if ch.status == J.CATCHUP:
            progress.update(phase="catch-up")
            caught_up = await self._catch_up(g, c, strategy, source, target, sizer, progress)
            logger.info("channel %d: caught up %d messages written during the backfill", c, caught_up)
            progress.update(phase="verify")
            report = await self._verify(job, g, c, source, target, agreement_queries)
            await self.jobs.update_channel(
                job.id, g, c, "verified", status=J.VERIFIED, report=report.to_dict(), finished_at=time.time()
            )
            logger.info("channel %d verified: %s", c, report.summary())
            ch.status = J.VERIFIED
        return True

    async def backfill_group(self, job: Job, group: list[ChannelJob], work: JobWork) -> bool:
        """A group of small pending channels (:func:`work_units`), first half: dual-write starts for all of them
        in one transaction, their messages are encoded together in full batches (a 25-message channel alone
        would be a third of one), each batch's cursors are committed in one transaction. False when paused or
        cancelled on the way. Every step leaves each channel in a state that :meth:`run_channel` resumes, so a
        crash or a pause mid-group loses nothing."""
        strategy, source, target, sizer, progress, logger = work.fields()
        pairs = [(ch.guild_id, ch.channel_id) for ch in group]
        progress.update(channel_id=group[-1].channel_id, phase="backfill")
        await self.store.add_write_spaces(pairs, target.id)  # dual-write starts before the backfill
        started = time.time()
        await self.jobs.update_channels(
            job.id, {p: {"status": J.BACKFILL, "started_at": started} for p in pairs}, "backfill"
        )
        logger.info(
            "channels %s: dual-write on, backfill of %d messages together",
            ", ".join(str(c) for _, c in pairs),
            sum(ch.total for ch in group),
        )
        messages = await self.store.channels_messages(pairs)
        position, done = 0, dict.fromkeys(pairs, 0)

        async def scroll(size: int) -> list[StoredMessage]:
            return messages[position : position + size]

        def advance(batch: list[StoredMessage]) -> dict[tuple[int, int], dict[str, int]]:
            nonlocal position
            position += len(batch)
            cursors = {}
            for m in batch:  # messages come channel by channel, by id: a batch's last one per channel is its cursor
                key = (m.guild_id, m.channel_id)
                done[key] += 1
                cursors[key] = {"cursor": m.id, "done": done[key]}
            return cursors

        async def commit(cursors: dict[tuple[int, int], dict[str, int]]) -> None:
            await self.jobs.update_channels(job.id, cursors)

        if not await self._pipelined(job, scroll, advance, commit, strategy, source, target, sizer, progress):
            return False
        await self.jobs.update_channels(job.id, {p: {"status": J.CATCHUP} for p in pairs}, "catch-up")
        return True

    async def finish_group(
        self, job: Job, group: list[ChannelJob], work: JobWork, agreement_queries: list[int]
    ) -> bool:
        """A backfilled group's second half: each channel caught up and verified, then all marked verified in
        one transaction. Little model work: the engine runs it while the next group is encoded."""
        strategy, source, target, sizer, progress, logger = work.fields()
        pairs = [(ch.guild_id, ch.channel_id) for ch in group]
        progress.update(phase="verify")
        reports = {}
        for g, c in pairs:
            await self._catch_up(g, c, strategy, source, target, sizer, progress)
        wanted, held = await noise_needed(self.memory, target)  # one read of the floor for the whole group
        queries = await prepare_group_queries(self.memory, source, target, pairs, agreement_queries, wanted, held)
        for (g, c), share in zip(pairs, agreement_queries):
            reports[(g, c)] = await self._verify(job, g, c, source, target, share, queries[(g, c)])
        finished = time.time()
        await self.jobs.update_channels(
            job.id,
            {p: {"status": J.VERIFIED, "report": reports[p].to_dict(), "finished_at": finished} for p in pairs},
            "verified",
        )
        for ch in group:
            ch.status = J.VERIFIED
            logger.info("channel %d verified: %s", ch.channel_id, reports[(ch.guild_id, ch.channel_id)].summary())
        return True

    async def _verify(
        self,
        job: Job,
        g: int,
        c: int,
        source: SpaceRecord,
        target: SpaceRecord,
        agreement_queries: int,
        prepared: ChannelQueries | None = None,
    ) -> VerifyReport:
        """The channel's verify report; a failing one marks the channel failed and raises :class:`MigrationFailed`.
        A passing one calibrates the target space's score floor (from the labelled set, or label-free)."""
        eval_path = Path(job.options["eval_path"]) if job.options.get("eval_path") else None
        report = await verify_channel(
            self.memory,
            source,
            target,
            g,
            c,
            sample=self.memory.settings.memory.migration.verify_sample,
            agreement_queries=agreement_queries,
            eval_path=eval_path,
            strategy=job.strategy,
            noise_queries=await noise_queries_wanted(self.memory, target) if prepared is None else 0,
            prepared=prepared,
        )
        if not report.passed:
            await self.jobs.update_channel(
                job.id,
                g,
                c,
                "verify failed",
                "; ".join(report.problems),
                status=J.FAILED,
                error="; ".join(report.problems),
                report=report.to_dict(),
            )
            raise MigrationFailed(
                f"channel {c} failed verification: {'; '.join(report.problems)}. "
                "Nothing was swapped; fix the cause and resume, or cancel"
            )
        floor = await calibrate_after_verify(self.memory, target, g, c, report.noise, eval_path)
        if floor is not None:
            log.info("space %s: score floor %s", target.spec.key, floor.describe())
        return report

    async def _channel_cursor(self, job: Job, ch: ChannelJob) -> tuple[Callable, Callable, Callable]:
        """(scroll, advance, commit) of :meth:`_pipelined` for one channel's backfill from its cursor."""
        g, c = ch.guild_id, ch.channel_id
        cursor, done = ch.cursor, ch.done
        up_to = await self.store.newest_message_id(g, c)  # later ones are dual-written by capture

        async def scroll(size: int) -> list[StoredMessage]:
            return await self.store.scroll_messages(g, c, cursor, size, up_to)

        def advance(batch: list[StoredMessage]) -> tuple[int, int]:
            nonlocal cursor, done
            cursor, done = batch[-1].id, done + len(batch)
            return cursor, done

        async def commit(position: tuple[int, int]) -> None:
            await self.jobs.update_channel(job.id, g, c, cursor=position[0], done=position[1])

        return scroll, advance, commit

    async def _pipelined(
        self,
        job: Job,
        scroll: Callable[[int], Awaitable[list[StoredMessage]]],
        advance: Callable[[list[StoredMessage]], Any],
        commit: Callable[[Any], Awaitable[None]],
        strategy: Strategy,
        source: SpaceRecord,
        target: SpaceRecord,
        sizer: BatchSizer,
        progress: Progress,
    ) -> bool:
        """Encode, store and commit batches until ``scroll`` has none left; False if paused or cancelled.

        ``scroll(size)`` reads the next batch after the last one ``advance`` accepted (after an out-of-memory
        halving, the same messages again); a batch is :data:`ENCODE_WINDOW` times the batch size, encoded in one
        call in batches of the batch size; ``advance(batch)`` moves past it and says what ``commit`` records.
        Pipelined: while batch *n* is stored, indexed and its cursor committed (database and FAISS threads),
        batch *n+1* is already being encoded (model threads), so the model never waits for bookkeeping.
        Cursors are still committed strictly in order.
        """
        pending: asyncio.Task | None = None

        async def store_and_commit(batch: list[StoredMessage], vectors: np.ndarray, position: Any) -> None:
            await self._store_batch(batch, vectors, target, sizer, progress)
            await commit(position)
            progress.advance(len(batch))

        try:
            batch = await scroll(sizer.size * ENCODE_WINDOW)
            while batch:
                if await self.stop_requested(job.id):
                    return False
                vectors = await self._encode_batch(batch, strategy, source, target, sizer, progress)
                if pending is not None:
                    await pending
                    pending = None
                if vectors is None:  # out of memory: the same messages again, in a halved batch
                    batch = await scroll(sizer.size * ENCODE_WINDOW)
                    continue
                pending = asyncio.create_task(store_and_commit(batch, vectors, advance(batch)))
                batch = await scroll(sizer.size * ENCODE_WINDOW)
        finally:
            if pending is not None:
                await pending
        return True

    async def _encode_batch(
        self,
        batch: list[StoredMessage],
        strategy: Strategy,
        source: SpaceRecord,
        target: SpaceRecord,
        sizer: BatchSizer,
        progress: Progress,
    ) -> np.ndarray | None:
        """Target vectors for ``batch``; None if it ran out of memory (the batch size was halved)."""
        try:
            return await self._target_vectors(batch, strategy, source, sizer.size)
        except EncodeOutOfMemory as exc:
            progress.update(errors=progress.errors + 1)
            if sizer.shrink("out of memory"):
                progress.update(batch_size=sizer.size)
                return None
            if self.memory.services.get(target.spec).fall_back_to_cpu():
                return None
            raise MigrationFailed(f"{exc} (already at batch size 1)") from exc

    async def _store_batch(
        self,
        batch: list[StoredMessage],
        vectors: np.ndarray,
        target: SpaceRecord,
        sizer: BatchSizer,
        progress: Progress,
    ) -> int:
        """Upsert the vectors (skipping messages edited or deleted meanwhile) and index them."""
        accepted = await self.store.put_vectors(target, batch, vectors)
        sizer.succeeded()
        progress.update(batch_size=sizer.size)
        return len(accepted)

    async def _target_vectors(
        self, batch: list[StoredMessage], strategy: Strategy, source: SpaceRecord, batch_size: int
    ) -> np.ndarray:
        service = strategy.target_service
        if not strategy.needs_source_vectors:
            return await service.run(strategy.vectors, batch, None, batch_size)
        old = await self.store.get_vectors(source.id, [m.id for m in batch])
        have = [i for i, m in enumerate(batch) if m.id in old]
        out = np.empty((len(batch), strategy.target.dimension), dtype=np.float32)
        if have:
            out[have] = await service.run(
                strategy.vectors,
                [batch[i] for i in have],
                np.stack([old[batch[i].id] for i in have]),
                batch_size,
            )
        lacking = [i for i, m in enumerate(batch) if m.id not in old]
        if lacking:  # no old vector to map (e.g. its embedding had failed): embed from text, exactly
            out[lacking] = await service.aencode_documents([batch[i].content for i in lacking])
        return out

    async def _catch_up(
        self,
        g: int,
        c: int,
        strategy: Strategy,
        source: SpaceRecord,
        target: SpaceRecord,
        sizer: BatchSizer,
        progress: Progress,
    ) -> int:
        """Embed the channel's messages that still lack a target vector, up to the newest one now.

        Messages newer than that are dual-written by capture (the target has been a write space
        since before the backfill), so the catch-up ends even while members keep posting.
        """
        up_to = await self.store.newest_message_id(g, c)
        after, total = 0, 0
        while missing := await self.store.messages_missing_vectors(target.id, g, c, after, sizer.size, up_to):
            vectors = await self._encode_batch(missing, strategy, source, target, sizer, progress)
            if vectors is None:
                continue
            written = await self._store_batch(missing, vectors, target, sizer, progress)
            after = missing[-1].id  # edited or deleted under us: capture has re-embedded or removed them
            total += written
        return total
