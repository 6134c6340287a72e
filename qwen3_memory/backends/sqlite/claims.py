"""Job claims on a SQLite memory: lease rows in the database file, so they hold across processes.

The bot and a command-line migration may share one SQLite memory, so "this process runs job 7"
must be visible to both. A claim is a row naming its holder (host, pid, the process's start time and
a token of this claims object) with an expiry that a heartbeat pushes forward while it is held.
Another process may take a claim over when its lease expired (the holder hung or stopped renewing),
or at once when the holder is a process on this host that no longer exists (killed), so a
``resume`` right after a ``kill -9`` does not wait for the lease to run out. A holder that lost its
claim sees it in :meth:`holds`, which the runner checks before each batch and each swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

from qwen3_memory.backends.claims import claim_key

if TYPE_CHECKING:
    from qwen3_memory.backends.sqlite.store import SQLiteStore

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # a claim nobody renewed for this long is free
HEARTBEAT_SECONDS = 10.0  # how often a holder renews its claims


@dataclass(frozen=True)
class ClaimHolder:
    """Who holds a claim: what a refusal tells the admin ("job 7 is running in process P on host H")."""

    host: str
    pid: int
    since: float  # unix seconds

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"process {self.pid} on {self.host} since {started}"


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _holder_is_gone(host: str, pid: int, process_started: float) -> bool:
    """True when the holder is a process of this host that has exited (its pid gone or reused)."""
    if host != socket.gethostname():
        return False  # another host: only its lease's expiry tells
    started = _process_started(pid)
    return started is None or abs(started - process_started) > 1.0


class LeaseClaims:
    """Claims as lease rows in the store's database; one instance per open memory."""

    def __init__(
        self, store: SQLiteStore, lease_seconds: float = LEASE_SECONDS, heartbeat_seconds: float = HEARTBEAT_SECONDS
    ) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.process_started = _process_started(self.pid) or time.time()
        self.token = f"{self.host}:{self.pid}:{uuid.uuid4().hex}"
        self._held: set[int] = set()
        self._heartbeat: asyncio.Task | None = None

    async def try_claim(self, *parts: object) -> bool:
        """Claim it if nobody holds it, its lease expired, or its holder's process is gone; not re-entrant."""
        key, now = claim_key(*parts), time.time()
        async with self.store.transaction() as db:
            row = await (
                await db.execute(
                    "SELECT holder, host, pid, process_started, expires_at FROM claims WHERE key = ?", (key,)
                )
            ).fetchone()
            if row is not None:
                holder, host, pid, process_started, expires_at = row
                if holder == self.token:
                    return False  # a second runner in this memory is refused, as on every backend
                if expires_at > now and not _holder_is_gone(host, pid, process_started):
                    return False
                log.warning("taking over claim %s from %s (lease expired or process gone)", parts, holder)
            await db.execute(
                "INSERT OR REPLACE INTO claims(key, name, holder, host, pid, process_started, since, expires_at) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    key,
                    " ".join(map(str, parts)),
                    self.token,
                    self.host,
                    self.pid,
                    self.process_started,
                    now,
                    now + self.lease_seconds,
                ),
            )
        self._held.add(key)
        self._start_heartbeat()
        return True

    async def release(self, *parts: object) -> None:
        key = claim_key(*parts)
        self._held.discard(key)
        async with self.store.transaction() as db:
            await db.execute("DELETE FROM claims WHERE key = ? AND holder = ?", (key, self.token))

    async def holds(self, *parts: object) -> bool:
        """Still ours: the row names this holder (another process may have taken an expired lease over)."""
        key = claim_key(*parts)
        if key not in self._held:
            return False
        row = await self.store.fetchone("SELECT holder FROM claims WHERE key = ?", (key,))
        if row is None or row[0] != self.token:
            self._held.discard(key)
            return False
        return True

    async def holder(self, *parts: object) -> ClaimHolder | None:
        """Who holds the claim now, if anyone does whose lease is live."""
        row = await self.store.fetchone(
            "SELECT host, pid, process_started, since, expires_at FROM claims WHERE key = ?", (claim_key(*parts),)
        )
        if row is None or row[4] <= time.time() or _holder_is_gone(row[0], row[1], row[2]):
            return None
        return ClaimHolder(row[0], int(row[1]), float(row[3]))

    async def renew(self) -> None:
        """Push the leases of every claim held forward; a claim taken over meanwhile is dropped."""
        if not self._held:
            return
        now = time.time()
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE claims SET expires_at = ? WHERE holder = ?", (now + self.lease_seconds, self.token)
            )
            rows = await (await db.execute("SELECT key FROM claims WHERE holder = ?", (self.token,))).fetchall()
        lost = self._held - {r[0] for r in rows}
        if lost:
            log.warning("%d claim(s) were taken over by another process", len(lost))
            self._held -= lost

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._renew_periodically(), name="claims-heartbeat")

    async def _renew_periodically(self) -> None:
        while self._held:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.renew()
            except Exception:  # a locked or failing database: the next beat tries again before the lease ends
                log.exception("could not renew migration claims")

    async def close(self) -> None:
        """Stop renewing and free every claim, so a successor need not wait for the leases to run out."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._held:
            self._held.clear()
            async with self.store.transaction() as db:
                await db.execute("DELETE FROM claims WHERE holder = ?", (self.token,))
