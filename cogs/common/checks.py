"""Who may run the admin commands: one rule for the memory cog and the migration cog.

A member is an admin when their permissions in the channel include the configured permission
(``memory_system.permissions.admin_permission``, default ``manage_guild``) or ``administrator``,
or when they own the bot. ``app_commands.default_permissions`` only hides commands in the client
(and Discord ignores it on subcommands), so the cogs check this at run time too.
"""

from __future__ import annotations

import discord
from discord import app_commands

PERMISSION_LABELS = {
    "administrator": "Administrator",
    "manage_guild": "Manage Server",
    "manage_channels": "Manage Channels",
    "manage_messages": "Manage Messages",
}


class NotMemoryAdmin(app_commands.CheckFailure):
    """The member lacks the configured admin permission and is not a bot owner."""

    def __init__(self, permission: str) -> None:
        label = PERMISSION_LABELS.get(permission, permission)
        super().__init__(f"🔒 Only members with the **{label}** permission (or the bot's owners) can use this command.")


async def is_admin(interaction: discord.Interaction, permission: str) -> bool:
    """``permission`` (or administrator) in this channel, or an owner of the bot."""
    permissions = interaction.permissions
    if permissions.administrator or getattr(permissions, permission, False):
        return True
    is_owner = getattr(interaction.client, "is_owner", None)
    return bool(is_owner is not None and await is_owner(interaction.user))
