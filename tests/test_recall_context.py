"""Recall that answers, in the library: filters (authors, dates, recency), hits with their neighbouring lines,
``Memory.context`` for prompts and the recall hook; on the real packaged model and both backends."""

from __future__ import annotations

import time

import pytest

from qwen3_memory.errors import UserFacingError
from qwen3_memory.filters import RecallFilters
from qwen3_memory.hooks import RecallEvent
from qwen3_memory.recall.context import ExcerptShape, build_excerpts, prompt_line
from qwen3_memory.recall.pipeline import Hit
from qwen3_memory.when import parse_when
from tests.factories import message

on_both_backends = pytest.mark.usefixtures("backend")

NOW = time.time()
HOUR = 3600.0
ALICE, BOB, CAROL = 100, 101, 102

# A conversation where the answer shares no words with the question, an hour of other talk after it,
# and an older one about the same subject.
RAID_TALK = [
    (1, ALICE, "alice", "what time is the guild raid on friday?", -30 * 86_400),
    (2, BOB, "bob", "nine, same as always", -30 * 86_400 + 40),
    (11, CAROL, "carol", "anyone know when the raid starts this week?", -2 * HOUR),
    (12, BOB, "bob", "LOCKED: Friday 21:30, bring potions", -2 * HOUR + 30),
    (13, ALICE, "alice", "perfect, I'll be there", -2 * HOUR + 60),
    (14, CAROL, "carol", "my cat knocked over the plant again", -HOUR),
    (15, ALICE, "alice", "pizza tonight?", -HOUR + 20),
]


def talk(channel_id: int = 10):
    return [
        message(i, text, channel_id=channel_id, author_id=who, author_name=name, created_at=NOW + ago)
        for i, who, name, text, ago in RAID_TALK
    ]


async def remember(memory, messages) -> None:
    await memory.capture.write(messages)
    await memory.store.flush()


# ---------------------------------------------------------------------------------------- dates
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - 7 * 86_400),
        ("2w", NOW - 14 * 86_400),
        ("12h ago", NOW - 12 * HOUR),
        ("2026-05-01", 1_777_593_600.0),
        ("2026-05-01 18:30", 1_777_593_600.0 + 18.5 * HOUR),
    ],
)
def test_dates_in_natural_and_iso_forms(text, expected):
    assert parse_when(text, NOW) == pytest.approx(expected)


def test_yesterday_is_the_start_of_the_previous_utc_day():
    assert parse_when("yesterday", 1_777_593_600.0 + 5 * HOUR) == 1_777_593_600.0 - 86_400


@pytest.mark.parametrize("text", ["last tuesday", "7x", "", "2026-13-01"])
def test_a_bad_date_is_one_clear_error_naming_the_option(text):
    with pytest.raises(UserFacingError, match="`after`"):
        parse_when(text, NOW, "after")


def test_after_must_come_before_before():
    with pytest.raises(UserFacingError, match="earlier"):
        RecallFilters.of(after=NOW, before=NOW - 1)


# ---------------------------------------------------------------------------------------- excerpts
def test_adjacent_hits_merge_and_a_pause_ends_the_conversation():
    lines = talk()
    hits = [Hit(lines[3], 0.9, 0.9, 1), Hit(lines[2], 0.8, 0.8, 1)]  # ids 12 then 11
    excerpts = build_excerpts(hits, lines, before=3, after=3, max_gap_seconds=600)
    assert len(excerpts) == 1
    assert [line.message.id for line in excerpts[0].lines] == [11, 12, 13]  # 2 is a month earlier, 14 an hour later
    assert excerpts[0].jump_url.endswith("/12") and excerpts[0].rank == 1


def test_a_hit_deleted_since_is_left_out():
    lines = talk()
    hits = [Hit(lines[3], 0.9, 0.9, 1)]
    assert build_excerpts(hits, [m for m in lines if m.id != 12]) == []


def test_fitting_drops_far_neighbours_first_and_keeps_the_hit():
    lines = talk()
    lines[3] = message(
        12, "LOCKED: Friday 21:30 at the north gate, bring potions, food and repair kits", created_at=NOW
    )
    excerpt = build_excerpts([Hit(lines[3], 0.9, 0.9, 1)], lines, before=2, after=2, max_gap_seconds=10 * HOUR)[0]
    full = excerpt.fit(10_000, prompt_line, 400)
    assert len(full) == 4 and full[1].startswith("» ")  # 11, 12 (the hit), 13, 14; 2 is a month older
    short = excerpt.fit(len(full[1]) + 10, prompt_line, 400)
    assert short == [full[1]]
    cut = excerpt.fit(len(full[1]) - 5, prompt_line, 400)  # not even the hit fits whole: it is cut
    assert len(cut) == 1 and len(cut[0]) <= len(full[1]) - 5 and cut[0].startswith("» ") and cut[0].endswith("…")
    assert excerpt.fit(50, prompt_line, 400) == []  # a stub of the hit would say nothing


def test_a_fitted_excerpt_never_exceeds_its_limit():
    lines = [message(i, f"line {i} " + "of the long plan " * (i % 5), created_at=NOW + i) for i in range(1, 12)]
    hits = [Hit(lines[2], 0.9, 0.9, 1), Hit(lines[8], 0.8, 0.8, 1)]
    (excerpt,) = build_excerpts(hits, lines, before=5, after=5, max_gap_seconds=60)
    for limit in range(0, 900, 7):
        fitted = excerpt.fit(limit, prompt_line, 400)
        assert sum(len(line) for line in fitted) + max(0, len(fitted) - 1) <= limit
        assert not fitted or any(line.startswith("»") for line in fitted)


# ---------------------------------------------------------------------------------------- the library API
@on_both_backends
async def test_context_gives_the_answer_around_the_question_with_authors_times_and_links(memory):
    await remember(memory, talk() + talk(channel_id=11)[:2])
    context = await memory.context(1, 10, "when does the raid start this week?", budget_chars=1500, k=2)
    assert len(context.text) <= 1500
    assert "bob: LOCKED: Friday 21:30" in context.text  # the answer next to the question it answers
    assert "https://discord.com/channels/1/10/" in context.text and "/1/11/" not in context.text
    assert context.excerpts == tuple(sorted(context.excerpts, key=lambda e: e.started_at))
    ids = [line.message.id for e in context.excerpts for line in e.lines]
    assert len(ids) == len(set(ids))


@on_both_backends
async def test_context_fits_a_small_budget(memory):
    await remember(memory, talk())
    context = await memory.context(1, 10, "when does the raid start?", budget_chars=200)
    assert context and len(context.text) <= 200


@on_both_backends
async def test_context_never_shows_deleted_lines_or_members_who_opted_out(memory):
    await remember(memory, talk())
    await memory.capture.delete([13], wait=True)
    await memory.forget_member(1, CAROL)
    context = await memory.context(1, 10, "raid on friday", budget_chars=4000, shape=ExcerptShape(5, 5, 10 * HOUR))
    assert context and "I'll be there" not in context.text and "carol" not in context.text


@on_both_backends
async def test_an_author_filter_keeps_only_that_member(memory):
    await remember(memory, talk())
    hits = await memory.recall(1, 10, "raid friday", k=5, filters=RecallFilters.of(authors=[ALICE]))
    assert hits and {h.message.author_id for h in hits} == {ALICE}


@on_both_backends
async def test_a_date_filter_keeps_only_that_time(memory):
    await remember(memory, talk())
    recent = RecallFilters.of(after=parse_when("7d", time.time()))
    hits = await memory.recall(1, 10, "what time is the raid", k=5, filters=recent)
    assert hits and 1 not in [h.message.id for h in hits] and 2 not in [h.message.id for h in hits]
    old = RecallFilters.of(before=parse_when("7d", time.time()))
    assert {h.message.id for h in await memory.recall(1, 10, "what time is the raid", k=5, filters=old)} <= {1, 2}


@on_both_backends
async def test_preferring_recent_puts_this_weeks_answer_before_last_months(memory):
    await remember(memory, talk())
    query = "what time is the guild raid on friday?"
    plain = await memory.recall(1, 10, query, k=3)
    assert plain[0].message.id == 1  # the old question, word for word
    recent = await memory.recall(1, 10, query, k=3, filters=RecallFilters.of(prefer_recent=7))
    assert recent[0].message.id in (11, 12)


@on_both_backends
async def test_recall_listeners_hear_every_recall(memory):
    await remember(memory, talk())
    heard: list[RecallEvent] = []

    async def listen(event: RecallEvent) -> None:
        heard.append(event)

    def broken(event: RecallEvent) -> None:
        raise RuntimeError("a listener's bug")

    memory.recall_hooks.add(broken)
    remove = memory.recall_hooks.add(listen)
    await memory.context(1, 10, "raid", budget_chars=500)
    remove()
    await memory.recall(1, 10, "raid")
    assert len(heard) == 1
    assert heard[0].source == "context" and heard[0].channel_id == 10 and heard[0].hits and heard[0].excerpts


@on_both_backends
async def test_a_deletion_still_queued_already_hides_the_message(make_settings):
    from qwen3_memory.memory import Memory

    memory = await Memory.open(make_settings(), start_capture=False)  # no writer yet: deletions stay queued
    try:
        await remember(memory, talk())
        await memory.capture.delete([12, 13])
        context = await memory.context(1, 10, "LOCKED: Friday 21:30, bring potions", budget_chars=4000)
        assert "LOCKED" not in context.text and "I'll be there" not in context.text
        assert 12 not in [h.message.id for h in await memory.recall(1, 10, "LOCKED: Friday 21:30, bring potions")]
        memory.capture.start()
        await memory.capture.drain()
        assert not memory.capture.deleting and not await memory.store.get_messages([12, 13])
    finally:
        await memory.close()
