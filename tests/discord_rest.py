"""A local HTTP server speaking the subset of Discord's REST API a history import uses.

The real discord.py HTTP client talks to it (``discord.http.Route.BASE`` pointed at it), so paging,
rate limits and permission errors go through discord.py's own request loop:

* ``GET /users/@me`` (login), ``GET /channels/{id}``;
* ``GET /channels/{id}/messages`` with ``limit``, ``before`` and ``after``, newest first as Discord
  answers (discord.py reverses ``after`` pages itself);
* ``GET /guilds/{id}/threads/active``, ``GET /channels/{id}/threads/archived/public|private`` and
  ``/users/@me/threads/archived/private``;
* every ``rate_limit_every``-th message request answers 429 with ``retry_after`` and the rate-limit
  headers (and ``Via``, without which discord.py takes a 429 for a Cloudflare ban);
* 403 ``Missing Access`` for channels marked unreadable (and private archived threads unless allowed).

Used by the tests and by ``bench/import_history.py``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import discord
from aiohttp import web

BOT_USER_ID = 900_000_000_000_000_001
TOKEN = "local-test-token"


def _message_id(message: dict[str, Any]) -> int:
    return int(message["id"])


def snowflake(when: dt.datetime, sequence: int = 0) -> int:
    return discord.utils.time_snowflake(when) + sequence


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with the bare content type Discord sends (discord.py parses only ``application/json`` exactly)."""
    response = web.Response(body=json.dumps(data).encode(), status=status, headers=headers)
    response.content_type = "application/json"
    return response


def message_data(message_id: int, channel_id: int, author: dict[str, Any], content: str, **fields: Any) -> dict:
    """A message as Discord's REST API returns it (``fields`` override or add: ``type``, ``webhook_id``...)."""
    return {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": author,
        "content": content,
        "timestamp": discord.utils.snowflake_time(message_id).isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
        **fields,
    }


@dataclass
class FakeChannel:
    id: int
    guild_id: int
    name: str
    type: int = 0  # 0 text, 15 forum, 11 public thread, 12 private thread
    parent_id: int | None = None
    readable: bool = True
    archived: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)  # oldest first

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "guild_id": str(self.guild_id),
            "name": self.name,
            "type": self.type,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }
        if self.type in (11, 12):
            data.update(
                owner_id=str(BOT_USER_ID),
                message_count=len(self.messages),
                member_count=1,
                thread_metadata={
                    "archived": self.archived,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": dt.datetime.now(dt.UTC).isoformat(),
                    "locked": False,
                },
            )
        return data


class FakeDiscord:
    """The channels, threads and messages the server serves, and a log of the requests it got."""

    def __init__(self, rate_limit_every: int = 0, retry_after: float = 0.05, page_delay: float = 0.0) -> None:
        self.page_delay = page_delay  # seconds each message page takes to answer (a slower, farther server)
        self.channels: dict[int, FakeChannel] = {}
        self.rate_limit_every = rate_limit_every
        self.retry_after = retry_after
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, query)
        self.rate_limited = 0
        self.allow_private_threads = False
        self._message_requests = itertools.count(1)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ the world
    def channel(self, guild_id: int, channel_id: int, name: str, **options: Any) -> FakeChannel:
        channel = FakeChannel(channel_id, guild_id, name, **options)
        self.channels[channel_id] = channel
        return channel

    def post(
        self,
        channel_id: int,
        content: str,
        author_id: int,
        *,
        bot: bool = False,
        when: dt.datetime | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A message in the channel (ids grow with time; ``when`` defaults to now), returned as Discord sends it."""
        channel = self.channels[channel_id]
        when = when or dt.datetime.now(dt.UTC)
        message_id = snowflake(when, next(self._ids) % 4096)
        if channel.messages and message_id <= int(channel.messages[-1]["id"]):
            message_id = int(channel.messages[-1]["id"]) + 1
        author = {
            "id": str(author_id),
            "username": f"user{author_id % 1000}",
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": bot,
        }
        data = message_data(message_id, channel_id, author, content, **fields)
        channel.messages.append(data)
        return data

    def message_requests(self, channel_id: int) -> list[dict[str, str]]:
        return [q for path, q in self.requests if path == f"/channels/{channel_id}/messages"]

    # ------------------------------------------------------------------ the server
    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/v10/users/@me", self._me)
        app.router.add_get("/api/v10/oauth2/applications/@me", self._application)
        app.router.add_get("/api/v10/channels/{id}", self._channel)
        app.router.add_get("/api/v10/channels/{id}/messages", self._messages)
        app.router.add_get("/api/v10/guilds/{id}/threads/active", self._active_threads)
        app.router.add_get("/api/v10/channels/{id}/threads/archived/{kind}", self._archived_threads)
        app.router.add_get("/api/v10/channels/{id}/users/@me/threads/archived/private", self._joined_threads)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/api/v10"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _log(self, request: web.Request) -> None:
        self.requests.append((request.path.removeprefix("/api/v10"), dict(request.query)))

    @staticmethod
    def _forbidden() -> web.Response:
        return _json({"message": "Missing Access", "code": 50001}, status=403)

    async def _me(self, request: web.Request) -> web.Response:
        assert request.headers.get("Authorization") == f"Bot {TOKEN}"
        return _json({"id": str(BOT_USER_ID), "username": "memory", "discriminator": "0", "avatar": None, "bot": True})

    async def _application(self, request: web.Request) -> web.Response:
        owner = {"id": "900000000000000002", "username": "owner", "discriminator": "0", "avatar": None}
        return _json(
            {
                "id": str(BOT_USER_ID),
                "name": "memory",
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": owner,
                "verify_key": "",
                "flags": 0,
            }
        )

    async def _channel(self, request: web.Request) -> web.Response:
        self._log(request)
        channel = self.channels.get(int(request.match_info["id"]))
        if channel is None:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        return _json(channel.payload()) if channel.readable else self._forbidden()

    def _headers(self, remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Reset": f"{dt.datetime.now(dt.UTC).timestamp() + reset_after:.3f}",
            "X-RateLimit-Bucket": "messages-bucket",
            "Via": "1.1 google",
        }

    async def _messages(self, request: web.Request) -> web.Response:
        self._log(request)
        channel = self.channels.get(int(request.match_info["id"]))
        if channel is None:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        if not channel.readable:
            return self._forbidden()
        if self.rate_limit_every and next(self._message_requests) % self.rate_limit_every == 0:
            self.rate_limited += 1
            body = {"message": "You are being rate limited.", "retry_after": self.retry_after, "global": False}
            return _json(body, status=429, headers=self._headers(0, self.retry_after))
        if self.page_delay:
            await asyncio.sleep(self.page_delay)
        limit = max(1, min(100, int(request.query.get("limit", 50))))
        messages = channel.messages  # oldest first, ids growing: a page is a slice found by bisection
        if "after" in request.query:
            start = bisect.bisect_right(messages, int(request.query["after"]), key=_message_id)
            page = messages[start : start + limit]
        else:
            end = bisect.bisect_left(messages, int(request.query.get("before", 2**63 - 1)), key=_message_id)
            page = messages[max(0, end - limit) : end]
        return _json(list(reversed(page)), headers=self._headers(49, 1.0))

    def _threads(self, parent_id: int | None, guild_id: int | None, archived: bool, private: bool) -> list[FakeChannel]:
        return [
            c
            for c in self.channels.values()
            if c.type in (11, 12)
            and (parent_id is None or c.parent_id == parent_id)
            and (guild_id is None or c.guild_id == guild_id)
            and c.archived == archived
            and (c.type == 12) == private
        ]

    @staticmethod
    def _thread_list(threads: list[FakeChannel]) -> web.Response:
        return _json({"threads": [t.payload() for t in threads], "members": [], "has_more": False})

    async def _active_threads(self, request: web.Request) -> web.Response:
        self._log(request)
        guild_id = int(request.match_info["id"])
        threads = self._threads(None, guild_id, False, False) + self._threads(None, guild_id, False, True)
        return self._thread_list(threads)

    async def _archived_threads(self, request: web.Request) -> web.Response:
        self._log(request)
        parent = self.channels.get(int(request.match_info["id"]))
        private = request.match_info["kind"] == "private"
        if parent is None or not parent.readable or (private and not self.allow_private_threads):
            return self._forbidden()
        return self._thread_list(self._threads(parent.id, None, True, private))

    async def _joined_threads(self, request: web.Request) -> web.Response:
        self._log(request)
        return self._thread_list([])


@contextlib.asynccontextmanager
async def local_discord(world: FakeDiscord) -> AsyncIterator[FakeDiscord]:
    """Serve ``world`` and point discord.py's REST base URL at it for the duration."""
    base = await world.start()
    previous = discord.http.Route.BASE
    discord.http.Route.BASE = base
    try:
        yield world
    finally:
        discord.http.Route.BASE = previous
        await world.stop()


async def logged_in_http() -> discord.http.HTTPClient:
    """discord.py's real HTTP client, logged in against the local server (``GET /users/@me``)."""
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    await http.static_login(TOKEN)
    return http
