"""bot.py: command line, token handling, logging redaction, startup (setup_hook, --sync) and graceful shutdown."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext import commands
from discord.ext.test.backend import FakeHttp

import bot
from qwen3_memory.backends.sqlite.store import SQLiteStore
from qwen3_memory.memory import Memory
from tests.discord_harness import DiscordHarness, open_memory, shared_services
from tests.factories import make_unwritable

ROOT = Path(__file__).resolve().parents[1]
FAKE_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.fake.token-value-never-to-be-printed"


@pytest.fixture(autouse=True)
def keep_discord_http_level():
    """bot.main() sets discord.http's level; later tests (history imports count its warnings) need it back."""
    logger = logging.getLogger("discord.http")
    saved = logger.level
    yield
    logger.setLevel(saved)


def run_bot(*args: str, token: str | None = None, env: dict[str, str] | None = None, cwd: Path = ROOT):
    environment = {k: v for k, v in os.environ.items() if k not in (bot.TOKEN_ENV, bot.SETTINGS_ENV)}
    if token is not None:
        environment[bot.TOKEN_ENV] = token
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_help_documents_every_flag_and_the_token_variable():
    result = run_bot("--help")
    assert result.returncode == 0
    for text in ("--settings", "--sync", "--log-level", "DISCORD_TOKEN", "MEMORY_SETTINGS", "settings.json"):
        assert text in result.stdout


def test_without_a_token_it_exits_with_one_line_and_code_2(tmp_path):
    result = run_bot(cwd=tmp_path)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "DISCORD_TOKEN is not set" in line and result.stdout == ""


def test_a_malformed_settings_file_gives_one_clear_line(tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text('{"memory_system": {"profile": "offline_default",}}')
    result = run_bot("--settings", str(settings), token=FAKE_TOKEN)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert str(settings) in line and "invalid JSON at line 1" in line
    assert FAKE_TOKEN not in result.stderr + result.stdout


def test_an_invalid_settings_value_names_the_key(tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"memory_system": {"recall": {"k": "five"}}}))
    result = run_bot(token=FAKE_TOKEN, env={bot.SETTINGS_ENV: str(settings)})  # found through MEMORY_SETTINGS
    assert result.returncode == 2
    assert "memory_system.recall.k must be an integer" in one_line(result.stderr)


def test_an_unwritable_data_directory_is_one_line_before_connecting(tmp_path, monkeypatch, capsys):
    locked = make_unwritable(tmp_path / "locked", monkeypatch)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"memory_system": {"paths": {"data_dir": "locked/data"}}}))
    monkeypatch.setenv(bot.TOKEN_ENV, FAKE_TOKEN)

    async def connect(*_):
        raise AssertionError("the bot connected to Discord with a memory it cannot write")

    monkeypatch.setattr(bot, "run", connect)
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        code = bot.main(["--settings", str(settings)])
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)

    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert f"{locked} is not writable" in line and "memory_system.paths.data_dir" in line
    assert FAKE_TOKEN not in line


def test_settings_default_to_settings_json_in_the_working_directory(tmp_path):
    result = run_bot(token=FAKE_TOKEN, cwd=tmp_path)
    assert result.returncode == 2
    assert "settings.json: file not found" in one_line(result.stderr)


def test_the_sync_flag_and_settings_path_are_parsed():
    args = bot.build_parser().parse_args(["--sync", "--settings", "x.json", "--log-level", "debug"])
    assert args.sync and args.settings == "x.json" and args.log_level == "DEBUG"
    assert bot.settings_path(None) == Path("settings.json")


def test_logging_never_prints_the_token():
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        bot.configure_logging("INFO", FAKE_TOKEN, stream=stream)
        log = logging.getLogger("some.library")
        log.info("connecting with %s", FAKE_TOKEN)
        log.warning(f"header Authorization: Bot {FAKE_TOKEN}")
        try:
            raise RuntimeError(f"401 for token {FAKE_TOKEN}")
        except RuntimeError:
            log.exception("login failed")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    output = stream.getvalue()
    assert FAKE_TOKEN not in output
    assert output.count("[DISCORD_TOKEN redacted]") == 3  # the message, the f-string, the exception text
    assert "login failed" in output and "RuntimeError" in output


@pytest.mark.parametrize(
    ("flags", "backend_name", "expected"),
    [
        (["--shard-id", "0"], "postgres", "go together"),
        (["--shard-id", "2", "--shard-count", "2"], "postgres", "between 0 and 1"),
        (["--shard-id", "1", "--shard-count", "2"], "sqlite", 'set memory_system.backend to "postgres"'),
    ],
)
def test_shard_options_are_checked_before_anything_starts(tmp_path, flags, backend_name, expected):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"memory_system": {"backend": backend_name, "database_url": "postgresql://x@h/db"}}))
    result = run_bot("--settings", str(settings), *flags, token=FAKE_TOKEN)
    assert result.returncode == 2
    assert expected in one_line(result.stderr)


def test_one_shard_of_several_is_passed_to_discord_py():
    args = bot.build_parser().parse_args(["--shard-id", "1", "--shard-count", "4"])
    assert (args.shard_id, args.shard_count) == (1, 4)
    assert bot.check_sharding(1, 4, "postgres") == "" and bot.check_sharding(None, None, "sqlite") == ""


async def test_an_unreachable_postgres_is_a_clear_error_without_its_password(make_settings, monkeypatch):
    from qwen3_memory.errors import StoreError

    secret = "s3cret-db-password"
    monkeypatch.setenv("MEMORY_DATABASE_URL", f"postgresql://memory:{secret}@127.0.0.1:1/memory?connect_timeout=2")
    memory_bot = bot.MemoryBot(make_settings(backend="postgres"), intents=discord.Intents.none())
    with pytest.raises(StoreError) as info:
        await memory_bot.setup_hook()
    text = str(info.value)
    assert secret not in text
    assert "cannot connect to the memory database at postgresql://memory:***@127.0.0.1:1/memory" in text
    assert "MEMORY_DATABASE_URL" in text  # what to check next


def test_a_damaged_database_at_startup_is_one_line_without_a_traceback(tmp_path, monkeypatch, capsys):
    from qwen3_memory.settings import load_settings

    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"memory_system": {"paths": {"data_dir": str(tmp_path / "data")}}}))
    database = load_settings(settings).database_path
    database.parent.mkdir(parents=True)
    database.touch()  # 0 bytes: what a full disk or a bad copy leaves

    async def login_without_discord(self, token):  # discord.py runs setup_hook inside login
        await self.setup_hook()

    monkeypatch.setattr(bot.MemoryBot, "login", login_without_discord)
    monkeypatch.setenv(bot.TOKEN_ENV, FAKE_TOKEN)
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        code = bot.main(["--settings", str(settings), "--log-level", "ERROR"])
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)

    stderr = capsys.readouterr().err
    assert code == 1
    line = one_line(stderr)
    assert line.startswith("qwen3-memory-bot: error: ") and str(database) in line and "is empty (0 bytes)" in line
    assert "restore --backup-path" in line and database.stat().st_size == 0


def test_the_database_password_is_known_to_the_log_filter():
    assert bot.database_password("postgresql://u:pw%40rd@h:5432/db") == "pw@rd"
    assert bot.database_password("postgresql://u@h/db") == ""


def test_extensions_without_setup_are_skipped():
    assert bot.extension_available("cogs.memory")
    assert not bot.extension_available("cogs.no_such_extension")


async def test_setup_hook_loads_the_memory_cog_and_skips_missing_extensions(make_settings):
    memory = await open_memory(make_settings())
    try:
        harness = await DiscordHarness.start(memory, extensions=("cogs.memory", "cogs.no_such_extension"))
        assert harness.bot.get_cog("Memory") is not None
        assert list(harness.bot.extensions) == ["cogs.memory"]
        await harness.close()
    finally:
        await memory.close()


async def test_sync_publishes_the_command_tree_on_startup(make_settings, monkeypatch):
    published = []

    async def bulk_upsert_global_commands(self, application_id, payload):  # Discord's API, faked
        published.extend(payload)
        return [
            {**c, "id": str(i), "application_id": str(application_id), "version": "1"} for i, c in enumerate(payload, 1)
        ]

    monkeypatch.setattr(FakeHttp, "bulk_upsert_global_commands", bulk_upsert_global_commands, raising=False)
    memory = await open_memory(make_settings())
    try:
        harness = await DiscordHarness.start(memory, sync_commands=True, application_id=4242, owner_ids=())
        memory_command = next(c for c in published if c["name"] == "memory")
        assert {o["name"] for o in memory_command["options"]} >= {"recall", "forget-me", "stats"}
        assert memory_command["contexts"] == [0]  # guild only

        published.clear()
        owner = harness.member(0)
        harness.bot.owner_ids = {owner.id}
        harness.bot_messages()
        await harness.post("!sync", harness.channel(0), owner)
        assert harness.bot_messages()[0].content.startswith("Synced ")
        assert any(c["name"] == "memory" for c in published)

        published.clear()
        with pytest.raises(commands.NotOwner):
            await harness.post("!sync", harness.channel(0), harness.member(1))
        assert published == []
        await harness.close()
    finally:
        await memory.close()


async def test_close_drains_the_capture_queue_flushes_indexes_and_closes_the_database(make_settings):
    settings = make_settings(recall={"user_cooldown_seconds": 0})
    memory = await Memory.open(settings, services=shared_services(settings))
    harness = await DiscordHarness.start(memory, close_memory=True)
    channel = harness.channel(0)
    async with memory.store.transaction():  # holds the writer back: every message is still queued at close
        for i in range(100):
            await harness.post(f"message {i} about the release checklist", channel)
        await dpytest.run_all_events()
        assert memory.capture.embedded == 0
    config_module = sys.modules["qwen3_memory.settings"]

    harness.bot.ws = None  # dpytest's fake gateway has no socket
    await harness.bot.close()
    assert harness.bot.is_closed()
    assert sys.modules["qwen3_memory.settings"] is config_module  # unloading the cog keeps the library loaded

    store = await SQLiteStore.open(settings.database_path)
    try:
        assert await store.count_messages(channel.guild.id, channel.id) == 100
        assert await store.count_vectors(memory.default_space.id, channel.guild.id, channel.id) == 100
    finally:
        await store.close()
    assert memory.store.indexes.path(memory.default_space, channel.guild.id, channel.id).exists()


def test_intents_include_message_content():
    assert bot.intents().message_content
    assert isinstance(bot.MemoryBot(None, memory=object()).intents, discord.Intents)
