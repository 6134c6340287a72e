"""Drive the real bot offline: real discord.py state, listeners and application command tree.

* Gateway events (messages, edits, deletes) go through dpytest's fake backend, which calls the real
  ``ConnectionState.parse_*`` handlers, so the cogs' listeners see genuine ``discord.Message`` and
  raw event objects.
* Slash commands are raw INTERACTION_CREATE payloads (type 2, ``data.name``, nested subcommand
  options, a member with a permissions bitfield, guild and channel) handed to the real
  ``ConnectionState.parse_interaction_create``, which builds the ``discord.Interaction`` and runs
  it through ``bot.tree`` (checks, transformers, error handlers).
* Buttons are raw INTERACTION_CREATE payloads of type 3 (MESSAGE_COMPONENT) naming a button of a
  message the bot sent (:meth:`DiscordHarness.click`), dispatched through the real view store.
* Only Discord's network is replaced: dpytest's ``FakeHttp`` for bot messages, and for interaction
  responses a :class:`RecordingWebhookAdapter` (discord.py's webhook HTTP adapter) that records
  what would have been sent and answers like Discord would.

The memory under test is real: the packaged all-MiniLM-L6-v2 model (loaded once per process by
:func:`shared_services`), a temp SQLite file and FAISS indexes.

Reuse from other cogs' tests::

    harness = await DiscordHarness.start(memory, extensions=("cogs.memory", "cogs.migration"))
    reply = await harness.slash("migrate status", member=harness.member(0), permissions=ADMIN)
    assert reply.ephemeral and "running" in reply.text
    await harness.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import discord
import discord.ext.test as dpytest
from discord import app_commands
from discord.ext.test import backend as dpy_backend
from discord.ext.test import factories as dpy_factories
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

from qwen3_memory.memory import Memory
from qwen3_memory.models.embedding import EmbeddingServices
from qwen3_memory.settings import Settings
from tests.discord_rest import message_data

EPHEMERAL = 1 << 6
ADMIN = discord.Permissions(manage_guild=True, send_messages=True, read_messages=True)
MEMBER = discord.Permissions(send_messages=True, read_messages=True, read_message_history=True)

_OPTION_TYPES = {
    discord.AppCommandOptionType.string: str,
    discord.AppCommandOptionType.integer: int,
    discord.AppCommandOptionType.number: float,
    discord.AppCommandOptionType.boolean: bool,
}

_shared_services: EmbeddingServices | None = None


def shared_services(settings: Settings) -> EmbeddingServices:
    """One EmbeddingServices per process, so the packaged model loads once for the whole session."""
    global _shared_services
    if _shared_services is None:
        _shared_services = EmbeddingServices(
            settings.device_policy, settings.memory.performance.max_concurrent_queries, settings.batch_size
        )
        _shared_services.get(settings.space).load()
    return _shared_services


async def open_memory(settings: Settings) -> Memory:
    """A real Memory in the settings' temp dir, on the process-wide loaded model."""
    return await Memory.open(settings, services=shared_services(settings))


@contextlib.asynccontextmanager
async def running_harness(settings: Settings, **start_options: Any) -> AsyncIterator[DiscordHarness]:
    """A started :class:`DiscordHarness` on a fresh real memory; closes both (the usual test fixture body)."""
    memory = await open_memory(settings)
    try:
        harness = await DiscordHarness.start(memory, **start_options)
        try:
            yield harness
        finally:
            await harness.close()
    finally:
        await memory.close()


# ---------------------------------------------------------------------- interaction responses
@dataclass
class SentResponse:
    """One thing the bot sent back for an interaction (initial response, edit of it, or follow-up)."""

    route: str  # "callback", "edit_original", "followup", "get_original", "delete_original"
    type: int | None  # interaction callback type for "callback" (4 message, 5 deferred, 7 update...)
    payload: dict[str, Any]
    files: list[tuple[str, bytes]] = field(default_factory=list)  # attachments: (filename, content)
    message: dict[str, Any] | None = None  # the message Discord answered with (its id is what buttons refer to)

    @property
    def data(self) -> dict[str, Any]:
        return self.payload.get("data", {}) if self.route == "callback" else self.payload

    @property
    def content(self) -> str:
        return self.data.get("content") or ""

    @property
    def embeds(self) -> list[discord.Embed]:
        return [discord.Embed.from_dict(e) for e in self.data.get("embeds") or []]

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.data.get("flags", 0) or 0) & EPHEMERAL)

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """The buttons this response put on its message (empty when it removed them or sent none)."""
        rows = self.data.get("components") or []
        return [c for row in rows for c in row.get("components", []) if c.get("type") == 2]

    @property
    def text(self) -> str:
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.title or "", embed.description or "", embed.footer.text or ""]
            parts += [f"{f.name}\n{f.value}" for f in embed.fields]
        return "\n".join(p for p in parts if p)


@dataclass
class InteractionReply:
    """Everything sent back for one interaction, in order; live, so a command's background task that
    edits its response later (progress reports) shows up here too (see :meth:`wait_until`)."""

    interaction: discord.Interaction
    adapter: RecordingWebhookAdapter

    @property
    def responses(self) -> list[SentResponse]:
        return [r for token, _, r in self.adapter.calls if token == self.interaction.token]

    async def wait_until(self, predicate, timeout: float = 10.0) -> InteractionReply:
        """Wait until ``predicate(self)`` holds (e.g. a progress message reached 'done')."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no matching response within {timeout}s; got: {self.text!r}")
            await asyncio.sleep(0.01)
        return self

    @property
    def messages(self) -> list[SentResponse]:
        """Responses that carry a message (not a bare deferral or a fetch)."""
        return [r for r in self.responses if r.route in ("callback", "edit_original", "followup") and r.type != 5]

    @property
    def text(self) -> str:
        return "\n".join(r.text for r in self.messages)

    @property
    def embeds(self) -> list[discord.Embed]:
        return [e for r in self.messages for e in r.embeds]

    @property
    def files(self) -> list[tuple[str, bytes]]:
        """Every attachment sent back, as (filename, content)."""
        return [f for r in self.messages for f in r.files]

    @property
    def deferred(self) -> bool:
        return any(r.route == "callback" and r.type == 5 for r in self.responses)

    @property
    def ephemeral(self) -> bool:
        """True when the bot answered and every answer is ephemeral (a deferral's flag counts for follow-ups)."""
        if not self.messages:
            return False
        deferred_ephemeral = any(r.route == "callback" and r.type == 5 and r.ephemeral for r in self.responses)
        return all(r.ephemeral or (deferred_ephemeral and r.route != "callback") for r in self.messages)

    @property
    def failed(self) -> bool:
        return self.interaction.command_failed


class RecordingWebhookAdapter(AsyncWebhookAdapter):
    """discord.py's interaction/webhook HTTP adapter with the network replaced by a recorder."""

    def __init__(self, harness: DiscordHarness) -> None:
        super().__init__()
        self.harness = harness
        self.calls: list[tuple[str, str, SentResponse]] = []  # (webhook token, route, response)
        self.original_ids: dict[str, int] = {}  # webhook token -> id of the interaction's original response

    async def request(self, route, session, *, payload=None, multipart=None, files=None, params=None, **_):
        if payload is None and multipart:  # files: the JSON part is "payload_json"
            import json

            payload = next((json.loads(p["value"]) for p in multipart if p.get("name") == "payload_json"), {})
        payload = payload or {}
        attached = []
        for file in files or []:
            file.reset()
            attached.append((file.filename, file.fp.read()))
        path = route.path
        if path.endswith("/callback"):
            kind = "callback"
        elif path.endswith("/messages/@original"):
            kind = {"PATCH": "edit_original", "GET": "get_original", "DELETE": "delete_original"}[route.method]
        elif route.method == "POST":
            kind = "followup"
        else:
            raise NotImplementedError(f"{route.method} {path} is not faked by the harness")
        response = SentResponse(kind, payload.get("type") if kind == "callback" else None, payload, attached)
        self.calls.append((route.webhook_token, kind, response))
        return self._answer(route, kind, response)

    def _answer(self, route, kind: str, response: SentResponse) -> dict[str, Any] | None:
        if kind == "delete_original":
            return None
        token = route.webhook_token
        channel_id = self.harness.channel_of_token.get(token, 0)
        original = None
        if kind in ("edit_original", "get_original"):  # a component interaction's original is the message clicked
            original = self.original_ids.get(token) or self.harness.message_of_token.get(token)
        if kind == "callback" and response.type == 7:  # a component's update edits the message it sits on
            original = self.harness.message_of_token.get(token)
        message = self.harness.message_payload(channel_id, response.data, message_id=original)
        if kind == "callback" and response.type in (4, 5):
            self.original_ids[token] = int(message["id"])
        response.message = message
        if kind != "callback":
            return message
        callback = {
            "interaction": {
                "id": str(route.webhook_id),
                "type": 2,
                "response_message_id": message["id"],
                "response_message_loading": response.type == 5,
                "response_message_ephemeral": response.ephemeral,
            }
        }
        if response.type in (4, 7):
            callback["resource"] = {"type": response.type, "message": message}
        return callback


# ---------------------------------------------------------------------- the harness
class DiscordHarness:
    """A MemoryBot on dpytest's fake Discord: ``guilds`` x ``text_channels`` channels, ``members`` per guild."""

    def __init__(self, bot, memory: Memory) -> None:
        self.bot = bot
        self.memory = memory
        config = dpytest.get_config()
        self.guilds: list[discord.Guild] = list(config.guilds)
        self.adapter = RecordingWebhookAdapter(self)
        self.channel_of_token: dict[str, int] = {}
        self.message_of_token: dict[str, int] = {}  # component interactions: the message clicked
        self.world_ids: list[int] = []  # the ids dpytest minted for guilds, channels and users (see start)
        self._ids = itertools.count(1)

    @classmethod
    async def start(
        cls,
        memory: Memory,
        *,
        extensions: Sequence[str] = ("cogs.memory",),
        guilds: int = 2,
        text_channels: int = 2,
        members: int = 3,
        owner_ids: Sequence[int] = (),
        same_world_as: DiscordHarness | None = None,
        **bot_options: Any,
    ) -> DiscordHarness:
        """Build the real bot around ``memory``, wire it to dpytest and run its real setup_hook.

        ``bot_options`` go to ``MemoryBot`` (e.g. ``sync_commands=True, application_id=...``).
        ``same_world_as``: a (closed) harness whose guilds, channels and members this one gets again, with
        the same ids, as a restarted bot would (start it with the same ``guilds``, ``text_channels``, ``members``).
        """
        from bot import MemoryBot, intents

        chosen = intents()
        chosen.members = True  # dpytest keeps its fake members in the member cache, which needs this intent
        bot_options.setdefault("intents", chosen)
        bot = MemoryBot(memory.settings, memory=memory, extensions=extensions, owner_ids=set(owner_ids), **bot_options)
        await bot._async_setup_hook()  # what login() does first: binds the bot to this event loop
        application_id = bot.application_id
        world_ids = _configure_world(
            bot, guilds, text_channels, members, same_world_as.world_ids if same_world_as else None
        )
        bot._connection.application_id = application_id
        bot._connection._command_tree = bot.tree  # dpytest's state replaced the one the tree registered with
        bot.tree._http = bot.http  # ... and its fake HTTP client the real one the tree kept (tree.sync)
        harness = cls(bot, memory)
        harness.world_ids = world_ids
        await bot.setup_hook()
        await dpytest.empty_queue()
        return harness

    async def close(self) -> None:
        await dpytest.empty_queue()
        await self.memory.capture.drain()
        self.bot.ws = None  # dpytest's fake gateway has no socket to close
        await self.bot.close()

    # ------------------------------------------------------------------ the fake server
    def channel(self, index: int = 0, guild: int = 0) -> discord.TextChannel:
        return self.guilds[guild].text_channels[index]

    def member(self, index: int = 0, guild: int = 0) -> discord.Member:
        humans = [m for m in self.guilds[guild].members if not m.bot and m.id != self.bot.user.id]
        return sorted(humans, key=lambda m: m.id)[index]

    def make_thread(self, parent: discord.TextChannel, name: str = "thread") -> discord.Thread:
        """A public thread under ``parent``, created through the gateway's THREAD_CREATE."""
        thread_id = dpy_factories.make_id()
        self.bot._connection.parse_thread_create(
            {
                "id": str(thread_id),
                "guild_id": str(parent.guild.id),
                "parent_id": str(parent.id),
                "owner_id": str(self.member(0, self.guilds.index(parent.guild)).id),
                "name": name,
                "type": discord.ChannelType.public_thread.value,
                "last_message_id": None,
                "message_count": 0,
                "member_count": 1,
                "rate_limit_per_user": 0,
                "flags": 0,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": dt.datetime.now(dt.UTC).isoformat(),
                    "locked": False,
                },
                "newly_created": True,
            }
        )
        thread = parent.guild.get_thread(thread_id)
        assert thread is not None
        return thread

    # ------------------------------------------------------------------ gateway events
    async def post(
        self, content: str, channel: discord.abc.Messageable | None = None, member: discord.abc.User | None = None
    ) -> discord.Message:
        """A member posts ``content`` (MESSAGE_CREATE); waits until the listeners ran."""
        channel = channel or self.channel()
        member = member or self.member(0, self.guilds.index(channel.guild) if getattr(channel, "guild", None) else 0)
        return await dpytest.message(content, channel=channel, member=member)

    async def post_payload(
        self, content: str, channel: discord.abc.Messageable, author: discord.abc.User, **fields
    ) -> discord.Message:
        """MESSAGE_CREATE with extra raw fields (``type=7`` for a system message, ``webhook_id=...``)."""
        data = dpy_factories.make_message_dict(channel, author, content=content, **fields)
        if isinstance(author, discord.Member):
            data["member"] = dpy_factories.dict_from_member(author)
        state = self.bot._connection
        state.parse_message_create(data)
        dpy_backend._cur_config.messages.setdefault(channel.id, []).append(data)
        await dpytest.run_all_events()
        return state._get_message(data["id"]) or discord.Message(state=state, channel=channel, data=data)

    async def edit(self, message: discord.Message, content: str) -> None:
        """The author edits ``message`` (MESSAGE_UPDATE with the full message, as Discord sends it)."""
        author = message.author
        data = {
            "id": str(message.id),
            "channel_id": str(message.channel.id),
            "author": dpy_factories.dict_from_user(getattr(author, "_user", author)),
            "content": content,
            "timestamp": message.created_at.isoformat(),
            "edited_timestamp": dt.datetime.now(dt.UTC).isoformat(),
            "tts": False,
            "mention_everyone": False,
            "mentions": [dpy_factories.dict_from_user(getattr(u, "_user", u)) for u in message.mentions],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": message.type.value,
            "flags": message.flags.value,
        }
        if message.webhook_id is not None:
            data["webhook_id"] = str(message.webhook_id)
        if message.guild is not None:
            data["guild_id"] = str(message.guild.id)
            if isinstance(author, discord.Member):
                member = dpy_factories.dict_from_member(author)
                member.pop("user", None)
                member["joined_at"] = (author.joined_at or dt.datetime.now(dt.UTC)).isoformat()
                data["member"] = member
        self.bot._connection.parse_message_update(data)
        await dpytest.run_all_events()

    async def delete(self, message: discord.Message) -> None:
        """MESSAGE_DELETE."""
        dpy_backend.delete_message(message)
        await dpytest.run_all_events()

    async def bulk_delete(self, messages: Sequence[discord.Message]) -> None:
        """MESSAGE_DELETE_BULK (a moderator purging messages)."""
        channel = messages[0].channel
        data = {"ids": [str(m.id) for m in messages], "channel_id": str(channel.id)}
        if messages[0].guild is not None:
            data["guild_id"] = str(messages[0].guild.id)
        self.bot._connection.parse_message_delete_bulk(data)
        await dpytest.run_all_events()

    async def settle(self) -> None:
        """Wait for every listener, then for the capture writer to store and embed what they queued."""
        await dpytest.run_all_events()
        await self.memory.capture.drain()

    def bot_messages(self) -> list[discord.Message]:
        """Messages the bot sent to channels since the last call (mention replies)."""
        sent = []
        while not dpytest.sent_queue.empty():
            sent.append(dpytest.sent_queue.get_nowait())
        return sent

    # ------------------------------------------------------------------ interactions
    def message_payload(self, channel_id: int, data: dict[str, Any], message_id: int | None = None) -> dict[str, Any]:
        """A message as Discord returns it for an interaction response or follow-up (``message_id``: an
        existing message, e.g. the original response being edited)."""
        return message_data(
            message_id or dpy_factories.make_id(),
            channel_id,
            dpy_factories.dict_from_user(self.bot.user),
            data.get("content") or "",
            embeds=data.get("embeds") or [],
            components=data.get("components") or [],
            type=20,
            flags=int(data.get("flags", 0) or 0),
        )

    def interaction_payload(
        self,
        command: str,
        options: dict[str, Any] | None = None,
        *,
        member: discord.Member,
        channel: discord.abc.GuildChannel | discord.Thread | None = None,
        permissions: discord.Permissions | int | None = None,
    ) -> dict[str, Any]:
        """A raw INTERACTION_CREATE (type 2) for ``/command sub [options]``, as Discord sends it.

        ``command`` is the qualified name (``"memory recall"``); option types come from the real command
        definition. ``permissions`` is the member's resolved permission bitfield in the channel.
        """
        channel = channel or self.channel(0, self.guilds.index(member.guild))
        names = command.split()
        root = self.bot.tree.get_command(names[0])
        if root is None:
            raise KeyError(f"/{names[0]} is not registered in bot.tree")
        target = root
        for name in names[1:]:
            target = target.get_command(name)
            if target is None:
                raise KeyError(f"/{command} is not registered in bot.tree")
        leaf_options, resolved = self._options(target, options or {})
        nested: list[dict[str, Any]] = leaf_options
        parents = [root]
        for name in names[1:]:
            parents.append(parents[-1].get_command(name))
        for depth in range(len(names) - 1, 0, -1):
            kind = 2 if isinstance(parents[depth], app_commands.Group) else 1
            nested = [{"type": kind, "name": names[depth], "options": nested}]
        payload = self._interaction_envelope(member, channel, permissions)
        payload.update(
            {
                "type": 2,
                "data": {
                    "id": str(dpy_factories.make_id()),
                    "name": names[0],
                    "type": 1,
                    "options": nested,
                    "resolved": resolved,
                },
            }
        )
        return payload

    def _interaction_envelope(
        self,
        member: discord.Member,
        channel: discord.abc.GuildChannel | discord.Thread,
        permissions: discord.Permissions | int | None,
    ) -> dict[str, Any]:
        """The fields every INTERACTION_CREATE carries: who, where, with which permissions, a fresh token."""
        if permissions is None:
            permissions = MEMBER
        bits = permissions.value if isinstance(permissions, discord.Permissions) else int(permissions)
        member_data = dpy_factories.dict_from_member(member)
        member_data.update(
            {
                "joined_at": (member.joined_at or dt.datetime.now(dt.UTC)).isoformat(),
                "deaf": False,
                "mute": False,
                "permissions": str(bits),
                "flags": 0,
            }
        )
        member_data.pop("guild_id", None)
        interaction_id = dpy_factories.make_id()
        return {
            "id": str(interaction_id),
            "application_id": str(self.bot.application_id or self.bot.user.id),
            "guild_id": str(member.guild.id),
            "channel_id": str(channel.id),
            "channel": {
                "id": str(channel.id),
                "type": channel.type.value,
                "guild_id": str(member.guild.id),
                "name": channel.name,
            },
            "member": member_data,
            "token": f"interaction-token-{next(self._ids)}",
            "version": 1,
            "app_permissions": str(discord.Permissions.all().value),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(member.guild.id)},
            "context": 0,
            "attachment_size_limit": 25 * 1024 * 1024,
        }

    def component_payload(
        self,
        reply: InteractionReply,
        label: str,
        *,
        member: discord.Member,
        permissions: discord.Permissions | int | None = None,
    ) -> dict[str, Any]:
        """A raw INTERACTION_CREATE of type 3 (MESSAGE_COMPONENT): ``member`` clicks the button labelled
        ``label`` (or with that custom id) on the message ``reply`` shows now (its latest components)."""
        with_components = [r for r in reply.messages if "components" in r.data and r.message is not None]
        if not with_components:
            raise LookupError(f"the bot sent no buttons for this interaction; got: {reply.text!r}")
        latest = with_components[-1]
        button = next((b for b in latest.buttons if label in (b.get("label"), b.get("custom_id"))), None)
        if button is None:
            shown = [b.get("label") for b in latest.buttons]
            raise LookupError(f"no button {label!r} on the message now (its buttons: {shown})")
        if button.get("disabled"):
            raise LookupError(f"button {label!r} is disabled")
        message = dict(latest.message)
        message["components"] = latest.data.get("components") or []
        channel = self.bot.get_channel(int(message["channel_id"])) or self.channel(0, self.guilds.index(member.guild))
        payload = self._interaction_envelope(member, channel, permissions)
        payload.update(
            {
                "type": 3,
                "data": {"custom_id": button["custom_id"], "component_type": 2},
                "message": message,
            }
        )
        return payload

    def _options(self, command, values: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if not isinstance(command, app_commands.Command):
            raise TypeError(f"/{command.qualified_name} is a group; name a subcommand")
        params = {p.name: p for p in command.parameters}
        options, resolved = [], {}
        for name, value in values.items():
            if name not in params:
                raise KeyError(f"/{command.qualified_name} has no option {name!r}; it has {', '.join(params)}")
            kind = params[name].type
            if kind in _OPTION_TYPES:
                options.append({"type": kind.value, "name": name, "value": value})
            elif isinstance(value, discord.Member):
                resolved.setdefault("users", {})[str(value.id)] = dpy_factories.dict_from_user(value._user)
                member = dpy_factories.dict_from_member(value)
                member.pop("user", None)
                member.pop("guild_id", None)
                member["joined_at"] = (value.joined_at or dt.datetime.now(dt.UTC)).isoformat()
                member["permissions"] = str(value.guild_permissions.value)
                resolved.setdefault("members", {})[str(value.id)] = member
                options.append({"type": kind.value, "name": name, "value": str(value.id)})
            elif isinstance(value, (discord.abc.GuildChannel, discord.Thread)):
                resolved.setdefault("channels", {})[str(value.id)] = {
                    "id": str(value.id),
                    "name": value.name,
                    "type": value.type.value,
                    "permissions": str(discord.Permissions.all().value),
                    **({"parent_id": str(value.parent_id)} if getattr(value, "parent_id", None) else {}),
                }
                options.append({"type": kind.value, "name": name, "value": str(value.id)})
            elif isinstance(value, discord.Role):
                resolved.setdefault("roles", {})[str(value.id)] = dpy_factories.dict_from_role(value)
                options.append({"type": kind.value, "name": name, "value": str(value.id)})
            else:
                options.append({"type": kind.value, "name": name, "value": value})
        return options, resolved

    async def dispatch_interaction(self, payload: dict[str, Any]) -> InteractionReply:
        """Hand a raw INTERACTION_CREATE to the real state and command tree; wait for the command to finish."""
        state = self.bot._connection
        self.channel_of_token[payload["token"]] = int(payload["channel_id"])
        if payload.get("message"):
            self.message_of_token[payload["token"]] = int(payload["message"]["id"])
        token = async_context.set(self.adapter)
        before = asyncio.all_tasks()
        captured: list[discord.Interaction] = []

        async def remember(interaction: discord.Interaction) -> None:
            captured.append(interaction)

        self.bot.add_listener(remember, "on_interaction")
        try:
            state.parse_interaction_create(payload)
            invokers = [  # the command, or the callback of the view item clicked
                t
                for t in asyncio.all_tasks() - before
                if t.get_name() == "CommandTree-invoker" or t.get_name().startswith("discord-ui-view-dispatch-")
            ]
            await asyncio.gather(*invokers)
            await dpytest.run_all_events()
        finally:
            async_context.reset(token)
            self.bot.remove_listener(remember, "on_interaction")
        interaction = next(i for i in captured if i.token == payload["token"])  # other tasks may interact too
        return InteractionReply(interaction, self.adapter)

    async def slash(
        self,
        command: str,
        *,
        member: discord.Member,
        channel: discord.abc.GuildChannel | discord.Thread | None = None,
        permissions: discord.Permissions | int | None = None,
        options: dict[str, Any] | None = None,
        **more_options: Any,
    ) -> InteractionReply:
        """Run ``/command`` as ``member`` (with ``permissions`` in ``channel``) and return what was sent back.

        Command options are keyword arguments; ``options={...}`` passes those whose names clash with this
        method's own (a command option called ``channel``).
        """
        options = {**(options or {}), **more_options}
        payload = self.interaction_payload(command, options, member=member, channel=channel, permissions=permissions)
        return await self.dispatch_interaction(payload)

    async def click(
        self,
        reply: InteractionReply,
        label: str,
        *,
        member: discord.Member,
        permissions: discord.Permissions | int | None = None,
    ) -> InteractionReply:
        """``member`` clicks the button ``label`` on the message of ``reply``; returns what the bot sent back
        for the click (its update of the message, an ephemeral refusal...), after the button's callback ran."""
        return await self.dispatch_interaction(
            self.component_payload(reply, label, member=member, permissions=permissions)
        )


def _configure_world(bot, guilds: int, text_channels: int, members: int, replay: list[int] | None) -> list[int]:
    """dpytest.configure, recording the ids it mints; with ``replay``, it mints those ids again in order."""
    minted: list[int] = []
    replayed = iter(replay) if replay is not None else None
    mint = dpy_factories.make_id

    def make_id() -> int:
        value = next(replayed, None) if replayed is not None else None
        value = value if value is not None else mint()
        minted.append(value)
        return value

    dpy_factories.make_id = make_id
    try:
        dpytest.configure(bot, guilds=guilds, text_channels=text_channels, voice_channels=0, members=members)
    finally:
        dpy_factories.make_id = mint
    return minted
