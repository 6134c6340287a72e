"""Conversation-aware recall: a question's match carries to the lines that answer it.

The arithmetic of :func:`carry_forward` and of the per-query lexical weight is checked by hand;
the rest runs on real stores (SQLite + FAISS and Postgres) with the packaged all-MiniLM-L6-v2:
the answer to a question outranks the question, deletes and the time gap bound what carries, the
store never reads past a channel, and a migrated channel carries in its new space.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen3_memory import evaluation
from qwen3_memory.migration.engine import MigrationEngine
from qwen3_memory.recall.conversation import ConversationOptions, Follower, asks, carry_forward
from qwen3_memory.recall.weighting import LexicalWeighting
from qwen3_memory.space import EmbeddingSpace
from tests.factories import message

CONVERSATION_SET = Path(__file__).parent / "data" / "eval_conversations.jsonl"
T0 = 1_700_000_000.0
QUESTION = "anyone know why certbot renew keeps timing out on my vps? every single time"
ANSWER = "it's the firewall: port 80 is closed. run `sudo ufw allow 80/tcp` and retry the dry run"
QUERY = "why was the let's encrypt renewal timing out?"
# (id, text, seconds after T0): the question, a chit-chat line, the answer, then unrelated talk hours later
CHANNEL = [
    (1, "my vps provider raised prices again, thinking about moving", -7200),
    (2, "certbot emailed me about a domain I forgot I own lol", -3600),
    (3, QUESTION, 0),
    (4, "lol", 30),
    (5, ANSWER, 90),
    (6, "ty that fixed it", 150),
    (7, "the new raid is out on friday", 9000),
    (8, "does anyone have a good pizza place nearby?", 12000),
]


def test_asks_recognises_questions_in_english_and_chinese():
    assert asks("why does git keep asking for my password?")
    assert asks("路由器每天晚上都断网，有人遇到过吗")
    assert asks("docker拉镜像特别慢怎么办")
    assert asks("周五晚上谁来打王者？五排")
    assert not asks("LOCKED: Friday 21:30 server time")
    assert not asks("改了租期，两天没断了")


def test_carry_forward_adds_a_share_of_the_asking_line_to_its_followers():
    # list [(1, 0.8), (2, 0.4)], normalised by its best (0.8): 1 -> 1.0, 2 -> 0.5
    # follower 3 of source 1, one line after, own 0.2 / 0.8 = 0.25: 0.25 + 0.9 * 1.0 * 0.9**0 = 1.15
    # follower 2 of source 1, two lines after: 0.5 + 0.9 * 1.0 * 0.9**1 = 1.31
    options = ConversationOptions(carry=0.9, decay=0.9, own_weight=1.0)
    ranked = carry_forward([(1, 0.8), (2, 0.4)], [Follower(3, 1, 1), Follower(2, 1, 2)], {3: 0.2}, options)

    assert [i for i, _ in ranked] == [2, 3, 1]
    assert dict(ranked)[2] == pytest.approx((0.5 + 0.81) * 0.8)
    assert dict(ranked)[3] == pytest.approx((0.25 + 0.9) * 0.8)
    assert dict(ranked)[1] == pytest.approx(0.8)


def test_carry_forward_passes_on_only_what_a_source_earned_itself():
    # 1 -> 2 -> 3: 3 inherits from 2's own score (0.5), not from what 2 inherited from 1
    options = ConversationOptions(carry=1.0, decay=1.0, own_weight=1.0)
    ranked = dict(carry_forward([(1, 1.0), (2, 0.5)], [Follower(2, 1, 1), Follower(3, 2, 1)], {}, options))

    assert ranked == {1: pytest.approx(1.0), 2: pytest.approx(1.5), 3: pytest.approx(0.5)}


def test_a_follower_keeps_its_own_score_when_that_is_higher():
    # own_weight 0.6: follower 2 scores max(0.9, 0.6 * 0.9 + 1.0 * 0.2) = max(0.9, 0.74) = 0.9
    options = ConversationOptions(carry=1.0, decay=1.0, own_weight=0.6)
    ranked = dict(carry_forward([(2, 0.9), (1, 0.2), (3, 1.0)], [Follower(2, 1, 1)], {}, options))

    assert ranked[2] == pytest.approx(0.9)


def test_the_lexical_weight_grows_as_the_dense_list_flattens():
    weighting = LexicalWeighting(weight=0.7, power=1.0)  # reference spread 0.2
    steep = [0.9] + [0.6] * 8 + [0.3]  # spread 0.6: (0.2 / 0.6) = x0.33, but never below the weight: x1
    flat = [0.70] + [0.66] * 8 + [0.60]  # spread 0.1: half the reference -> x2
    level = [0.5] * 10  # no spread at all: capped at x4

    assert weighting.for_query(steep) == pytest.approx(0.7)
    assert weighting.for_query(flat) == pytest.approx(1.4)
    assert weighting.for_query(level) == pytest.approx(2.8)
    assert LexicalWeighting(weight=0.7, power=0).for_query(flat) == 0.7


@pytest.fixture
async def chat(memory, backend):
    await memory.capture.write([message(i, text, created_at=T0 + dt) for i, text, dt in CHANNEL])
    await memory.capture.write([message(100 + i, text, channel_id=11, created_at=T0 + dt) for i, text, dt in CHANNEL])
    return memory


async def ranked_ids(memory, query: str = QUERY, **options) -> list[int]:
    hits = await memory.recaller.recall(1, 10, query, memory.recall_options(k=5, min_score=-1.0, **options))
    return [h.message.id for h in hits]


async def test_the_answer_outranks_the_question_that_shares_the_query_words(chat):
    alone = await ranked_ids(chat, conversation=False)
    in_conversation = await ranked_ids(chat)

    assert alone.index(3) < alone.index(5)  # by its own words the question wins
    assert in_conversation[0] == 5
    assert in_conversation.index(5) < in_conversation.index(3)


async def test_a_carried_hit_still_reports_its_own_cosine(chat):
    space = await chat.recaller.read_space(1, 10)
    query_vector = await chat.recaller.embed_query(space, QUERY)
    hits = await chat.recaller.recall(1, 10, QUERY, chat.recall_options(k=5, min_score=-1.0))
    vectors = await chat.store.get_vectors(space.id, [h.message.id for h in hits])

    assert [h.similarity for h in hits] == pytest.approx([float(vectors[h.message.id] @ query_vector) for h in hits])


async def test_a_filtered_recall_never_returns_a_carried_answer_the_filter_excludes(memory, backend):
    from qwen3_memory.filters import RecallFilters

    await memory.capture.write(
        [message(i, text, author_id=101 if i == 5 else 100, created_at=T0 + dt) for i, text, dt in CHANNEL]
    )
    options = memory.recall_options(k=5, min_score=-1.0)
    mine = await memory.recaller.recall(1, 10, QUERY, options, filters=RecallFilters.of(authors=[100]))
    everyone = await memory.recaller.recall(1, 10, QUERY, options)

    assert everyone[0].message.id == 5  # the answer, by author 101, carried by the question
    assert mine and all(h.message.author_id == 100 for h in mine)  # the question still asks; its answer is not shown


async def test_a_deleted_question_no_longer_lifts_its_answer(chat):
    await chat.capture.delete([3], wait=True)

    assert await ranked_ids(chat) == await ranked_ids(chat, conversation=False)


async def test_lines_after_the_gap_inherit_nothing(chat):
    # after the certbot question (3) the raid line (7) comes 2.5 hours later, and the pizza question (8)
    # 50 minutes after the raid line: with a 15-minute window neither inherits
    links = await chat.store.following_messages(1, 10, [(3, T0), (7, T0 + 9000)], lines=6, seconds=900)

    assert links == [(3, 4, 1), (3, 5, 2), (3, 6, 3)]


async def test_following_lines_never_come_from_another_channel(chat):
    links = await chat.store.following_messages(1, 11, [(103, T0)], lines=10, seconds=86_400)

    assert [f for _, f, _ in links] == [104, 105, 106, 107, 108]


async def test_a_migrated_channel_carries_in_its_new_space(chat):
    source = chat.settings.space
    smaller = EmbeddingSpace(**{**source.__dict__, "dimension": 320})  # MiniLM cut to 320-d: meanings mostly kept
    engine = MigrationEngine(chat)
    job = await engine.run((await engine.start(smaller, "truncate", force=True, backup=False, channel_ids=[10])).id)
    assert job.status == "completed"

    hits = await chat.recaller.recall(1, 10, QUERY, chat.recall_options(k=5, min_score=-1.0))

    ranked = [h.message.id for h in hits]
    assert ranked.index(5) < ranked.index(3)
    assert {h.space_id for h in hits} == {(await chat.recaller.read_space(1, 10)).id} != {1}


def test_the_conversation_set_loads_with_splits_and_answers_that_are_not_the_question():
    eval_set = evaluation.load_eval_set(CONVERSATION_SET)
    by_id = {m.id: m for m in eval_set.messages}
    runs = [evaluation.QueryRun(q, q.relevant, 0.0) for q in eval_set.queries]  # a perfect ranking

    summary = evaluation.summarize(runs)

    assert {q.split for q in eval_set.queries} == {"tune", "check"}
    assert summary["split"]["tune"]["n"] + summary["split"]["check"]["n"] == len(eval_set.queries) >= 100
    assert summary["split_lang"]["check/zh"]["ndcg@10"] == pytest.approx(1.0)
    assert all(q.text.lower() not in by_id[i].content.lower() for q in eval_set.queries for i in q.relevant)
