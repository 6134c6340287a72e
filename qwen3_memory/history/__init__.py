"""Importing a channel's Discord history into the memory, and filling the gap a downtime left.

The library side knows nothing of Discord: a :class:`~qwen3_memory.history.source.HistorySource`
(the memory cog's adapter over discord.py) hands it pages of plain messages, and the
:class:`~qwen3_memory.history.importer.HistoryImporter` feeds them through the live capture
pipeline with a cursor per channel in the database.
"""

from qwen3_memory.history.importer import HistoryImporter, ImportProgress
from qwen3_memory.history.source import ChannelRef, ChannelUnreadable, HistoryPage, HistorySource

__all__ = ["ChannelRef", "ChannelUnreadable", "HistoryImporter", "HistoryPage", "HistorySource", "ImportProgress"]
