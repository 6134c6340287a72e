"""Ranking metrics checked against values computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest

from qwen3_memory.ranking_metrics import dcg_at_k, ndcg_at_k, recall_at_k, reciprocal_rank

# ----------------------------------------------------------------------------------------------- recall@k


def test_recall_at_k_counts_relevant_ids_in_the_first_k():
    # ranked [7, 3, 9, 1, 5], relevant {3, 5}
    #   k = 1: [7]             -> 0 of 2 = 0.0
    #   k = 2: [7, 3]          -> 1 of 2 = 0.5
    #   k = 5: [7, 3, 9, 1, 5] -> 2 of 2 = 1.0
    ranked = [7, 3, 9, 1, 5]
    assert recall_at_k(ranked, {3, 5}, 1) == 0.0
    assert recall_at_k(ranked, {3, 5}, 2) == 0.5
    assert recall_at_k(ranked, {3, 5}, 5) == 1.0


def test_recall_at_k_with_fewer_results_than_k():
    # ranked [4], relevant {4, 8, 9}, k = 10: 1 of 3 = 0.3333
    assert recall_at_k([4], {4, 8, 9}, 10) == pytest.approx(1 / 3)


def test_a_repeated_id_counts_once():
    # ranked [3, 3, 3], relevant {3, 5}: 3 is found once -> 1 of 2 = 0.5, never 1.5
    assert recall_at_k([3, 3, 3], {3, 5}, 3) == 0.5


# ------------------------------------------------------------------------------------------ reciprocal rank


def test_reciprocal_rank_is_one_over_the_first_relevant_rank():
    # ranked [7, 3, 9, 5], relevant {9, 5}: first relevant is 9 at rank 3 -> 1/3
    assert reciprocal_rank([7, 3, 9, 5], {9, 5}) == pytest.approx(1 / 3)
    # first position: 1/1
    assert reciprocal_rank([9, 7], {9}) == 1.0


def test_reciprocal_rank_is_zero_when_nothing_relevant_is_found():
    assert reciprocal_rank([1, 2, 3], {4}) == 0.0
    assert reciprocal_rank([], {4}) == 0.0


def test_reciprocal_rank_with_a_cutoff():
    # relevant 9 at rank 3: within k = 3 -> 1/3; beyond k = 2 -> 0
    assert reciprocal_rank([7, 3, 9], {9}, k=3) == pytest.approx(1 / 3)
    assert reciprocal_rank([7, 3, 9], {9}, k=2) == 0.0


def test_repeats_do_not_push_later_results_down():
    # ranked [7, 7, 9]: after dropping the repeat, 9 is at rank 2 -> 1/2
    assert reciprocal_rank([7, 7, 9], {9}) == 0.5


# ----------------------------------------------------------------------------------------------------- DCG


def test_dcg_discounts_by_log2_of_rank_plus_one():
    # gains [3, 2, 0, 1]:
    #   3/log2(2) + 2/log2(3) + 0/log2(4) + 1/log2(5)
    #   = 3/1 + 2/1.5849625 + 0 + 1/2.3219281
    #   = 3 + 1.2618595 + 0.4306766 = 4.6925361
    assert dcg_at_k([3, 2, 0, 1], 4) == pytest.approx(4.6925361, abs=1e-6)
    # k = 2 keeps the first two terms: 3 + 1.2618595 = 4.2618595
    assert dcg_at_k([3, 2, 0, 1], 2) == pytest.approx(4.2618595, abs=1e-6)


# ---------------------------------------------------------------------------------------------- nDCG binary


def test_ndcg_binary_single_relevant_at_rank_three():
    # relevant {9}, ranked [7, 3, 9]: DCG = 1/log2(4) = 0.5; ideal DCG = 1/log2(2) = 1 -> 0.5
    assert ndcg_at_k([7, 3, 9], {9}, 10) == pytest.approx(0.5)


def test_ndcg_binary_two_relevant():
    # relevant {3, 5}, ranked [7, 3, 9, 5]
    #   DCG   = 1/log2(3) + 1/log2(5) = 0.6309298 + 0.4306766 = 1.0616064
    #   IDCG  = 1/log2(2) + 1/log2(3) = 1 + 0.6309298         = 1.6309298
    #   nDCG  = 1.0616064 / 1.6309298 = 0.6509209
    assert ndcg_at_k([7, 3, 9, 5], {3, 5}, 10) == pytest.approx(0.6509209, abs=1e-6)


def test_ndcg_cutoff_drops_results_past_k_but_not_from_the_ideal():
    # same lists, k = 2: DCG = 1/log2(3) = 0.6309298 (5 at rank 4 is cut);
    # IDCG@2 = 1 + 0.6309298 = 1.6309298 -> 0.6309298 / 1.6309298 = 0.3868528
    assert ndcg_at_k([7, 3, 9, 5], {3, 5}, 2) == pytest.approx(0.3868528, abs=1e-6)


def test_ndcg_is_one_for_the_ideal_order_and_zero_when_nothing_is_found():
    assert ndcg_at_k([3, 5, 7], {3, 5}, 10) == 1.0
    assert ndcg_at_k([5, 3, 7], {3, 5}, 10) == 1.0  # binary: both orders of the two relevant ids are ideal
    assert ndcg_at_k([1, 2], {3}, 10) == 0.0


def test_ndcg_ideal_order_is_truncated_at_k_too():
    # three relevant ids, k = 1, the first result relevant: DCG@1 = 1, IDCG@1 = 1 -> 1.0 (not 1/2.13)
    assert ndcg_at_k([4, 9], {4, 5, 6}, 1) == 1.0


# ---------------------------------------------------------------------------------------------- nDCG graded


def test_ndcg_graded_relevance_uses_linear_gains():
    # grades {a: 3, b: 2, c: 1}, ranked [c, x, a, b]
    #   DCG  = 1/log2(2) + 0/log2(3) + 3/log2(4) + 2/log2(5)
    #        = 1 + 0 + 1.5 + 0.8613531                       = 3.3613531
    #   IDCG = 3/log2(2) + 2/log2(3) + 1/log2(4)
    #        = 3 + 1.2618595 + 0.5                           = 4.7618595
    #   nDCG = 3.3613531 / 4.7618595                         = 0.7058909
    grades = {"a": 3, "b": 2, "c": 1}
    assert ndcg_at_k(["c", "x", "a", "b"], grades, 10) == pytest.approx(0.7058909, abs=1e-6)


def test_ndcg_graded_prefers_the_higher_grade_first():
    grades = {"a": 2, "b": 1}
    # [a, b]: (2 + 1/log2(3)) / same = 1.0
    # [b, a]: (1 + 2/log2(3)) / (2 + 1/log2(3)) = (1 + 1.2618595) / (2 + 0.6309298) = 2.2618595 / 2.6309298 = 0.8597187
    assert ndcg_at_k(["a", "b"], grades, 10) == 1.0
    assert ndcg_at_k(["b", "a"], grades, 10) == pytest.approx(0.8597187, abs=1e-6)


def test_graded_with_all_grades_one_equals_binary():
    ranked = [7, 3, 9, 5]
    assert ndcg_at_k(ranked, {3: 1, 5: 1}, 10) == pytest.approx(ndcg_at_k(ranked, {3, 5}, 10))


def test_zero_grades_are_not_relevant():
    # {3: 1, 7: 0}: 7 gains nothing and is not in the ideal list -> like binary {3}: 1/log2(3) / 1
    assert ndcg_at_k([7, 3], {3: 1, 7: 0}, 10) == pytest.approx(1 / math.log2(3))
    assert recall_at_k([7, 3], {3: 1, 7: 0}, 1) == 0.0


# -------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("relevant", [set(), {}, {"a": 0}])
def test_a_query_without_relevant_ids_is_refused(relevant):
    for metric in (
        lambda: recall_at_k([1], relevant, 1),
        lambda: reciprocal_rank([1], relevant),
        lambda: ndcg_at_k([1], relevant, 1),
    ):
        with pytest.raises(ValueError, match="relevant"):
            metric()


def test_k_below_one_is_refused():
    with pytest.raises(ValueError, match="k must be at least 1"):
        recall_at_k([1], {1}, 0)
    with pytest.raises(ValueError, match="k must be at least 1"):
        ndcg_at_k([1], {1}, 0)
