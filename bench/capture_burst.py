"""Capture under a burst: 1,000 messages through the real listener path, event-loop lag, throughput.

The real bot (MemoryBot + the memory cog) runs on dpytest's fake Discord with a temp memory and the
packaged all-MiniLM-L6-v2 model. Messages arrive the way the gateway delivers them: each one is a
MESSAGE_CREATE parsed by discord.py's real ConnectionState, which schedules the cog's on_message;
the delivering loop yields between messages but never waits for the listeners. A ticker task sleeps
5 ms at a time and records how late it wakes up (the event loop's lag) from the first message until
every message is stored and embedded.

Printed: lag p50/p99/max (target p99 < 50 ms; printed, not asserted), capture throughput in messages
per second, the raw encode throughput of the same model on the same 1,000 texts measured in this
run, and their ratio. ``python bench/capture_burst.py [--messages N]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from discord.ext.test import backend as dpy_backend  # noqa: E402

from qwen3_memory.memory import Memory  # noqa: E402
from qwen3_memory.settings import CaptureSettings, default_settings  # noqa: E402
from tests.discord_harness import DiscordHarness  # noqa: E402

TICK = 0.005
TARGET_P99_MS = 50.0

_SUBJECTS = [
    "the release",
    "the picnic",
    "the login bug",
    "our budget",
    "the printer",
    "the new intern",
    "the database migration",
    "Friday's demo",
    "the design review",
    "the on-call rota",
]
_VERBS = [
    "moved to",
    "is blocked by",
    "needs",
    "was fixed by",
    "depends on",
    "is scheduled after",
    "got approved with",
    "should wait for",
    "conflicts with",
    "was discussed in",
]
_OBJECTS = [
    "Thursday afternoon",
    "a second reviewer",
    "the staging cluster",
    "more coffee",
    "room 4",
    "the vendor's answer",
    "a rollback plan",
    "the quarterly report",
    "a quick sync",
    "the old API",
]


def chat_lines(n: int, seed: int = 7) -> list[str]:
    """Chat-like messages of varied length (4 to ~40 words)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        parts = [f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"]
        parts += [
            f"and {rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
            for _ in range(rng.choice([0, 0, 1, 2, 4]))
        ]
        lines.append(f"{' '.join(parts).capitalize()} (#{i})")
    return lines


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def measure_lag(stop: asyncio.Event, lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(TICK)
        lags.append(max(0.0, loop.time() - start - TICK) * 1000)


async def raw_encode(service, texts: list[str]) -> tuple[float, float]:
    """Wall and process CPU seconds to encode ``texts`` with the model alone (same batch size, a worker thread)."""
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.to_thread(service.encode_documents, texts)
    return time.perf_counter() - wall, time.process_time() - cpu


async def idle_lag(seconds: float) -> list[float]:
    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(measure_lag(stop, lags))
    await asyncio.sleep(seconds)
    stop.set()
    await ticker
    return lags


async def main(n: int, capture_batch: int) -> None:
    with tempfile.TemporaryDirectory(prefix="capture-burst-") as tmp:
        settings = default_settings(paths={"data_dir": tmp}, capture={"batch_size": capture_batch})
        memory = await Memory.open(settings)
        service = memory.services.get(memory.default_space.spec)
        await service.aload()
        texts = chat_lines(n)

        service.encode_documents(texts[:64])  # warm-up
        raw_before = await raw_encode(service, texts)

        harness = await DiscordHarness.start(memory, guilds=1, text_channels=4, members=8)
        channels = [harness.channel(i) for i in range(4)]
        members = [harness.member(i) for i in range(8)]
        baseline = await idle_lag(1.0)

        lags: list[float] = []
        stop = asyncio.Event()
        ticker = asyncio.create_task(measure_lag(stop, lags))
        cpu_started, started = time.process_time(), time.perf_counter()
        for i, text in enumerate(texts):  # the gateway: parse MESSAGE_CREATE, dispatch, move on
            dpy_backend.make_message(text, members[i % len(members)], channels[i % len(channels)])
            await asyncio.sleep(0)
        posted = time.perf_counter() - started
        await harness.settle()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        stop.set()
        await ticker
        raw_after = await raw_encode(service, texts)

        stored = sum([await memory.store.count_messages(c.guild.id, c.id) for c in channels])
        vectors = sum([await memory.store.count_vectors(memory.default_space.id, c.guild.id, c.id) for c in channels])
        await harness.close()
        await memory.close()

    rate = n / elapsed
    raw_rate = 2 * n / (raw_before[0] + raw_after[0])  # before and after the burst, pooled
    raw_cpu = (raw_before[1] + raw_after[1]) / 2
    p99 = percentile(lags, 99)
    print(
        f"capture burst: {n} messages, {len(channels)} channels, model {settings.space.model} "
        f"(encode batch {settings.batch_size}, capture batch {capture_batch}, {os.cpu_count()} CPUs)"
    )
    print(
        f"  stored {stored}, embedded {vectors}; delivered in {posted * 1000:.0f} ms, all embedded after "
        f"{elapsed:.2f} s"
    )
    print(
        f"  event-loop lag during the burst ({len(lags)} ticks of {TICK * 1000:.0f} ms): "
        f"p50 {percentile(lags, 50):.1f} ms, p99 {p99:.1f} ms, max {max(lags):.1f} ms "
        f"(target p99 < {TARGET_P99_MS:.0f} ms: {'met' if p99 < TARGET_P99_MS else 'MISSED'})"
    )
    print(f"  idle baseline lag: p50 {statistics.median(baseline):.1f} ms, p99 {percentile(baseline, 99):.1f} ms")
    print(
        f"  capture throughput {rate:.0f} messages/s; raw encode of the same texts {raw_rate:.0f} texts/s "
        f"(before {n / raw_before[0]:.0f}, after {n / raw_after[0]:.0f}); ratio capture/raw = {rate / raw_rate:.2f}"
    )
    print(
        f"  process CPU time: capture {cpu:.2f} s, raw encode {raw_cpu:.2f} s; ratio raw/capture = "
        f"{raw_cpu / cpu:.2f} (robust to other load on the machine)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages in the burst (default 1000)")
    parser.add_argument(
        "--capture-batch",
        type=int,
        default=CaptureSettings().batch_size,
        help="memory_system.capture.batch_size: events per writer batch (default: the settings default)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.capture_batch))
