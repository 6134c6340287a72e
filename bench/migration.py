"""Migration throughput against the raw encode throughput of the same model, and event-loop lag meanwhile.

    .venv/bin/python bench/migration.py [--messages 4000] [--batch-size 64]

A memory of real chat messages (data/samples) is built in a tiny random Qwen3 space (the "old"
model: cheap), then migrated with `regenerate` into the packaged all-MiniLM-L6-v2 space (a real
model) by the real engine, while a ticker measures how late the event loop wakes up. The raw
throughput is the same model encoding the same texts with the same batch size, nothing else.
Both are measured in this one run, so their ratio is meaningful on any machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from qwen3_memory.memory import Memory  # noqa: E402
from qwen3_memory.migration.engine import MigrationEngine  # noqa: E402
from qwen3_memory.models.profiles import PROFILES  # noqa: E402
from qwen3_memory.records import StoredMessage  # noqa: E402
from qwen3_memory.settings import default_settings  # noqa: E402
from tests.tiny_models import build_tiny_qwen3_embedder  # noqa: E402


def sample_messages(n: int) -> list[StoredMessage]:
    rows = [json.loads(line) for line in (REPO / "data/samples/chat_sample.jsonl").read_text().splitlines()]
    messages = []
    for i in range(n):
        row = rows[i % len(rows)]
        channel = 100 + (i % 4)
        text = row["content"] if i < len(rows) else f"{row['content']} ({i // len(rows)})"
        messages.append(StoredMessage(10_000 + i, 1, channel, row["author_id"], row["author_name"], text, 1.7e9 + i))
    return messages


class LagProbe:
    """Sleeps ``interval`` seconds in a loop and records how late it wakes: the event loop's lag.

    ``phase``, if given, names what the migration was doing at each tick (see :meth:`worst`).
    """

    def __init__(self, interval: float = 0.005, phase: Callable[[], str] | None = None) -> None:
        self.interval = interval
        self.phase = phase
        self.lags_ms: list[float] = []
        self.phases: list[str] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags_ms.append((time.perf_counter() - started - self.interval) * 1000)
            if self.phase is not None:
                self.phases.append(self.phase())

    def worst(self) -> tuple[float, str]:
        """The longest lag and the phase it happened in ('' without ``phase``)."""
        i = max(range(len(self.lags_ms)), key=self.lags_ms.__getitem__)
        return self.lags_ms[i], self.phases[i] if self.phases else ""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def quantile(self, q: float) -> float:
        data = sorted(self.lags_ms)
        return data[min(len(data) - 1, int(q * len(data)))] if data else 0.0


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-migration-"))
    tiny = build_tiny_qwen3_embedder(root / "tiny-qwen3")
    settings = default_settings(
        profile="qwen3_medium_performance",
        paths={"data_dir": str(root / "data")},
        model_overrides={"embedding_path": str(tiny), "embedding_dimension": 64},
    )
    messages = sample_messages(args.messages)
    memory = await Memory.open(settings, start_capture=False)
    try:
        for start in range(0, len(messages), 512):
            await memory.capture.write(messages[start : start + 512])
        await memory.store.flush()
        target = PROFILES["offline_default"].embedding
        service = memory.services.get(target)
        await service.aload()
        texts = [m.content for m in messages]

        def raw_encode_seconds() -> float:
            started = time.perf_counter()
            for start in range(0, len(texts), args.batch_size):
                service.encode_documents(texts[start : start + args.batch_size], batch_size=args.batch_size)
            return time.perf_counter() - started

        raw_encode_seconds()  # warm-up: a fresh process's first pass is several times slower than the next
        raw_seconds = raw_encode_seconds()  # the ratio's denominator: warm, measured on its own, just before

        engine = MigrationEngine(memory)
        job = await engine.start(target, backup=False, batch_size=args.batch_size)
        probe = LagProbe()
        probe.start()
        started = time.perf_counter()
        job = await engine.run(job.id)
        migration_seconds = time.perf_counter() - started
        await probe.stop()
        assert job.status == "completed", job.error
        raw_after_seconds = raw_encode_seconds()  # not in the ratio: shows whether the machine's load drifted
    finally:
        await memory.close()

    raw_rate, migration_rate = len(texts) / raw_seconds, len(texts) / migration_seconds
    print(f"messages: {len(texts)} in 4 channels, batch size {args.batch_size}, model {target.model}")
    print(
        f"raw encode:        {raw_rate:8.1f} texts/s   ({raw_seconds:.1f} s, warm, just before the migration; "
        f"{len(texts) / raw_after_seconds:.1f} texts/s just after)"
    )
    print(
        f"migration (all):   {migration_rate:8.1f} msgs/s    ({migration_seconds:.1f} s: backfill, catch-up, "
        "verify incl. old-vs-new agreement, swap)"
    )
    print(f"ratio migration / raw encode: {migration_rate / raw_rate:.2f}   (target >= 0.90)")
    print(
        f"event-loop lag during migration: p50 {statistics.median(probe.lags_ms):.1f} ms, "
        f"p99 {probe.quantile(0.99):.1f} ms, max {max(probe.lags_ms):.1f} ms over {len(probe.lags_ms)} ticks "
        "(target p99 < 50 ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    asyncio.run(main(parser.parse_args()))
