"""Confirm / Cancel buttons in front of the /migrate commands that change something for good."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord

from cogs.common.checks import NotMemoryAdmin, is_admin

if TYPE_CHECKING:
    from cogs.migration.cog import MigrationCog


class Confirmation(discord.ui.View):
    """Confirm / Cancel buttons that only the admin who asked may press; nothing happens on timeout."""

    def __init__(
        self,
        cog: MigrationCog,
        origin: discord.Interaction,
        action: Callable[[discord.Interaction], Awaitable[None]],
        *,
        confirm_label: str,
        working: str,
        timeout: float,
    ) -> None:
        super().__init__(timeout=timeout)
        self.cog = cog
        self.origin = origin
        self.author_id = origin.user.id
        self.action = action
        self.working = working
        self.outcome: str | None = None
        self.confirm.label = confirm_label

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The admin who ran the command, and still an admin now (the same rule as the commands)."""
        if interaction.user.id != self.author_id:
            refusal = f"🔒 Only <@{self.author_id}>, who ran this command, can answer it."
        elif not await is_admin(interaction, self.cog.admin_permission):
            refusal = (
                f"{NotMemoryAdmin(self.cog.admin_permission)} You no longer have it, so this answer was "
                "refused: nothing was changed."
            )
        else:
            return True
        await interaction.response.send_message(
            refusal, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )
        return False

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.outcome = "confirmed"
        self.stop()
        await interaction.response.edit_message(content=f"⏳ {self.working}", view=None)
        try:
            await self.action(interaction)
        except Exception as exc:  # every failure is reported in place of the prompt
            await interaction.edit_original_response(content=self.cog.error_text(exc, interaction), view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.outcome = "cancelled"
        self.stop()
        await interaction.response.edit_message(content="✖️ Cancelled: nothing was changed.", view=None)

    async def on_timeout(self) -> None:
        self.outcome = "timed out"
        try:
            await self.origin.edit_original_response(
                content="⌛ No answer in time: nothing was changed. Run the command again when you are ready.",
                view=None,
            )
        except discord.HTTPException:
            pass

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item) -> None:
        await self.cog.send_error(interaction, error)
