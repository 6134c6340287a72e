"""The offline demo: build a memory from the shipped multi-channel chat, then recall from it.

Runs with no network: the packaged all-MiniLM-L6-v2 embeds ~3,400 English and Chinese messages
of eight channels in two guilds into ``data/demo/``, then answers the sample questions of each
channel from that channel only, printing the hits and how long each step took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from qwen3_memory.memory import Memory
from qwen3_memory.records import StoredMessage
from qwen3_memory.settings import default_settings

REPO = Path(__file__).resolve().parents[1]  # qwen3_memory/demo.py -> the checkout
SAMPLES = REPO / "data" / "samples"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, default=SAMPLES / "chat_sample.jsonl")
    parser.add_argument("--questions", type=Path, default=SAMPLES / "demo_questions.json")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "demo")
    parser.add_argument("--profile", default="offline_default")
    parser.add_argument("--keep", action="store_true", help="reuse an existing demo memory instead of rebuilding")
    parser.add_argument("-k", type=int, default=3, help="results per question")


def load_corpus(path: Path) -> tuple[list[StoredMessage], dict[int, str]]:
    """Messages of the sample corpus and a readable name per channel id."""
    messages, names = [], {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        created = datetime.fromisoformat(row["created_at"]).timestamp()
        messages.append(
            StoredMessage(
                row["id"],
                row["guild_id"],
                row["channel_id"],
                row["author_id"],
                row["author_name"],
                row["content"],
                created,
            )
        )
        names[row["channel_id"]] = f"{row.get('guild_name', row['guild_id'])} #{row.get('channel_name', '')}"
    return messages, names


async def build(memory: Memory, messages: list[StoredMessage], batch: int = 256) -> float:
    """Store and embed every message with a progress bar; returns the seconds it took."""
    from tqdm import tqdm

    started = time.perf_counter()
    with tqdm(total=len(messages), unit="msg", desc="embedding", dynamic_ncols=True) as bar:
        for start in range(0, len(messages), batch):
            chunk = messages[start : start + batch]
            await memory.capture.write(chunk)
            bar.update(len(chunk))
    await memory.store.flush()
    return time.perf_counter() - started


async def demo(args: argparse.Namespace) -> int:
    if args.data_dir.exists() and not args.keep:
        shutil.rmtree(args.data_dir)
    settings = default_settings(profile=args.profile, paths={"data_dir": str(args.data_dir)})
    messages, names = load_corpus(args.corpus)
    questions = json.loads(args.questions.read_text(encoding="utf-8"))
    print(
        f"qwen3-memory demo: {len(messages)} messages in {len(names)} channels, profile {args.profile} "
        f"({settings.space.model}, {settings.space.dimension}-d), data in {args.data_dir}"
    )
    memory = await Memory.open(settings, start_capture=False)
    try:
        started = time.perf_counter()
        await memory.services.get(settings.space).aload()
        print(f"model loaded in {time.perf_counter() - started:.1f}s")
        stored = sum(n for _, _, n in await memory.store.message_channels())
        if stored < len(messages):
            seconds = await build(memory, messages)
            print(
                f"stored and embedded {len(messages)} messages in {seconds:.1f}s "
                f"({len(messages) / seconds:.0f} messages/s)"
            )
        latencies = []
        for q in questions:
            started = time.perf_counter()
            hits = await memory.recaller.recall(
                q["guild_id"], q["channel_id"], q["question"], memory.recall_options(k=args.k)
            )
            latencies.append((time.perf_counter() - started) * 1000)
            print(f"\n[{names.get(q['channel_id'], q['channel_id'])}] {q['question']}  ({latencies[-1]:.0f} ms)")
            if not hits:
                print("   (nothing relevant remembered)")
            for rank, hit in enumerate(hits, 1):
                when = datetime.fromtimestamp(hit.message.created_at, UTC).strftime("%Y-%m-%d %H:%M")
                snippet = " ".join(hit.message.content.split())[:110]
                print(f"  {rank}. {hit.similarity:.2f}  {hit.message.author_name} {when}: {snippet}")
        db_mb = settings.database_path.stat().st_size / 2**20
        print(
            f"\nrecall latency p50 {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms over "
            f"{len(latencies)} questions; database {db_mb:.1f} MiB at {settings.database_path}"
        )
    finally:
        await memory.close()
    return 0


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return asyncio.run(demo(args))
