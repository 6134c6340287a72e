"""The write path: a bounded queue of message events and one background writer.

Listeners only enqueue (microseconds). The writer takes events in arrival order, stores a batch
of messages in one transaction, embeds it once per write space of its channels in the embedding
executor, stores the vectors and adds them to the channel indexes. A full queue makes listeners
wait (back-pressure) instead of dropping messages. If embedding fails, the messages are still
stored; :meth:`Capture.repair` embeds whatever lacks a vector later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from qwen3_memory.backends import Store
from qwen3_memory.errors import UserFacingError
from qwen3_memory.models.embedding import EmbeddingServices
from qwen3_memory.records import StoredMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Upsert:
    message: StoredMessage


@dataclass(frozen=True)
class _Delete:
    message_ids: tuple[int, ...]
    done: asyncio.Future | None = None


class Capture:
    def __init__(
        self,
        store: Store,
        services: EmbeddingServices,
        default_space_id: int,
        batch_size: int = 64,
        queue_size: int = 10_000,
        flush_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.services = services
        self.default_space_id = default_space_id
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self._queue: asyncio.Queue[_Upsert | _Delete] = asyncio.Queue(maxsize=queue_size)
        self._writer: asyncio.Task | None = None
        self._flusher: asyncio.Task | None = None
        self.stored = 0
        self.embedded = 0
        self.failures = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._run(), name="memory-capture-writer")
            self._flusher = asyncio.create_task(self._flush_periodically(), name="memory-index-flusher")

    async def stop(self) -> None:
        """Finish every queued event, stop the writer and persist the indexes."""
        if self._writer is not None:
            await self._queue.join()
            for task in (self._writer, self._flusher):
                task.cancel()
            await asyncio.gather(self._writer, self._flusher, return_exceptions=True)
            self._writer = self._flusher = None
        await self.store.flush()

    async def drain(self) -> None:
        """Wait until every event queued so far has been written."""
        await self._queue.join()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------------ events
    async def submit(self, message: StoredMessage) -> None:
        """Queue a new or edited message (waits only when the queue is full)."""
        await self._queue.put(_Upsert(message))

    async def delete(self, message_ids: Sequence[int], wait: bool = False) -> None:
        """Queue the deletion of messages (and their vectors everywhere), in order with earlier events."""
        done = asyncio.get_running_loop().create_future() if wait else None
        await self._queue.put(_Delete(tuple(message_ids), done))
        if done is not None:
            await done

    # ------------------------------------------------------------------ writer
    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            batch = [event]
            while len(batch) < self.batch_size and isinstance(batch[-1], _Upsert) and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._handle(batch)
            except Exception:
                self.failures += 1
                log.exception("memory writer failed on a batch of %d events", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _handle(self, batch: list[_Upsert | _Delete]) -> None:
        upserts = [e.message for e in batch if isinstance(e, _Upsert)]
        if upserts:
            await self.write(upserts)
        for event in batch:
            if isinstance(event, _Delete):
                try:
                    await self.store.delete_messages(event.message_ids)
                finally:
                    if event.done is not None and not event.done.done():
                        event.done.set_result(None)

    async def write(self, messages: Sequence[StoredMessage]) -> None:
        """Store messages and embed the new or changed ones into every write space of their channel."""
        latest = {m.id: m for m in messages}  # an edit queued after its message wins
        for key in {(m.guild_id, m.channel_id) for m in latest.values()}:
            await self.store.ensure_channel(*key, self.default_space_id)
        changed = await self.store.add_messages(latest.values())
        self.stored += len(changed)
        await self.embed(changed)

    async def embed(self, messages: Sequence[StoredMessage], only_space: int | None = None) -> None:
        """Embed ``messages`` into every write space of their channels (or just ``only_space``), then index them."""
        by_space: dict[int, list[StoredMessage]] = {}
        for key in {(m.guild_id, m.channel_id) for m in messages}:
            state = await self.store.get_channel(*key)
            for space_id in state.write_space_ids if state else ():
                if only_space is not None and space_id != only_space:
                    continue
                by_space.setdefault(space_id, []).extend(m for m in messages if (m.guild_id, m.channel_id) == key)
        for space_id, group in by_space.items():
            space = await self.store.get_space(space_id)
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

    async def repair(self, guild_id: int, channel_id: int, batch_size: int = 256) -> int:
        """Embed the channel's messages that lack a vector in one of its write spaces; returns how many."""
        state = await self.store.get_channel(guild_id, channel_id)
        repaired = 0
        for space_id in state.write_space_ids if state else ():
            while missing := await self.store.messages_missing_vectors(
                space_id, guild_id, channel_id, limit=batch_size
            ):
                before = self.embedded
                await self.embed(missing, only_space=space_id)
                if self.embedded == before:
                    break  # embedding keeps failing; the log says why
                repaired += self.embedded - before
        return repaired

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.store.flush()
            except Exception:
                log.exception("flushing indexes failed; they will be rebuilt from the database if needed")
