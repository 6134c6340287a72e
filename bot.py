"""Run the Discord bot with its semantic memory: ``python bot.py [--settings PATH] [--sync]``.

The bot token comes from the environment variable DISCORD_TOKEN only (never from settings.json,
never logged). Settings come from ``--settings``, else MEMORY_SETTINGS, else ./settings.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import discord
from discord.ext import commands

TOKEN_ENV = "DISCORD_TOKEN"
SETTINGS_ENV = "MEMORY_SETTINGS"
DEFAULT_SETTINGS = "settings.json"
EXTENSIONS = ("cogs.memory", "cogs.migration")  # cogs.migration loads only once it has a setup()
EXIT_USAGE = 2

log = logging.getLogger("qwen3_memory.bot")


# ---------------------------------------------------------------------- logging
class RedactToken(logging.Filter):
    """Replaces the token's value wherever it would appear in a log line (message, args, traceback)."""

    def __init__(self, token: str, replacement: str = "[DISCORD_TOKEN redacted]") -> None:
        super().__init__()
        self.token = token
        self.replacement = replacement

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.token:
            return True
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, self.replacement), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, self.replacement)
        if record.stack_info and self.token in record.stack_info:
            record.stack_info = record.stack_info.replace(self.token, self.replacement)
        return True


def configure_logging(level: str = "INFO", token: str = "", stream=None) -> logging.Handler:
    """One stderr handler on the root logger, with the token filter on the handler (so it sees every record)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactToken(token))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # discord.http's rate-limit warnings stay on whatever the level: history imports count them (cogs/memory/history.py)
    logging.getLogger("discord.http").setLevel(min(logging.WARNING, max(logging.INFO, root.level)))
    return handler


# ---------------------------------------------------------------------- the bot
def extension_available(name: str) -> bool:
    """Whether ``name`` imports and defines ``setup`` (cogs.migration is written separately)."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return False
        raise
    return callable(getattr(module, "setup", None))


def intents() -> discord.Intents:
    chosen = discord.Intents.default()
    chosen.message_content = True  # privileged: enable "Message Content Intent" in the developer portal
    return chosen


class MemoryBot(commands.Bot):
    """A bot whose setup_hook opens the memory and loads the cogs; close() drains and closes it."""

    def __init__(
        self,
        settings,
        *,
        sync_commands: bool = False,
        memory=None,
        close_memory: bool | None = None,
        extensions: Sequence[str] = EXTENSIONS,
        **options,
    ) -> None:
        """``memory``: an open Memory to use instead of opening one from ``settings`` in setup_hook;
        ``close_memory``: whether close() closes it (default: only a memory the bot opened itself)."""
        options.setdefault("intents", intents())
        options.setdefault("command_prefix", "!")
        options.setdefault("help_command", None)
        super().__init__(**options)
        self.settings = settings
        self.sync_commands = sync_commands
        self.memory = memory
        self._owns_memory = memory is None if close_memory is None else close_memory
        self.extension_names = tuple(extensions)
        self._memory_closed = False
        self.add_command(sync_command.copy())

    async def setup_hook(self) -> None:
        if self.memory is None:
            from qwen3_memory.memory import Memory

            self.memory = await Memory.open(self.settings)
        log.info("memory on %s at %s", self.settings.memory.backend, self.memory.store.where)
        space = self.memory.default_space.spec
        await self.memory.services.get(space).aload()  # a model that cannot load fails here, not mid-chat
        for name in self.extension_names:
            if name == "cogs.memory" or extension_available(name):
                await self.load_extension(name)
                log.info("loaded extension %s", name)
            else:
                log.info("extension %s has no setup() yet; skipped", name)
        if self.sync_commands:
            synced = await self.tree.sync()
            log.info("synced %d application commands globally", len(synced))

    async def on_ready(self) -> None:
        log.info("logged in as %s (%s) in %d guilds", self.user, getattr(self.user, "id", "?"), len(self.guilds))

    async def on_command_error(self, ctx: commands.Context, error: commands.CommandError) -> None:
        if isinstance(error, (commands.CommandNotFound, commands.CheckFailure)):
            return  # "!something" in chat, or a non-owner trying !sync: not worth a log line
        log.error("text command %s failed", ctx.command, exc_info=error)

    async def close(self) -> None:
        """Log out, then write every queued message, persist the indexes and close the database."""
        try:
            await super().close()
        finally:
            if self._owns_memory and self.memory is not None and not self._memory_closed:
                self._memory_closed = True
                log.info("closing memory: %d queued messages to write", self.memory.capture.pending)
                await self.memory.close()


@commands.command(name="sync", hidden=True)
@commands.is_owner()
async def sync_command(ctx: commands.Context, scope: str = "global") -> None:
    """Owner only: ``!sync`` publishes the slash commands globally, ``!sync guild`` to this server at once."""
    tree = ctx.bot.tree
    if scope == "guild" and ctx.guild is not None:
        tree.copy_global_to(guild=ctx.guild)
        synced = await tree.sync(guild=ctx.guild)
        await ctx.reply(f"Synced {len(synced)} commands to this server.")
    else:
        synced = await tree.sync()
        await ctx.reply(f"Synced {len(synced)} commands globally (Discord may take a while to show them).")


# ---------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qwen3-memory-bot",
        description="Run the Discord bot with a per-channel semantic memory and the migration commands.",
        epilog=f"The bot token is read from the environment variable {TOKEN_ENV} only; it is never read from "
        "settings.json and never logged.",
    )
    parser.add_argument(
        "--settings",
        metavar="PATH",
        help=f"settings file (default: ${SETTINGS_ENV} if set, else ./{DEFAULT_SETTINGS})",
    )
    parser.add_argument(
        "--sync",
        action="store_true",
        help="publish the slash commands (application command tree) to Discord on startup; the owner can "
        "also type !sync",
    )
    parser.add_argument(
        "--shard-id",
        type=int,
        metavar="N",
        help="run only shard N of --shard-count (several processes, possibly on several hosts, share one "
        'memory: needs memory_system.backend "postgres")',
    )
    parser.add_argument("--shard-count", type=int, metavar="M", help="the total number of shards (with --shard-id)")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="logging level (default: INFO)",
    )
    return parser


def check_sharding(shard_id: int | None, shard_count: int | None, backend: str) -> str:
    """Why these shard options cannot run, or ''. One SQLite memory belongs to one process."""
    if (shard_id is None) != (shard_count is None):
        return "--shard-id and --shard-count go together"
    if shard_id is None:
        return ""
    if not 0 <= shard_id < shard_count:
        return f"--shard-id must be between 0 and {shard_count - 1} (--shard-count {shard_count})"
    if shard_count > 1 and backend != "postgres":
        return (
            'several shard processes need a shared memory: set memory_system.backend to "postgres" and '
            "database_url (or MEMORY_DATABASE_URL); a SQLite memory belongs to one process"
        )
    return ""


def database_password(dsn: str) -> str:
    """The password in a Postgres DSN, so the log filter can hide it wherever a driver message repeats it."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        return str(conninfo_to_dict(dsn).get("password") or "")
    except Exception:  # no psycopg, or a DSN the driver will reject with its own (redacted) error
        return ""


def settings_path(arg: str | None) -> Path:
    return Path(arg or os.environ.get(SETTINGS_ENV) or DEFAULT_SETTINGS)


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"qwen3-memory-bot: error: {message}", file=sys.stderr)
    return code


async def run(bot: MemoryBot, token: str) -> None:
    """Start the bot; SIGINT/SIGTERM close it gracefully (drain the capture queue, flush, close the DB)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stopping.set)
        except (NotImplementedError, RuntimeError):  # Windows
            pass
    async with bot:
        runner = asyncio.create_task(bot.start(token), name="discord-bot")
        stopper = asyncio.create_task(stopping.wait(), name="shutdown-signal")
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("shutting down")
        else:
            stopper.cancel()
        await bot.close()
        if runner in done:
            runner.result()  # re-raise a login or setup failure
        else:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        return _fail(
            f"{TOKEN_ENV} is not set; export the bot token from the Discord developer portal, e.g. "
            f"`export {TOKEN_ENV}=...` (it is never read from the settings file)"
        )
    handler = configure_logging(args.log_level, token)

    from qwen3_memory.errors import UserFacingError
    from qwen3_memory.settings import load_settings

    path = settings_path(args.settings)
    try:
        settings = load_settings(path)
        settings.check_writable()  # a data directory this user cannot write: one line now, not a traceback later
    except UserFacingError as exc:
        return _fail(str(exc))
    shard_error = check_sharding(args.shard_id, args.shard_count, settings.memory.backend)
    if shard_error:
        return _fail(shard_error)
    password = database_password(settings.database_url) if settings.memory.backend == "postgres" else ""
    if password:
        handler.addFilter(RedactToken(password, "[database password redacted]"))
    sharding = {} if args.shard_id is None else {"shard_id": args.shard_id, "shard_count": args.shard_count}
    bot = MemoryBot(settings, sync_commands=args.sync, **sharding)
    try:
        asyncio.run(run(bot, token))
    except discord.LoginFailure:
        return _fail(f"Discord rejected the token in {TOKEN_ENV}; copy it again from the developer portal", 1)
    except discord.PrivilegedIntentsRequired:
        return _fail("enable the Message Content intent for this bot in the Discord developer portal", 1)
    except UserFacingError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
