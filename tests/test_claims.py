"""Job claims: exactly one holder at a time; a holder that goes away (closes, dies) frees its claims."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwen3_memory.backends.claims import AdvisoryClaims, LocalClaims, claim_key

REPO = Path(__file__).resolve().parents[1]


def test_claim_keys_are_stable_signed_64_bit_and_distinct():
    assert claim_key("job", 7) == claim_key("job", 7)
    assert claim_key("job", 7) != claim_key("job", 8) != claim_key("channel", 7)
    assert all(-(2**63) <= claim_key("job", i) < 2**63 for i in range(100))


async def test_local_claims_exclude_within_the_process():
    claims = LocalClaims()
    assert await claims.try_claim("job", 1)
    assert not await claims.try_claim("job", 1)  # not re-entrant: a second runner in this process is refused
    assert await claims.try_claim("job", 2)
    await claims.release("job", 1)
    assert await claims.try_claim("job", 1)


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


async def test_local_claims_know_what_they_hold():
    claims = LocalClaims()
    assert not await claims.holds("job", 3)
    assert await claims.try_claim("job", 3) and await claims.holds("job", 3)
    await claims.release("job", 3)
    assert not await claims.holds("job", 3)
