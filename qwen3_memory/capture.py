"""The write path: a bounded queue of message events and one background writer.

Listeners only enqueue (microseconds). The writer takes events in arrival order, stores a batch
of messages in one transaction, embeds it once per write space of its channels in the embedding
executor, stores the vectors and adds them to the channel indexes. A full queue makes listeners
wait (back-pressure) instead of dropping messages. If embedding fails, the messages are still
stored; :meth:`Capture.repair` embeds whatever lacks a vector later.

A batch that cannot be written (a full disk, a locked or unreachable database) is kept and retried
with a growing pause, from the step where it stopped (stored, embedded into some spaces, deleted),
while later events wait behind it in the queue: nothing is lost and nothing is reordered, so a
deletion is never undone by an earlier upsert of the same message. What is retained is bounded by
the queue: once it is full, listeners wait. After a retried batch, and the first time this process
writes to a channel, the channel's messages that lack a vector in its read space (stored by a
process that stopped before it could embed them) are embedded in the background.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from qwen3_memory.backends import Store
from qwen3_memory.capture_lanes import Lanes
from qwen3_memory.errors import StoreLocked, UserFacingError, disk_full, disk_full_is_a_warning
from qwen3_memory.models.embedding import EmbeddingServices
from qwen3_memory.records import StoredMessage

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.5  # the first pause before a failed batch is tried again; it doubles each time
RETRY_MAX_SECONDS = 30.0
ATTEMPTS_ON_UNEXPECTED_ERRORS = 3  # a batch failing on something else than the database or the disk is dropped
STOP_GIVES_UP_SECONDS = 60.0  # at shutdown, how long a batch that keeps failing is still retried
# A batch from the history lane (an import's pages) may hold this many capture batches: the model encodes calls of
# 512 texts at the speed of one long call, and of 256 about 6% slower (measured with all-MiniLM-L6-v2, 2 cores).
HISTORY_BATCHES = 2


@dataclass
class _Upsert:
    message: StoredMessage
    only_new: bool = False  # a copy read from history: stored only if the message is not stored yet
    stamp: int = 0  # its place in the history lane (capture_lanes)


@dataclass
class _Delete:
    message_ids: tuple[int, ...]
    done: asyncio.Future | None = None
    stamp: int = 0


@dataclass
class _Batch:
    """Events taken from the queue together, with how far writing them got (a retry continues there)."""

    events: list[_Upsert | _Delete]
    to_embed: list[StoredMessage] | None = None  # stored, not embedded yet (None: not stored yet)
    embedded_spaces: set[int] = field(default_factory=set)
    deletes_done: int = 0
    attempts: int = 0

    @property
    def messages(self) -> int:
        return sum(isinstance(e, _Upsert) for e in self.events)

    @property
    def channels(self) -> set[tuple[int, int]]:
        return set(self.newest_ids())

    def newest_ids(self) -> dict[tuple[int, int], int]:
        """The newest message id of this batch per (guild, channel)."""
        newest: dict[tuple[int, int], int] = {}
        for e in self.events:
            if isinstance(e, _Upsert):
                key = (e.message.guild_id, e.message.channel_id)
                newest[key] = max(newest.get(key, 0), e.message.id)
        return newest


def _batch_goes_on(event: _Upsert | _Delete) -> bool:
    """A deletion ends a batch (later upserts must not be written before it); a checkpoint does not: it is
    resolved once the whole batch is written, which includes everything queued before it."""
    return isinstance(event, _Upsert) or not event.message_ids


def _latest_upserts(events: Sequence[_Upsert | _Delete]) -> tuple[list[StoredMessage], set[int]]:
    """The batch's messages, the last copy of each winning, except that a history copy never replaces a copy
    queued before it; and the ids whose only copies came from history."""
    latest: dict[int, StoredMessage] = {}
    from_history: set[int] = set()
    for event in events:
        if not isinstance(event, _Upsert):
            continue
        message_id = event.message.id
        if event.only_new:
            if message_id in latest:
                continue
            from_history.add(message_id)
        else:
            from_history.discard(message_id)
        latest[message_id] = event.message
    return list(latest.values()), from_history


def worth_retrying(error: BaseException) -> bool:
    """Whether a write failed on the disk or the database (they recover), not on a bug in what was written."""
    if disk_full(error) is not None or isinstance(error, (StoreLocked, OSError, sqlite3.OperationalError)):
        return True
    psycopg = sys.modules.get("psycopg")  # a lost or refused server connection
    return psycopg is not None and isinstance(error, psycopg.OperationalError)


class Capture:
    def __init__(
        self,
        store: Store,
        services: EmbeddingServices,
        default_space_id: int,
        batch_size: int = 64,
        queue_size: int = 10_000,
        flush_seconds: float = 30.0,
        retry_seconds: float = RETRY_FIRST_SECONDS,
    ) -> None:
        self.store = store
        self.services = services
        self.default_space_id = default_space_id
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.retry_seconds = retry_seconds
        self._lanes = Lanes(queue_size)  # live events first, history-import copies behind them
        self._writer: asyncio.Task | None = None
        self._flusher: asyncio.Task | None = None
        self._repairer: asyncio.Task | None = None
        # (guild, channel, newest id this writer had finished there): a repair stops at that id, so it never
        # embeds messages a later batch is still embedding (Discord ids grow with time)
        self._repairs: asyncio.Queue[tuple[int, int, int]] = asyncio.Queue()
        self._checked: set[tuple[int, int]] = set()  # channels whose read space was repaired by this process
        self._failing_since: float | None = None  # while the writer retries a batch
        self.stored = 0
        self.embedded = 0
        self.failures = 0
        self.retained = 0  # messages of the batch being retried (the queue holds the rest)
        self.deleting: set[int] = set()  # messages whose deletion is queued: recall hides them until it is written

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._run(), name="memory-capture-writer")
            self._flusher = asyncio.create_task(self._flush_periodically(), name="memory-index-flusher")
            self._repairer = asyncio.create_task(self._repair_in_background(), name="memory-capture-repairer")

    async def stop(self, give_up_after: float = STOP_GIVES_UP_SECONDS) -> None:
        """Finish every queued event, stop the writer and persist the indexes.

        A batch that keeps failing (the disk is still full) is retried for ``give_up_after`` seconds, then
        the writer stops and the log says how many events were not written. A full disk while saving the
        indexes is logged: they are rebuilt from the database at the next start.
        """
        if self._writer is not None:
            joined = asyncio.ensure_future(self._lanes.join())
            while not joined.done():
                await asyncio.wait({joined}, timeout=0.5)
                failing = self._failing_since
                if not joined.done() and failing is not None and time.monotonic() - failing > give_up_after:
                    log.error(
                        "capture stops with %d message(s) not written and %d event(s) queued: the store kept "
                        "failing (see above). Messages stored without a vector are embedded after the next start",
                        self.retained,
                        self._lanes.qsize(),
                    )
                    break
            joined.cancel()
            tasks = (self._writer, self._flusher, self._repairer)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._writer = self._flusher = self._repairer = None
        with disk_full_is_a_warning(
            log, "index files not saved (no space left); rebuilt from the database at next start"
        ):
            await self.store.flush()

    async def drain(self, repairs: bool = False) -> None:
        """Wait until every event queued so far has been written (and, with ``repairs``, the background
        repairs that writing them started)."""
        await self._lanes.join()
        if repairs:
            await self._repairs.join()

    @property
    def pending(self) -> int:
        return self._lanes.qsize()

    # ------------------------------------------------------------------ events
    async def submit(self, message: StoredMessage, only_new: bool = False) -> None:
        """Queue a new or edited message (waits only when the queue is full).

        ``only_new``: a copy read from Discord's history, stored only if the message is not stored yet, so a
        live edit wins, whenever it was queued (history copies wait in a lane of their own, behind live events)."""
        if only_new:
            await self._lanes.put_history(_Upsert(message, only_new))
        else:
            await self._lanes.put_live(_Upsert(message))

    async def checkpoint(self) -> asyncio.Future:
        """A future done once every history copy queued before it is written (an import then commits its cursor)."""
        done = asyncio.get_running_loop().create_future()
        await self._lanes.put_history(_Delete((), done))
        return done

    async def delete(self, message_ids: Sequence[int], wait: bool = False) -> None:
        """Queue the deletion of messages (and their vectors everywhere), in order with earlier events."""
        done = asyncio.get_running_loop().create_future() if wait else None
        self.deleting.update(message_ids)
        await self._lanes.put_live(_Delete(tuple(message_ids), done))
        if done is not None:
            await done

    # ------------------------------------------------------------------ writer
    async def _run(self) -> None:
        while True:
            lane = await self._lanes.next()
            events = [lane.get_nowait()]
            limit = self.batch_size * (HISTORY_BATCHES if lane is self._lanes.history else 1)
            while len(events) < limit and _batch_goes_on(events[-1]) and not lane.empty():
                events.append(lane.get_nowait())
            kept = [e for e in events if not (isinstance(e, _Upsert) and self._lanes.overtaken(e.message.id, e.stamp))]
            try:
                await self._write_until_done(_Batch(kept))
            finally:
                for e in events:
                    if isinstance(e, _Delete):
                        self.deleting.difference_update(e.message_ids)
                    lane.task_done()

    async def _write_until_done(self, batch: _Batch) -> None:
        """Write the batch, retrying from where it stopped while the store fails (a full disk, a lock)."""
        pause = self.retry_seconds
        queue_full_told = False
        while True:
            try:
                await self._handle(batch)
            except Exception as exc:
                batch.attempts += 1
                self.failures += 1
                if not worth_retrying(exc) and batch.attempts >= ATTEMPTS_ON_UNEXPECTED_ERRORS:
                    self._drop(batch, exc)
                    return
                self._failing_since = self._failing_since or time.monotonic()
                self.retained = batch.messages
                if batch.attempts & (batch.attempts - 1) == 0:  # the 1st, 2nd, 4th, 8th... failure
                    log.error(
                        "capture could not write %d message(s) and %d deletion(s) (attempt %d): %s. They are "
                        "kept and retried every %.0fs at most; %d more event(s) wait in the queue",
                        batch.messages,
                        len(batch.events) - batch.messages,
                        batch.attempts,
                        disk_full(exc, self.store.where) or f"{type(exc).__name__}: {exc}",
                        RETRY_MAX_SECONDS,
                        self._lanes.qsize(),
                    )
                if self._lanes.full() and not queue_full_told:
                    queue_full_told = True
                    log.error(
                        "capture's queue is full (%d events wait behind the batch that cannot be written): new "
                        "messages now wait for room; nothing is dropped",
                        self._lanes.qsize(),
                    )
                await asyncio.sleep(pause)
                pause = min(RETRY_MAX_SECONDS, pause * 2)
                continue
            if batch.attempts:
                log.warning(
                    "capture wrote %d message(s) after %d failed attempt(s); %d event(s) queued",
                    batch.messages,
                    batch.attempts,
                    self._lanes.qsize(),
                )
                self._checked.difference_update(batch.channels)  # check them again: they may lack vectors
            self._failing_since, self.retained = None, 0
            for channel, newest in batch.newest_ids().items():
                if channel not in self._checked:
                    self._checked.add(channel)
                    self._repairs.put_nowait((*channel, newest))
            return

    def _drop(self, batch: _Batch, exc: Exception) -> None:
        ids = [e.message.id for e in batch.events if isinstance(e, _Upsert)]
        log.error(
            "memory writer gave up on a batch of %d events after %d attempts (messages %s)",
            len(batch.events),
            batch.attempts,
            ids[:20],
            exc_info=exc,
        )
        self._failing_since, self.retained = None, 0
        for event in batch.events[batch.deletes_done :]:
            if isinstance(event, _Delete) and event.done is not None and not event.done.done():
                event.done.set_exception(exc)

    async def _handle(self, batch: _Batch) -> None:
        """Store, embed, delete: each step once, so a retry continues after the last step that succeeded."""
        if batch.to_embed is None:
            batch.to_embed = await self._store(*_latest_upserts(batch.events))
        if batch.to_embed:
            await self._embed(batch.to_embed, done=batch.embedded_spaces)
            batch.to_embed = []
        deletes = [e for e in batch.events if isinstance(e, _Delete)]
        for event in deletes[batch.deletes_done :]:
            if event.message_ids:  # none: a checkpoint
                await self.store.delete_messages(event.message_ids)
                self._lanes.deletion_written(event.message_ids)
            batch.deletes_done += 1
            if event.done is not None and not event.done.done():
                event.done.set_result(None)

    async def write(self, messages: Sequence[StoredMessage]) -> None:
        """Store messages and embed the new or changed ones into every write space of their channel."""
        await self.embed(await self._store(messages))

    async def _store(self, messages: Sequence[StoredMessage], only_new: set[int] | None = None) -> list[StoredMessage]:
        """Store messages; returns the new or changed ones (an edit queued after its message wins). Messages
        whose id is in ``only_new`` are left out when already stored."""
        if only_new:
            stored = await self.store.get_messages(only_new)
            messages = [m for m in messages if m.id not in stored]
        if not messages:
            return []
        latest = {m.id: m for m in messages}
        await self.store.ensure_channels({(m.guild_id, m.channel_id) for m in latest.values()}, self.default_space_id)
        changed = list(await self.store.add_messages(latest.values()))
        self.stored += len(changed)
        return changed

    async def embed(self, messages: Sequence[StoredMessage], only_space: int | None = None) -> None:
        """Embed ``messages`` into every write space of their channels (or just ``only_space``), then index them."""
        await self._embed(messages, only_space)

    async def _embed(
        self, messages: Sequence[StoredMessage], only_space: int | None = None, done: set[int] | None = None
    ) -> None:
        """:meth:`embed`, skipping the spaces in ``done`` and adding each space written to it."""
        by_space: dict[int, list[StoredMessage]] = {}
        states = await self.store.channel_states({(m.guild_id, m.channel_id) for m in messages})  # read per batch:
        for message in messages:  # a migration adds its target space in any process
            state = states.get((message.guild_id, message.channel_id))
            for space_id in state.write_space_ids if state else ():
                if (only_space is not None and space_id != only_space) or (done is not None and space_id in done):
                    continue
                by_space.setdefault(space_id, []).append(message)
        spaces = {s.id: s for s in await self.store.list_spaces()} if by_space else {}
        for space_id, group in by_space.items():
            space = spaces.get(space_id) or await self.store.get_space(space_id)
            try:
                vectors = await self.services.get(space.spec).aencode_documents([m.content for m in group])
            except UserFacingError as exc:
                self.failures += 1
                log.error(
                    "could not embed %d messages into %s: %s (they are stored; repair() retries)",
                    len(group),
                    space.spec.key,
                    exc,
                )
                continue
            accepted = await self.store.put_vectors(space, group, vectors)
            self.embedded += len(accepted)
            if done is not None:
                done.add(space_id)

    async def repair(
        self,
        guild_id: int,
        channel_id: int,
        batch_size: int = 256,
        only_space: int | None = None,
        up_to_id: int = 2**63 - 1,
    ) -> int:
        """Embed the channel's messages (ids up to ``up_to_id``) that lack a vector in one of its write spaces
        (or ``only_space``); returns how many."""
        state = await self.store.get_channel(guild_id, channel_id)
        repaired = 0
        for space_id in state.write_space_ids if state else ():
            if only_space is not None and space_id != only_space:
                continue
            while missing := await self.store.messages_missing_vectors(
                space_id, guild_id, channel_id, limit=batch_size, up_to_id=up_to_id
            ):
                before = self.embedded
                await self.embed(missing, only_space=space_id)
                if self.embedded == before:
                    break  # embedding keeps failing; the log says why
                repaired += self.embedded - before
        return repaired

    async def _repair_in_background(self) -> None:
        """Embed what a channel's read space lacks, for channels the writer asks about (one at a time).

        Only the read space: a migration's target space is the migration's to fill (its catch-up)."""
        while True:
            guild_id, channel_id, up_to_id = await self._repairs.get()
            try:
                state = await self.store.get_channel(guild_id, channel_id)
                if state is not None:
                    repaired = await self.repair(
                        guild_id, channel_id, only_space=state.read_space_id, up_to_id=up_to_id
                    )
                    if repaired:
                        log.warning("channel %d: embedded %d stored message(s) lacking a vector", channel_id, repaired)
            except Exception as exc:
                self._checked.discard((guild_id, channel_id))  # the next write there tries again
                log.warning("could not check channel %d for messages without a vector: %s", channel_id, exc)
            finally:
                self._repairs.task_done()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                with disk_full_is_a_warning(log, "index files not saved (no space left); rebuilt from the database"):
                    await self.store.flush()
            except Exception:
                log.exception("flushing indexes failed; they will be rebuilt from the database if needed")
