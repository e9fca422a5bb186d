"""Paired differences and the words the leaderboard uses for them."""

import numpy as np
import polars as pl

from sbr_dagster.evaluation import metrics
from sbr_dagster.experiments import leaderboard
from sbr_dagster.experiments.declarations import parse_experiments
from sbr_dagster.models import registry


def test_difference_of_a_model_with_itself_is_exactly_zero():
    rng = np.random.default_rng(0)
    ranks = rng.integers(1, 100, size=500)
    sessions = np.repeat(np.arange(100), 5)
    assert metrics.difference_ci(ranks, ranks, sessions, 20) == {"recall": (0.0, 0.0), "mrr": (0.0, 0.0)}


def test_paired_difference_detects_a_small_consistent_gain_that_separate_intervals_miss():
    rng = np.random.default_rng(1)
    sessions = np.repeat(np.arange(300), 4)
    base = rng.integers(1, 60, size=sessions.size)
    better = base.copy()
    better[rng.random(sessions.size) < 0.03] = 1  # a few more hits at rank 1
    low, high = metrics.difference_ci(better, base, sessions, 20, seed=3)["recall"]
    assert 0 < low <= high
    separate_a = metrics.bootstrap_ci(better, sessions, 20, seed=3)["recall"]
    separate_b = metrics.bootstrap_ci(base, sessions, 20, seed=3)["recall"]
    assert separate_a[0] < separate_b[1], "unpaired intervals overlap, the paired one does not"


def test_verdicts():
    assert leaderboard.verdict(0.01, 0.02) == "helped"
    assert leaderboard.verdict(-0.02, -0.01) == "hurt"
    assert leaderboard.verdict(-0.01, 0.02) == "no clear difference"


def metrics_table(recall: float, mrr: float, low: float, high: float) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "definition": ["d"],
            "protocol": ["timeline"],
            "split": ["test"],
            "model": ["gru4rec"],
            "ranking": ["all"],
            "slice": ["all"],
            "k": [20],
            "recall": [recall],
            "mrr": [mrr],
            "n_predictions": [10],
            "recall_ci_low": [low],
            "recall_ci_high": [high],
            "mrr_ci_low": [mrr - 0.01],
            "mrr_ci_high": [mrr + 0.01],
        }
    )


def test_leaderboard_rows_and_findings():
    experiments = parse_experiments(
        {
            "experiments": [
                {"name": "base", "definition": "user"},
                {"name": "same_split", "definition": "user", "compare_to": "base", "change": "wider"},
                {
                    "name": "other_split",
                    "definition": "user_r3",
                    "compare_to": "base",
                    "change": "liked only",
                },
            ]
        },
        "inline",
    )
    tables = {
        "base": metrics_table(0.20, 0.05, 0.18, 0.22),
        "same_split": metrics_table(0.25, 0.07, 0.23, 0.27),
        "other_split": metrics_table(0.21, 0.05, 0.17, 0.25),
    }
    board = leaderboard.leaderboard_frame(experiments, tables, {"base": {"best_epoch": 3}})
    assert board["experiment"].to_list() == ["same_split", "other_split", "base"]
    assert board.filter(pl.col("experiment") == "base")["best_epoch"].item() == 3

    def ranks(rank: int, first_target: int = 0) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "target": np.arange(first_target, first_target + 10),
                "group": np.arange(10),
                "liked": np.arange(10) % 2 == 0,
                "rank": np.full(10, rank),
                "rank_unseen": np.full(10, rank),
            }
        )

    test_ranks = {"base": ranks(30), "same_split": ranks(1), "other_split": ranks(5, first_target=100)}
    found = {
        row["experiment"]: row
        for row in leaderboard.findings(experiments, board, test_ranks).iter_rows(named=True)
    }
    # Only the (all, all) view is in these tables: one finding per comparison.
    assert [
        row["experiment"]
        for row in leaderboard.findings(experiments, board, test_ranks).iter_rows(named=True)
    ] == ["same_split", "other_split"]
    assert found["same_split"]["paired"] and found["same_split"]["verdict"] == "helped"
    assert "all targets, ranked among all movies" in found["same_split"]["sentence"]
    assert not found["other_split"]["paired"]
    assert found["other_split"]["verdict"] == "no clear difference"  # 0.17..0.25 vs 0.18..0.22 overlap
    assert "unpaired" in found["other_split"]["sentence"]


def test_a_tuned_model_is_compared_with_the_sweeps_experiment_closest_to_its_defaults():
    experiments = parse_experiments(
        {
            "defaults": {"gru4rec": {"epochs": 4}},
            "experiments": [
                {"name": "user_layers_2", "definition": "user", "settings": {"layers": [100, 100]}},
                {"name": "user_default", "definition": "user"},
                {"name": "user_again", "definition": "user"},
                {"name": "gap_1h_default", "definition": "gap_1h"},
            ],
        },
        "experiments.yaml",
    )
    config = registry.make_config("gru4rec", {"layers": [200], "learning_rate": 0.005})
    tuned = leaderboard.tuned_experiment("user", "gru4rec", config, experiments)
    assert (tuned.name, tuned.compare_to, tuned.config) == ("user_gru4rec_tuned", "user_default", config)
    assert tuned.change == leaderboard.TUNED_CHANGE
    # No SASRec in the sweep: a row without a comparison.
    sasrec = leaderboard.tuned_experiment("user", "sasrec", registry.make_config("sasrec"), experiments)
    assert sasrec.compare_to is None
