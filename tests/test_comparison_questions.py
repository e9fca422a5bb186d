"""What the comparison asks: definitions against user, and every structure against every baseline."""

import numpy as np
import polars as pl

from sbr_dagster.evaluation import comparison


def test_every_trained_model_faces_every_baseline_and_the_primary_every_model():
    models = ["gru4rec", "sasrec", "pop", "sr"]
    asked = comparison.questions(["user", "gap_1h"], models, "gru4rec", ("gru4rec", "sasrec"))
    pairs = [(q.topic, q.a, q.b) for q in asked]
    assert ("session definition", ("gap_1h", "gru4rec"), ("user", "gru4rec")) in pairs
    for variant in ("user", "gap_1h"):
        assert ("model", (variant, "gru4rec"), (variant, "sasrec")) in pairs
        for baseline in ("pop", "sr"):
            assert ("model", (variant, "gru4rec"), (variant, baseline)) in pairs
            assert ("model", (variant, "sasrec"), (variant, baseline)) in pairs
    assert len(pairs) == len(set(pairs)) == 1 + 2 * (3 + 2)  # each pair once, never both ways


def test_without_other_trained_models_the_primary_faces_every_other_model():
    asked = comparison.questions(["user"], ["gru4rec", "pop", "sr"], "gru4rec")
    assert [(q.a, q.b) for q in asked] == [
        (("user", "gru4rec"), ("user", "pop")),
        (("user", "gru4rec"), ("user", "sr")),
    ]


def ranks_of(variant_models: dict[str, list[str]], groups) -> dict:
    """Ranks tables where model i ranks every target at i + 1 (a lower index is better)."""
    rows = {}
    for variant, models in variant_models.items():
        frames = [
            pl.DataFrame(
                {
                    "split": "test", "model": model, "target": np.arange(len(groups)), "group": groups,
                    "liked": np.arange(len(groups)) % 2 == 0, "rank": i * 30 + 1, "rank_unseen": i * 30 + 1,
                }
            )
            for i, model in enumerate(models)
        ]  # fmt: skip
        rows[variant] = pl.concat(frames)
    return rows


def test_off_the_timeline_only_a_definitions_own_models_pair_with_its_sessions_as_the_unit():
    groups = np.repeat(np.arange(6), 5).astype(np.int32)  # 6 sessions of 5 predictions
    ranks = ranks_of({"user": ["gru4rec", "pop"], "gap_1h": ["gru4rec", "pop"]}, groups)
    asked = comparison.questions(["user", "gap_1h"], ["gru4rec", "pop"], "gru4rec")
    targets = pl.DataFrame({"split": "test", "line": np.arange(30), "user_id": groups // 3})
    on_timeline = comparison.protocol_findings(ranks, targets, asked, True, n_boot=50)
    assert "session definition" in set(on_timeline["topic"])
    found = comparison.protocol_findings(ranks, None, asked, False, n_boot=50)
    assert set(found["topic"]) == {"model"}
    assert set(zip(found["a"], found["b"], strict=True)) == {
        ("user/gru4rec", "user/pop"),
        ("gap_1h/gru4rec", "gap_1h/pop"),
    }
    assert (found["recall_a"] == 1.0).all() and (found["recall_b"] == 0.0).all()
    assert comparison.protocol_findings(ranks, None, asked[:1], False) is None  # only a definition question
