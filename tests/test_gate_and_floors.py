"""The quality gate's verdicts, the floors' rules, and recall using the read space's own floor."""

from __future__ import annotations

import pytest

from qwen3_memory.migration.gate import FAIL, PASS, WARN, judge
from qwen3_memory.migration.strategies import StrategyRefused
from qwen3_memory.migration.transform_sample import check_sample_size, minimum_sample, quotas
from qwen3_memory.recall.floors import (
    UNCALIBRATED_FLOOR,
    SpaceFloor,
    get_floor,
    label_free_floor,
    labelled_floor,
    save_floor,
)
from tests.factories import TOPICS, message


def evaluation(old: float, new: float, queries: int = 20) -> dict:
    def space(ndcg: float) -> dict:
        return {"metrics": {"dense": {"all": {"ndcg@10": ndcg}}}}

    return {"queries": queries, "spaces": [space(old), space(new)]}


@pytest.mark.parametrize(
    ("old", "new", "level"),
    [(0.706, 0.753, PASS), (0.70, 0.66, WARN), (0.742, 0.195, FAIL), (0.70, 0.62, FAIL), (0.70, 0.69, PASS)],
)
def test_the_labelled_verdict_follows_the_retained_share_of_ndcg(old, new, level):
    """Fail under 90% of the old space's dense nDCG@10, warn under 97%."""
    verdict = judge([], evaluation(old, new), None, 0)
    assert verdict.level == level
    assert f"{new:.3f} vs {old:.3f}" in verdict.reasons[0]


def test_structure_fails_first_and_too_few_labelled_queries_say_nothing():
    assert judge(["3 messages have no vector"], evaluation(0.7, 0.9), None, 0).level == FAIL
    few = judge([], evaluation(0.7, 0.1, queries=4), None, 0)
    assert few.level == PASS and "structure only" in few.reasons[0]


def test_a_transform_whose_neighbours_disagree_fails_even_without_labels():
    assert judge([], None, 0.51, 40).level == FAIL
    assert judge([], None, 0.70, 40).level == WARN
    assert judge([], None, 0.79, 40).level == PASS
    assert judge([], evaluation(0.7, 0.75), 0.60, 40).level == FAIL  # the worst finding decides


def test_the_labelled_floor_is_the_largest_that_costs_recall_at_5_under_one_point():
    found = [[0.6], [0.5], [0.45], [0.3], []]  # cosines of each query's relevant hits in its top 5
    relevant = [1, 1, 1, 1, 1]
    assert labelled_floor(found, relevant) == 0.3  # above 0.30 the fourth query's answer goes
    assert labelled_floor([[0.9, 0.2]], [2]) == 0.2


def test_the_label_free_floor_is_the_median_of_what_noise_reaches_once_enough_was_measured():
    assert label_free_floor([0.1, 0.2, 0.3, 0.4, 0.5] * 3) == 0.3
    assert label_free_floor([0.9, 0.92, 0.94]) == UNCALIBRATED_FLOOR  # three samples are a guess, not a floor


def test_transform_sample_size_has_a_measured_minimum_and_a_spread_over_channels():
    assert minimum_sample(384) == 1920 and minimum_sample(4) == 32
    with pytest.raises(StrategyRefused, match="at least 1920"):
        check_sample_size(1000, 5000, 384, force=False)
    size, warnings = check_sample_size(1000, 5000, 384, force=True)
    assert size == 1000 and "LOUD WARNING" in warnings[0]
    assert check_sample_size(0, 5000, 384, force=False) == (1920, [])
    assert quotas([(1, 1, 100), (1, 2, 900), (2, 3, 3)], 100) == [10, 90, 1]  # every channel, by size


async def test_recall_applies_the_read_spaces_own_floor_unless_the_setting_overrides_it(make_settings):
    from qwen3_memory.memory import Memory

    memory = await Memory.open(make_settings(), start_capture=False)
    try:
        await memory.capture.write([message(i, TOPICS[i % len(TOPICS)]) for i in range(1, 13)])
        space = memory.default_space.id
        assert await get_floor(memory.store, space) is None
        hits = await memory.recall(1, 10, "when does the raid start")
        assert hits and min(h.similarity for h in hits) >= UNCALIBRATED_FLOOR
        await save_floor(memory.store, SpaceFloor(space, 0.99, "label-free", {"samples": 3}))
        memory.recaller.floors.forget(space)
        assert await memory.recall(1, 10, "when does the raid start") == []  # the space's floor, not 0.25
    finally:
        await memory.close()
    memory = await Memory.open(make_settings(recall={"min_score": 0.1}), start_capture=False)
    try:
        assert await memory.recall(1, 10, "when does the raid start")  # the setting overrides every floor
        assert (await get_floor(memory.store, space)).floor == 0.99
    finally:
        await memory.close()


async def test_a_text_posted_in_several_channels_is_not_counted_as_noise(make_settings):
    """The label-free floor asks other channels' lines where they have no answer; a line that is here too
    (a pasted notice, "gg") has one, and counting it would push the floor to 1.0 and hide every result."""
    from qwen3_memory.memory import Memory
    from qwen3_memory.recall.floors import noise_scores

    memory = await Memory.open(make_settings(), start_capture=False)
    try:
        same = [message(i, TOPICS[i % 4], channel_id=10) for i in range(1, 9)]
        copies = [message(100 + i, TOPICS[i % 4], channel_id=11) for i in range(1, 9)]
        other = [message(200 + i, TOPICS[4 + i % 2], channel_id=12) for i in range(1, 9)]
        await memory.capture.write(same + copies + other)
        noise = await noise_scores(memory, memory.default_space, 1, 10)
        assert noise and max(noise) < 0.9  # channel 11's copies are not noise; channel 12's lines are
        assert label_free_floor(noise) < 0.95
    finally:
        await memory.close()
