"""``both_ranks``, the compiled form of the ranking rule, against its array form ``target_ranks``."""

import numpy as np
import pytest

from sbr_dagster.models.ranking import both_ranks, popularity_order, target_ranks


def masked_ranks(scores, targets, seen, tie_order=None):
    """The unseen ranking by definition: seen candidates pushed below every finite target."""
    return target_ranks(np.where(seen, -np.inf, scores), targets, tie_order)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_ties", [False, True])
def test_both_ranks_match_the_array_rule(dtype, with_ties):
    rng = np.random.default_rng(7)
    # Few distinct values, so ties with the target are common; a NaN row and NaN cells too.
    scores = rng.integers(0, 5, size=(300, 40)).astype(dtype)
    scores[3] = np.nan
    scores[5, ::3] = np.nan
    targets = rng.integers(0, 40, size=300)
    seen = rng.random((300, 40)) < 0.3
    seen[np.arange(300), targets] = False  # a target is never excluded from its own ranking
    tie_order = popularity_order(rng.integers(0, 9, size=40)) if with_ties else None
    ranks, unseen = both_ranks(scores, targets, seen, tie_order)
    np.testing.assert_array_equal(ranks, target_ranks(scores, targets, tie_order))
    finite = ~np.isnan(scores[np.arange(300), targets])
    np.testing.assert_array_equal(unseen[finite], masked_ranks(scores, targets, seen, tie_order)[finite])
    assert (unseen <= ranks).all() and (unseen[finite] >= 1).all()
    assert ranks[3] == 0 == unseen[3]  # a NaN target counts nothing at or above it, as in NumPy


def test_both_ranks_count_only_seen_candidates_at_or_above():
    scores = np.array([[0.9, 0.5, 0.7, 0.1]])
    seen = np.array([[True, False, False, True]])
    ranks, unseen = both_ranks(scores, np.array([1]), seen)
    assert ranks.tolist() == [3] and unseen.tolist() == [2]  # 0.9 was seen; 0.1 is below anyway


def test_both_ranks_reject_a_mask_of_another_shape():
    with pytest.raises(ValueError, match="must pair"):
        both_ranks(np.zeros((2, 3)), np.array([0, 1]), np.zeros((2, 4), dtype=bool))
