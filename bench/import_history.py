"""History import from a local Discord REST server: throughput against raw encode, event-loop lag, recall during it.

discord.py's real HTTP client reads one channel of ``--messages`` chat lines (every 10th by a bot) from
the local server of the tests (``tests/discord_rest.py``: Discord's paging, rate-limit headers, 429s
with ``--rate-limit-every``), run in a process of its own as Discord is not in the bot's process, and
the history importer (the engine behind ``/memory import``) feeds them
through the capture writer into a temp memory with the packaged all-MiniLM-L6-v2 model. A ticker
measures the event loop's lag; with ``--recall-every S`` a recall runs every S seconds during the import
(it costs CPU, so the throughput ratio is measured without it).

Printed: import messages/s (read, and human messages stored and embedded per second), raw encode of the
same human texts with the same model in this run (before and after, pooled), their ratio (target >= 0.85
without rate limiting), lag p50/p99/max (target p99 < 50 ms), recall latency during the import.
``python bench/import_history.py [--messages N] [--rate-limit-every N] [--recall-every S]``

``--kill-halfway``: instead, a bot process (``tests/history_worker.py``) imports the channel, is killed
with SIGKILL once its cursor passed half the channel, and a new process resumes; printed: whether the
channel's human messages ended up stored exactly once with one vector each, and the time lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import discord  # noqa: E402

from bench.capture_burst import TARGET_P99_MS, TICK, chat_lines, measure_lag, percentile, raw_encode  # noqa: E402
from cogs.memory.history import DiscordHistory  # noqa: E402
from qwen3_memory.history import ChannelRef, HistoryImporter  # noqa: E402
from qwen3_memory.memory import Memory  # noqa: E402
from qwen3_memory.settings import HistorySettings, default_settings  # noqa: E402
from tests.discord_rest import TOKEN, FakeDiscord, local_discord  # noqa: E402

GUILD, CHANNEL = 1, 1_100_000_000_000_000_000
TARGET_RATIO = 0.85


async def recall_during(memory: Memory, stop: asyncio.Event, latencies: list[float], every: float) -> None:
    while every > 0 and not stop.is_set():
        started = time.perf_counter()
        await memory.recall(GUILD, CHANNEL, "what is blocked by the staging cluster?", k=5)
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(every)


def fill_channel(fake: FakeDiscord, n: int) -> tuple[list[str], list[int]]:
    """``n`` chat lines 30 s apart in the bench's channel, every 10th by a bot: the human texts and their ids."""
    fake.channel(GUILD, CHANNEL, "general")
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    texts, ids = [], []
    for i, text in enumerate(chat_lines(n)):
        data = fake.post(CHANNEL, text, 10 + i % 8, bot=i % 10 == 9, when=start + dt.timedelta(seconds=30 * i))
        if i % 10 != 9:
            texts.append(text)
            ids.append(int(data["id"]))
    return texts, ids


async def serve(n: int, rate_limit_every: int) -> None:
    """The local Discord of the bench in a process of its own (``--serve``), as Discord is not the bot's
    process: prints its base URL, serves until stdin closes, then prints its request counts as JSON."""
    fake = FakeDiscord(rate_limit_every=rate_limit_every)
    fill_channel(fake, n)
    print(await fake.start(), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(json.dumps({"pages": len(fake.message_requests(CHANNEL)), "rate_limited": fake.rate_limited}), flush=True)
    await fake.stop()


@contextlib.asynccontextmanager
async def discord_elsewhere(n: int, rate_limit_every: int) -> AsyncIterator[dict[str, int]]:
    """Run :func:`serve` in a child process and point discord.py at it; yields its counts once it stopped."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.import_history", "--serve", "--messages", str(n),
        "--rate-limit-every", str(rate_limit_every), cwd=REPO, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    previous, counts = discord.http.Route.BASE, {}
    discord.http.Route.BASE = (await child.stdout.readline()).decode().strip()
    try:
        yield counts
    finally:
        discord.http.Route.BASE = previous
        child.stdin.close()
        counts.update(json.loads((await child.stdout.readline()).decode() or "{}"))
        await child.wait()


async def main(n: int, rate_limit_every: int, pages_in_flight: int, recall_every: float) -> None:
    humans, _ = fill_channel(FakeDiscord(), n)  # the same texts the server process serves

    with tempfile.TemporaryDirectory(prefix="import-history-") as tmp:
        settings = default_settings(paths={"data_dir": tmp})
        memory = await Memory.open(settings)
        service = memory.services.get(memory.default_space.spec)
        await service.aload()
        service.encode_documents(humans[:64])  # warm-up
        raw_before = await raw_encode(service, humans)

        async with discord_elsewhere(n, rate_limit_every) as served:
            client = discord.Client(intents=discord.Intents.none())
            await client.login(TOKEN)
            source = DiscordHistory(client)
            importer = HistoryImporter(memory, source, HistorySettings(pages_in_flight=pages_in_flight))
            lags: list[float] = []
            recalls: list[float] = []
            stop = asyncio.Event()
            ticker = asyncio.create_task(measure_lag(stop, lags))
            recaller = asyncio.create_task(recall_during(memory, stop, recalls, recall_every))
            cpu_started, started = time.process_time(), time.perf_counter()
            await importer.start(GUILD, [ChannelRef(CHANNEL, name="general")])
            progress = await importer.wait(GUILD)
            await memory.capture.drain()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            stop.set()
            await asyncio.gather(ticker, recaller)
            source.close()
            await client.close()
        raw_after = await raw_encode(service, humans)
        stored = await memory.store.count_messages(GUILD, CHANNEL)
        vectors = await memory.store.count_vectors(memory.default_space.id, GUILD, CHANNEL)
        await memory.close()

    raw_rate = 2 * len(humans) / (raw_before[0] + raw_after[0])
    stored_rate = stored / elapsed
    p99 = percentile(lags, 99)
    print(
        f"history import: {n} messages ({len(humans)} human) in one channel, model {settings.space.model} "
        f"(encode batch {settings.batch_size}, pages in flight {pages_in_flight}, {os.cpu_count()} CPUs), "
        f"429 every {rate_limit_every or 'never'}"
    )
    print(
        f"  {progress.state}: read {progress.read}, stored {stored}, embedded {vectors}, skipped {progress.skipped}, "
        f"rate-limit waits {progress.rate_limit_waits} ({progress.rate_limit_seconds:.1f} s), "
        f"{served.get('pages', 0)} page requests ({served.get('rate_limited', 0)} answered 429), {elapsed:.1f} s"
    )
    print(
        f"  import {n / elapsed:.0f} messages read/s, {stored_rate:.0f} human messages stored+embedded/s; raw encode "
        f"of the same human texts {raw_rate:.0f} texts/s (before {len(humans) / raw_before[0]:.0f}, after "
        f"{len(humans) / raw_after[0]:.0f}); ratio import/raw = {stored_rate / raw_rate:.2f} "
        f"(target >= {TARGET_RATIO})"
    )
    print(
        f"  event-loop lag ({len(lags)} ticks of {TICK * 1000:.0f} ms): p50 {percentile(lags, 50):.1f} ms, "
        f"p99 {p99:.1f} ms, max {max(lags):.1f} ms (target p99 < {TARGET_P99_MS:.0f} ms: "
        f"{'met' if p99 < TARGET_P99_MS else 'MISSED'})"
    )
    raw_cpu = (raw_before[1] + raw_after[1]) / 2
    print(
        f"  process CPU time: import {cpu:.2f} s, raw encode {raw_cpu:.2f} s; ratio raw/import = {raw_cpu / cpu:.2f} "
        "(robust to other load on the machine)"
    )
    if recalls:
        print(
            f"  recall during the import ({len(recalls)} queries): p50 {percentile(recalls, 50):.0f} ms, "
            f"max {max(recalls):.0f} ms"
        )


def _cursor(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT cursor FROM history_imports").fetchone()
        return int(row[0]) if row else 0
    except sqlite3.Error:
        return 0


async def _worker(data_dir: str, base_url: str, *flags: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.history_worker", data_dir, base_url, str(GUILD), str(CHANNEL), *flags,
        cwd=Path(__file__).resolve().parents[1], stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def kill_halfway(n: int) -> None:
    """Import, SIGKILL once the cursor passed the middle of the channel, resume in a new process, check."""
    fake = FakeDiscord()
    _, humans = fill_channel(fake, n)
    middle = int(fake.channels[CHANNEL].messages[n // 2]["id"])
    with tempfile.TemporaryDirectory(prefix="import-history-kill-") as tmp:
        db = Path(tmp) / "memory" / "memory.db"
        async with local_discord(fake):
            started = time.perf_counter()
            first = await _worker(tmp, fake.base_url)
            while _cursor(db) < middle:
                if first.returncode is not None:
                    raise SystemExit("the import ended before it could be killed")
                await asyncio.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
            await first.wait()
            killed_at, killed_after = _cursor(db), time.perf_counter() - started
            second = await _worker(tmp, fake.base_url, "--resume")
            out, _ = await second.communicate()
            total = time.perf_counter() - started
        with sqlite3.connect(db) as conn:
            stored = [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY id")]
            vectors = [r[0] for r in conn.execute("SELECT message_id FROM embeddings ORDER BY message_id")]
    done_before = sum(1 for i in humans if i <= killed_at)
    print(f"history import killed halfway: {n} messages ({len(humans)} human), SIGKILL after {killed_after:.0f} s")
    print(f"  cursor at the kill: {done_before} human messages written; resumed process said {out.decode().strip()}")
    print(
        f"  stored {len(stored)} messages ({'exactly the human ones, once' if stored == humans else 'MISMATCH'}), "
        f"{len(vectors)} vectors ({'one each' if vectors == humans else 'MISMATCH'}); {total:.0f} s in all"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages in the channel (default 5000)")
    parser.add_argument("--rate-limit-every", type=int, default=0, help="answer every Nth page with a 429 (0: never)")
    parser.add_argument("--pages-in-flight", type=int, default=HistorySettings().pages_in_flight)
    parser.add_argument("--recall-every", type=float, default=0.0, help="seconds between recalls during it (0: none)")
    parser.add_argument("--kill-halfway", action="store_true", help="kill -9 the importing process halfway, resume")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server process of main()
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.messages, args.rate_limit_every))
    elif args.kill_halfway:
        asyncio.run(kill_halfway(args.messages))
    else:
        asyncio.run(main(args.messages, args.rate_limit_every, args.pages_in_flight, args.recall_every))
