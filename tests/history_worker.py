"""A bot process that imports one channel's history from the local REST server, for the kill -9 tests.

``python -m tests.history_worker DATA_DIR BASE_URL GUILD CHANNEL [--resume]``: without ``--resume`` it
starts an import of the channel; with it, it resumes what a killed process left unfinished. It prints
one JSON line with the progress when the import is over.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import discord  # noqa: E402

from cogs.memory.history import DiscordHistory  # noqa: E402
from qwen3_memory.history import ChannelRef, HistoryImporter  # noqa: E402
from qwen3_memory.memory import Memory  # noqa: E402
from qwen3_memory.settings import HistorySettings, default_settings  # noqa: E402
from tests.discord_rest import TOKEN  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    discord.http.Route.BASE = args.base_url
    memory = await Memory.open(default_settings(paths={"data_dir": args.data_dir}))
    client = discord.Client(intents=discord.Intents.none())
    await client.login(TOKEN)
    source = DiscordHistory(client)
    importer = HistoryImporter(memory, source, HistorySettings())
    try:
        if args.resume:
            await importer.resume_unfinished()
        else:
            await importer.start(args.guild, [ChannelRef(args.channel, name="general")])
        progress = await importer.wait(args.guild)
        print(json.dumps({"state": progress.state, "read": progress.read, "stored": progress.stored}), flush=True)
    finally:
        source.close()
        await client.close()
        await memory.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("base_url")
    parser.add_argument("guild", type=int)
    parser.add_argument("channel", type=int)
    parser.add_argument("--resume", action="store_true")
    asyncio.run(main(parser.parse_args()))
