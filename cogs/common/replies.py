"""Replies both cogs send the same way."""

from __future__ import annotations

import logging

import discord

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
