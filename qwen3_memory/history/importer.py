"""Import a guild's Discord history through the live capture pipeline, resumably, while the bot runs.

Pages come from a :class:`HistorySource` (discord.py, which waits out Discord's rate limits). Each
page's human messages, minus members who opted out and messages already stored, are queued to the
capture writer as history copies (stored only if still absent, so a live edit or delete always wins),
followed by a checkpoint; once the writer passes it, the channel's cursor moves to the page's
newest id in the database. At most ``pages_in_flight`` pages wait for the writer per channel, so
live messages never queue behind a whole import, and ``channels_per_guild`` channels are read at once;
at most ``guilds_at_once`` guilds import (or fill a gap) at a time, the others wait in order, so a
bot in many servers never lets imports crowd out live capture.
The writer embeds off the event loop into every write space of the channel (both spaces during a
migration) and keeps the full-text index, exactly as for live messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from qwen3_memory.errors import UserFacingError
from qwen3_memory.history.cursors import (
    CANCELLED,
    DONE,
    FAILED,
    PAUSED,
    QUEUED,
    RUNNING,
    UNFINISHED,
    ChannelImport,
    ImportCursors,
)
from qwen3_memory.history.progress import ImportProgress, span_fraction
from qwen3_memory.history.source import ChannelRef, ChannelUnreadable, HistoryPage, HistorySource
from qwen3_memory.memory import Memory
from qwen3_memory.settings import HistorySettings

log = logging.getLogger(__name__)


class ImportRefused(UserFacingError):
    """An import cannot start, pause or resume now (one is already running, none is running...)."""


class _Cancelled(Exception):
    pass


@dataclass
class _WrittenPage:
    written: asyncio.Future  # done once the capture writer passed the page's checkpoint
    newest_id: int
    read: int
    stored: int
    skipped: int


class _GuildImport:
    """One guild's running import: its progress, its pause switch and its task."""

    def __init__(self, progress: ImportProgress, paused: bool = False) -> None:
        self.progress = progress
        self.unpaused = asyncio.Event()
        if not paused:
            self.unpaused.set()
        else:
            progress.state = PAUSED
        self.cancelled = False
        self.task: asyncio.Task | None = None


OnWritten = Callable[[ChannelRef, _WrittenPage], Awaitable[None]]


class HistoryImporter:
    def __init__(self, memory: Memory, source: HistorySource, settings: HistorySettings) -> None:
        self.memory = memory
        self.source = source
        self.settings = settings
        self.cursors = ImportCursors(memory.store)
        self._imports: dict[int, _GuildImport] = {}
        self._turns = asyncio.Semaphore(max(1, settings.guilds_at_once))  # guilds importing at once

    # ------------------------------------------------------------------ what the faces call
    def progress(self, guild_id: int) -> ImportProgress | None:
        running = self._imports.get(guild_id)
        return running.progress if running else None

    async def start(
        self, guild_id: int, channels: Sequence[ChannelRef], since_id: int = 0, estimate: str = ""
    ) -> ImportProgress:
        """Import ``channels`` (threads included as their own refs) from ``since_id`` in the background."""
        running = self._imports.get(guild_id)
        if running is not None and not running.progress.finished_state:
            raise ImportRefused(
                "an import is already running in this server: see `/memory import status`, or cancel it first"
            )
        if not channels:
            raise ImportRefused("there is no channel to import here that both you and I can read")
        await self.cursors.queue(guild_id, channels, since_id)
        progress = ImportProgress(guild_id, channels_total=len(channels), estimate=estimate)
        self._launch(guild_id, _GuildImport(progress), [(c, since_id) for c in channels])
        return progress

    async def resume_unfinished(self) -> list[ImportProgress]:
        """Start again every import a stopped process left unfinished, each channel from its cursor."""
        rows = await self.cursors.channels(statuses=UNFINISHED)
        by_guild: dict[int, list[ChannelImport]] = {}
        for row in rows:
            by_guild.setdefault(row.guild_id, []).append(row)
        resumed = []
        for guild_id, channels in by_guild.items():
            if guild_id in self._imports and not self._imports[guild_id].progress.finished_state:
                continue
            done = [r for r in await self.cursors.channels(guild_id) if r.status not in UNFINISHED]
            progress = ImportProgress(guild_id, channels_total=len(channels) + len(done), channels_done=len(done))
            for row in channels + done:
                progress.read, progress.stored = progress.read + row.read, progress.stored + row.stored
                progress.skipped += row.skipped
            for row in channels:
                await self._embed_what_a_stop_left(row)
            paused = any(r.status == PAUSED for r in channels)
            log.info("history import of guild %d resumes: %d channel(s) left", guild_id, len(channels))
            self._launch(guild_id, _GuildImport(progress, paused=paused), [(r.ref, r.cursor) for r in channels])
            resumed.append(progress)
        return resumed

    async def pause(self, guild_id: int) -> ImportProgress:
        running = self._running(guild_id)
        running.unpaused.clear()
        running.progress.state = PAUSED
        await self.cursors.set_status(guild_id, None, PAUSED, only=(QUEUED, RUNNING))
        return running.progress

    async def resume(self, guild_id: int) -> ImportProgress:
        running = self._running(guild_id)
        await self.cursors.set_status(guild_id, None, QUEUED, only=(PAUSED,))
        running.progress.state = RUNNING
        running.unpaused.set()
        return running.progress

    async def cancel(self, guild_id: int) -> ImportProgress:
        """Stop at the next page; what was imported stays, and a new import skips it when read again."""
        running = self._running(guild_id)
        running.cancelled = True
        running.unpaused.set()
        if running.task is not None:
            await asyncio.gather(running.task, return_exceptions=True)
        return running.progress

    async def wait(self, guild_id: int) -> ImportProgress:
        """Until the guild's import is over (tests, the command line)."""
        running = self._imports[guild_id]
        if running.task is not None:
            await asyncio.gather(running.task, return_exceptions=True)
        return running.progress

    async def close(self) -> None:
        """Stop reading (unload, shutdown): the rows stay unfinished and the next start resumes them."""
        tasks = [r.task for r in self._imports.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def fill_gap(self, guild_id: int, channels: Sequence[ChannelRef], stored_before_id: int) -> ImportProgress:
        """Fetch what enabled ``channels`` got while the bot was away: the messages after the newest one stored
        before ``stored_before_id`` (the moment the bot lost the gateway), at most ``gap_fill_max_messages``
        per channel. Channels with an unfinished import are left to it; channels with nothing stored to
        ``/memory import``."""
        unfinished = {r.channel_id for r in await self.cursors.channels(guild_id, UNFINISHED)}
        progress = ImportProgress(guild_id, channels_total=len(channels))
        async with self._turn(progress):
            await self._fill_gap_channels(progress, channels, unfinished, stored_before_id)
        progress.state, progress.finished = DONE, time.monotonic()
        log.info("gap fill of guild %d: %s", guild_id, progress.summary())
        return progress

    async def _fill_gap_channels(
        self, progress: ImportProgress, channels: Sequence[ChannelRef], unfinished: set[int], stored_before_id: int
    ) -> None:
        guild_id = progress.guild_id
        for ref in channels:
            newest = await self._newest_stored(guild_id, ref.channel_id, stored_before_id)
            if ref.channel_id in unfinished or not newest:
                progress.channels_done += 1
                continue
            limit, read_before = self.settings.gap_fill_max_messages, progress.read
            try:
                await self._read_channel(_GuildImport(progress), ref, newest, limit=limit)
            except ChannelUnreadable as exc:
                progress.failures.append(f"{ref.label}: {exc}")
            if progress.read - read_before >= limit:
                log.warning(
                    "gap fill of channel %d stopped after %d messages: run /memory import there for the rest",
                    ref.channel_id,
                    limit,
                )
            progress.channels_done += 1

    # ------------------------------------------------------------------ the work
    def _running(self, guild_id: int) -> _GuildImport:
        running = self._imports.get(guild_id)
        if running is None or running.progress.finished_state:
            raise ImportRefused("no import is running in this server; start one with `/memory import start`")
        return running

    def _launch(self, guild_id: int, running: _GuildImport, channels: list[tuple[ChannelRef, int]]) -> None:
        self._imports[guild_id] = running
        running.task = asyncio.create_task(self._run(running, channels), name=f"history-import-{guild_id}")

    @asynccontextmanager
    async def _turn(self, progress: ImportProgress) -> AsyncIterator[None]:
        """Wait until fewer than ``guilds_at_once`` guilds import; shown as queued meanwhile."""
        if self._turns.locked():
            state, progress.state = progress.state, QUEUED
            log.info("history import of guild %d waits for another server's import to end", progress.guild_id)
            await self._turns.acquire()
            progress.state = state if progress.state == QUEUED else progress.state
        else:
            await self._turns.acquire()
        try:
            yield
        finally:
            self._turns.release()

    async def _run(self, running: _GuildImport, channels: list[tuple[ChannelRef, int]]) -> None:
        async with self._turn(running.progress):
            await self._run_turn(running, channels)

    async def _run_turn(self, running: _GuildImport, channels: list[tuple[ChannelRef, int]]) -> None:
        progress = running.progress
        todo: asyncio.Queue[tuple[ChannelRef, int]] = asyncio.Queue()
        for item in channels:
            todo.put_nowait(item)
        readers = [
            asyncio.create_task(self._read_channels(running, todo))
            for _ in range(min(self.settings.channels_per_guild, len(channels)) or 1)
        ]
        try:
            await asyncio.gather(*readers)
        except BaseException:
            for reader in readers:
                reader.cancel()
            raise
        progress.state = CANCELLED if running.cancelled else DONE
        progress.finished = time.monotonic()
        log.info("history import of guild %d %s", progress.guild_id, progress.summary())

    async def _read_channels(self, running: _GuildImport, todo: asyncio.Queue[tuple[ChannelRef, int]]) -> None:
        guild_id = running.progress.guild_id
        while not todo.empty():
            ref, cursor = todo.get_nowait()
            if running.cancelled:
                await self.cursors.set_status(guild_id, ref.channel_id, CANCELLED)
                continue
            await self._import_channel(running, ref, cursor)
            running.progress.channels_done += 1

    async def _import_channel(self, running: _GuildImport, ref: ChannelRef, cursor: int) -> None:
        guild_id, progress = running.progress.guild_id, running.progress
        await self.cursors.set_status(guild_id, ref.channel_id, PAUSED if not running.unpaused.is_set() else RUNNING)
        before = (progress.read, progress.stored, progress.skipped, progress.rate_limit_waits)

        async def queued(page: HistoryPage) -> None:
            await self.cursors.queued(guild_id, ref.channel_id, page.newest_id)

        async def commit(channel: ChannelRef, page: _WrittenPage) -> None:
            counts = (page.read, page.stored, page.skipped)
            await self.cursors.advance(guild_id, channel.channel_id, page.newest_id, *counts)

        progress.current, progress.current_fraction = ref.label, 0.0
        status, error = DONE, None
        try:
            await self._read_channel(running, ref, cursor, on_written=commit, on_queued=queued)
        except _Cancelled:
            status = CANCELLED
        except ChannelUnreadable as exc:
            status, error = FAILED, str(exc)
            progress.failures.append(f"{ref.label}: {exc}")
        except Exception as exc:  # the store failed beyond capture's retries, a Discord error...
            status, error = FAILED, f"{type(exc).__name__}: {exc}"
            progress.failures.append(f"{ref.label}: {error}")
            log.exception("history import of channel %d failed", ref.channel_id)
        await self.cursors.set_status(guild_id, ref.channel_id, status, error)
        progress.current_fraction = 0.0
        log.info(
            "history import of guild %d channel %d %s: read %d, stored %d, skipped %d, rate-limit waits %d%s",
            guild_id,
            ref.channel_id,
            status,
            progress.read - before[0],
            progress.stored - before[1],
            progress.skipped - before[2],
            progress.rate_limit_waits - before[3],
            f" ({error})" if error else "",
        )

    async def _read_channel(
        self,
        running: _GuildImport,
        ref: ChannelRef,
        after_id: int,
        limit: int | None = None,
        on_written: OnWritten | None = None,
        on_queued: Callable[[HistoryPage], Awaitable[None]] | None = None,
    ) -> None:
        """Queue the channel's pages after ``after_id`` to the writer, ``on_written`` once each is written."""
        in_flight: deque[_WrittenPage] = deque()
        start_id = max(after_id, ref.channel_id)

        async def settle(keep: int) -> None:
            while in_flight and (len(in_flight) > keep or in_flight[0].written.done()):
                page = in_flight.popleft()
                await page.written
                if on_written is not None:
                    await on_written(ref, page)

        try:
            async for page in self.source.pages(running.progress.guild_id, ref.channel_id, after_id, limit):
                if not running.unpaused.is_set():
                    await settle(0)
                    await running.unpaused.wait()
                if running.cancelled:
                    raise _Cancelled
                if on_queued is not None:
                    await on_queued(page)
                in_flight.append(await self._queue_page(running.progress, page))
                running.progress.current_fraction = span_fraction(start_id, page.newest_id)
                await settle(self.settings.pages_in_flight)
        finally:
            if not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                await settle(0)

    async def _queue_page(self, progress: ImportProgress, page: HistoryPage) -> _WrittenPage:
        memory = self.memory
        kept = [m for m in page.messages if not await memory.is_opted_out(m.guild_id, m.author_id)]
        known = await self._stored_or_forgotten([m.id for m in kept]) if kept else set()
        new = [m for m in kept if m.id not in known]
        for message in new:
            await memory.capture.submit(message, only_new=True)
        skipped = page.read - len(new)
        progress.read += page.read
        progress.stored += len(new)
        progress.skipped += skipped
        progress.rate_limit_waits += page.rate_limit_waits
        progress.rate_limit_seconds += page.rate_limit_seconds
        written = await memory.capture.checkpoint()
        return _WrittenPage(written, page.newest_id, page.read, len(new), skipped)

    async def _embed_what_a_stop_left(self, row: ChannelImport) -> None:
        """Messages a stopped process stored past the cursor but had not embedded yet get their vectors in every
        write space (a migration's target included, which neither live repair nor catch-up would give them)."""
        if row.queued_up_to <= row.cursor:
            return
        store = self.memory.store
        state = await store.get_channel(row.guild_id, row.channel_id)
        for space_id in state.write_space_ids if state else ():
            after = row.cursor
            while missing := await store.messages_missing_vectors(
                space_id, row.guild_id, row.channel_id, after_id=after, up_to_id=row.queued_up_to
            ):
                await self.memory.capture.embed(missing, only_space=space_id)
                after = missing[-1].id

    async def _stored_or_forgotten(self, ids: list[int]) -> set[int]:
        """Which of these messages are stored already, or were deleted or forgotten (never stored again)."""
        marks = ",".join("?" * len(ids))
        rows = await self.memory.store.fetchall(
            f"SELECT id FROM messages WHERE id IN ({marks}) "
            f"UNION ALL SELECT message_id FROM forgotten_messages WHERE message_id IN ({marks})",
            [*ids, *ids],
        )
        return {int(row[0]) for row in rows}

    async def _newest_stored(self, guild_id: int, channel_id: int, before_id: int) -> int:
        row = await self.memory.store.fetchone(
            "SELECT MAX(id) FROM messages WHERE guild_id = ? AND channel_id = ? AND id < ?",
            (guild_id, channel_id, before_id),
        )
        return int(row[0]) if row and row[0] else 0
