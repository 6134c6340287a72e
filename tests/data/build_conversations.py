#!/usr/bin/env python3
"""Build ``eval_conversations.jsonl``: realistic Discord conversations with labelled answers.

Unlike ``eval_chat.jsonl`` (one informative message per fact), every fact here lives in a
*conversation*: a question, replies (Discord reply references), proposals and the value that was
finally settled, multi-line code answers, slang, typos, Chinese and cross-language queries. Each
query's relevant messages are the ones that answer it, never the message that asked it, so a
retriever that only matches words finds the question and misses the answer.

Data format of the blocks in ``conversations/*.txt`` (all hand-written for this project)::

    ## <channel>                 conversation blocks of that channel follow
    ## <channel> / distractors   one "author: text" per line: near misses, no query targets them
    author: text                 a message of the current block
    author ^N: text              ... a Discord reply to the block's N-th message (0-based)
    > author: text               a relevant message: what the block's queries ask for
    ? kind: query                a query; relevant = every '>' message of the block
    ? kind[0,2]: query           relevant = only those '>' messages (0-based)
    (blank line)                 ends a block
    \\n in a text                a line break (multi-line messages, code blocks)

Kinds: ``qa`` (the answer uses other words than the question), ``settled`` (the final value among
proposals), ``multi`` (the answer spans messages), ``slang``, ``code``, ``lexical``,
``paraphrase``, ``cross`` (the query's language is not the answer's). A query's ``lang`` is its
own language; ``split`` is ``tune`` for even query numbers and ``check`` for odd ones (choose
settings on one, confirm on the other).

Between blocks each channel gets short chit-chat and the distractors, and a few chit-chat lines
fall inside conversations, as in a real channel. Output: messages (time order, Discord-style
snowflake ids, ``reply_to`` when the message is a reply), then queries. Deterministic:
``python tests/data/build_conversations.py`` rewrites the same file; ``--check`` verifies it.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from build_eval import build_main  # the sibling script: one command line to write and check a set

SEED = 16016
HERE = Path(__file__).resolve().parent
SOURCES = HERE / "conversations"
OUT = HERE / "eval_conversations.jsonl"
DISCORD_EPOCH_MS = 1_420_070_400_000
START = datetime(2025, 4, 7, 8, 0, 0, tzinfo=UTC)
KINDS = {"qa", "settled", "multi", "slang", "code", "lexical", "paraphrase", "cross"}
CJK = re.compile(r"[\u4e00-\u9fff]")

GUILDS = {"pixel": (1012345678901234560, "Pixel Pals"), "yemao": (1023456789012345600, "夜猫子俱乐部")}
CHANNELS = {  # channel -> guild, channel id, language of its chit-chat
    "dev-help": ("pixel", 1012345678901240001, "en"),
    "raid-night": ("pixel", 1012345678901240002, "en"),
    "general": ("pixel", 1012345678901240003, "en"),
    "code": ("pixel", 1012345678901240004, "en"),
    "技术闲聊": ("yemao", 1023456789012350001, "zh"),
    "开黑": ("yemao", 1023456789012350002, "zh"),
}
CHITCHAT = {
    "en": ["lol", "lmao", "gm", "brb", "back", "nice", "+1", "same", "ty!", "np", "oof", "rip", "real",
           "wait what", "fair", "ok", "yep", "haha", "gn all", "anyone around?", "sounds good", "true",
           "that's wild", "big mood", "let's gooo", "nvm", "ikr", "omg", "congrats!!", "afk 5 min"],
    "zh": ["哈哈哈", "早", "晚安", "+1", "笑死", "确实", "收到", "好的", "牛", "学到了", "有人吗",
           "在的", "回来了", "好困", "羡慕", "绝了", "666", "真的假的", "我也是", "冲"],
}
LINE = re.compile(r"^(?P<rel>> )?(?P<author>[^\s:^]+)(?: \^(?P<reply>\d+))?: (?P<text>.+)$")
QUERY = re.compile(r"^\? (?P<kind>[a-z]+)(?:\[(?P<idx>[\d,]+)\])?: (?P<text>.+)$")


@dataclass
class Block:
    channel: str
    messages: list[tuple[str, str, int | None, bool]] = field(default_factory=list)  # author, text, reply, relevant
    queries: list[tuple[str, str, list[int] | None]] = field(default_factory=list)  # kind, text, '>' indices


def parse(text: str) -> tuple[list[Block], dict[str, list[tuple[str, str]]]]:
    """Conversation blocks and per-channel distractors of the source files."""
    blocks: list[Block] = []
    distractors: dict[str, list[tuple[str, str]]] = {}
    channel, is_distractor, block = "", False, None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if line.startswith("## "):
            name, _, tail = line[3:].partition(" / ")
            channel, is_distractor, block = name.strip(), tail.strip() == "distractors", None
            if channel not in CHANNELS:
                raise ValueError(f"line {number}: unknown channel {channel!r}")
            continue
        if not line:
            block = None
            continue
        if is_distractor:
            author, _, said = line.partition(": ")
            distractors.setdefault(channel, []).append((author, said))
            continue
        if block is None:
            block = Block(channel)
            blocks.append(block)
        if query := QUERY.match(line):
            if query["kind"] not in KINDS:
                raise ValueError(f"line {number}: unknown kind {query['kind']!r}")
            idx = [int(i) for i in query["idx"].split(",")] if query["idx"] else None
            block.queries.append((query["kind"], query["text"], idx))
        elif message := LINE.match(line):
            reply = int(message["reply"]) if message["reply"] is not None else None
            if reply is not None and reply >= len(block.messages):
                raise ValueError(f"line {number}: reply to message {reply} that does not exist yet")
            text = message["text"].replace("\\n", "\n")
            block.messages.append((message["author"], text, reply, bool(message["rel"])))
        else:
            raise ValueError(f"line {number}: not a message or query: {line!r}")
    return blocks, distractors


def snowflake(when: datetime, seq: int) -> int:
    ms = int(when.timestamp() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (1 << 17) | (seq & 0xFFF)


def author_id(name: str) -> int:
    """A stable Discord-like user id per name (the same name is the same member in every channel)."""
    return 700_000_000_000_000_000 + sum(ord(c) * 7919**i for i, c in enumerate(name)) % 10**17


@dataclass
class Timeline:
    """One channel's clock and the messages written on it (``seq`` is shared by every channel)."""

    guild_id: int
    channel_id: int
    when: datetime
    seq: itertools.count
    rows: list[dict]

    def emit(self, author: str, text: str, reply_to: int | None = None) -> int:
        row = {"type": "message", "id": snowflake(self.when, next(self.seq)), "guild_id": self.guild_id,
               "channel_id": self.channel_id, "author_id": author_id(author), "author_name": author,
               "content": text, "created_at": self.when.isoformat()}
        if reply_to is not None:
            row["reply_to"] = reply_to
        self.rows.append(row)
        return row["id"]


def build() -> list[dict]:
    blocks, distractors = parse("\n".join(p.read_text(encoding="utf-8") for p in sorted(SOURCES.glob("*.txt"))))
    rng = random.Random(SEED)
    messages: list[dict] = []
    queries: list[dict] = []
    seq = itertools.count(1)
    for channel, (guild, channel_id, lang) in CHANNELS.items():
        guild_id = GUILDS[guild][0]
        mine = [b for b in blocks if b.channel == channel]
        members = sorted({a for b in mine for a, *_ in b.messages} | {a for a, _ in distractors.get(channel, [])})
        extra = list(distractors.get(channel, []))
        rng.shuffle(extra)
        clock = Timeline(guild_id, channel_id, START + timedelta(hours=rng.randint(0, 12)), seq, messages)
        emit = clock.emit

        for number, block in enumerate(mine):
            for _ in range(rng.randint(2, 7)):  # chit-chat and near misses between conversations
                clock.when += timedelta(minutes=rng.randint(2, 90))
                if extra and rng.random() < 0.4:
                    emit(*extra.pop())
                else:
                    emit(rng.choice(members), rng.choice(CHITCHAT[lang]))
            clock.when += timedelta(hours=rng.randint(2, 30))
            ids: list[int] = []
            relevant: list[int] = []
            for position, (author, text, reply, is_relevant) in enumerate(block.messages):
                if position and rng.random() < 0.15:  # someone else talks in between
                    clock.when += timedelta(seconds=rng.randint(10, 60))
                    emit(rng.choice([m for m in members if m != author]), rng.choice(CHITCHAT[lang]))
                clock.when += timedelta(seconds=rng.randint(20, 240))
                ids.append(emit(author, text, ids[reply] if reply is not None else None))
                if is_relevant:
                    relevant.append(ids[-1])
            if block.queries and not relevant:
                raise ValueError(f"#{channel} block {number}: queries but no '>' message")
            for kind, text, idx in block.queries:
                wanted = relevant if idx is None else [relevant[i] for i in idx]
                qid = f"c{len(queries) + 1:04d}"
                queries.append({"type": "query", "id": qid, "guild_id": guild_id, "channel_id": channel_id,
                                "query": text, "relevant": wanted, "lang": "zh" if CJK.search(text) else "en",
                                "kind": kind, "split": "tune" if len(queries) % 2 == 0 else "check"})
        for author, text in extra:
            clock.when += timedelta(minutes=rng.randint(5, 120))
            emit(author, text)
    messages.sort(key=lambda m: m["id"])
    return messages + queries


def validate(rows: list[dict]) -> str:
    """Checks the set's promises and returns its summary table."""
    messages = {r["id"]: r for r in rows if r["type"] == "message"}
    queries = [r for r in rows if r["type"] == "query"]
    if len(messages) != sum(r["type"] == "message" for r in rows):
        raise ValueError("duplicate message id")
    for q in queries:
        for i in q["relevant"]:
            m = messages[i]
            if (m["guild_id"], m["channel_id"]) != (q["guild_id"], q["channel_id"]):
                raise ValueError(f"{q['id']}: relevant message in another channel")
            if q["query"].lower() in m["content"].lower():
                raise ValueError(f"{q['id']}: the query is a substring of its answer")
    for m in messages.values():
        if "reply_to" in m and m["reply_to"] not in messages:
            raise ValueError(f"message {m['id']} replies to a message that is not in the set")
    lines = ["| channel | messages | replies | queries |", "| --- | ---: | ---: | ---: |"]
    for name, (_, channel_id, _) in CHANNELS.items():
        mine = [m for m in messages.values() if m["channel_id"] == channel_id]
        lines.append(f"| #{name} | {len(mine)} | {sum('reply_to' in m for m in mine)} | "
                     f"{sum(q['channel_id'] == channel_id for q in queries)} |")
    kinds = sorted({q["kind"] for q in queries})
    lines += ["", "| lang | " + " | ".join(kinds) + " | total |", "| --- |" + " ---: |" * (len(kinds) + 1)]
    for lang in ("en", "zh"):
        row = [sum(q["lang"] == lang and q["kind"] == k for q in queries) for k in kinds]
        lines.append(f"| {lang} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    tune = sum(q["split"] == "tune" for q in queries)
    lines.append(f"\n{len(messages)} messages, {len(queries)} queries ({tune} tune / {len(queries) - tune} check)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return build_main(argv, OUT, build, validate)


if __name__ == "__main__":
    raise SystemExit(main())
