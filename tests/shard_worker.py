"""One bot shard process on a shared Postgres memory, for the multi-process tests.

It captures messages of its own shard's guilds (``(guild_id >> 22) % shard_count == shard_id``, as
discord.py routes them), recalls in its channel, and with ``--migrate`` starts and runs a migration.
It reports on stdout, one JSON object per line, so the test can kill it at a chosen point:

    {"captured": [ids]}                         messages whose capture completed (stored + embedded)
    {"recall": [space ids of the hits], "pointer_before": id, "pointer_after": id}
    {"job": id}                                  the migration it started
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qwen3_memory.memory import Memory  # noqa: E402
from qwen3_memory.migration.engine import MigrationEngine  # noqa: E402
from qwen3_memory.settings import load_settings  # noqa: E402
from tests.factories import message  # noqa: E402

TOPICS = ["the raid starts at nine", "my script throws a KeyError", "pizza or sushi tonight", "chess at noon"]


def shard_of(guild_id: int, shard_count: int) -> int:
    return (guild_id >> 22) % shard_count


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


async def pointer(memory: Memory, guild_id: int, channel_id: int) -> int:
    state = await memory.store.get_channel(guild_id, channel_id)
    return state.read_space_id if state else 0


async def main(args: argparse.Namespace) -> None:
    if shard_of(args.guild, args.shard_count) != args.shard_id:
        raise SystemExit(f"guild {args.guild} is not on shard {args.shard_id}")
    memory = await Memory.open(load_settings(args.settings))
    engine = MigrationEngine(memory)
    try:
        task = None
        if args.migrate:
            target = memory.settings.memory.migration.target().embedding
            job = await engine.start(target, backup=False, batch_size=args.batch_size)
            say(job=job.id)
            task = engine.launch(job.id)
        next_id = args.first_id
        for _ in range(args.posts):
            batch = [message(next_id + i, f"{TOPICS[(next_id + i) % len(TOPICS)]} #{next_id + i}", args.guild,
                             args.channel) for i in range(3)]  # fmt: skip
            for m in batch:
                await memory.capture.submit(m)
            await memory.capture.drain()
            say(captured=[m.id for m in batch])
            next_id += len(batch)
            before = await pointer(memory, args.guild, args.channel)
            options = memory.recall_options(k=5, min_score=-1.0)
            hits = await memory.recaller.recall(args.guild, args.channel, "when does the raid start", options)
            after = await pointer(memory, args.guild, args.channel)
            say(recall=[h.space_id for h in hits], pointer_before=before, pointer_after=after)
            await asyncio.sleep(args.pause)
        if task is not None:
            await task
    finally:
        await memory.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--settings", required=True)
    parser.add_argument("--shard-id", type=int, required=True)
    parser.add_argument("--shard-count", type=int, default=2)
    parser.add_argument("--guild", type=int, required=True)
    parser.add_argument("--channel", type=int, required=True)
    parser.add_argument("--first-id", type=int, required=True)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--pause", type=float, default=0.02)
    parser.add_argument("--migrate", action="store_true")
    parser.add_argument("--batch-size", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
