"""Move a memory from SQLite + FAISS to PostgreSQL + pgvector without re-embedding: ``move-store``.

For an operator whose bot outgrew one process. Everything the memory knows is copied: messages,
spaces (same keys and specs; their ids may differ, so they are mapped by key), channel pointers,
opted-out members and every space's vectors. The source is only read, so the bot may keep running
on it; "run move-store again" is always the answer, and it converges on an exact copy:

- *resumable*: ``move_store_progress`` on the destination holds, per channel and phase, the last
  message id copied; the bulk loads (:meth:`PostgresStore.copy_messages` and ``copy_vectors``) skip
  rows already present, so a run killed between a load and its cursor update repeats nothing;
- *verified*: both stores' ``checksums`` are compared per channel and space. A channel that differs
  (edited or deleted on the source after it was copied, or captured out of id order) is repaired
  and checked again; what still differs is reported with what to do, never hidden.

Migration job history is not moved: it describes work done on the source. Do not run move-store
once the bots write to the destination: their changes there would be overwritten by the source.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from qwen3_memory.backends.claims import AdvisoryClaims
from qwen3_memory.backends.postgres.schema import HALFVEC_ABOVE
from qwen3_memory.backends.sqlite.store import SQLiteStore
from qwen3_memory.errors import SettingsError, UserFacingError
from qwen3_memory.history.cursors import ImportCursors
from qwen3_memory.migration import jobs as J
from qwen3_memory.recall.floors import get_floor, save_floor
from qwen3_memory.records import ChannelState, SpaceRecord, StoredMessage
from qwen3_memory.settings import Settings

if TYPE_CHECKING:
    from qwen3_memory.backends.postgres.store import PostgresStore

log = logging.getLogger(__name__)

BATCH_ROWS = 1000  # messages or vectors per bulk COPY (and per cursor update)
RESUME_LINES = 20  # channels named one per line when resuming
MESSAGES, VECTORS = "messages", "vectors"  # the phases, in order
NEXT_STEP = (
    'next: set memory_system.backend to "postgres" and memory_system.database_url (or MEMORY_DATABASE_URL) '
    "to the destination, then restart the bot(s)"
)
AGAIN = "run move-store again (stop the bot first if it still writes to the SQLite memory)"
PROGRESS_TABLE = """
CREATE TABLE IF NOT EXISTS move_store_progress (
    source text NOT NULL,
    guild_id bigint NOT NULL,
    channel_id bigint NOT NULL,
    space_key text NOT NULL,
    phase text NOT NULL,
    cursor bigint NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (source, guild_id, channel_id, space_key, phase)
)
"""
_SAVE_CURSOR = (
    "INSERT INTO move_store_progress (source, guild_id, channel_id, space_key, phase, cursor, updated_at) "
    "VALUES (?,?,?,?,?,?,?) ON CONFLICT (source, guild_id, channel_id, space_key, phase) "
)

Cursor = tuple[int, int, str, str]  # (guild, channel, phase, space key; '' for messages)


class MoveRefused(UserFacingError):
    """The move cannot start as asked; nothing was written to either memory."""


class ProgressBar(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def close(self) -> None: ...


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def no_bars(phase: str, total: int) -> ProgressBar:
    return _NoBar()


@dataclass
class MoveReport:
    """What one run did and found; ``mismatches`` empty means the destination is an exact copy."""

    source: str
    destination: str  # redacted: never the password
    channels: int = 0
    messages: int = 0  # in the destination, verified
    messages_copied: int = 0  # by this run
    vectors: dict[str, int] = field(default_factory=dict)  # per space key, in the destination
    vectors_copied: dict[str, int] = field(default_factory=dict)
    opted_out: int = 0
    resumed: list[dict[str, Any]] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "next": NEXT_STEP if self.passed else AGAIN}

    def render(self) -> str:
        verdict = "moved" if self.passed else "NOT verified:"
        lines = [
            f"{verdict} {self.source} -> {self.destination} in {self.seconds:.1f}s",
            f"  channels: {self.channels}, messages: {self.messages} ({self.messages_copied} copied by this run), "
            f"opted-out members: {self.opted_out}",
        ]
        lines += [
            f"  vectors {key}: {n} ({self.vectors_copied.get(key, 0)} copied by this run)"
            for key, n in self.vectors.items()
        ]
        lines += [f"  repaired: {r}" for r in self.repaired]
        lines += [f"  note: {n}" for n in self.notes]
        if self.passed:
            lines += ["verified: message and vector counts and checksums match in every channel", NEXT_STEP]
        else:
            lines += [f"MISMATCH: {m}" for m in self.mismatches] + [AGAIN + "; nothing needs undoing"]
        return "\n".join(lines)


@dataclass
class ChannelCheck:
    """One channel compared across the two memories (counts are the destination's)."""

    guild_id: int
    channel_id: int
    messages: int
    vectors: dict[str, int]
    pointers_differ: bool = False
    messages_differ: bool = False
    spaces_differ: list[int] = field(default_factory=list)  # source space ids
    problems: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- entry point


def destination_dsn(to: str | None, settings: Settings) -> str:
    """``--to``, else ``MEMORY_DATABASE_URL`` / ``memory_system.database_url``: where the memory goes."""
    dsn = to or settings.database_url
    if not dsn:
        raise SettingsError(
            "move-store needs a destination: --to postgresql://user:password@host:5432/dbname, "
            "or set MEMORY_DATABASE_URL"
        )
    return dsn


def source_path(settings: Settings) -> Path:
    """The SQLite file to move. Checked before opening it, because opening a missing file creates one."""
    if settings.memory.backend == "postgres":
        raise MoveRefused(
            "the memory of these settings is already on postgres (memory_system.backend); "
            "move-store moves a SQLite memory to PostgreSQL"
        )
    path = settings.database_path
    if not path.is_file():
        raise MoveRefused(f"no SQLite memory at {path}: check --settings and memory_system.paths")
    return path


async def move_store(
    settings: Settings,
    dsn: str,
    *,
    batch_rows: int = BATCH_ROWS,
    bars: Callable[[str, int], ProgressBar] = no_bars,
    notify: Callable[[str], None] = log.info,
) -> MoveReport:
    """Copy the settings' SQLite memory into the PostgreSQL database at ``dsn`` and verify the copy.

    ``bars(phase, total)`` makes a progress bar per phase; ``notify`` receives lines worth showing
    while the move runs (where it resumed). Refusals raise :class:`MoveRefused` / ``StoreError``.
    """
    from qwen3_memory.backends.postgres.store import PostgresStore  # psycopg is an optional dependency

    started = time.monotonic()
    path = source_path(settings)
    source = await SQLiteStore.open(path)
    try:
        dest = await PostgresStore.open(dsn, max_size=4)
        claims = AdvisoryClaims(dsn)  # one move-store per destination; a killed one's lock goes with its connection
        try:
            if not await claims.try_claim("move-store"):
                raise MoveRefused(
                    f"another move-store into {dest.where} is running; let it finish (or stop it), then run again"
                )
            report = await StoreMove(source, dest, str(path.resolve()), batch_rows, bars, notify).run()
        finally:
            await claims.close()
            await dest.close()
    finally:
        await source.close()
    report.seconds = time.monotonic() - started
    return report


# ---------------------------------------------------------------------------------------------- one run


class StoreMove:
    """One run of move-store between an open SQLite source and an open PostgreSQL destination."""

    def __init__(
        self,
        source: SQLiteStore,
        dest: PostgresStore,
        source_name: str,
        batch_rows: int,
        bars: Callable[[str, int], ProgressBar],
        notify: Callable[[str], None],
    ) -> None:
        self.source = source
        self.dest = dest
        self.source_name = source_name  # tells this source's progress rows from another memory's
        self.batch_rows = max(1, batch_rows)
        self.bars = bars
        self.notify = notify
        self.spaces: dict[int, SpaceRecord] = {}  # source space id -> the destination's space of the same key
        self.cursors: dict[Cursor, int] = {}
        self.report = MoveReport(source=source_name, destination=dest.where)

    async def run(self) -> MoveReport:
        """Check, then copy phase by phase, then verify (and repair what differs)."""
        channels = await self.source.list_channels()
        counts = {(g, c): n for g, c, n in await self.source.message_channels()}
        keys = sorted(set(counts) | {(s.guild_id, s.channel_id) for s in channels})
        self.cursors = await self._load_cursors()
        await self._refuse_conflicts(channels, keys)
        await self._claim(keys)
        self._announce_resume()
        for space in await self.source.list_spaces():
            self.spaces[space.id] = await self.dest.ensure_space(space.spec)
        for state in channels:
            await self._copy_pointers(state)
        await self._copy_opted_out()
        await self._copy_floors_and_imports()
        await self._note_jobs_and_halfvecs()
        await self._copy_all_messages(keys, counts)
        await self._copy_all_vectors(keys)
        await self._verify({(s.guild_id, s.channel_id): s for s in channels}, keys)
        self.report.channels = len(keys)
        return self.report

    # ------------------------------------------------------------------ progress rows
    async def _load_cursors(self) -> dict[Cursor, int]:
        """This source's cursors from an earlier run (none on a fresh destination: no table yet)."""
        if not (await self.dest.fetchone("SELECT to_regclass('move_store_progress') IS NOT NULL"))[0]:
            return {}
        rows = await self.dest.fetchall(
            "SELECT guild_id, channel_id, phase, space_key, cursor FROM move_store_progress WHERE source = ?",
            (self.source_name,),
        )
        return {(g, c, phase, key): int(cursor) for g, c, phase, key, cursor in rows}

    async def _claim(self, keys: Sequence[tuple[int, int]]) -> None:
        """Mark every channel as this source's before writing any of it, so that a later run, seeing
        pointers the source moved meanwhile, updates them instead of taking them for another memory's."""
        async with self.dest.transaction() as db:
            await db.execute(PROGRESS_TABLE)
            if keys:
                await db.executemany(
                    _SAVE_CURSOR + "DO NOTHING",
                    [(self.source_name, g, c, "", MESSAGES, 0, time.time()) for g, c in keys],
                )
        for g, c in keys:
            self.cursors.setdefault((g, c, MESSAGES, ""), 0)

    async def _save_cursor(self, cursor: Cursor, value: int) -> None:
        g, c, phase, key = cursor
        async with self.dest.transaction() as db:
            await db.execute(
                _SAVE_CURSOR + "DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                (self.source_name, g, c, key, phase, value, time.time()),
            )
        self.cursors[cursor] = value

    def _announce_resume(self) -> None:
        started = {k: v for k, v in self.cursors.items() if v > 0}
        self.report.resumed = [
            {"guild": g, "channel": c, "phase": phase, "space": key or None, "cursor": v}
            for (g, c, phase, key), v in sorted(started.items())
        ]
        if not started:
            return
        where: dict[tuple[int, int], list[str]] = {}
        for (g, c, phase, key), v in sorted(started.items()):
            where.setdefault((g, c), []).append(f"{'messages' if phase == MESSAGES else key} after id {v}")
        self.notify(
            f"resuming an earlier move into {self.dest.where}: {len(where)} channel(s) were copied up to these "
            "cursors; copying only what is missing"
        )
        for (g, c), parts in list(where.items())[:RESUME_LINES]:
            self.notify(f"  channel {c} of guild {g}: {', '.join(parts)}")
        if len(where) > RESUME_LINES:
            self.notify(f"  and {len(where) - RESUME_LINES} more channel(s)")

    # ------------------------------------------------------------------ refusals (before any write)
    async def _refuse_conflicts(self, channels: Sequence[ChannelState], keys: Sequence[tuple[int, int]]) -> None:
        """Refuse a destination that holds another memory's version of our channels, or that bots already
        write to; either would be overwritten. Channels this source claimed in an earlier run are ours."""
        ours = {(g, c) for g, c, _, _ in self.cursors}
        there = {(s.guild_id, s.channel_id): s for s in await self.dest.list_channels()}
        dest_keys = {s.id: s.spec.key for s in await self.dest.list_spaces()}
        source_keys = {s.id: s.spec.key for s in await self.source.list_spaces()}
        clashes: list[str] = []
        for state in channels:
            other = there.get((state.guild_id, state.channel_id))
            mine, theirs = source_keys[state.read_space_id], other and dest_keys[other.read_space_id]
            if other is not None and (state.guild_id, state.channel_id) not in ours and theirs != mine:
                clashes.append(
                    f"channel {state.channel_id} of guild {state.guild_id} reads space {theirs} there, {mine} here"
                )
        for g, c in keys:
            newest = await self.dest.newest_message_id(g, c)
            if (g, c) not in ours and newest:
                clashes.append(f"channel {c} of guild {g} already has messages there that move-store did not copy")
            elif newest > self.cursors.get((g, c, MESSAGES, ""), 0) and not await self.source.get_messages([newest]):
                clashes.append(f"channel {c} of guild {g} has messages there the source never had: a bot writes there")
        if clashes:
            more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
            raise MoveRefused(
                f"{self.dest.where} already holds another memory: {clashes[0]}{more}; move into an empty database "
                "(or remove those channels there). Nothing was written"
            )

    # ------------------------------------------------------------------ pointers, opt-outs, notes
    async def _copy_pointers(self, state: ChannelState) -> None:
        """Make the destination channel read, write and be enabled exactly as on the source."""
        read = self.spaces[state.read_space_id].id
        writes = {self.spaces[s].id for s in state.write_space_ids}
        current = await self.dest.get_channel(state.guild_id, state.channel_id)
        if current == ChannelState(state.guild_id, state.channel_id, read, tuple(sorted(writes)), state.enabled):
            return
        g, c = state.guild_id, state.channel_id
        current = await self.dest.ensure_channel(g, c, read, state.enabled)
        for space_id in sorted(writes | {read}):  # the read space first becomes a write space: set_read_space wants it
            await self.dest.add_write_space(g, c, space_id)
        await self.dest.set_read_space(g, c, read)
        await self.dest.set_channel_enabled(g, c, state.enabled)
        for space_id in set(current.write_space_ids) | {read}:
            if space_id not in writes:
                await self.dest.remove_write_space(g, c, space_id)

    async def _copy_opted_out(self) -> None:
        """Add the source's opt-outs; never remove one the destination has (that is the member's choice)."""
        guilds = [r[0] for r in await self.source.fetchall("SELECT DISTINCT guild_id FROM opted_out_users")]
        for guild_id in guilds:
            wanted = await self.source.opted_out_users(guild_id)
            for user_id in sorted(wanted - await self.dest.opted_out_users(guild_id)):
                await self.dest.set_opted_out(guild_id, user_id, True)
            self.report.opted_out += len(wanted)

    async def _copy_floors_and_imports(self) -> None:
        """Each space's calibrated score floor (the newer one wins) and the history-import cursors, so recall
        answers with the same floors and an unfinished import resumes on the destination where it stopped."""
        for source_id, dest_space in self.spaces.items():
            floor = await get_floor(self.source, source_id)
            there = await get_floor(self.dest, dest_space.id)
            if floor is not None and (there is None or there.measured_at < floor.measured_at):
                await save_floor(self.dest, replace(floor, space_id=dest_space.id))
        imports = await ImportCursors(self.source).channels()
        if imports:
            await ImportCursors(self.dest).adopt(imports)
            self.report.notes.append(f"history-import cursors moved for {len(imports)} channel(s)")

    async def _note_jobs_and_halfvecs(self) -> None:
        """Say what is not moved (job history) and what cannot be checked bit for bit (halfvec spaces)."""
        jobs = J.JobStore(self.source)
        history = await jobs.with_status(J.PENDING, J.RUNNING, J.PAUSED, J.CANCELLED, J.FAILED, J.COMPLETED)
        if history:
            self.report.notes.append(
                f"migration job history not moved ({len(history)} job(s)): the PostgreSQL memory starts without it"
            )
        for job in history:
            if job.status in (J.PENDING, J.RUNNING, J.PAUSED):
                self.report.notes.append(
                    f"migration #{job.id} is {job.status} on the source: finish or cancel it there and run move-store "
                    "again, or start it anew on PostgreSQL"
                )
        for space in self.spaces.values():
            if space.dimension > HALFVEC_ABOVE:
                self.report.notes.append(
                    f"space {space.spec.key} has {space.dimension} dimensions, stored as halfvec (float16) on "
                    "PostgreSQL: its vectors are compared by count, not bit for bit"
                )

    # ------------------------------------------------------------------ messages
    async def _copy_all_messages(self, keys: Sequence[tuple[int, int]], counts: dict[tuple[int, int], int]) -> None:
        bar = self.bars(MESSAGES, sum(counts.values()))
        try:
            for g, c in keys:
                shown = await self._copy_messages(g, c, bar)
                bar.update(max(0, counts.get((g, c), 0) - shown))  # what an earlier run copied
        finally:
            bar.close()

    async def _copy_messages(self, g: int, c: int, bar: ProgressBar) -> int:
        """Copy the channel's messages after its cursor, batch by batch; returns how many were read."""
        cursor = (g, c, MESSAGES, "")
        after, read = self.cursors.get(cursor, 0), 0
        while batch := await self.source.scroll_messages(g, c, after_id=after, limit=self.batch_rows):
            self.report.messages_copied += await self.dest.copy_messages(batch)
            after = batch[-1].id
            await self._save_cursor(cursor, after)
            read += len(batch)
            bar.update(len(batch))
        return read

    # ------------------------------------------------------------------ vectors
    async def _copy_all_vectors(self, keys: Sequence[tuple[int, int]]) -> None:
        plan = [(g, c, space_id, n) for g, c in keys for space_id, n in (await self.source.vector_counts(g, c)).items()]
        bar = self.bars(VECTORS, sum(n for *_, n in plan))
        try:
            for g, c, space_id, _ in plan:
                await self._copy_vectors(g, c, await self.source.get_space(space_id), bar)
        finally:
            bar.close()

    async def _copy_vectors(self, g: int, c: int, space: SpaceRecord, bar: ProgressBar) -> None:
        """Copy the (channel, space) vectors after its cursor. The source's are read at once (in a worker
        thread); copy_vectors drops those whose message the destination lacks, which verification catches."""
        key = space.spec.key
        cursor = (g, c, VECTORS, key)
        ids, vectors, _ = await self.source.load_vectors(space, g, c)
        start = int(np.searchsorted(ids, self.cursors.get(cursor, 0), side="right"))
        bar.update(start)
        for lo in range(start, len(ids), self.batch_rows):
            part = slice(lo, lo + self.batch_rows)
            n = len(ids[part])
            copied = await self.dest.copy_vectors(
                self.spaces[space.id], ids[part], np.full(n, g, np.int64), np.full(n, c, np.int64), vectors[part]
            )
            self.report.vectors_copied[key] = self.report.vectors_copied.get(key, 0) + copied
            await self._save_cursor(cursor, int(ids[part][-1]))
            bar.update(n)

    # ------------------------------------------------------------------ verification and repair
    async def _verify(self, states: dict[tuple[int, int], ChannelState], keys: Sequence[tuple[int, int]]) -> None:
        """Compare every channel; repair those that differ, compare them again, and report the totals."""
        for g, c in keys:
            check = await self._compare(g, c, states.get((g, c)))
            if check.problems:
                before = "; ".join(check.problems)
                check = await self._repair(check, states.get((g, c)))
                if not check.problems:
                    self.report.repaired.append(before)
            self.report.mismatches += check.problems
            self.report.messages += check.messages
            for key, n in check.vectors.items():
                self.report.vectors[key] = self.report.vectors.get(key, 0) + n

    async def _compare(self, g: int, c: int, state: ChannelState | None) -> ChannelCheck:
        """Pointers, then counts and sha256 checksums of messages and of each space's vectors."""
        where = f"channel {c} of guild {g}"
        source_counts = await self.source.vector_counts(g, c)
        by_dest_id = {d.id: s for s, d in self.spaces.items()}
        dest_counts = {by_dest_id[d]: n for d, n in (await self.dest.vector_counts(g, c)).items() if d in by_dest_id}
        space_ids = sorted(set(source_counts) | set(dest_counts))
        ours = [await self.source.checksums(g, c, s) for s in space_ids or [None]]
        theirs = [
            await self.dest.checksums(g, c, None if s is None else self.spaces[s].id) for s in space_ids or [None]
        ]
        check = ChannelCheck(
            g, c, theirs[0]["messages"], {self.spaces[s].spec.key: t["vectors"] for s, t in zip(space_ids, theirs)}
        )
        if state is not None:
            there = await self.dest.get_channel(g, c)
            mapped = (self.spaces[state.read_space_id].id, {self.spaces[s].id for s in state.write_space_ids})
            if (
                there is None
                or (there.read_space_id, set(there.write_space_ids)) != mapped
                or (there.enabled != state.enabled)
            ):
                check.pointers_differ = True
                check.problems.append(f"{where}: its read space, write spaces or enabled flag differ")
        if (ours[0]["messages"], ours[0]["messages_sha"]) != (theirs[0]["messages"], theirs[0]["messages_sha"]):
            check.messages_differ = True
            check.problems.append(
                f"{where}: messages differ (source {ours[0]['messages']}, destination {theirs[0]['messages']})"
            )
        for space_id, mine, other in zip(space_ids, ours, theirs):
            exact = self.spaces[space_id].dimension <= HALFVEC_ABOVE
            if mine["vectors"] != other["vectors"] or (exact and mine["vectors_sha"] != other["vectors_sha"]):
                check.spaces_differ.append(space_id)
                check.problems.append(
                    f"{where}: vectors of space {self.spaces[space_id].spec.key} differ "
                    f"(source {mine['vectors']}, destination {other['vectors']})"
                )
        return check

    async def _repair(self, check: ChannelCheck, state: ChannelState | None) -> ChannelCheck:
        """Bring one channel in line with the source: pointers, then messages, then whole spaces' vectors."""
        g, c = check.guild_id, check.channel_id
        if check.pointers_differ and state is not None:
            await self._copy_pointers(state)
        if check.messages_differ:
            refused = await self._repair_messages(g, c)
            if refused:
                check.problems = [refused]
                return check
            check = await self._compare(g, c, state)
        for space_id in check.spaces_differ:
            space = await self.source.get_space(space_id)
            await self._save_cursor((g, c, VECTORS, space.spec.key), 0)  # first: a kill now still copies all again
            await self.dest.delete_space_vectors(self.spaces[space_id].id, g, c)
            await self._copy_vectors(g, c, space, _NoBar())
        return await self._compare(g, c, state)

    async def _repair_messages(self, g: int, c: int) -> str | None:
        """Replace the destination's messages that differ from the source (with their vectors), add the
        missing, delete those the source deleted. A destination message newer than the cursor that the
        source lacks was not copied by move-store: then nothing is deleted and the reason is returned."""
        missing, stale = await diff_messages(self.source, self.dest, g, c, self.batch_rows)
        after = self.cursors.get((g, c, MESSAGES, ""), 0)
        replaced = {m.id for m in missing}
        foreign = [m.id for m in stale if m.id > after and m.id not in replaced]
        if foreign:
            return (
                f"channel {c} of guild {g}: the destination has {len(foreign)} message(s) the source never had "
                f"(first id {foreign[0]}): a bot may already write there; nothing was deleted"
            )
        await self.dest.delete_messages([m.id for m in stale])
        spaces = list(await self.source.vector_counts(g, c))
        for lo in range(0, len(missing), self.batch_rows):
            part = missing[lo : lo + self.batch_rows]
            self.report.messages_copied += await self.dest.copy_messages(part)
            for space_id in spaces:
                found = await self.source.get_vectors(space_id, [m.id for m in part])
                if found:
                    ids = np.array(sorted(found), dtype=np.int64)
                    vectors = np.stack([found[i] for i in ids.tolist()])
                    n = len(ids)
                    await self.dest.copy_vectors(self.spaces[space_id], ids, np.full(n, g), np.full(n, c), vectors)
        return None


async def _walk(store: Any, g: int, c: int, page: int) -> AsyncIterator[StoredMessage]:
    """A channel's messages in id order, read a page at a time."""
    after = 0
    while batch := await store.scroll_messages(g, c, after_id=after, limit=page):
        for m in batch:
            yield m
        after = batch[-1].id


async def diff_messages(
    source: Any, dest: Any, g: int, c: int, page: int
) -> tuple[list[StoredMessage], list[StoredMessage]]:
    """(source messages the destination lacks or holds differently, destination messages not so on the source),
    found by walking both channels in id order side by side, so neither is held in memory whole."""
    missing: list[StoredMessage] = []
    stale: list[StoredMessage] = []
    ours, theirs = _walk(source, g, c, page), _walk(dest, g, c, page)
    a, b = await anext(ours, None), await anext(theirs, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.id < b.id):
            missing.append(a)
            a = await anext(ours, None)
        elif a is None or b.id < a.id:
            stale.append(b)
            b = await anext(theirs, None)
        else:
            if a != b:
                missing.append(a)
                stale.append(b)
            a, b = await anext(ours, None), await anext(theirs, None)
    return missing, stale
