"""Postgres full-text search of 25-message channels in a database of 5,000 and of 50,000 messages.

    .venv/bin/python bench/pg_channel_bm25.py [--channels 200] [--queries 100]

The SQLite store needed channel-scoped terms for a small channel's BM25 to cost what the channel
costs (bench/many_channels.py); this checks the Postgres store, whose planner can read the channel
through its index and filter by the tsquery. It starts its own server (tests/pg_server.py), fills
two databases with the same sample chat lines spread over ``--channels`` and 10x as many channels
of 25 messages, warms each with other queries, then prints the search p50/p99 in both, their ratio
(the SQLite target is <= 1.5) and the plan of one query in the bigger database.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from bench.many_channels import GUILD, messages_of, percentile, recall_queries  # noqa: E402
from qwen3_memory.backends.postgres.store import PostgresStore  # noqa: E402
from tests import pg_server  # noqa: E402

PER_CHANNEL = 25


async def search_times(admin_dsn: str, channels: int, n_queries: int) -> tuple[list[float], list[str]]:
    """Search latencies (ms) of ``n_queries`` small channels in a fresh database of ``channels`` x 25, and a plan."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {pg_server.TEMPLATE_DB}")
    dsn = make_dsn(admin_dsn, name)
    store = await PostgresStore.open(dsn)
    try:
        messages = messages_of(channels, PER_CHANNEL)
        for start in range(0, len(messages), 2000):
            await store.add_messages(messages[start : start + 2000])
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE messages")
        asked = sorted({m.channel_id for m in messages})[:n_queries]
        for channel, query in zip(asked, recall_queries(n_queries, seed=12)):  # warm: other queries
            await store.search_text(GUILD, channel, query, 20)
        times = []
        for channel, query in zip(asked, recall_queries(n_queries)):
            started = time.perf_counter()
            await store.search_text(GUILD, channel, query, 20)
            times.append((time.perf_counter() - started) * 1000)
        with psycopg.connect(dsn, autocommit=True) as conn:
            plan = conn.execute(
                "EXPLAIN SELECT m.id FROM messages m, to_tsquery('simple', 'the | bot') q "
                "WHERE m.tsv @@ q AND m.guild_id = %s AND m.channel_id = %s",
                (GUILD, asked[0]),
            ).fetchall()
        return times, [row[0] for row in plan]
    finally:
        await store.close()


def make_dsn(admin_dsn: str, database: str) -> str:
    return admin_dsn.rsplit("/", 1)[0] + f"/{database}"


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-pg-bm25-"))
    try:
        admin = pg_server.start(root)
        pg_server.make_template(admin)
        small, _ = await search_times(admin, args.channels, args.queries)
        big, plan = await search_times(admin, args.channels * 10, args.queries)
    finally:
        pg_server.stop(root)
        shutil.rmtree(root, ignore_errors=True)
    size = args.channels * PER_CHANNEL
    print(f"postgres full-text search of {args.queries} channels of {PER_CHANNEL} messages (p50 / p99 ms)")
    print(f"  database of {size:,} messages: {percentile(small, 50):.2f} / {percentile(small, 99):.2f}")
    print(f"  database of {size * 10:,} messages: {percentile(big, 50):.2f} / {percentile(big, 99):.2f}")
    print(f"  ratio of the p50s: {percentile(big, 50) / percentile(small, 50):.2f} (SQLite's target <= 1.5)")
    print("  plan in the bigger database:", *plan, sep="\n    ")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--queries", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
