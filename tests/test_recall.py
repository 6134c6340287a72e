"""Recall through a real Memory: the packaged model, real SQLite and FAISS, the tiny Qwen3 as a second space."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest

from qwen3_memory.memory import Memory
from qwen3_memory.models.device import DevicePolicy
from qwen3_memory.models.embedding import EmbeddingServices
from qwen3_memory.settings import ModelOverrides, resolve_profile
from tests.factories import message

pytestmark = pytest.mark.usefixtures("backend")  # every test runs on SQLite + FAISS and on Postgres

CHAT = [
    "Paris is the capital of France",
    "I deployed the new version of the bot to production last night",
    "my cat knocked the plant off the windowsill again",
    "does anyone know a good ramen place downtown?",
    "the build fails on windows because of a missing DLL",
    "we should switch the database to postgres next quarter",
    "happy birthday Sam! hope you have a great day",
    "the meeting with the design team moved to thursday afternoon",
    "I finally beat the final boss in Elden Ring",
    "it has been raining all week, I miss the sun",
    "python 3.13 removed some deprecated modules, check your imports",
    "who wants to play board games on saturday?",
]

PARAPHRASES = {  # query -> index in CHAT of the message it must find first
    "what's the capital city of France?": 0,
    "did someone push the latest release to prod?": 1,
    "any recommendations for noodle restaurants in the city centre?": 3,
    "why won't it compile on Windows?": 4,
    "when is the design sync now?": 7,
    "the weather has been so wet lately": 9,
}


@pytest.fixture(scope="module")
def services():
    """One set of loaded models for the whole module (the packaged MiniLM, and the tiny Qwen3 when asked)."""
    shared = EmbeddingServices(DevicePolicy(cpu_only=True))
    yield shared
    shared.close()


@pytest.fixture
async def memory(make_settings, services):
    mem = await Memory.open(make_settings(), services=services)
    yield mem
    await mem.close()


async def post(memory: Memory, texts, guild_id: int = 1, channel_id: int = 10, first_id: int = 1):
    """Post ``texts`` as messages of one channel through the capture queue; returns the stored messages."""
    messages = [message(first_id + i, text, guild_id=guild_id, channel_id=channel_id) for i, text in enumerate(texts)]
    for m in messages:
        await memory.capture.submit(m)
    await memory.capture.drain()
    return messages


async def recall(memory: Memory, query: str, guild_id: int = 1, channel_id: int = 10, **options):
    return await memory.recaller.recall(guild_id, channel_id, query, memory.recall_options(**options))


# ----------------------------------------------------------------------------------------------- relevance


async def test_a_paraphrased_question_recalls_the_right_message_first(memory):
    posted = await post(memory, CHAT)

    for query, expected in PARAPHRASES.items():
        hits = await recall(memory, query)
        assert hits, f"nothing recalled for {query!r}"
        assert hits[0].message == posted[expected], f"{query!r} -> {hits[0].message.content!r}"


async def test_hits_carry_the_cosine_of_the_query_and_the_message(memory, services):
    posted = await post(memory, CHAT)
    service = services.get(memory.default_space.spec)

    hits = await recall(memory, "what's the capital city of France?", hybrid=False)

    expected = (
        service.encode_documents([posted[0].content])[0]
        @ service.encode_queries(["what's the capital city of France?"])[0]
    )
    assert hits[0].similarity == pytest.approx(float(expected), abs=1e-4)
    assert hits[0].message.jump_url() == f"https://discord.com/channels/1/10/{posted[0].id}"


async def test_k_limits_the_number_of_hits(memory):
    await post(memory, CHAT)

    hits = await recall(memory, "what happened this week?", k=3, min_score=-1.0)

    assert len(hits) == 3
    assert len({h.message.id for h in hits}) == 3


async def test_hits_under_min_score_are_dropped(memory):
    await post(memory, CHAT)
    query = "what's the capital city of France?"

    everything = await recall(memory, query, k=len(CHAT), min_score=-1.0, hybrid=False)
    strict = await recall(memory, query, k=len(CHAT), min_score=0.5, hybrid=False)

    assert len(everything) == len(CHAT)
    assert [h.message.id for h in strict] == [h.message.id for h in everything if h.similarity >= 0.5]
    assert 1 <= len(strict) < len(everything)
    assert all(h.similarity >= 0.5 for h in strict)


async def test_min_score_also_applies_to_hybrid_hits(memory):
    await post(memory, CHAT)

    hits = await recall(memory, "ramen", min_score=0.3, k=10)

    assert hits and all(h.similarity >= 0.3 for h in hits)


async def test_a_channel_with_no_memory_recalls_nothing(memory):
    await post(memory, CHAT)

    assert await recall(memory, "capital of France", channel_id=999) == []
    assert await recall(memory, "capital of France", guild_id=999) == []


async def test_a_known_channel_without_messages_recalls_nothing(memory):
    await memory.store.ensure_channel(1, 20, memory.default_space.id)

    assert await recall(memory, "capital of France", channel_id=20, min_score=-1.0) == []


async def test_an_empty_query_recalls_nothing(memory):
    await post(memory, CHAT)

    assert await recall(memory, "   ", min_score=-1.0) == []


async def test_an_edited_message_is_recalled_by_its_new_words_only(memory):
    await post(memory, CHAT)
    edited = replace(message(6, "we decided to stay on sqlite, no postgres"), edited_at=1_800_000_000.0)
    await memory.capture.submit(edited)
    await memory.capture.drain()

    hits = await recall(memory, "are we staying with sqlite?", hybrid=False)
    assert hits[0].message.content == edited.content
    assert all(h.message.content != CHAT[5] for h in await recall(memory, "postgres migration", min_score=-1, k=12))


async def test_a_deleted_message_is_never_recalled(memory):
    posted = await post(memory, CHAT)

    await memory.capture.delete([posted[0].id], wait=True)

    hits = await recall(memory, "what's the capital city of France?", min_score=-1.0, k=len(CHAT))
    assert posted[0].id not in [h.message.id for h in hits]
    assert len(hits) == len(CHAT) - 1


# ----------------------------------------------------------------------------------------------- isolation


async def test_recall_never_crosses_channels_or_guilds(memory):
    places = [(1, 10), (1, 11), (2, 10), (2, 11)]  # same channel id in two guilds, two channels per guild
    posted = {}
    for n, (guild_id, channel_id) in enumerate(places):
        messages = await post(memory, CHAT, guild_id, channel_id, first_id=1000 * (n + 1))
        posted[guild_id, channel_id] = {m.id for m in messages}
    queries = list(PARAPHRASES) + CHAT  # paraphrases, and the very texts that exist everywhere

    for guild_id, channel_id in places:
        results = await asyncio.gather(
            *(recall(memory, q, guild_id, channel_id, k=10, min_score=-1.0) for q in queries)
        )  # many members asking at once
        for query, hits in zip(queries, results):
            assert hits, query
            for hit in hits:
                assert (hit.message.guild_id, hit.message.channel_id) == (guild_id, channel_id), query
                assert hit.message.id in posted[guild_id, channel_id], query


# ----------------------------------------------------------------------------------------------- hybrid


async def test_hybrid_recall_finds_an_exact_rare_token_that_dense_search_ranks_lower(memory):
    texts = [
        "can I get my money back for this purchase?",
        "I want a refund, the item arrived broken",
        "how long do returns usually take to process",
        "the payment was charged twice on my card",
        "they said the reimbursement goes out next week",
        "pizza friday: confirmation QX7781, pick up at noon",
        "who is bringing drinks on friday",
        "my order never showed up",
    ]
    posted = await post(memory, texts)
    target = posted[5]
    query = "QX7781 reimbursed?"

    dense = await recall(memory, query, hybrid=False, k=8)  # the default cosine floor (0.25) applies to both
    hybrid = await recall(memory, query, hybrid=True, k=8)

    dense_ranking = [h.message.id for h in dense]
    hybrid_ranking = [h.message.id for h in hybrid]
    print(f"\nquery {query!r}: dense ranking {dense_ranking}, hybrid (BM25 + RRF) ranking {hybrid_ranking}")
    for name, hits in (("dense", dense), ("hybrid", hybrid)):
        for rank, h in enumerate(hits, start=1):
            print(f"  {name:6} {rank}. #{h.message.id} cos={h.similarity:.3f} score={h.score:.4f} {h.message.content}")
    assert dense_ranking.index(target.id) > 0, "dense search alone does not put the rare token first"
    assert hybrid_ranking[0] == target.id


# ----------------------------------------------------------------------------------------------- the read space


@pytest.fixture
def qwen3_space(tiny_qwen3_dir):
    overrides = ModelOverrides(embedding_path=str(tiny_qwen3_dir), embedding_dimension=64)
    return resolve_profile("qwen3_medium_performance", overrides).embedding


async def test_new_messages_are_embedded_into_every_write_space(memory, qwen3_space):
    await post(memory, CHAT[:3])
    qwen3 = await memory.store.ensure_space(qwen3_space)
    await memory.store.add_write_space(1, 10, qwen3.id)

    await post(memory, CHAT[3:5], first_id=100)

    counts = await memory.store.vector_counts(1, 10)
    assert counts == {memory.default_space.id: 5, qwen3.id: 2}  # dual write of new messages only
    assert await memory.capture.repair(1, 10) == 3  # the backfill of the older ones
    assert await memory.store.vector_counts(1, 10) == {memory.default_space.id: 5, qwen3.id: 5}


async def test_the_query_is_embedded_by_the_channels_read_space(memory, services, qwen3_space):
    posted = await post(memory, CHAT)
    qwen3 = await memory.store.ensure_space(qwen3_space)
    await memory.store.add_write_space(1, 10, qwen3.id)
    await memory.capture.repair(1, 10)
    query = "what's the capital city of France?"

    before = await recall(memory, query, min_score=-1.0, k=5)
    await memory.store.set_read_space(1, 10, qwen3.id)  # the swap
    after = await recall(memory, query, min_score=-1.0, k=5)
    await memory.store.set_read_space(1, 10, memory.default_space.id)  # the rollback
    rolled_back = await recall(memory, query, min_score=-1.0, k=5)

    assert before and {h.space_id for h in before} == {memory.default_space.id}
    assert before[0].message == posted[0]
    assert len(after) == 5 and {h.space_id for h in after} == {qwen3.id}
    tiny = services.get(qwen3_space)  # the hits' similarities are Qwen3's, with Qwen3's query prompt
    expected = tiny.encode_documents([h.message.content for h in after]) @ tiny.encode_queries([query])[0]
    np.testing.assert_allclose([h.similarity for h in after], expected, atol=1e-4)
    assert all(h.message.channel_id == 10 for h in after)
    assert [h.message.id for h in rolled_back] == [h.message.id for h in before]
