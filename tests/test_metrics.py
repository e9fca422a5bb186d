import numpy as np
import pytest

from sbr_dagster.evaluation.metrics import bootstrap_ci, mrr_at, recall_at
from sbr_dagster.models.ranking import target_ranks


def test_ties_with_the_target_count_against_the_model():
    scores = np.array([[0.5, 0.9, 0.5, 0.1]] * 4)
    ranks = target_ranks(scores, np.array([0, 1, 2, 3]))
    assert ranks.tolist() == [3, 1, 3, 4]


def test_recall_and_mrr_on_known_ranks():
    ranks = np.array([1, 3, 25, 2])
    assert recall_at(ranks, 1) == 0.25
    assert recall_at(ranks, 5) == 0.75
    assert recall_at(ranks, 25) == 1.0
    assert mrr_at(ranks, 5) == pytest.approx((1 + 1 / 3 + 1 / 2) / 4)
    assert mrr_at(ranks, 2) == pytest.approx((1 + 1 / 2) / 4)
    assert mrr_at(ranks, 30) == pytest.approx((1 + 1 / 3 + 1 / 25 + 1 / 2) / 4)


def _synthetic(n_sessions: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 12, n_sessions)
    session = np.repeat(np.arange(n_sessions), lengths)
    ranks = rng.geometric(0.08, session.size)
    return ranks, session


def test_bootstrap_interval_contains_the_point_estimate():
    ranks, session = _synthetic(300, seed=1)
    ci = bootstrap_ci(ranks, session, 20, n_boot=500, seed=0)
    assert ci["recall"][0] < recall_at(ranks, 20) < ci["recall"][1]
    assert ci["mrr"][0] < mrr_at(ranks, 20) < ci["mrr"][1]


def test_bootstrap_is_deterministic_by_seed():
    ranks, session = _synthetic(200, seed=2)
    first = bootstrap_ci(ranks, session, 20, n_boot=300, seed=7)
    assert bootstrap_ci(ranks, session, 20, n_boot=300, seed=7) == first
    assert bootstrap_ci(ranks, session, 20, n_boot=300, seed=8) != first


def test_bootstrap_narrows_with_more_sessions():
    def width(n_sessions: int) -> float:
        ranks, session = _synthetic(n_sessions, seed=3)
        low, high = bootstrap_ci(ranks, session, 20, n_boot=400, seed=0)["recall"]
        return high - low

    assert width(2000) < width(50) / 3


def test_bootstrap_widens_with_the_level():
    ranks, session = _synthetic(300, seed=4)
    narrow = bootstrap_ci(ranks, session, 20, n_boot=500, seed=0, level=0.8)["mrr"]
    wide = bootstrap_ci(ranks, session, 20, n_boot=500, seed=0, level=0.99)["mrr"]
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_bootstrap_resamples_sessions_not_predictions():
    # Every session holds one hit and one miss: any draw of sessions has recall exactly 0.5,
    # while resampling single predictions would scatter around it.
    ranks = np.tile([1, 100], 50)
    session = np.repeat(np.arange(50), 2)
    assert bootstrap_ci(ranks, session, 20, n_boot=200, seed=0)["recall"] == (0.5, 0.5)


def test_bootstrap_weights_sessions_by_their_predictions():
    # A replicate is a ratio over predictions: drawing both sessions gives 9/10, not the mean
    # of the session recalls (0.5); the middle of the replicate distribution shows which.
    ranks = np.array([1] * 9 + [50])
    session = np.array([0] * 9 + [1])
    low, high = bootstrap_ci(ranks, session, 20, n_boot=400, seed=0)["recall"]
    assert low == 0.0 and high == 1.0
    assert bootstrap_ci(ranks, session, 20, n_boot=400, seed=0, level=0.4)["recall"] == (0.9, 0.9)


def test_bootstrap_rejects_unpaired_inputs():
    with pytest.raises(ValueError, match="pair"):
        bootstrap_ci(np.array([1, 2, 3]), np.array([0, 0]), 20)
