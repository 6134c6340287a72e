#!/usr/bin/env python3
"""Build ``eval_chat.jsonl``, the labelled retrieval evaluation set.

The set is written for this project.  The *target* messages, the *distractor*
messages (near misses on the same topics) and the queries below are hand
written; each query paraphrases information that is in one or more target
messages of the same channel.  To make retrieval non-trivial every channel is
padded to a few hundred messages with short chit-chat and with conversation
turns from the ``chatterbot-corpus`` package (BSD-3-Clause, see README.md).

Data format of the ``DATA`` block below::

    ## <channel>                 a channel's target blocks follow
    ## <channel> / distractors   one "author: text" per line follows
    (blank line)                 ends a block
    > author: text               a relevant (target) message of the block
    - author: text               a context message (in the block, never relevant)
    ? l: query                   lexical query (shares rare words/names/numbers)
    ? p: query                   paraphrase query (little word overlap)
    ? p[0,2]: query              relevant = only those '>' lines (0-based)
    @spread                      the block's messages are days apart instead
                                 of one after the other

A query without an index list is relevant to every '>' message of its block.

Output, one JSON object per line: first every message (time order, ids are
Discord-style snowflakes that increase with ``created_at``), then every query::

    {"type": "message", "id", "guild_id", "channel_id", "author_id",
     "author_name", "content", "created_at"}
    {"type": "query", "id": "q0001", "guild_id", "channel_id", "query",
     "relevant": [ids], "lang": "en"|"zh", "kind": "lexical"|"paraphrase"}

Deterministic: ``python tests/data/build_eval.py`` rewrites the same file;
``--check`` only verifies that the committed file is up to date.
"""

# ruff: noqa: E501  (the hand-written DATA block keeps one message per line)
from __future__ import annotations

import argparse
import difflib
import functools
import json
import os
import random
import re
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

SEED = 424242
HERE = Path(__file__).resolve().parent
OUT = HERE / "eval_chat.jsonl"
DISCORD_EPOCH_MS = 1_420_070_400_000
START = datetime(2025, 1, 6, 7, 0, 0, tzinfo=UTC)
SPAN = timedelta(days=84)

GUILDS = {
    "homelab": {
        "name": "Homelab & Friends",
        "created": datetime(2021, 9, 3, 19, 12, 40, tzinfo=UTC),
        "members": ["alice", "ben", "chloe", "diego", "emma", "farid", "gwen", "hiro", "isla",
                    "jonas", "kira", "liam", "maya", "noah", "olga", "priya", "quinn", "rosa",
                    "sam", "tariq"],
    },
    "shenye": {
        "name": "深夜食堂",
        "created": datetime(2022, 4, 17, 14, 2, 9, tzinfo=UTC),
        "members": ["xiaolin", "ajie", "laowang", "meimei", "chenyu", "tangtang", "xiaoyu",
                    "dabai", "lele", "zhouzhou"],
    },
}

# channel -> guild, language, total size, chatterbot files used as filler
CHANNELS = {
    "general": ("homelab", "en", 400,
                ["english/conversations", "english/greetings", "english/emotion",
                 "english/humor", "english/gossip", "english/psychology"]),
    "tech-help": ("homelab", "en", 380,
                  ["english/computers", "english/tech_support", "english/ai", "english/coding"]),
    "gaming": ("homelab", "en", 360,
               ["english/sports", "english/trivia", "english/movies"]),
    "food-and-recs": ("homelab", "en", 360,
                      ["english/food", "english/movies", "english/literature", "english/money",
                       "english/trivia"]),
    "闲聊": ("shenye", "zh", 300,
           ["chinese/conversations", "chinese/greetings", "chinese/emotion", "chinese/humor",
            "chinese/psychology", "chinese/gossip", "chinese/food"]),
    "技术交流": ("shenye", "zh", 260,
             ["chinese/ai", "chinese/science", "chinese/money", "chinese/politics"]),
    "游戏": ("shenye", "zh", 240,
           ["chinese/sports", "chinese/trivia", "chinese/movies", "chinese/literature",
            "chinese/history", "chinese/humor"]),
}

CHITCHAT = {
    "en": ["lol", "gm", "morning all", "brb", "back", "nice", "+1", "same", "haha", "lmao",
           "ty!", "np", "good night everyone", "that's wild", "big if true", "agreed",
           "oh nice", "hmm", "fair enough", "ok that's hilarious", "sounds good",
           "anyone around?", "yep", "ugh mondays", "finally friday", "afk for a bit",
           "congrats!!", "oof", "love that", "sorry, missed the ping", "no worries",
           "thanks for sharing", "bookmarked", "hahaha", "wait what", "true",
           "I'll check it out", "let's gooo", "rip", "good luck!"],
    "zh": ["哈哈哈", "早", "早上好", "晚安", "+1", "笑死", "真的假的", "收到", "好耶",
           "我也是", "确实", "牛", "学到了", "谢谢", "不客气", "有人吗", "在的", "冒个泡",
           "先去吃饭了", "回来了", "今天好困", "终于周五了", "恭喜恭喜", "太强了", "mark",
           "有道理", "哈哈确实", "好的好的", "我去看看", "加油！", "羡慕", "绝了"],
}

DATA = r"""
## general
> priya: Board game night is moving to Friday March 14th, 7pm, at my place this time. I'll have Wingspan and Cascadia set up.
? p: When and where is the next tabletop evening happening?
? l: Which games will Priya have out for board game night?

> diego: Heads up, I'm moving apartments on April 5. Could use 2-3 people with strong backs for a couple of hours in the morning, pizza and beer on me.
? p: Who needs a hand relocating, and on what day?
? l: What is Diego offering people who help with the move on April 5?

> maya: Reminder: the server's 4th anniversary stream is Saturday the 29th at 8pm UTC, and I'm giving away two Steam Deck OLEDs.
? p: What prizes are up for grabs during the community's birthday broadcast?
? l: What time does the anniversary stream start on the 29th?

> farid: I passed my driving test this morning!! third attempt, parallel parking finally cooperated
? p: Who finally got their licence, and how many tries did it take?

> gwen: Does anyone want to split a cabin for the Lake Tahoe trip, June 12-16? It's $1,400 total for the four nights and it sleeps 6.
> gwen: Cabin's booked, thanks all! We ended up with 5 people so it's $280 each, please pay me by May 1.
@spread
? l[0,1]: How much does the Lake Tahoe cabin cost for the whole stay?
? p[1]: How much does each person owe for the lake house and what's the payment deadline?
? p[0]: Is someone looking for people to share a rental for a summer getaway by a lake?

> hiro: my cat Mochi had her surgery yesterday, the vet says the tumour was benign 🎉
? p: How did the pet's operation turn out?
? l: What did the vet say about Mochi?

> isla: New rule from the mods: no more self-promo outside #showcase. First a warning, then a 24h timeout.
? p: What happens if someone advertises their own stuff in the wrong place?
? l: Which channel is self-promo allowed in now?

> jonas: I'm running the Berlin half marathon on April 6, aiming for sub 1:45. Donations go to the children's hospital, link is pinned.
? l: What finishing time is Jonas going for in the Berlin half?
? p: Which charity is the running fundraiser supporting?

> kira: got the job at Spotify!! starting in Stockholm on May 2nd as a backend engineer
? p: Where is the new job based and when is the first day?
? l: What role did Kira get at Spotify?

> liam: Karaoke is confirmed: Thursday 20 March, Lucky Star on Kings Road, room booked 9pm to midnight, £15 each
? l: How much is the karaoke room at Lucky Star per person?
? p: Which evening did we book for singing, and until when?

> emma: I'm collecting for Noah's birthday present, we're getting him the Lego Rivendell set. Send me £10 on PayPal if you're in.
? p: What gift is the group chipping in for, and how much should each person send?
? l: Which Lego set are we getting Noah?

> olga: For the flat-warming: 14 Elm Street, flat 3B. The buzzer is broken so just call me when you get there.
? p: What should I do on arrival since the door intercom doesn't work?
? l: What's the address of Olga's housewarming on Elm Street?

> quinn: small PSA, I'm changing my handle to "qbit" everywhere next week, same person lol
? p: Is someone about to change their username?

> rosa: I'll be offline from the 10th to the 24th, hiking the W trek in Torres del Paine. No signal most of the way.
? p: Who is going trekking in South America and won't have phone coverage?
? l: When does Rosa get back from Torres del Paine?

> sam: my sister's wedding is on 17 May in Porto, so I'll have to miss the May meetup
? p: Which family event means a member can't make the spring meetup?
? l: Where is Sam's sister getting married?

> tariq: Ramadan started, so I'll mostly be on late, after iftar around 7:30pm
? p: Why is one member only around later in the evening these days?

> alice: Secret Santa draw is done, check your DMs from the bot. Budget is $25 and gifts need to ship by December 10.
? l: What's the spending limit for Secret Santa?
? p: By when must the holiday gift-exchange presents be sent out?

> ben: I'm hosting a watch party for the Champions League final on May 31, projector in the back garden, bring your own chairs
? p: Where are we watching the big football match at the end of May?
? l: What do I need to bring to the Champions League final watch party?

> chloe: Venue change for the meetup: we're now at The Brass Monkey pub, not the Crown. Same time, 6pm Saturday.
? l: Is the meetup still happening at the Crown?
? p: Where did the get-together move to?

> diego: We adopted a rescue greyhound called Pepper! She's 4 and sleeps about 20 hours a day
? p: What kind of dog did someone take home, and what is she called?
? l: How old is Pepper the greyhound?

> emma: I've started learning Japanese with Anki + WaniKani, 30 day streak so far
? p: Which apps is someone using to pick up a new language?

> farid: The new mod team is isla, quinn and me. Ping @mods if something is on fire.
? p: Who are the people moderating the server now?
? l: Who is on the new mod team?

> hiro: Giving away my old 27" Dell monitor (1440p, 144Hz), free to whoever collects it in Leeds
? p: Is anyone handing out a free computer screen?
? l: Where do I pick up Hiro's Dell monitor?

> isla: Book club this month is "Project Hail Mary", we discuss it on the 27th in voice chat
? l: When is the Project Hail Mary discussion?
? p: Which novel is the reading group doing this month?

- jonas: anyone know a good physio in Manchester? my knee has been bad since the half
> kira: Jonas, try Sarah Whitlock at CityPhysio on Deansgate, she sorted my runner's knee in like 5 sessions
? p: Which physiotherapist was suggested for the sore knee?
? l: Where is CityPhysio, and who should Jonas see there?

> liam: The Sunday voice hangout is back from next week, every Sunday at 6pm UTC, come say hi
? p: Is there a regular weekly call people can drop into?

> maya: if anyone's in Lisbon next week I'm there for Web Summit, 11-14 November. Let's grab a pastel de nata
? l: Who is going to Web Summit in Lisbon?
? p: Which member will be in Portugal for a tech conference and wants to meet up?

> noah: broke my wrist snowboarding, so I'm typing with one hand for the next 6 weeks, excuse the typos
? p: Why is someone stuck typing one-handed?
? l: How long will Noah be typing with one hand?

> priya: The VPS for the bot costs $6/month, I've covered it until June. If anyone wants to chip in, the Ko-fi link is in #announcements
? p: How much does it cost to keep the server's hosting going, and who has been paying for it?
? l: Where is the Ko-fi link for the VPS costs?

> quinn: We just hit 500 members!! thank you all for making this place great
? p: What membership milestone did the community just reach?

> rosa: fun fact: I got my pilot's licence last year, flying a Cessna 172, about 60 hours logged so far
? p: Who here can fly a plane?
? l: How many hours has Rosa logged in the Cessna 172?

> sam: lost my AirPods Pro on the 73 bus this morning, if anyone in Hackney spots them lol
? p: Where did someone lose their wireless earbuds?

> tariq: Charity bake sale for the food bank on Saturday 12 April at St Mary's hall, 10am-2pm. Cake donations very welcome!
? l: What time is the bake sale at St Mary's hall?
? p: Which cause is the cake sale raising money for?

> alice: I'm officially a British citizen as of today! The ceremony was at Camden town hall
? p: Who just got naturalised, and where was the ceremony held?

> ben: WE'RE ENGAGED!!! Chloe said yes last night on the beach in Brighton
? p: Who got engaged, and where did the proposal happen?

> chloe: Wedding date is set: 20 September 2025 at Hever Castle. Save the date, proper invites go out in June
? l: When is the wedding at Hever Castle?
? p: When will the formal invitations for the marriage ceremony be sent?

> diego: does anyone have a spare ticket for the Arctic Monkeys gig on June 8? happy to pay face value
? p: Someone wants to buy a concert ticket: which band, and on what date?

> emma: doing Dry January plus no sugar, day 12, send help
? p: Who is giving up alcohol and sweets this month?

> maya: Summer meetup poll is closed: it's Edinburgh, the weekend of 9-10 August
> maya: Edinburgh meetup update: I've booked a group table at The Devil's Advocate for the Saturday dinner, 7:30pm, 14 people
@spread
? p[0,1]: Where and when is the summer meetup, and what's the plan for dinner?
? l[1]: Which restaurant is booked for the Edinburgh meetup dinner?
? p[0]: Which city won the vote for the summer get-together?

## general / distractors
jonas: last board game night went way too late, we were still playing Catan at 2am
emma: my landlord is raising the rent again, I might have to look for a new flat this autumn
noah: the Steam Deck OLED screen is honestly so much nicer than the LCD one
gwen: my driving test is booked for late May and I'm already nervous about the roundabouts
isla: taking my dog to the vet tomorrow for her booster jabs
liam: I have a second-round interview at Klarna on Thursday, fingers crossed
farid: did anyone catch the Champions League quarter-final last night? what a comeback
maya: the Friday voice chat was fun, sorry I dropped early
farid: saw Arctic Monkeys back in 2018, still the best gig of my life
alice: we should plan something for the server's birthday, any ideas?
hiro: anyone know a cheap place to recycle old electronics in Leeds?
kira: Stockholm in winter is brutal, about six hours of daylight
olga: I still have boxes everywhere from the move, the flat is chaos
rosa: has anyone done the Inca Trail? thinking about Peru next year
sam: my brother's stag do is in Prague in June, send help
tariq: the Eid party at the community centre last year was so much fun
chloe: the name badges for the meetup are printed, grab yours at the door
ben: the projector I bought is only 1080p but it's fine for films in the garden
quinn: can we get a role for people who want meetup pings?
liam: the karaoke bar last time had a broken mic, let's never go back there
maya: conference season is exhausting, three flights in two weeks
gwen: the lake house we stayed at last summer had no wifi lol
priya: the server icon needs a refresh, anyone good at pixel art?
alice: the bot's welcome message has a typo, can a mod fix it?
diego: my old flat had the noisiest neighbours in London
kira: does anyone else find Monday standups pointless?
noah: snowboarding season pass prices are ridiculous this year
rosa: the new Cessna simulator in Flight Simulator 2024 is pretty realistic

## tech-help
> hiro: PSA if you're on pgvector: the HNSW index uses hnsw.ef_search = 40 by default. `SET hnsw.ef_search = 100` per session or your recall tanks
? l: What's the default ef_search for pgvector's HNSW index?
? p: My approximate nearest-neighbour search inside Postgres misses results, which setting should I raise?

> alice: Got the Raspberry Pi 5 (8GB) running the bot off an NVMe hat, it boots in about 9 seconds, way faster than the SD card
? l: How fast does the Raspberry Pi 5 boot from NVMe?
? p: Does putting the single-board computer on an SSD instead of a memory card speed up start-up?

> diego: docker container can't reach postgres on localhost? Inside the container localhost is the container itself. Use host.docker.internal on Mac/Windows, or put both services on the same compose network and use the service name.
? p: Why can't my containerised app talk to the database running on my own machine?
? l: Which hostname do I use instead of localhost from Docker on a Mac?

> emma: fixed my "ModuleNotFoundError: No module named 'discord'": I had installed discord.py into the system python, not the venv. Running python -m pip install inside the activated venv sorted it.
? l: How was the ModuleNotFoundError for discord solved?
? p: The bot library is installed but Python still claims it can't find it, what was going on?

> farid: if your bot suddenly sees messages with empty text, enable the Message Content intent in the developer portal AND set intents.message_content = True in code. It's been privileged since 2022.
? p: My bot receives events but the text of every message is blank, what do I need to switch on?
? l: Where do I enable the message_content intent?

> gwen: for anyone on Proxmox 8: add the pve-no-subscription repo under /etc/apt/sources.list.d/ and disable the enterprise one, otherwise apt update fails with a 401
? l: Why does apt update give a 401 on Proxmox 8?
? p: How can I get package updates for my hypervisor without paying for a licence?

> isla: ECONNREFUSED 127.0.0.1:6379 just means Redis isn't running. sudo systemctl start redis-server, then check with redis-cli ping (should say PONG)
? l: What does ECONNREFUSED on port 6379 mean?
? p: How can I check that the in-memory cache server is up and answering?

> jonas: the ZFS scrub found 3 checksum errors on one disk and smartctl shows reallocated sectors climbing, so I've ordered a replacement WD Red Plus
? p: What signs suggested one of the hard drives in the storage pool is dying?
? l: Which replacement drive did Jonas order for the ZFS pool?

> kira: FAISS tip: IndexFlatIP on L2-normalised vectors = cosine similarity. Don't forget faiss.normalize_L2 before add() AND before search()
? l: How do I get cosine similarity out of IndexFlatIP in FAISS?
? p: What must I do to the embeddings at insert time and at query time so inner product behaves like cosine?

> liam: SQLite "database is locked" errors went away after switching to WAL: PRAGMA journal_mode=WAL; plus busy_timeout = 5000
? l: How did Liam fix "database is locked" in SQLite?
? p: Concurrent writes to my embedded database keep failing, which settings help?

> maya: Tailscale is the easiest way to reach the homelab from outside. No port forwarding needed, and the free plan covers 100 devices
? p: What's the simplest way to get at my home servers remotely without opening router ports?
? l: How many devices does the free Tailscale plan allow?

> noah: CUDA out of memory with the 8B model on my RTX 3060 12GB. Loading it with load_in_4bit via bitsandbytes fixed it, fits with ~5GB to spare
? l: How do I fit an 8B model on an RTX 3060 12GB?
? p: My graphics card runs out of memory loading the language model, which quantization trick helped?

> olga: the nginx 502 Bad Gateway was because gunicorn was bound to 127.0.0.1:8001 but proxy_pass pointed at 8000
? l: What caused Olga's nginx 502 Bad Gateway?
? p: The reverse proxy returned an error because of a port mismatch; which ports were involved?

> priya: `git reflog` saved my life. Did a hard reset on the wrong branch and got all the commits back with git reset --hard HEAD@{2}
? p: How do you recover commits after accidentally wiping a branch?
? l: Which git command did Priya use to get her commits back?

> quinn: the APC Back-UPS 700 gives about 18 minutes of runtime for the NAS + router, and NUT shuts the NAS down cleanly at 20% battery
? l: How long does the APC Back-UPS 700 last?
? p: What triggers the automatic shutdown of the storage box during a power cut?

> rosa: Python 3.12 broke my bot because distutils was removed. pip install setuptools brings back the shim
? l: distutils is missing in Python 3.12, how do I fix my bot?
? p: After upgrading the interpreter an old build module disappeared, how do I get it back?

> sam: slash commands not showing up? Global commands can take up to an hour to propagate. While developing, sync to one guild: await bot.tree.sync(guild=discord.Object(id=GUILD_ID))
? p: My new bot commands aren't appearing in the client, why, and how do I make it quicker?
? l: How do I sync the command tree to a single guild in discord.py?

> tariq: Home Assistant kept losing Zigbee devices until I put the Sonoff dongle on a USB extension cable, away from the USB 3 ports. Interference!
? l: Why did the Sonoff Zigbee dongle keep dropping devices?
? p: My smart home sensors kept disconnecting, what simple hardware fix worked?

> alice: my backups: restic to Backblaze B2 every night at 3am, costs about $1.20/month for 200GB
? l: How much does Alice pay for Backblaze B2?
? p: What does someone use for nightly off-site backups, and when do they run?

> ben: ssh kept saying "Permission denied (publickey)". The key file had 644 perms, chmod 600 ~/.ssh/id_ed25519 fixed it
? l: ssh says Permission denied (publickey) even though the key is there, what was wrong?
? p: The remote login refused my key; which file permission change solved it?

> chloe: embedding models: bge-m3 handles Chinese + English in one index really well (1024 dims). multilingual-e5 was worse on our data
? l: What embedding dimension does bge-m3 produce?
? p: Which model works best for a search index mixing Chinese and English text?

> diego: the router's DHCP kept handing the NAS a new IP every few days, so I set a static lease for 192.168.1.50
? l: What IP address is the NAS on now?
? p: Why did the file server's address keep changing, and how was it fixed?

> emma: VPS hardening: ufw allow 22, 80 and 443, then ufw enable, and install fail2ban. My auth.log had 3000 brute-force attempts in a single day
? p: How many password-guessing attempts showed up in the logs, and what protection was added?
? l: Which ports should I open in ufw on the VPS?

> farid: my cron job didn't run because cron uses /bin/sh with a tiny PATH. Use absolute paths like /usr/bin/python3 in the crontab
? p: My scheduled script works when I run it by hand but not on its timer, why?
? l: Why can't my crontab entry find python3?

> gwen: Rust: "borrowed value does not live long enough" in my tokio::spawn was fixed by moving an Arc clone into the async block
? l: How did Gwen fix "does not live long enough" in a tokio task?
? p: The compiler complained about lifetimes when spawning background work, what was the fix?

> hiro: benchmarked it: the 4070 Super does about 95 tokens/s on Llama 3.1 8B Q4_K_M in llama.cpp, my M2 Pro does ~38
? l: How many tokens per second does a 4070 Super get with llama.cpp?
? p: How does the Apple laptop compare with the Nvidia card for local LLM generation speed?

> isla: certbot renew kept failing because the new firewall rule blocked port 80, so I switched to the DNS-01 challenge with the Cloudflare plugin
? l: Why was certbot renew failing, and what did Isla change?
? p: My TLS certificate couldn't be renewed because the HTTP port was closed; what's the alternative way to validate?

> jonas: postgres connection pooling: pgbouncer in transaction mode, max_client_conn 500, default_pool_size 20. DB load dropped a lot
? l: What pgbouncer pool settings did Jonas use?
? p: How did someone cut down the number of connections the app opens to the database?

> kira: VS Code Remote-SSH hanging at "Setting up SSH host"? delete ~/.vscode-server on the remote and reconnect
? p: The editor gets stuck when connecting to a remote machine, how do I fix it?
? l: Which folder do I delete when VS Code Remote-SSH hangs?

> liam: tip: journalctl -u mybot -f follows the bot's logs live when it runs as a systemd service
? p: How can I watch the live output of a bot that runs as a background service?

> maya: got the TP-Link TL-SG105-M2 2.5GbE switch for £80, NAS transfers now hit ~280MB/s
? l: How much was the TP-Link 2.5GbE switch?
? p: What network upgrade made copying files to the storage server much faster?

> noah: WSL2 eating all your RAM: create %UserProfile%\.wslconfig with memory=8GB under [wsl2], then run wsl --shutdown
? l: How do I limit WSL2 memory usage?
? p: The Linux subsystem on Windows hogs memory, how can I cap it?

- rosa: my bot's memory usage grows forever, it's at 2GB after a day
> jonas: rosa, are you keeping every message you see in a list or dict? that'll do it
> rosa: yep that was it, I was caching all messages in a dict with no limit. Switched to an LRU cache with maxsize 10000 and it's flat at 180MB now
? p[0,1]: What made the bot's RAM usage keep climbing, and how was it fixed?
? l[1]: What maxsize did Rosa give the LRU cache?

## tech-help / distractors
liam: we moved from pgvector to Qdrant at work, mostly because of filtered search speed
ben: my Raspberry Pi 4 keeps corrupting SD cards after power cuts, any ideas?
kira: is the official Pi 5 case with the fan worth it, or just get a heatsink?
noah: WireGuard on my router dropped the handshake every few hours until I set PersistentKeepalive = 25
hiro: all-MiniLM-L6-v2 is tiny and fast but really only good for English
olga: the nginx config syntax check is nginx -t, always run it before a reload
jonas: anyone tried TrueNAS Scale vs Unraid? trying to decide for the new box
diego: docker compose v2 is `docker compose`, not `docker-compose`, that tripped me up
farid: systemd timers are nicer than cron imo, you get logs for free
gwen: Rust compile times on my laptop are painful, 4 minutes for a clean build
isla: Let's Encrypt certs are only valid for 90 days, so automate renewal
kira: FAISS IVF indexes need training before you add vectors
liam: SQLite is honestly enough for most bots, people overthink databases
maya: my NAS is still on 1GbE, transfers top out around 110MB/s
noah: my 3060 runs Stable Diffusion XL fine at 1024x1024
priya: git tip: git switch -c is the newer way to create a branch
quinn: the NAS beeped during the last power cut, I think the UPS battery is getting old
rosa: anyone know why my venv activates but `which python` still shows /usr/bin/python?
sam: discord.py 2.x needs Python 3.8+, check your version first
tariq: Zigbee2MQTT supports way more devices than ZHA in my experience
alice: B2 egress is free up to 3x your stored data, nice for restores
ben: I use ed25519 keys for everything now, rsa 4096 feels ancient
chloe: Chinese tokenisation matters a lot for BM25, jieba helped our keyword search
diego: my ISP changes my public IP every week, so I use DuckDNS for the domain
hiro: llama.cpp's server mode has an OpenAI-compatible API, handy for bots
jonas: the Postgres 17 upgrade went smoothly with pg_upgrade --link
emma: does anyone have a good guide for setting up a VPS from scratch?
olga: gunicorn with 4 workers is plenty for our little dashboard

## gaming
> alice: Raid night is Wednesdays at 8pm EST, we're doing Vault of Glass in Destiny 2. Need 6 people, bring a Fatebringer if you have one
? l: Which raid are we running in Destiny 2?
? p: What day and time does the weekly group activity in the looter shooter happen?

> ben: The Minecraft server moved to mc.homelab.gg, version 1.21.4 with the Create mod. It's whitelisted, DM me your username
? l: What is the new Minecraft server address?
? p: How do I get let in to the block-building server?

> chloe: FINALLY beat Malenia in Elden Ring after 87 attempts, Rivers of Blood + bleed build
? l: How many tries did it take Chloe to beat Malenia?
? p: Which weapon and build did someone use to finally take down that brutal boss?

> diego: the Steam summer sale starts June 26, I'm getting Baldur's Gate 3 if it hits 30% off
? p: When does the big seasonal discount event on the PC store begin?
? l: What discount is Diego waiting for on Baldur's Gate 3?

> emma: our Valorant 5-stack scrims the Discord league team on Sunday at 4pm and we're short a controller main
? p: Which role is missing for the team's practice match?
? l: When is the Valorant scrim?

> farid: the Factorio Space Age megabase is up on the server, the save is on the shared drive. Please don't touch the main bus 🙏
? p: Which part of the factory game world are people asked to leave alone?
? l: Where's the Factorio Space Age save?

> gwen: Stardew 1.6 co-op farm plan: I do the fish ponds, Hiro takes the animals, Isla handles the greenhouse
? p: How were the farming game chores split between players?
? l: Who is handling the greenhouse on the Stardew farm?

> hiro: Steam Deck tip: set TDP to 10W and cap at 40fps for Hades 2, battery lasts about 4 hours
? l: Which TDP setting should I use for Hades 2 on the Steam Deck?
? p: How do I make the handheld's battery last longer when playing the roguelike sequel?

> isla: signups for the Mario Kart 8 cup close Friday at midnight, 16 slots, winner gets a $50 eShop card
? p: What's the prize for winning the racing game competition?
? l: How many slots are there in the Mario Kart tournament?

> jonas: our WoW guild, Ember Vanguard, is recruiting a healer for mythic+, keys 15-20, Tuesdays and Thursdays
? l: What's the name of the WoW guild that wants a healer?
? p: Which role is the MMO team trying to fill, and on which weekdays do they play?

> kira: just finished a 112% Hollow Knight run, Silksong can't come soon enough
? p: Who fully completed the bug-themed metroidvania?

> liam: anyone up for Lethal Company tonight? need 3 more, starting at 10pm CET
? p: Who wants people for the co-op horror scavenging game this evening?
? l: What time is the Lethal Company session?

> maya: Switch 2 preorders are open at Argos, £395 for the Mario Kart World bundle
? l: How much is the Switch 2 Mario Kart World bundle?
? p: Where can I pre-order Nintendo's new console?

> noah: our Civ VII multiplayer game is saved at turn 212, we continue Saturday. I'm still winning as Rome
? p: Where did we leave off in the strategy game, and when do we resume?
? l: Which civ is Noah playing in Civ VII?

> olga: Tarkov wipe is on the 19th, I'm taking the day off work lol
? p: When does the extraction shooter's reset happen?

> priya: cozy game recs: A Short Hike, Unpacking, Dorfromantik and Spiritfarer, all under $20
? p: Can someone suggest some relaxing, cheap indie titles?
? l: Which cozy games did Priya recommend?

> quinn: new build: Ryzen 7 7800X3D, RTX 4070 Ti Super, 32GB DDR5-6000. Cyberpunk at 1440p ultra runs ~110fps with DLSS
? l: What fps does the 7800X3D + 4070 Ti Super get in Cyberpunk?
? p: What processor and graphics card are in someone's new gaming rig?

> rosa: Jackbox Party Pack 10 night next Wednesday! I'll screen share and you all play on your phones
? p: How do we join in for the party game night?
? l: Which Jackbox pack are we playing?

> sam: PSA: the Helldivers 2 Major Order ends in 14 hours, we still need to liberate Malevelon Creek
? p: Which planet do we need to free for the current community objective in the co-op shooter?

> tariq: got the platinum in Astro Bot, took about 25 hours in total
? l: How long did the Astro Bot platinum take?
? p: Who earned every trophy in Sony's little robot platformer?

> alice: League Clash team: top Ben, jungle me, mid Kira, ADC Liam, support Emma. Clash is Saturday 6pm
? l: Who plays jungle in the League Clash team?
? p: Which positions were assigned for the team tournament in the MOBA?

> ben: the Minecraft server will be down Sunday 2-4am for a world backup and the 1.21.5 update
? p: When is the block game server going offline for maintenance?
? l: Which Minecraft version is the server updating to?

> chloe: cleared Honour Mode in Baldur's Gate 3 with a Sorcerer/Paladin multiclass, 62 hours
? p: Which class combination did someone use to beat the hardest difficulty of the D&D game?

> diego: Rocket League 2v2 ranked anyone? I'm Champ 2, need a duo who actually rotates
? p: Who is looking for a teammate in the car football game, and at what rank?

> emma: Balatro is 40% off on Switch until Sunday, absolutely worth it
? l: How much off is Balatro on Switch?
? p: Is the poker roguelike discounted on the Nintendo console right now?

> gwen: Valheim dedicated server is running on the old Dell Optiplex. Password is in the pins, the world is called "Bjornheim"
? l: What's the Valheim world called?
? p: What machine hosts the viking survival server?

> hiro: FF14 Dawntrail static is recruiting for the savage tier, we need a tank. Raids Mon/Wed 9pm-12am JST
? l: What role does the FF14 static need?
? p: What hours does the Final Fantasy online raid group play?

> isla: new speedrun PB! Celeste Any% in 31:42
? p: What's the personal best time for the climbing platformer?
? l: What's Isla's Celeste Any% time?

> ben: LAN party at my place on Saturday 26 April, starting at noon. I've got 6 desks and plenty of power strips
> ben: LAN party update: bring your own headphones and a network cable, I only have a 16-port switch
@spread
? p[0,1]: When is the gaming get-together at Ben's house, and what should I bring?
? l[0]: What date is the LAN party at Ben's?

## gaming / distractors
alice: Vault of Glass was my first raid ever, back in Destiny 1
ben: the old Minecraft world from 2023 is archived, ask if you want the download
chloe: Malenia's waterfowl dance is the worst attack in any game ever
diego: Baldur's Gate 3 patch 8 added photo mode and new subclasses
emma: our Valorant team lost 13-11 last week, so close
farid: the Factorio 2.0 quality system is confusing me
isla: Mario Kart World looks sick, especially the open world bits
jonas: I quit WoW after Shadowlands, might come back for the housing update
kira: Hollow Knight's Path of Pain nearly made me quit
liam: Phasmophobia is scarier than Lethal Company imo
maya: my Switch OLED joy-cons are drifting again
noah: Civ VI still has the better map generation, fight me
olga: Tarkov's new map is fun but the loot is terrible
quinn: my old rig had a 3070 and it struggled with Cyberpunk path tracing
rosa: Quiplash 3 was the funniest thing we played at the last meetup
sam: the Helldivers 2 warbond this month is pretty mid
tariq: Astro Bot winning Game of the Year was deserved
gwen: Valheim's Ashlands is brutal, died 6 times on the first boat trip
hiro: the Steam Deck fan gets loud when it's docked
alice: ranked League is so toxic this season
diego: Rocket League's new season soundtrack is fire
isla: Celeste's B-sides are way harder than the main game
priya: Dorfromantik's new update added a creative mode
kira: anyone else think Elden Ring's DLC was harder than the base game?

## food-and-recs
> alice: best ramen near the office is Kanada-Ya on St Giles High St. Get the tonkotsu with extra chashu, and expect a 20 minute queue
? p: Where should I go for a good bowl of noodle soup, and what should I order?
? l: How long is the queue at Kanada-Ya?

> ben: my chili recipe: 1kg beef chuck, 3 dried anchos, 2 chipotles in adobo, a square of dark chocolate, simmer for 3 hours
? l: Which chillies go into Ben's chili?
? p: How long does the spicy beef stew need to cook, and what's the unusual ingredient?

> chloe: book rec: "The Remains of the Day" by Kazuo Ishiguro. quiet but devastating
? p: Which understated yet gut-wrenching novel was suggested?
? l: Who wrote The Remains of the Day?

> diego: Severance season 2 is on Apple TV+, new episodes every Friday, it's so good
? p: On which streaming service can I watch that office show, and when do new episodes drop?
? l: Which day are new Severance episodes released?

> emma: potluck on Saturday: I'm bringing lasagna, Farid does dessert (baklava), Gwen brings salad. Someone please bring drinks!
? p: What is still needed for the shared dinner?
? l: Who is bringing the baklava to the potluck?

> farid: the Turkish place Oklava in Shoreditch does amazing pide, book ahead at weekends
? l: What does Oklava do really well?
? p: Which restaurant in east London should I reserve for Turkish flatbread?

> gwen: podcast rec: Hardcore History by Dan Carlin. The Blueprint for Armageddon series on WW1 is over 20 hours
? p: What long history audio show about the First World War got recommended?
? l: Who hosts Hardcore History?

> hiro: Japanese curry tip: use Golden Curry roux but add a grated apple and a spoon of honey, then let it rest overnight
? l: Which brand of curry roux does Hiro use?
? p: Which fruit makes homemade Japanese-style curry taste better?

> isla: anime rec: Frieren is the best thing I've watched this year. 28 episodes, on Crunchyroll
? p: Which show did someone call the best they've seen this year, and where can I stream it?
? l: How many episodes does Frieren have?

> jonas: coffee upgrade: Fellow Ode grinder + V60, 15g of coffee to 250g of water. Miles better than the Nespresso
? l: What coffee-to-water ratio does Jonas use with the V60?
? p: What gear did someone buy to replace their capsule machine?

> kira: best dumplings in town: Dumpling Legend on Gerrard Street, the xiaolongbao are £7.50 for 6
? l: How much are the xiaolongbao at Dumpling Legend?
? p: Where can I get good soup dumplings in Chinatown?

> liam: film rec: "Past Lives". watched it on a flight and ugly cried
? p: Which film made someone sob on a plane?

> maya: I've been vegetarian for 3 months now. For restaurant picks, Mildreds in Soho has a great veggie menu
? p: Where can someone who doesn't eat meat get a good meal in central London?
? l: How long has Maya been vegetarian?

> noah: sourdough update: 78% hydration, 18h cold retard in the fridge, finally got a proper open crumb
? l: What hydration does Noah use for his sourdough?
? p: How long does the bread dough rest in the fridge?

> olga: TV rec: Slow Horses season 4 is out on Apple TV+, Gary Oldman is perfect as Jackson Lamb
? p: Which actor stars in the British spy series that got recommended?
? l: Which season of Slow Horses is out now?

> priya: my mum's dal: red lentils and turmeric, then a tadka of cumin seeds, garlic and dried red chilli in ghee poured over at the end
? p: What gets poured over the lentils at the very end?
? l: Which spices go into the tadka for Priya's dal?

> quinn: video essay rec: Jacob Geller's "Who's Afraid of Modern Art", 40 minutes and worth every one
? l: Which Jacob Geller video essay was recommended?
? p: Is there a good long-form YouTube essay about contemporary art?

> rosa: best cheap pizza: Franco Manca, sourdough base, and the Margherita is £7.95
? l: How much is the Margherita at Franco Manca?
? p: Where can I get a great pizza without spending much?

> sam: bought a Ninja AF300 dual-zone air fryer. Crispy chicken thighs at 200°C for 22 minutes
? l: What temperature does Sam use for chicken thighs in the Ninja air fryer?
? p: What kitchen appliance did someone get, and how long do they cook the chicken for?

> tariq: iftar at mine on Friday the 21st, my mum is making biryani. Everyone's welcome, we start at sunset, around 6:15pm
? p: Who is hosting the fast-breaking dinner, and what will be served?
? l: What time does the iftar on Friday the 21st start?

> alice: board games for two: Patchwork and 7 Wonders Duel, both play in under 30 minutes
? p: Which tabletop games work well for a couple and are quick to play?
? l: How long do Patchwork and 7 Wonders Duel take?

> ben: the new bakery on Church Road, Crumbs & Co, does a cardamom bun that's better than anything I had in Stockholm
? l: What should I get at Crumbs & Co?
? p: Which local bakery makes a spiced bun that beats the Swedish ones?

> chloe: album rec: Mk.gee, "Two Star & The Dream Police". Weird guitar tones, it's been on repeat all month
? p: Which record has someone been playing nonstop this month?
? l: Which Mk.gee album was recommended?

> diego: tacos al pastor at El Pastor in Borough Market, £4 each, get the pineapple salsa
? l: How much are the al pastor tacos at Borough Market?
? p: Where can I grab good Mexican street food, and which sauce should I add?

> emma: kombucha home brew: second ferment with ginger and lemon for 3 days, and burp the bottles daily or they explode
? p: How do I stop my fermented tea bottles from bursting?
? l: How long is the second ferment for Emma's kombucha?

> farid: non-fiction rec: "The Power Broker" by Robert Caro, 1,200 pages on Robert Moses and New York
? p: Which huge biography about the man who reshaped New York City was recommended?
? l: How many pages is The Power Broker?

> gwen: Dune: Part Two in IMAX at the BFI is worth the £22 ticket
? p: Where should I see the sci-fi sequel on the big screen, and how much does it cost?

> hiro: Korean fried chicken at Bonchon: get half soy garlic, half spicy. The wings are £9
? l: Which flavours should I order at Bonchon?
? p: What's a good order at the place that does crispy Korean-style chicken?

> kira: cooking club theme this month is Sichuan, I'm doing mapo tofu
> jonas: cooking club: I'll take dan dan noodles then
? p[0,1]: Which dishes have people signed up to make for this month's cooking club?
? l[1]: Who is making the dan dan noodles for cooking club?

## food-and-recs / distractors
ben: the ramen place by the station shut down last month, sad times
kira: Chinatown has so many dumpling places, they all blur together for me
farid: Turkish breakfast at home: menemen and simit, the easiest weekend brunch
gwen: the Lore podcast is good for spooky stories, not really proper history though
hiro: Japanese curry always tastes better the next day, everyone knows this
isla: Dungeon Meshi has the most appetising food animation I've ever seen
jonas: Nespresso pods are so expensive now, like 50p each
liam: I fell asleep during Oppenheimer on the plane lol
maya: being vegetarian in Spain was surprisingly hard
noah: tried baking focaccia, way too oily, I'll use less olive oil next time
olga: Apple TV+ has the best shows per pound of any streamer
priya: the Indian places on Brick Lane are overrated, go to Dishoom instead
quinn: Lindsay Ellis used to make great video essays
rosa: Pizza Pilgrims is fine but too pricey for what it is
sam: my old air fryer was too small for a whole chicken
tariq: we break the fast with dates and water first, then the food
alice: Catan is great but takes way too long with 4 players
chloe: the Booker shortlist this year looks weak
diego: Taco Bell in the UK is just not the same, don't bother
emma: my first kombucha SCOBY went mouldy, had to start over
farid: 1,000+ page books are intimidating, I gave up on Infinite Jest
gwen: the original 1984 Dune film is weird but charming
hiro: KFC in Japan at Christmas is a whole cultural thing
ben: chocolate in savoury food sounds weird but trust me on mole

## 闲聊
> xiaolin: 周六（3月22号）下午两点去奥森公园野餐，我带垫子和水果，大家各带一样吃的
? l: 奥森公园野餐定在几号几点？
? p: 这个周末的户外聚餐什么时候开始，每个人需要准备什么？

> ajie: 我下个月5号搬家到望京，周末有没有人能来帮忙搬一下，完事请大家吃火锅
? p: 谁要换住处了，来帮忙的人有什么犒劳？
? l: 搬到望京是哪一天？

> laowang: 我家猫豆豆昨天做了绝育手术，医生说恢复得很好，十天后拆线
? p: 宠物的手术做得怎么样？
? l: 豆豆什么时候拆线？

> meimei: 驾照终于考下来了！科目二挂了两次，第三次才过
? p: 谁拿到驾驶证了，一共考了几次？

> chenyu: 国庆打算去云南玩，大理住三天、丽江住两天，机票已经订好了，有人一起吗
? l: 云南之行在大理待几天？
? p: 有人计划十月初的长假去西南旅游吗？行程是怎么安排的？

> tangtang: 推荐一家火锅：海底捞太贵了，我最近常去“楠火锅”，牛油锅底68块，毛肚特别新鲜
? l: 楠火锅的锅底多少钱？
? p: 有没有人推荐实惠的涮锅店，哪道菜比较好？

> xiaoyu: 我拿到字节的offer了！下个月1号入职，做推荐算法
? p: 谁找到新工作了，负责什么方向？
? l: 字节的offer是什么岗位？

> dabai: 本周五晚上八点语音频道玩狼人杀，需要12个人，来的扣1
? l: 狼人杀一局需要几个人？
? p: 周末前一晚有什么线上聚会游戏，几点开始？

> lele: 我在学日语，用的是多邻国加《标准日本语》，已经坚持100天了
? p: 谁在自学外语，用了哪些教材和软件？
? l: 学日语坚持多少天了？

> zhouzhou: 下周三我生日，请大家来我家吃蛋糕，地址是朝阳区幸福路88号3单元
? l: 生日聚会在幸福路几号？
? p: 谁要过生日了，庆祝活动在哪儿办？

> xiaolin: 上周去看了周杰伦的演唱会，在鸟巢，内场票1880，值了
? l: 周杰伦鸟巢演唱会内场票多少钱？
? p: 有人去看了哪位歌手的现场，花了多少钱？

> ajie: 最近在减肥，一个月瘦了八斤，主要是不吃晚饭加上每天跑五公里
? p: 有人是怎么减重的，效果怎么样？
? l: 每天跑五公里一个月瘦了多少？

> laowang: 群里的年会定在1月18号，还是老地方“聚福楼”，每人AA 150
? l: 聚福楼年会每人要交多少钱？
? p: 年底的聚餐是哪天，费用怎么算？

> meimei: 我的猫丢了！橘猫，左耳有个缺口，在五道口附近走失的，有线索请联系我
? p: 走失的宠物有什么特征，在哪里不见的？
? l: 五道口走丢的橘猫有什么记号？

> chenyu: 推荐一部剧：《漫长的季节》，豆瓣9.4，东北悬疑，范伟演得太好了
? l: 《漫长的季节》豆瓣评分多少？
? p: 有什么好看的国产悬疑剧推荐？主演是谁？

> tangtang: 我考研上岸了！北师大心理学，初试410分
? p: 谁研究生考试成功了，考了多少分？
? l: 北师大心理学初试考了多少分？

- xiaoyu: 下个月去成都出差一周，想吃正宗的钵钵鸡和兔头，有推荐吗
> dabai: 成都的话一定去玉林路那边，“马旺子”的川菜很地道，钵钵鸡就去“叶婆婆”
? p: 去四川省会出差，有人推荐了哪些馆子？
? l: 想吃钵钵鸡的话，在成都该去哪家？

> lele: 周日早上有人一起去香山爬山吗？早上七点北宫门集合
? l: 香山爬山在哪里集合？
? p: 周末清晨的登山活动几点碰头？

> zhouzhou: 我家楼下新开了一家面包店叫“麦香坊”，可颂很好吃，8块钱一个
? l: 麦香坊的可颂多少钱一个？
? p: 附近新开的烘焙店有什么值得买的？

> xiaolin: 群规更新：禁止发广告，第一次警告，第二次禁言一天
? p: 在群里打广告会有什么后果？

> ajie: 我和女朋友订婚了！婚礼定在明年五一，在杭州西湖边办
? p: 谁要结婚了，仪式在哪儿举行？
? l: 五一的婚礼在杭州什么地方？

> dabai: 下个月去日本的行程定了：4月3号出发，先在东京玩三天再去京都
> dabai: 日本的酒店订好了，京都住在四条河原町附近，一晚六百多
@spread
? p[0,1]: 去日本旅游的行程怎么安排的，在京都住哪儿？
? l[1]: 京都的酒店订在哪里，一晚多少钱？

## 闲聊 / distractors
xiaolin: 上次在朝阳公园野餐被蚊子咬惨了
ajie: 望京的房租又涨了，一居室都要六千多
laowang: 我家另一只猫花花最近不爱吃饭，明天带去医院看看
meimei: 科目三的灯光考试好难记
chenyu: 去年去的西双版纳，热得要命
tangtang: 海底捞的服务确实好，就是人均太高了
xiaoyu: 腾讯的面试二面挂了，有点难受
dabai: 上周的剧本杀太烧脑了，玩了五个小时
lele: 韩语是不是比日语难学多了？
zhouzhou: 我家楼下的快递站搬走了，好不方便
xiaolin: 五月天的演唱会票根本抢不到
ajie: 健身房年卡办了三千块，结果去了不到十次
laowang: 去年年会抽奖我抽中了一个空气炸锅
meimei: 小区里最近流浪猫好多
chenyu: 最近追的综艺太水了，看不下去
tangtang: 二战考研的压力真的大
dabai: 成都的夏天太闷了，去过一次就不想再去
lele: 上次爬长城累到腿软
zhouzhou: 公司楼下那家老面包店的蛋挞一般般
xiaolin: 大家发图的时候注意别刷屏哈
ajie: 表哥的婚礼上我喝多了
xiaoyu: 周末在家躺了两天，什么都没干

## 技术交流
> ajie: 用pgvector的注意：HNSW索引默认ef_search是40，召回率不够的话调到100以上
? l: pgvector的HNSW索引默认ef_search是多少？
? p: 在Postgres里做向量近邻检索结果漏了很多，应该调大哪个参数？

> laowang: 树莓派5装了NVMe固态，开机只要9秒，比SD卡快多了，跑家里的Home Assistant很稳
? l: 树莓派5用NVMe启动要多久？
? p: 单板电脑改用固态硬盘启动之后速度有什么变化？

> chenyu: docker里连不上宿主机的MySQL，是因为容器里的localhost指的是容器自己，改成host.docker.internal就行
? p: 容器中的程序为什么访问不到本机上跑的数据库？
? l: docker里连宿主机的MySQL要用什么地址？

> tangtang: pip装包太慢可以换清华源：pip config set global.index-url https://pypi.tuna.tsinghua.edu.cn/simple
? l: pip怎么换成清华源？
? p: Python安装第三方库下载很慢，怎么加速？

> xiaoyu: 向量检索如果是中英文混合，推荐bge-m3，1024维，比多语言e5效果好
? l: bge-m3的向量有多少维？
? p: 中英文混排的语料用哪个嵌入模型比较合适？

> dabai: CUDA out of memory的话试试把batch size调小，或者用fp16加载模型，显存能省一半
? p: 显卡内存不够报错的时候有什么办法？
? l: 用fp16加载模型能省多少显存？

> lele: git push被拒绝，提示non-fast-forward，先git pull --rebase再推就好了
? l: git push报non-fast-forward该怎么办？
? p: 推送代码时远程分支比本地新导致失败，应该怎么处理？

> zhouzhou: 服务器被暴力破解了，auth.log里一天有五千多次登录尝试，装了fail2ban，SSH端口也改成了2222
? p: 服务器遭到密码爆破以后采取了哪些防护措施？
? l: SSH端口被改成多少了？

> xiaolin: SQLite报database is locked，开启WAL模式就好了：PRAGMA journal_mode=WAL
? l: SQLite报database is locked怎么解决？
? p: 嵌入式数据库并发写入时报锁冲突，怎么处理？

> meimei: Nginx 502 是因为后端gunicorn监听的端口写错了，应该是8001，配置里写成了8000
? l: Nginx 502 的原因是什么？
? p: 反向代理报网关错误，最后查出来是什么问题？

> ajie: 群晖NAS的硬盘报警了，SMART显示重映射扇区在增加，赶紧买了块希捷酷狼8T换上
? l: 群晖NAS换上了什么硬盘？
? p: 怎么看出存储设备里的某块盘快不行了？

> laowang: 家里宽带升级到了2000兆，但是路由器只有千兆口，又换了个AX6000的路由器
? p: 网速升级后为什么还得换路由设备？
? l: 为什么要换AX6000路由器？

> chenyu: Python 3.12 把distutils删了，老项目报错的话 pip install setuptools 就能解决
? l: Python 3.12 找不到distutils怎么办？
? p: 升级解释器之后一个旧的打包模块没了，怎么补回来？

> tangtang: 用Ollama跑qwen2.5:7b，4060显卡大概每秒45个token，日常用够了
? l: 4060跑qwen2.5 7b每秒多少token？
? p: 本地跑开源大模型，中端显卡的生成速度怎么样？

> xiaoyu: Mac上用Homebrew装的node版本太老了，推荐用nvm管理版本，nvm install 20
? p: 苹果电脑上怎么方便地切换JavaScript运行时的版本？
? l: 用nvm装node 20的命令是什么？

> dabai: 机器人的斜杠命令不显示的话，全局同步要等一个小时，开发的时候用按服务器同步
? p: 新加的bot指令在客户端里看不到是什么原因？
? l: 斜杠命令全局同步要多久？

> lele: FAISS用IndexFlatIP做余弦相似度，记得入库和查询前都要faiss.normalize_L2
? l: FAISS的IndexFlatIP怎么算余弦相似度？
? p: 用内积索引的时候向量要先做什么处理才能等价于余弦？

> zhouzhou: 证书续期失败是因为80端口被防火墙挡了，后来改用DNS验证，用的阿里云插件
? l: 80端口被挡导致证书续期失败，后来换成了什么验证方式？
? p: HTTPS证书没法自动更新，最后是怎么搞定的？

> xiaolin: 推荐一个内网穿透方案：Tailscale，免费版就够用，不用在路由器上做端口映射
? l: 用Tailscale需要在路由器上做端口映射吗？
? p: 人在外面怎么方便地访问家里的服务器？

> meimei: 写了个cron定时任务一直不执行，原因是cron的PATH环境变量很少，脚本里要写python的绝对路径
? p: 脚本手动运行正常，一到定时跑就失败，为什么？
? l: cron里为什么找不到python？

> ajie: WSL2吃内存太多，在用户目录建一个.wslconfig，写上memory=8GB，然后wsl --shutdown重启
? l: 怎么限制WSL2占用的内存？
? p: Windows里的Linux子系统占用内存太大怎么办？

- tangtang: 我的bot跑一天内存就涨到2G，怎么回事
> lele: 是不是把收到的消息都存在列表里了？
> tangtang: 对，就是缓存没设上限，换成了maxsize=10000的LRU缓存，现在稳定在200M左右
? p[0,1]: 机器人内存一直涨是什么原因，后来怎么解决的？
? l[1]: LRU缓存的maxsize设成了多少？

## 技术交流 / distractors
ajie: 我们公司从pgvector迁到Milvus了，主要是数据量太大
laowang: 树莓派4的SD卡又坏了，断电真的伤卡
chenyu: docker compose v2 的命令是 docker compose，不是 docker-compose 了
tangtang: conda 和 pip 混用容易出问题，建议只用一个
xiaoyu: text2vec的中文效果也还行，就是对英文支持不好
dabai: 训练的时候显存占用一直在涨，可能是哪里内存泄漏了
lele: git rebase 和 merge 到底用哪个，团队吵了一下午
zhouzhou: 云服务器的安全组记得只开必要的端口
xiaolin: SQLite 其实够大多数小项目用了
meimei: nginx -t 可以检查配置文件的语法
ajie: 这块机械硬盘用了五年还没坏，西数的质量还可以
laowang: 运营商给的光猫性能太差了
chenyu: Python 3.13 的 free-threading 模式有人试过吗？
tangtang: Ollama 拉模型好慢，有没有国内镜像？
xiaoyu: Node 18 马上就停止维护了
dabai: discord.py 2.0 之后要手动开 message_content intent
lele: FAISS 的 IVF 索引需要先 train 再 add
zhouzhou: Let's Encrypt 证书有效期只有90天
xiaolin: 公司的VPN又连不上了，烦
meimei: systemd timer 比 cron 好用，看日志也方便

## 游戏
> dabai: 周三晚上九点《原神》深渊车队，还缺一个奶妈，想来的私聊我
? l: 原神深渊车队还缺什么角色？
? p: 周中晚上的开放世界游戏组队还差哪个位置？

> chenyu: 《黑神话：悟空》二周目通关了，最难的是二郎神，打了五十多次
? p: 那款国产西游动作游戏里哪个boss最难打，打了几次？
? l: 黑神话悟空二周目最难的boss是谁？

> xiaoyu: 王者荣耀五排周六下午三点，我打野，还缺个辅助
? l: 王者荣耀五排几点开始？
? p: 手机MOBA组队还缺什么位置？

> lele: Steam夏促6月26号开始，打算入《博德之门3》，等到七折再买
? p: 电脑游戏平台的年中大促什么时候开始？
? l: 博德之门3打几折才入手？

> tangtang: 我的世界服务器地址换成 mc.shenye.fun 了，版本1.21，要加白名单的找我
? l: 我的世界的新服务器地址是什么？
? p: 那个方块沙盒游戏的服务器怎么才能进去？

> zhouzhou: Switch 2 国行还没消息，港版马车世界套装要3500港币左右
? l: 港版Switch 2马车世界套装多少钱？
? p: 任天堂的新主机在香港买大概要多少钱？

> xiaolin: 《星露谷物语》联机农场分工：我负责钓鱼，老王养动物，美美管温室
? p: 种田游戏多人模式里大家是怎么分工的？
? l: 星露谷农场的温室归谁管？

> laowang: 《艾尔登法环》女武神打了八十多次才过，最后用的血刀流
? l: 艾尔登法环的女武神最后用什么打过的？
? p: 魂系游戏里那个最难的boss最后是靠什么配装打败的？

> meimei: 蛋仔派对周五晚上群友赛，八点开始，前三名送Q币
? l: 蛋仔派对群友赛有什么奖励？
? p: 周五晚上的派对游戏比赛几点开始，名次靠前有什么奖品？

> ajie: 推荐几个治愈系小游戏：《风来之国》《笼中窥梦》《画中世界》，都不贵
? p: 有什么便宜又让人放松的独立游戏推荐？
? l: 推荐的治愈系小游戏有哪些？

> dabai: 新电脑配置：7800X3D + 4070Ti Super，2K分辨率玩赛博朋克2077开DLSS能跑110帧
? l: 7800X3D配4070Ti Super玩2077能跑多少帧？
? p: 新装的游戏主机用的是什么处理器和显卡？

> chenyu: 《金铲铲之战》新赛季上分思路：前期连败攒经济，到8级再D牌
? p: 自走棋手游新赛季前期应该怎么运营？
? l: 金铲铲之战到几级开始D牌？

> lele: 《绝区零》的抽卡小保底是90抽，大保底180抽
? l: 绝区零的大保底是多少抽？
? p: 那款新出的二次元游戏抽卡最多多少次一定出货？

> xiaoyu: 《双人成行》通关了，和女朋友一起玩了大概14个小时，强烈推荐情侣玩
? p: 适合情侣一起玩的合作游戏通关要多久？
? l: 双人成行通关花了几个小时？

> meimei: 这周六下午两点在我家开Switch派对，有四个手柄
> meimei: 周六Switch派对补充：大家自己带零食，我准备了马车8和超级马力欧派对
@spread
? p[0,1]: 周末去谁家打游戏，几点开始，要带什么？
? l[1]: Switch派对准备了哪些游戏？

## 游戏 / distractors
dabai: 原神的新角色强度一般，不建议抽
chenyu: 黑神话的画面真的顶，4K全开显卡直接爆炸
xiaoyu: 王者新赛季的打野改动太大了
lele: 博德之门3的第三幕有点卡
tangtang: 之前那个我的世界存档我备份到网盘了
zhouzhou: Switch 的手柄又漂移了
xiaolin: 星露谷的钓鱼小游戏太难了
laowang: 只狼的剑圣比女武神难多了
meimei: 蛋仔的新皮肤好可爱
ajie: 独立游戏打折的时候最值得买
dabai: 4090 太贵了，等50系吧
chenyu: 云顶之弈电脑版比金铲铲好玩
lele: 抽卡游戏真的太费钱了，这个月已经氪了六百
xiaoyu: 《双人成行》制作组的新作《分裂小说》也出了
"""


# --------------------------------------------------------------------------- #
# parsing
# --------------------------------------------------------------------------- #
def parse(data: str) -> dict[str, dict]:
    """channel -> {"blocks": [...], "distractors": [(author, text)]}."""
    out: dict[str, dict] = {}
    section = None
    mode = None
    block = None

    def close() -> None:
        nonlocal block
        if block and (block["msgs"] or block["queries"]):
            if not block["queries"] or not any(k == ">" for k, _, _ in block["msgs"]):
                raise ValueError(f"incomplete block in #{section}: {block}")
            out[section]["blocks"].append(block)
        block = None

    for raw in data.splitlines():
        line = raw.strip()
        if line.startswith("## "):
            close()
            head = line[3:].strip()
            name, _, tail = head.partition(" / ")
            section = name.strip()
            out.setdefault(section, {"blocks": [], "distractors": []})
            mode = "distractors" if tail.strip() == "distractors" else "blocks"
            continue
        if not line:
            close()
            continue
        if mode == "distractors":
            author, _, text = line.partition(": ")
            out[section]["distractors"].append((author.strip(), text.strip()))
            continue
        if block is None:
            block = {"msgs": [], "queries": [], "spread": False}
        if line == "@spread":
            block["spread"] = True
        elif line[0] in ">-":
            author, _, text = line[1:].strip().partition(": ")
            block["msgs"].append((line[0], author.strip(), text.strip()))
        elif line.startswith("?"):
            m = re.match(r"\?\s*([lp])(?:\[([\d,\s]+)\])?:\s*(.+)$", line)
            if not m:
                raise ValueError(f"bad query line: {line}")
            idx = [int(x) for x in m.group(2).split(",")] if m.group(2) else None
            block["queries"].append(
                ({"l": "lexical", "p": "paraphrase"}[m.group(1)], idx, m.group(3).strip()))
        else:
            raise ValueError(f"bad line: {line}")
    close()
    return out


# --------------------------------------------------------------------------- #
# filler from chatterbot-corpus
# --------------------------------------------------------------------------- #
def corpus_conversations(source: str) -> list[list[str]]:
    import chatterbot_corpus

    path = Path(os.path.dirname(chatterbot_corpus.__file__)) / "data" / f"{source}.yml"
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    seen: set[tuple[str, ...]] = set()
    out = []
    for conv in doc.get("conversations") or []:
        if not isinstance(conv, list):
            continue
        turns = [str(t).strip() if "```" in str(t) else re.sub(r"\s+", " ", str(t)).strip()
                 for t in conv if t is not None]
        turns = [t for t in turns if t]
        if len(turns) < 2 or any(len(t) > 400 for t in turns):  # keep chat-sized turns
            continue
        letters = [c for t in turns for c in t if c.isalpha()]
        if letters and all(c.isascii() and c.isupper() for c in letters):
            turns = [t.lower().capitalize() for t in turns]
        key = tuple(turns)
        if key not in seen:
            seen.add(key)
            out.append(turns)
    return out


# --------------------------------------------------------------------------- #
# building
# --------------------------------------------------------------------------- #
def snowflake(when: datetime, seq: int = 0, worker: int = 1, process: int = 0) -> int:
    ms = int(when.timestamp() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | ((worker & 0x1F) << 17) | ((process & 0x1F) << 12) | (seq & 0xFFF)


def _message(guild_id: int, channel_id: int, chan_index: int, cname: str,
             authors: dict[str, int], author: str, text: str) -> dict:
    if author not in authors:
        raise ValueError(f"unknown author {author!r} in #{cname}")
    return {"guild_id": guild_id, "channel_id": channel_id, "author_id": authors[author],
            "author_name": author, "content": text, "_chan": chan_index}


def channel_snowflake(index: int) -> int:
    gkey = list(CHANNELS.values())[index][0]
    created = GUILDS[gkey]["created"] + timedelta(days=index, hours=2)
    return snowflake(created, worker=0, process=index + 3)


def build() -> list[dict]:
    rng = random.Random(SEED)
    parsed = parse(DATA)
    assert list(parsed) == list(CHANNELS), (list(parsed), list(CHANNELS))

    guild_ids, member_ids = {}, {}
    for gi, (gkey, g) in enumerate(GUILDS.items()):
        guild_ids[gkey] = snowflake(g["created"], worker=0, process=gi)
        for mi, name in enumerate(g["members"]):
            member_ids[(gkey, name)] = snowflake(
                g["created"] - timedelta(days=500 - 23 * mi, hours=3 * mi, minutes=mi),
                worker=2, process=mi % 32)

    rows: list[dict] = []          # messages without ids yet
    pending_queries: list[dict] = []  # relevant given as row objects
    for ci, (cname, (gkey, lang, size, sources)) in enumerate(CHANNELS.items()):
        g = GUILDS[gkey]
        channel_id = channel_snowflake(ci)
        members = g["members"]

        msg = functools.partial(_message, guild_ids[gkey], channel_id, ci, cname,
                                {n: member_ids[(gkey, n)] for n in members})

        # an episode is a list of (message, seconds before it); spread blocks
        # become several episodes whose order is restored after shuffling
        episodes: list[dict] = []
        for bi, block in enumerate(parsed[cname]["blocks"]):
            msgs = [msg(a, t) for _, a, t in block["msgs"]]
            targets = [m for (kind, _, _), m in zip(block["msgs"], msgs) if kind == ">"]
            for kind, idx, text in block["queries"]:
                rel = targets if idx is None else [targets[i] for i in idx]
                pending_queries.append({"guild_id": guild_ids[gkey], "channel_id": channel_id,
                                        "query": text, "_rel": rel, "lang": lang, "kind": kind})
            if block["spread"]:
                for pos, m in enumerate(msgs):
                    episodes.append({"msgs": [m], "group": (ci, bi), "pos": pos})
            else:
                episodes.append({"msgs": msgs, "group": None})
        for author, text in parsed[cname]["distractors"]:
            episodes.append({"msgs": [msg(author, text)], "group": None})

        count = sum(len(e["msgs"]) for e in episodes)
        pool = [conv for s in sources for conv in corpus_conversations(s)]
        rng.shuffle(pool)
        while count < size:
            if rng.random() < 0.3 or not pool:
                n = rng.choice([1, 1, 1, 2, 2, 3])
                people = rng.sample(members, n)
                lines = [msg(p, rng.choice(CHITCHAT[lang])) for p in people]
            else:
                conv = pool.pop()
                a, b = rng.sample(members, 2)
                lines = [msg((a, b)[j % 2], t) for j, t in enumerate(conv)]
            lines = lines[: size - count]
            episodes.append({"msgs": lines, "group": None})
            count += len(lines)

        rng.shuffle(episodes)
        # restore the order of spread blocks
        slots: dict[tuple, list[int]] = defaultdict(list)
        for i, e in enumerate(episodes):
            if e["group"] is not None:
                slots[e["group"]].append(i)
        for idxs in slots.values():
            ordered = sorted((episodes[i] for i in idxs), key=lambda e: e["pos"])
            for i, e in zip(idxs, ordered):
                episodes[i] = e

        gaps = [rng.expovariate(1.0) for _ in episodes]
        inner = [[rng.randint(6, 140) for _ in e["msgs"][1:]] for e in episodes]
        scale = (SPAN.total_seconds() - sum(map(sum, inner))) / sum(gaps)
        t = START + timedelta(seconds=rng.randint(0, 7200))
        for e, gap, deltas in zip(episodes, gaps, inner):
            t += timedelta(seconds=max(1, int(gap * scale)))
            for j, m in enumerate(e["msgs"]):
                if j:
                    t += timedelta(seconds=deltas[j - 1])
                m["_t"] = t
                rows.append(m)

    rows.sort(key=lambda r: (r["_t"], r["_chan"]))
    last_ms, seq = None, 0
    for r in rows:
        ms = int(r["_t"].timestamp() * 1000)
        seq = seq + 1 if ms == last_ms else 0
        last_ms = ms
        r["id"] = snowflake(r["_t"], seq=seq)

    out = []
    for r in rows:
        out.append({"type": "message", "id": r["id"], "guild_id": r["guild_id"],
                    "channel_id": r["channel_id"], "author_id": r["author_id"],
                    "author_name": r["author_name"], "content": r["content"],
                    "created_at": r["_t"].isoformat()})
    for n, q in enumerate(pending_queries, 1):
        out.append({"type": "query", "id": f"q{n:04d}", "guild_id": q["guild_id"],
                    "channel_id": q["channel_id"], "query": q["query"],
                    "relevant": sorted(m["id"] for m in q["_rel"]),
                    "lang": q["lang"], "kind": q["kind"]})
    return out


# --------------------------------------------------------------------------- #
# validation
# --------------------------------------------------------------------------- #
CJK = re.compile(r"[\u4e00-\u9fff]")


def _tokens(text: str) -> set[str]:
    text = text.lower()
    words = set(re.findall(r"[a-z0-9][a-z0-9._\-+]*", text))
    han = "".join(CJK.findall(text))
    return words | {han[i:i + 2] for i in range(len(han) - 1)}


def validate(rows: list[dict]) -> str:
    msgs = [r for r in rows if r["type"] == "message"]
    queries = [r for r in rows if r["type"] == "query"]
    by_id = {m["id"]: m for m in msgs}
    assert len(by_id) == len(msgs), "duplicate message ids"
    assert len({q["id"] for q in queries}) == len(queries), "duplicate query ids"
    ids = [m["id"] for m in msgs]
    assert ids == sorted(ids) and all(0 < i < 2**63 for i in ids)
    times = [datetime.fromisoformat(m["created_at"]) for m in msgs]
    assert times == sorted(times)
    for m, t in zip(msgs, times):
        assert abs(((m["id"] >> 22) + DISCORD_EPOCH_MS) / 1000 - t.timestamp()) < 1e-3
        assert m["content"].strip()
    stats = defaultdict(list)
    for q in queries:
        assert q["lang"] in ("en", "zh") and q["kind"] in ("lexical", "paraphrase")
        assert q["relevant"], q
        for rid in q["relevant"]:
            m = by_id.get(rid)
            assert m is not None, f"{q['id']}: relevant id {rid} missing"
            assert (m["guild_id"], m["channel_id"]) == (q["guild_id"], q["channel_id"]), q["id"]
            a, b = q["query"].lower(), m["content"].lower()
            assert a not in b and b not in a, f"{q['id']} copies its message"
            assert difflib.SequenceMatcher(None, a, b).ratio() < 0.85, f"{q['id']} too close"
        assert (q["lang"] == "zh") == bool(CJK.search(q["query"])), q["id"]
        qt = _tokens(q["query"])
        rt = set().union(*(_tokens(by_id[r]["content"]) for r in q["relevant"]))
        stats[(q["lang"], q["kind"])].append(len(qt & rt) / max(1, len(qt)))
    assert len(queries) >= 320
    zh_share = sum(q["lang"] == "zh" for q in queries) / len(queries)
    assert zh_share >= 0.25, zh_share

    per_chan = Counter((m["guild_id"], m["channel_id"]) for m in msgs)
    q_chan = Counter((q["guild_id"], q["channel_id"]) for q in queries)
    rel_ids = {r for q in queries for r in q["relevant"]}
    lines = [f"messages: {len(msgs)}  queries: {len(queries)}  "
             f"zh queries: {zh_share:.0%}  distinct relevant messages: {len(rel_ids)}"]
    for ci, cname in enumerate(CHANNELS):
        key = next(k for k in per_chan if k[1] == channel_snowflake(ci))
        lines.append(f"  #{cname:<14} messages {per_chan[key]:4d}  queries {q_chan[key]:3d}")
    kinds = Counter((q["lang"], q["kind"]) for q in queries)
    for (lang, kind), n in sorted(kinds.items()):
        ov = stats[(lang, kind)]
        lines.append(f"  {lang} {kind:<10} {n:4d} queries, mean share of query tokens found in "
                     f"relevant messages {sum(ov) / len(ov):.2f}")
    multi = sum(len(q["relevant"]) > 1 for q in queries)
    lines.append(f"  queries with >1 relevant message: {multi}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return build_main(argv, OUT, build, validate)


def build_main(argv: list[str] | None, default_out: Path, build_rows, validate_rows) -> int:
    """The command line of a set builder: build, validate, then write (or ``--check``) the file."""
    ap = argparse.ArgumentParser(description=f"build tests/data/{default_out.name}")
    ap.add_argument("--out", type=Path, default=default_out)
    ap.add_argument("--check", action="store_true", help="verify the file on disk is up to date")
    args = ap.parse_args(argv)
    rows = build_rows()
    return write_or_check(rows, validate_rows(rows), args.out, args.check)


def write_or_check(rows: list[dict], summary: str, out: Path, check: bool) -> int:
    """Write ``rows`` as JSONL to ``out`` (or with ``check`` only compare) and print the summary."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if check:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            print(f"{out} is out of date", file=sys.stderr)
            return 1
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
