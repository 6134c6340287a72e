"""Reciprocal-rank fusion, checked against sums computed by hand: score(d) = sum of 1 / (k + rank), ranks from 1."""

from __future__ import annotations

import pytest

from qwen3_memory.recall.fusion import reciprocal_rank_fusion


def test_one_list_keeps_its_order_with_reciprocal_scores():
    # k = 60: ranks 1, 2, 3 score 1/61, 1/62, 1/63
    fused = reciprocal_rank_fusion([[30, 10, 20]], k=60)

    assert fused == [(30, pytest.approx(1 / 61)), (10, pytest.approx(1 / 62)), (20, pytest.approx(1 / 63))]


def test_an_item_in_both_lists_beats_an_item_first_in_only_one():
    # dense [1, 2, 3], lexical [3, 4], k = 60
    #   1: 1/61                 = 0.016393
    #   2: 1/62                 = 0.016129
    #   3: 1/63 + 1/61          = 0.015873 + 0.016393 = 0.032266   <- second in one list, first in the other
    #   4:        1/62          = 0.016129
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 4]], k=60)

    assert [item for item, _ in fused] == [3, 1, 2, 4]
    assert dict(fused)[3] == pytest.approx(1 / 63 + 1 / 61)
    assert dict(fused)[3] == pytest.approx(0.032266, abs=1e-6)


def test_a_small_k_rewards_top_ranks_more_than_a_large_k():
    # dense [1, 2, 3, 4, 5], lexical [5]
    # k = 1:  1 -> 1/2 = 0.5;   5 -> 1/6 + 1/2 = 0.6667   => 5 first
    # k = 1, lexical [7, 8, 5] (5 at rank 3 instead):
    #         1 -> 1/2 = 0.5;   7 -> 1/2 = 0.5 (a tie, 1 appeared first);   5 -> 1/6 + 1/4 = 0.4167   => 1 first
    assert reciprocal_rank_fusion([[1, 2, 3, 4, 5], [5]], k=1)[0] == (5, pytest.approx(1 / 6 + 1 / 2))
    assert reciprocal_rank_fusion([[1, 2, 3, 4, 5], [7, 8, 5]], k=1)[0] == (1, pytest.approx(1 / 2))
    # k = 60, lexical [7, 8, 5]:
    #         1 -> 1/61 = 0.016393;   7 -> 1/61;   5 -> 1/65 + 1/63 = 0.015385 + 0.015873 = 0.031258   => 5 first
    assert reciprocal_rank_fusion([[1, 2, 3, 4, 5], [7, 8, 5]], k=60)[0] == (5, pytest.approx(1 / 65 + 1 / 63))


def test_ties_keep_the_order_of_first_appearance():
    # dense [1, 2], lexical [2, 1]: both score 1/61 + 1/62; 1 appeared first
    fused = reciprocal_rank_fusion([[1, 2], [2, 1]], k=60)

    assert fused[0][1] == pytest.approx(fused[1][1])
    assert [item for item, _ in fused] == [1, 2]


def test_three_lists_add_up():
    # [a=1, b=2], [b=2, c=3], [c=3, a=1], k = 10
    #   1: 1/11 + 1/12 = 0.090909 + 0.083333 = 0.174242
    #   2: 1/12 + 1/11 = 0.174242
    #   3: 1/12 + 1/11 = 0.174242   -> a three-way tie, kept in order of first appearance: 1, 2, 3
    fused = reciprocal_rank_fusion([[1, 2], [2, 3], [3, 1]], k=10)

    assert [item for item, _ in fused] == [1, 2, 3]
    assert all(score == pytest.approx(0.174242, abs=1e-6) for _, score in fused)


def test_empty_rankings_fuse_to_nothing():
    assert reciprocal_rank_fusion([], k=60) == []
    assert reciprocal_rank_fusion([[], []], k=60) == []


def test_an_empty_second_list_leaves_the_first_as_is():
    # hybrid recall when BM25 finds nothing: the dense order survives
    assert [item for item, _ in reciprocal_rank_fusion([[9, 8, 7], []])] == [9, 8, 7]
