"""Replies both cogs send the same way."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

log = logging.getLogger(__name__)


async def tell_privately(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral message whether or not the interaction was already answered (errors land anywhere)."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell the user: %s", text)


def refused_option(error: app_commands.TransformerError) -> str:
    """An option whose value does not resolve in this server: another server's channel named in a crafted
    request, a deleted channel, a channel of the wrong kind. A refusal, not an error of the bot."""
    if error.type is discord.AppCommandOptionType.channel:
        return (
            "⛔ That channel is not a text channel or thread of this server that I can see: name one of this "
            "server's channels. Nothing was done."
        )
    return f"⛔ That {error.type.name} is not one I can use in this server. Nothing was done."
