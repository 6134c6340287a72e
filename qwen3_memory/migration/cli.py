"""Command line face of the migration engine: ``python -m qwen3_memory.migration COMMAND``.

The same operations as the admin cog: check, plan, migrate, status, pause, resume, cancel,
verify, swap, rollback, finalize, plus restore from a backup, a list of backups, and move-store (copy
the SQLite memory to PostgreSQL + pgvector without re-embedding). The flags of
the well-known scripts work too: ``--check-only``, ``--dry-run``, ``--migrate``, ``--verify``
(migrate_to_qwen3.py) and ``--backup-path`` (rollback_migration.py).
Exit codes: 0 done, 1 a check/verify/migration failed, 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from qwen3_memory.errors import SettingsError, UserFacingError
from qwen3_memory.migration.report import overall_evaluation, render_overall, render_status, render_verify
from qwen3_memory.migration.strategies import MIN_TRANSFORM_SAMPLE, STRATEGIES
from qwen3_memory.models.profiles import Profile
from qwen3_memory.recall.floors import describe_floor_in_use
from qwen3_memory.settings import PROFILE_NAMES, RANGES, Settings, load_settings

LEGACY_FLAGS = {"--check-only": "check", "--dry-run": "plan", "--migrate": "migrate", "--verify": "verify"}
MIGRATE_BATCH = RANGES["performance.batch_size"]  # --batch-size of migrate: the setting's range, 0 excluded
COPY_BATCH_MAX = 100_000  # --batch-size of move-store: rows per bulk copy


def bounded_int(low: int, high: int):
    """An argparse type: an integer from ``low`` to ``high`` (argparse names the flag in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer between {low} and {high}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    parse.__name__ = "integer"  # what argparse calls the type in its messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qwen3_memory.migration", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--settings",
        default=os.environ.get("MEMORY_SETTINGS", "settings.json"),
        help="settings.json to use (default: ./settings.json or $MEMORY_SETTINGS)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-v", "--verbose", action="store_true", help="log engine details to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def target_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--target-profile",
            default=None,
            choices=sorted(PROFILE_NAMES),
            help="profile to migrate to (default: memory_system.migration.target_profile; custom: the model "
            "declared in memory_system.migration.target_custom_model)",
        )
        p.add_argument("--target-path", default="", help="load the target model from this local directory")
        p.add_argument("--target-dimension", type=int, default=0, help="Matryoshka output dimension of the target")

    def scope_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--guild", type=int, default=None, help="only this guild's channels")
        p.add_argument("--channels", type=int, nargs="*", default=None, help="only these channel ids")
        p.add_argument("--strategy", default="regenerate", choices=STRATEGIES)

    p = sub.add_parser("check", help="environment, database and target model checks (--check-only)")
    target_args(p)
    p.add_argument("--no-model-load", action="store_true", help="do not load the target model")
    p = sub.add_parser("plan", help="dry run: per-channel counts, measured time estimate, risks (--dry-run)")
    target_args(p)
    scope_args(p)
    p.add_argument("--force", action="store_true", help="plan a risky strategy as migrate --force would run it")
    p = sub.add_parser("migrate", help="create a migration job and run it with a progress bar (--migrate)")
    target_args(p)
    scope_args(p)
    p.add_argument("--force", action="store_true", help="allow risky strategies (pad, truncate of non-Matryoshka)")
    p.add_argument("--no-swap", action="store_true", help="verify but leave read pointers for a manual swap")
    p.add_argument("--no-backup", action="store_true", help="skip the backup before starting (not recommended)")
    p.add_argument(
        "--eval", type=Path, default=None, help="labelled set (JSONL): each channel's verify scores old vs new on it"
    )
    p.add_argument(
        "--transform-sample",
        type=bounded_int(MIN_TRANSFORM_SAMPLE, 1_000_000),
        default=None,
        help="messages the transform strategy fits on, spread over channels and time (default: "
        "memory_system.migration.transform_sample, else the measured minimum for the source dimension)",
    )
    p.add_argument(
        "--batch-size",
        type=bounded_int(1, int(MIGRATE_BATCH.high)),
        default=None,
        help=f"messages per batch, 1 to {MIGRATE_BATCH.high:g} (default: memory_system.performance.batch_size)",
    )
    for name, text in (
        ("status", "show a job"),
        ("resume", "continue a paused, failed or interrupted job"),
        ("pause", "pause a running job at the next batch"),
        ("cancel", "stop a job for good"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("job", type=int, nargs="?", default=None, help="job id (default: the latest)")
    p = sub.add_parser("verify", help="verify the target space of a job (--verify)")
    p.add_argument("job", type=int, nargs="?", default=None)
    p.add_argument("--channel", type=int, default=None)
    p.add_argument("--eval", type=Path, default=None, help="labelled evaluation set (JSONL) to score old vs new")
    for name, text in (
        ("swap", "point verified channels at the new space"),
        ("rollback", "point swapped channels back at the old space"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("job", type=int, nargs="?", default=None)
        p.add_argument("--channel", type=int, default=None)
        if name == "swap":
            p.add_argument("--force", action="store_true", help="also swap channels the quality gate failed")
    p = sub.add_parser("finalize", help="delete the old space's vectors (after a passing verify)")
    p.add_argument("job", type=int, nargs="?", default=None)
    p.add_argument("--yes", action="store_true", help="confirm the deletion")
    p = sub.add_parser("restore", help="restore a backup (the bot must be stopped)")
    p.add_argument("--backup-path", type=Path, required=True)
    p = sub.add_parser("backups", help="list backups and whether they are intact and complete")
    p.add_argument(
        "--clean-incomplete",
        action="store_true",
        help="remove half-written backups (killed midway); pre-restore copies and backups in progress are kept",
    )
    p = sub.add_parser(
        "move-store", help="copy the SQLite memory to PostgreSQL + pgvector without re-embedding, then verify"
    )
    p.add_argument(
        "--to",
        default=None,
        metavar="DSN",
        help="postgresql://user:password@host:5432/dbname (default: $MEMORY_DATABASE_URL, memory_system.database_url)",
    )
    p.add_argument(
        "--batch-size",
        type=bounded_int(1, COPY_BATCH_MAX),
        default=None,
        help=f"rows per bulk copy, 1 to {COPY_BATCH_MAX} (default 1000)",
    )
    return parser


def translate_legacy(argv: list[str]) -> list[str]:
    """Map the old scripts' flags onto subcommands (``--check-only`` -> ``check``, ``--backup-path X`` -> restore)."""
    out = list(argv)
    for flag, command in LEGACY_FLAGS.items():
        if flag in out:
            out.remove(flag)
            return _insert_command(out, command)
    if "--backup-path" in out and not any(a in ("restore",) for a in out):
        return _insert_command(out, "restore")
    return out


def _insert_command(args: list[str], command: str) -> list[str]:
    """Put the subcommand after the global options (--settings X, --json, -v)."""
    head: list[str] = []
    rest = list(args)
    while rest and rest[0] in ("--settings", "--json", "-v", "--verbose"):
        head.append(rest.pop(0))
        if head[-1] == "--settings" and rest:
            head.append(rest.pop(0))
    return [*head, command, *rest]


def target_space(settings: Settings, args: argparse.Namespace) -> Profile:
    """The target profile: command-line flags win over memory_system.migration settings."""
    return settings.memory.migration.target(
        args.target_profile,
        args.target_path,
        args.target_dimension,
        dimension_flag="--target-dimension",
        force=getattr(args, "force", False),
    )


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    from qwen3_memory.migration import backup as backups

    if args.command == "restore":
        moved = await backups.restore_backup(args.backup_path, settings)
        emit(
            args,
            {"restored": str(args.backup_path), "previous_data": str(moved) if moved else None},
            f"restored {args.backup_path}; the data it replaced is in {moved}",
        )
        return 0
    if args.command == "backups":
        if args.clean_incomplete:
            removed = backups.clean_incomplete_backups(settings)
            lines = "\n".join(f"removed {path}" for path in removed) or "no incomplete backups"
            emit(args, {"removed": [str(path) for path in removed]}, lines)
            return 0
        infos = backups.list_backups(settings)
        emit(args, [i.to_dict() for i in infos], "\n".join(i.render() for i in infos) or "no backups yet")
        return 0
    if args.command == "check":
        return await _check(args, settings)
    if args.command == "move-store":
        return await _move_store(args, settings)

    from qwen3_memory.memory import Memory
    from qwen3_memory.migration.engine import MigrationEngine

    profile = target_space(settings, args) if args.command in ("plan", "migrate") else None  # refusals first
    memory = await Memory.open(settings)
    try:
        engine = MigrationEngine(memory)
        if args.command == "plan":
            from qwen3_memory.migration.plan import make_plan, render_plan

            plan = await make_plan(
                memory, profile.embedding, args.strategy, guild_id=args.guild, channels=args.channels, force=args.force
            )
            emit(args, plan.to_dict(), render_plan(plan))
            return 0
        if args.command == "migrate":
            job = await engine.start(
                profile.embedding,
                args.strategy,
                guild_id=args.guild,
                channel_ids=args.channels,
                force=args.force,
                auto_swap=not args.no_swap,
                backup=not args.no_backup,
                batch_size=args.batch_size or settings.migration_batch_size(profile),
                eval_path=args.eval,
                transform_sample=args.transform_sample or settings.memory.migration.transform_sample,
            )
            print(
                f"migration #{job.id}: log {job.log_path}" + (f", backup {job.backup_path}" if job.backup_path else ""),
                file=sys.stderr,
            )
            for warning in job.options.get("warnings", []):
                print(f"WARNING: {warning}", file=sys.stderr)
            return await _run_with_progress(engine, job.id, args)
        job_id = (await engine.resolve_job(getattr(args, "job", None))).id
        if args.command == "resume":
            return await _run_with_progress(engine, job_id, args, resume=True)
        if args.command == "status":
            status = await engine.status(job_id)
            emit(args, status.to_dict(), render_status(status))
            return 0
        if args.command in ("pause", "cancel"):
            job = await getattr(engine, args.command)(job_id)
            emit(args, {"job": job.id, "status": job.status}, f"migration #{job.id} is {job.status}")
            return 0
        if args.command == "verify":
            reports = await engine.verify(job_id, args.channel, eval_path=args.eval)
            overall = overall_evaluation([r.evaluation for r in reports])
            target = (await engine.status(job_id)).target
            floor = await describe_floor_in_use(memory.store, target.id, settings.memory.recall.min_score)
            text = "\n".join(render_verify(r) for r in reports)
            text += (f"\n\n{render_overall(overall)}" if overall else "") + f"\nscore floor of the new space: {floor}"
            emit(args, {"channels": [r.to_dict() for r in reports], "overall": overall, "floor": floor}, text)
            return 0 if all(r.passed for r in reports) else 1
        if args.command in ("swap", "rollback"):
            extra = {"force": args.force} if args.command == "swap" else {}
            changed = await getattr(engine, args.command)(job_id, args.channel, **extra)
            emit(
                args,
                {"job": job_id, args.command: changed},
                f"{args.command}: {len(changed)} channel(s) {', '.join(map(str, changed))}",
            )
            return 0
        if args.command == "finalize":
            done = await engine.finalize(job_id, confirm=args.yes)
            emit(args, {"job": job_id, "finalized": done}, f"finalized {len(done)} channel(s): old vectors deleted")
            return 0
    finally:
        await memory.close()
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover - argparse restricts choices


async def _check(args: argparse.Namespace, settings: Settings) -> int:
    from qwen3_memory.backends import open_store
    from qwen3_memory.migration.checks import render_checks, run_checks

    store = await open_store(settings)
    try:
        checks = await run_checks(
            settings, target_space(settings, args), store=store, load_model=not args.no_model_load
        )
    finally:
        await store.close()
    emit(args, [c.to_dict() if hasattr(c, "to_dict") else vars(c) for c in checks], render_checks(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


async def _move_store(args: argparse.Namespace, settings: Settings) -> int:
    """Copy and verify; 1 when the copy differs from the source (the report says what to run next)."""
    from tqdm import tqdm

    from qwen3_memory.migration.move_store import BATCH_ROWS, destination_dsn, move_store

    quiet = args.json or not sys.stderr.isatty()

    def bar(phase: str, total: int) -> tqdm:
        return tqdm(
            total=total,
            desc=phase,
            unit="msg" if phase == "messages" else "vec",
            disable=quiet,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    report = await move_store(
        settings,
        destination_dsn(args.to, settings),
        batch_rows=args.batch_size or BATCH_ROWS,
        bars=bar,
        notify=lambda line: print(line, file=sys.stderr),
    )
    emit(args, report.to_dict(), report.render())
    return 0 if report.passed else 1


async def _run_with_progress(engine, job_id: int, args: argparse.Namespace, resume: bool = False) -> int:
    """Run the job here with a terminal progress bar; Ctrl-C pauses it (resume continues)."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    if resume:
        await engine.resume(job_id, background=True)
    task = engine.launch(job_id)  # the running task, when resume started it
    status = await engine.status(job_id)
    bar = tqdm(total=status.total, initial=status.done, unit="msg", disable=args.json, dynamic_ncols=True)
    redirect = logging_redirect_tqdm()  # -v log lines print above the bar, not through it
    redirect.__enter__()
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            snap = engine.progress(job_id)
            if snap is not None:
                bar.n = snap["done"]
                bar.set_postfix(
                    phase=snap["phase"],
                    channel=str(snap["channel_id"]),  # an id, not a number tqdm may print as 8.83e+17
                    batch=snap["batch_size"],
                    rss=f"{snap['rss_mb']:.0f}MiB",
                    refresh=False,
                )
                bar.refresh()
    except (KeyboardInterrupt, asyncio.CancelledError):
        await engine.pause(job_id)
        await asyncio.wait({task}, timeout=60)
        print(f"\npaused migration #{job_id}; `resume {job_id}` continues", file=sys.stderr)
        return 1
    finally:
        bar.close()
        redirect.__exit__(None, None, None)
    job = task.result()
    status = await engine.status(job_id)
    emit(args, status.to_dict(), render_status(status))
    if job.status == "paused" and job.error:  # it paused itself (a full disk): the status says why; fail the command
        return 1
    return 0 if job.status in ("completed", "paused") else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(translate_legacy(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings(args.settings)
        if args.command != "backups":  # every other command opens (or restores) the memory
            settings.check_writable()
        return asyncio.run(run_command(args, settings))
    except UserFacingError as exc:
        from qwen3_memory.migration.advice import COMMAND_LINE, advise  # imported here, so `--help` stays fast

        advice = advise(exc, COMMAND_LINE)
        print(f"error: {advice.message}" + (f"\nnext: {advice.next_step}" if advice.next_step else ""), file=sys.stderr)
        return 2 if isinstance(exc, SettingsError) else 1
    except OSError as exc:
        from qwen3_memory.migration.advice import COMMAND_LINE, advise

        advice = advise(exc, COMMAND_LINE)
        if advice is None:
            raise
        print(f"error: {advice.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
