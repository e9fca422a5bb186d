"""What the comparison asks: definitions against user, and every structure against every baseline."""

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
