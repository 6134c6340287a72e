"""Job claims: exactly one holder at a time; a holder that goes away (closes, dies) frees its claims."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwen3_memory.backends.claims import AdvisoryClaims, claim_key
from qwen3_memory.backends.sqlite.claims import LeaseClaims
from qwen3_memory.backends.sqlite.store import SQLiteStore

REPO = Path(__file__).resolve().parents[1]


def test_claim_keys_are_stable_signed_64_bit_and_distinct():
    assert claim_key("job", 7) == claim_key("job", 7)
    assert claim_key("job", 7) != claim_key("job", 8) != claim_key("channel", 7)
    assert all(-(2**63) <= claim_key("job", i) < 2**63 for i in range(100))


@pytest.fixture
async def sqlite_memory(tmp_path):
    store = await SQLiteStore.open(tmp_path / "memory.db")
    yield store
    await store.close()


async def test_lease_claims_exclude_within_the_process(sqlite_memory):
    claims = LeaseClaims(sqlite_memory)
    assert await claims.try_claim("job", 1)
    assert not await claims.try_claim("job", 1)  # not re-entrant: a second runner in this process is refused
    assert await claims.try_claim("job", 2)
    await claims.release("job", 1)
    assert await claims.try_claim("job", 1)
    await claims.close()


@pytest.mark.postgres
async def test_advisory_claims_exclude_across_sessions_and_free_on_close(pg_dsn):
    first, second = AdvisoryClaims(pg_dsn), AdvisoryClaims(pg_dsn)
    try:
        assert await first.try_claim("job", 1)
        assert not await first.try_claim("job", 1)
        assert not await second.try_claim("job", 1)
        assert await second.try_claim("job", 2)
        await first.release("job", 1)
        assert await second.try_claim("job", 1)
        await second.close()  # a process that stops holds nothing
        assert await first.try_claim("job", 1) and await first.try_claim("job", 2)
    finally:
        await first.close()
        await second.close()


@pytest.mark.postgres
async def test_a_killed_holder_frees_its_claim(pg_dsn):
    code = (
        "import asyncio, sys\n"
        "from qwen3_memory.backends.claims import AdvisoryClaims\n"
        "async def main():\n"
        "    claims = AdvisoryClaims(sys.argv[1])\n"
        "    assert await claims.try_claim('job', 42)\n"
        "    print('held', flush=True)\n"
        "    await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, pg_dsn], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    claims = AdvisoryClaims(pg_dsn)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not await claims.try_claim("job", 42)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not await claims.try_claim("job", 42):  # the server notices the dead connection
            assert time.monotonic() < deadline, "the claim of a killed process was never freed"
            time.sleep(0.05)
    finally:
        holder.kill()
        await claims.close()


@pytest.mark.postgres
async def test_a_claim_whose_connection_the_server_dropped_is_no_longer_held(pg_dsn):
    import psycopg

    claims = AdvisoryClaims(pg_dsn)
    try:
        assert await claims.try_claim("job", 5) and await claims.holds("job", 5)
        pid = claims._conn.info.backend_pid
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert not await claims.holds("job", 5)  # the runner stops instead of racing whoever adopts the job
        assert await claims.try_claim("job", 5)  # a new session can claim it again
    finally:
        await claims.close()


async def test_lease_claims_know_what_they_hold(sqlite_memory):
    claims = LeaseClaims(sqlite_memory)
    assert not await claims.holds("job", 3)
    assert await claims.try_claim("job", 3) and await claims.holds("job", 3)
    await claims.release("job", 3)
    assert not await claims.holds("job", 3)
    await claims.close()


async def test_lease_claims_exclude_another_memory_and_name_their_holder(sqlite_memory, tmp_path):
    other_store = await SQLiteStore.open(tmp_path / "memory.db")  # a second process's connection and claims
    mine, theirs = LeaseClaims(sqlite_memory), LeaseClaims(other_store)
    try:
        assert await mine.try_claim("job", 7)
        assert not await theirs.try_claim("job", 7)
        holder = await theirs.holder("job", 7)
        assert holder is not None and holder.pid == os.getpid()
        assert f"process {os.getpid()} on " in holder.describe()
        await mine.close()  # a memory that closes frees its claims at once
        assert await theirs.try_claim("job", 7) and not await mine.holds("job", 7)
    finally:
        await theirs.close()
        await other_store.close()


async def test_an_expired_lease_is_taken_over_and_its_old_holder_sees_it_lost(sqlite_memory, tmp_path):
    other_store = await SQLiteStore.open(tmp_path / "memory.db")
    hung = LeaseClaims(sqlite_memory, lease_seconds=0.05, heartbeat_seconds=60)  # stops renewing
    successor = LeaseClaims(other_store)
    try:
        assert await hung.try_claim("job", 8)
        assert not await successor.try_claim("job", 8)
        time.sleep(0.1)

        assert await successor.try_claim("job", 8)
        assert not await hung.holds("job", 8)  # the runner stops at its next batch
    finally:
        await hung.close()
        await successor.close()
        await other_store.close()


async def test_a_heartbeat_keeps_a_lease_alive(sqlite_memory, tmp_path):
    other_store = await SQLiteStore.open(tmp_path / "memory.db")
    holder = LeaseClaims(sqlite_memory, lease_seconds=1.0, heartbeat_seconds=0.05)
    other = LeaseClaims(other_store)
    try:
        assert await holder.try_claim("job", 9)
        await asyncio.sleep(2.0)  # twice the lease: only renewals keep it (a beat may be late under load)
        assert not await other.try_claim("job", 9) and await holder.holds("job", 9)
    finally:
        await holder.close()
        await other.close()
        await other_store.close()


def _sqlite_holder(db: Path) -> subprocess.Popen:
    code = (
        "import asyncio, sys\n"
        "from qwen3_memory.backends.sqlite.store import SQLiteStore\n"
        "async def main():\n"
        "    store = await SQLiteStore.open(sys.argv[1])\n"
        "    claims = store.make_claims()\n"
        "    assert await claims.try_claim('job', 42)\n"
        "    print('held', flush=True)\n"
        "    await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip


async def test_a_sqlite_claim_held_by_another_process_is_refused_until_that_process_is_killed(sqlite_memory):
    holder = _sqlite_holder(sqlite_memory.path)
    claims = sqlite_memory.make_claims()
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not await claims.try_claim("job", 42)
        assert (await claims.holder("job", 42)).pid == holder.pid
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)

        assert await claims.try_claim("job", 42)  # at once: its process is gone, no lease to wait out
    finally:
        holder.kill()
        await claims.close()
