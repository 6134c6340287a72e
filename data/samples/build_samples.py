#!/usr/bin/env python3
"""Build the offline demo chat corpus from chatterbot-corpus.

Writes, next to this script:

* ``chat_sample.jsonl``   - one Discord-like message per line, two guilds,
  eight channels, English and Chinese, ordered by time (ids are real
  Discord-style snowflakes, so they increase with ``created_at``).
* ``demo_questions.json`` - three paraphrased questions per channel whose
  answer is in that channel.

The conversations come from the ``chatterbot-corpus`` package (BSD-3-Clause,
see README.md), read from the installed package's data directory.  Each
chatterbot category is mapped to a channel, each conversation turn becomes one
message written alternately by two members of the guild, and short hand-written
chit-chat is interleaved so that the channels read like chat.

The output is fully deterministic: running the script again rewrites identical
files.  Usage::

    python data/samples/build_samples.py [--out-dir DIR] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

SEED = 20250301
HERE = Path(__file__).resolve().parent

DISCORD_EPOCH_MS = 1_420_070_400_000
START = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)
SPAN = timedelta(days=30)
# probability that a short chit-chat burst follows a corpus conversation
CHITCHAT_RATE = 0.22
MAX_DISCORD_LEN = 2000


def snowflake(when: datetime, seq: int = 0, worker: int = 1, process: int = 0) -> int:
    """Discord snowflake: ms since the Discord epoch << 22 | worker | process | increment."""
    ms = int(when.timestamp() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | ((worker & 0x1F) << 17) | ((process & 0x1F) << 12) | (seq & 0xFFF)


def _dt(y: int, m: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, s, tzinfo=UTC)


# --------------------------------------------------------------------------- #
# guilds, channels, members
# --------------------------------------------------------------------------- #
GUILDS = [
    {
        "key": "byte",
        "name": "Byte Lounge",
        "created": _dt(2021, 6, 12, 18, 4, 11),
        "members": ["alice", "bob", "carol", "dave", "erin", "frank",
                    "grace", "heidi", "ivan", "judy", "kai", "lena"],
        "channels": [
            {"name": "general", "lang": "en",
             "sources": ["english/conversations", "english/greetings", "english/emotion",
                         "english/gossip", "english/humor", "english/psychology"]},
            {"name": "programming", "lang": "en",
             "sources": ["english/coding", "english/computers", "english/tech_support",
                         "english/ai"]},
            {"name": "science", "lang": "en",
             "sources": ["english/science", "english/trivia", "english/history",
                         "english/health"]},
            {"name": "movies-and-books", "lang": "en",
             "sources": ["english/movies", "english/literature"]},
            {"name": "off-topic", "lang": "en",
             "sources": ["english/sports", "english/money", "english/politics",
                         "english/food"]},
        ],
    },
    {
        "key": "teahouse",
        "name": "茶馆 Teahouse",
        "created": _dt(2022, 1, 23, 13, 37, 2),
        "members": ["xiaolin", "ajie", "laowang", "meimei", "chenyu",
                    "tangtang", "xiaoyu", "dabai", "yuki_zh"],
        "channels": [
            {"name": "中文闲聊", "lang": "zh",
             "sources": ["chinese/conversations", "chinese/greetings", "chinese/emotion",
                         "chinese/gossip", "chinese/humor", "chinese/psychology",
                         "chinese/food"]},
            {"name": "影视书籍", "lang": "zh",
             "sources": ["chinese/movies", "chinese/literature", "chinese/history"]},
            {"name": "科学科技", "lang": "zh",
             "sources": ["chinese/science", "chinese/ai", "chinese/trivia",
                         "chinese/money", "chinese/politics", "chinese/sports"]},
        ],
    },
]

CHITCHAT = {
    "en": [
        ["gm everyone"], ["morning!", "morning o/"], ["lol"], ["brb, grabbing coffee"],
        ["back"], ["anyone around?", "yep, what's up"], ["same here"], ["+1"],
        ["that's wild"], ["haha fair"], ["good point"], ["ok that made me laugh"],
        ["gn all, see you tomorrow"], ["night!"], ["wait really?", "yeah really"],
        ["nice"], ["100%"], ["I'll be afk for a bit"], ["ty!"], ["np"],
        ["lmao"], ["can't argue with that"], ["this channel is busy today"],
        ["hey hey", "hi!"], ["ugh mondays"], ["finally friday"], ["big if true"],
        ["sounds good to me"], ["agreed"], ["hmm interesting"], ["oh nice"],
        ["just got home", "welcome back"], ["how's everyone doing?", "pretty good, you?", "can't complain"],
        ["sorry, missed the ping earlier"], ["no worries"], ["lol same"],
        ["ok back to work"], ["anyone else's internet slow today?", "mine's fine"],
        ["thanks for sharing"], ["bookmarking this"], ["+1 to that"], ["brb"],
    ],
    "zh": [
        ["早啊各位"], ["早上好", "早！"], ["哈哈哈哈"], ["笑死"], ["+1"],
        ["真的假的"], ["我先去吃饭了"], ["回来了"], ["有人在吗？", "在的，怎么了"],
        ["同意"], ["说得好"], ["晚安各位，明天见"], ["晚安！"], ["好耶"],
        ["我也是"], ["哈哈确实"], ["收到"], ["谢谢分享"], ["不客气"], ["牛"],
        ["今天好困"], ["终于周五了"], ["周一综合症犯了"], ["挺有意思的"],
        ["刚到家", "欢迎回来"], ["大家最近怎么样？", "还行吧", "老样子"],
        ["刚才没看到消息，抱歉"], ["没事没事"], ["先潜水了"], ["冒个泡"],
        ["群里今天好热闹"], ["有道理"], ["学到了"], ["mark一下"], ["哈哈哈同感"],
    ],
}

# Three paraphrased questions per channel.  ``anchor`` is a substring that must
# occur in that channel's messages: it is checked at build time and not written
# out (the output rows hold only guild_id, channel_id and question).
DEMO_QUESTIONS = [
    ("general", "What quote from the Zen of Python says that flat structures beat nested ones?",
     "Flat is better than nested."),
    ("general", "How much money did Mr. Davis say he had lost so far today?",
     "I've lost about $200.00 so far today."),
    ("general", "Which doctor was the appointment with?",
     "Dr. Smith"),
    ("programming", "Who is considered the father of the computer?",
     "Charles Babbage"),
    ("programming", "What should I try when my mouse stops reacting?",
     "Try plugging it into another USB port"),
    ("programming", "Which machine is often called the first real computer and when was it built?",
     "The ENIAC is regarded as the first 'real' computer"),
    ("science", "Which president of the United States was number 37?",
     "Richard Nixon"),
    ("science", "What was the very first man-made satellite called?",
     "Sputnik 1"),
    ("science", "Which astronomer is the Hubble telescope named after?",
     "Edwin Hubble"),
    ("movies-and-books", "Who is the author of the novel Vineland?",
     "Thomas Pynchon"),
    ("movies-and-books", "Which book series does the character Bilbo Baggins come from?",
     "Bilbo Baggins is a character in Tolkein's Lord of the Rings."),
    ("movies-and-books", "What kind of creature is Godzilla and which cities does it threaten?",
     "godzilla is a monster"),
    ("off-topic", "How many players does each side have in a game of soccer?",
     "two teams of eleven players"),
    ("off-topic", "What was the advice about buying and selling on the stock market?",
     "buy low, sell high."),
    ("off-topic", "If the bot could eat, what food would it pick?",
     "Probably pizza"),
    ("中文闲聊", "有人想借什么东西？",
     "我可以借用一杯糖吗"),
    ("中文闲聊", "群里有人说自己平时最常用哪几门编程语言？",
     "Python, Java 和 C++"),
    ("中文闲聊", "有人谈过自己对爱的理解，他是怎么说的？",
     "是对他人的接受，包容和理解"),
    ("影视书籍", "《葡萄园》这本小说的作者是谁？",
     "托马斯·品钦"),
    ("影视书籍", "电灯泡是谁发明的？",
     "托马斯·爱迪生"),
    ("影视书籍", "蒸汽机的发明者是哪位？",
     "詹姆斯·瓦特"),
    ("科学科技", "美国的第37任总统叫什么名字？",
     "理查德·尼克松"),
    ("科学科技", "人类发射的第一颗人造卫星叫什么？",
     "斯普特尼克1号"),
    ("科学科技", "离我们银河系最近的大星系是哪个？",
     "仙女座星系"),
]


# --------------------------------------------------------------------------- #
# corpus loading
# --------------------------------------------------------------------------- #
def corpus_dir() -> Path:
    import chatterbot_corpus

    return Path(os.path.dirname(chatterbot_corpus.__file__)) / "data"


def _clean(text: object) -> str:
    s = str(text).strip()
    # keep code blocks (and their line breaks) as they are
    s = re.sub(r"\n{3,}", "\n\n", s) if "```" in s else re.sub(r"\s+", " ", s)
    letters = [c for c in s if c.isalpha()]
    if len(letters) > 3 and all(c.isascii() and c.isupper() for c in letters):
        s = s.lower()  # english/sports is written in capitals
        s = s[:1].upper() + s[1:]
    return s


def load_conversations(source: str) -> list[list[str]]:
    """Unique conversations of one corpus file (``language/name``), file order kept."""
    path = corpus_dir() / f"{source}.yml"
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    seen: set[tuple[str, ...]] = set()
    out: list[list[str]] = []
    for conv in doc.get("conversations") or []:
        if not isinstance(conv, list):  # one malformed entry in english/trivia
            continue
        turns = [_clean(t) for t in conv if t is not None and _clean(t)]
        if len(turns) < 2:
            continue
        key = tuple(turns)
        if key in seen:  # english/tech_support repeats ten conversations ~100 times
            continue
        seen.add(key)
        out.append(turns)
    return out


# --------------------------------------------------------------------------- #
# building
# --------------------------------------------------------------------------- #
def build(rng: random.Random) -> tuple[list[dict], list[dict]]:
    rows: list[dict] = []  # without ids; sorted and numbered at the end
    channel_ids: dict[str, tuple[int, int]] = {}

    for g_index, guild in enumerate(GUILDS):
        guild_id = snowflake(guild["created"], worker=0, process=g_index)
        members = guild["members"]
        member_ids = {
            name: snowflake(guild["created"] - timedelta(days=400 - 37 * i, hours=i * 5),
                            worker=2, process=i % 32)
            for i, name in enumerate(members)
        }
        # a few members talk much more than the others
        weights = [rng.choice([1, 1, 2, 3, 5]) for _ in members]

        for c_index, chan in enumerate(guild["channels"]):
            channel_id = snowflake(guild["created"] + timedelta(hours=1 + c_index, minutes=7 * c_index),
                                   worker=0, process=g_index, seq=c_index + 1)
            channel_ids[chan["name"]] = (guild_id, channel_id)

            episodes: list[tuple[str, list[str]]] = []
            for source in chan["sources"]:
                episodes.extend(("corpus", conv) for conv in load_conversations(source))
            rng.shuffle(episodes)
            with_chitchat: list[tuple[str, list[str]]] = []
            for ep in episodes:
                with_chitchat.append(ep)
                if rng.random() < CHITCHAT_RATE:
                    with_chitchat.append(("chitchat", rng.choice(CHITCHAT[chan["lang"]])))
            episodes = with_chitchat

            # inter-episode gaps, scaled so the channel spans the whole month
            raw_gaps = [rng.expovariate(1.0) for _ in episodes]
            intra = [[rng.randint(8, 150) for _ in ep[1][1:]] for ep in episodes]
            busy = sum(sum(x) for x in intra)
            scale = (SPAN.total_seconds() - busy) / sum(raw_gaps)
            t = START + timedelta(seconds=rng.randint(0, 3600))
            for (kind, turns), gap, deltas in zip(episodes, raw_gaps, intra):
                t += timedelta(seconds=int(gap * scale))
                if kind == "corpus":
                    a, b = rng.choices(members, weights=weights, k=2)
                    while b == a:
                        b = rng.choice(members)
                    speakers = [a, b]
                else:
                    speakers = rng.sample(members, k=min(3, len(turns) + 1))
                for j, text in enumerate(turns):
                    if j:
                        t += timedelta(seconds=deltas[j - 1])
                    author = speakers[j % 2] if kind == "corpus" else speakers[j]
                    rows.append({
                        "guild_id": guild_id,
                        "channel_id": channel_id,
                        "channel_name": chan["name"],
                        "guild_name": guild["name"],
                        "author_id": member_ids[author],
                        "author_name": author,
                        "content": text[:MAX_DISCORD_LEN],
                        "_t": t,
                        "_order": (g_index, c_index),
                    })

    rows.sort(key=lambda r: (r["_t"], r["_order"]))
    last_ms, seq = None, 0
    out: list[dict] = []
    for r in rows:
        ms = int(r["_t"].timestamp() * 1000)
        seq = seq + 1 if ms == last_ms else 0
        last_ms = ms
        msg = {"id": snowflake(r["_t"], seq=seq)}
        msg.update({k: v for k, v in r.items() if not k.startswith("_")})
        msg["created_at"] = r["_t"].isoformat()
        out.append(msg)

    questions: list[dict] = []
    for chan_name, question, anchor in DEMO_QUESTIONS:
        guild_id, channel_id = channel_ids[chan_name]
        hits = [m for m in out if m["channel_id"] == channel_id and anchor in m["content"]]
        if not hits:
            raise SystemExit(f"demo question anchor {anchor!r} not found in #{chan_name}")
        questions.append({"guild_id": guild_id, "channel_id": channel_id, "question": question})
    return out, questions


def validate(messages: list[dict], questions: list[dict]) -> str:
    ids = [m["id"] for m in messages]
    assert len(ids) == len(set(ids)), "duplicate message ids"
    assert ids == sorted(ids), "ids not increasing in file order"
    assert all(0 < i < 2**63 for i in ids), "id outside signed int64"
    times = [datetime.fromisoformat(m["created_at"]) for m in messages]
    assert times == sorted(times), "created_at not increasing"
    for m, t in zip(messages, times):
        ts = ((m["id"] >> 22) + DISCORD_EPOCH_MS) / 1000
        assert abs(ts - t.timestamp()) < 1e-3, "snowflake time does not match created_at"
        assert m["content"] and len(m["content"]) <= MAX_DISCORD_LEN
    chans = {(m["guild_id"], m["channel_id"]) for m in messages}
    per_chan = Counter((m["guild_name"], m["channel_name"]) for m in messages)
    qchan = Counter((q["guild_id"], q["channel_id"]) for q in questions)
    assert set(qchan) == chans and set(qchan.values()) == {3}, "need 3 questions per channel"
    zh = sum(1 for m in messages if re.search(r"[\u4e00-\u9fff]", m["content"]))
    lines = [f"messages: {len(messages)} in {len(chans)} channels / "
             f"{len({m['guild_id'] for m in messages})} guilds; "
             f"{zh} contain CJK ({zh / len(messages):.0%}); "
             f"authors: {len({m['author_id'] for m in messages})}"]
    for (g, c), n in per_chan.items():
        lines.append(f"  {g:>16} #{c:<18} {n:5d}")
    lines.append(f"demo questions: {len(questions)} (3 per channel)")
    lines.append(f"time range: {messages[0]['created_at']} .. {messages[-1]['created_at']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("--check", action="store_true",
                    help="do not write; fail if the files on disk differ from a fresh build")
    args = ap.parse_args(argv)

    messages, questions = build(random.Random(SEED))
    summary = validate(messages, questions)
    jsonl = "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages)
    qjson = json.dumps(questions, ensure_ascii=False, indent=2) + "\n"
    targets = {args.out_dir / "chat_sample.jsonl": jsonl, args.out_dir / "demo_questions.json": qjson}
    if args.check:
        stale = [p for p, text in targets.items()
                 if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            print("out of date: " + ", ".join(map(str, stale)), file=sys.stderr)
            return 1
    else:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for p, text in targets.items():
            p.write_text(text, encoding="utf-8")
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
