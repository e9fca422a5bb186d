"""Experiment declarations: the packaged sweep covers what the study asks for; mistakes fail at load."""

import pytest

from sbr_dagster.errors import InputDataError
from sbr_dagster.experiments.declarations import load_experiments, parse_experiments
from sbr_dagster.models.gru4rec.config import GRU4RecConfig
from sbr_dagster.settings import DEFAULT_DEFINITIONS


def test_packaged_sweep_covers_the_study():
    experiments = load_experiments()
    by_name = {e.name: e for e in experiments}
    definitions = {e.definition for e in experiments}
    assert set(DEFAULT_DEFINITIONS) <= definitions
    default = GRU4RecConfig()
    plain = [e for e in experiments if e.definition == "user" and e.compare_to is not None]
    grus = [e for e in experiments if e.model == "gru4rec"]
    assert {len(e.config.layers) for e in grus} >= {1, 2}
    assert len({e.config.layers[0] for e in grus if len(e.config.layers) == 1}) >= 3
    assert len({(e.config.dropout_embedding, e.config.dropout_hidden) for e in grus}) >= 2
    assert {e.config.loss for e in grus} == {"cross_entropy", "bpr_max"}
    assert any(e.definition.endswith("_r3") for e in experiments)
    # SASRec against GRU4Rec on the same definition, and its blocks, width, context and dropout.
    attention = [e for e in experiments if e.model == "sasrec"]
    assert any(by_name[e.compare_to].model == "gru4rec" for e in attention if e.compare_to)
    for setting in ("blocks", "dim", "max_len", "dropout"):
        assert len({getattr(e.config, setting) for e in attention}) >= 2, setting
    rating_aware = [e for e in grus if e.config.rating_dim > 0]
    assert rating_aware and all(by_name[e.compare_to].definition == e.definition for e in rating_aware)
    assert all(e.compare_to in by_name for e in plain)
    assert default.rating_dim == 0


def test_defaults_then_experiment_settings_override_the_model_defaults():
    [experiment] = parse_experiments(
        {
            "defaults": {"gru4rec": {"epochs": 3, "layers": [10]}},
            "experiments": [{"name": "a", "definition": "gap_1h", "settings": {"layers": [20]}}],
        },
        "inline",
    )
    assert experiment.config.epochs == 3
    assert experiment.config.layers == (20,)
    assert experiment.config.batch_size == GRU4RecConfig().batch_size
    assert experiment.model == "gru4rec"


def test_an_experiment_names_its_model_and_gets_that_models_defaults():
    [experiment] = parse_experiments(
        {
            "defaults": {"gru4rec": {"epochs": 3}, "sr": {"steps": 4}},
            "experiments": [{"name": "a", "definition": "user", "model": "sr"}],
        },
        "inline",
    )
    assert experiment.model == "sr" and experiment.config.steps == 4


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"experiments": []}, "non-empty list"),
        ({"experiments": [{"name": "a"}]}, "'name' and 'definition'"),
        ({"experiments": [{"name": "a b", "definition": "user"}]}, "letters, digits"),
        ({"experiments": [{"name": "a", "definition": "gap_soon"}]}, "gap_soon"),
        ({"experiments": [{"name": "a", "definition": "user", "settings": {"layerz": [1]}}]}, "layerz"),
        ({"experiments": [{"name": "a", "definition": "user", "settings": {"loss": "mse"}}]}, "mse"),
        ({"experiments": [{"name": "a", "definition": "user", "model": "rnn"}]}, "model must be one of"),
        ({"experiments": [{"name": "a", "definition": "user", "model": {"layers": [1]}}]}, "model must be"),
        ({"defaults": {"epochs": 4}, "experiments": [{"name": "a", "definition": "user"}]}, "defaults"),
        ({"experiments": [{"name": "a", "definition": "user", "colour": 1}]}, "colour"),
        (
            {"experiments": [{"name": "a", "definition": "user"}, {"name": "a", "definition": "user"}]},
            "unique",
        ),
        ({"experiments": [{"name": "a", "definition": "user", "compare_to": "b"}]}, "unknown experiment 'b'"),
    ],
)
def test_mistakes_are_reported_with_the_experiment(document, message):
    with pytest.raises(InputDataError, match=message):
        parse_experiments(document, "sweep.yaml")


def test_subset_by_name_and_by_environment(monkeypatch, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "experiments:\n  - {name: a, definition: user}\n  - {name: b, definition: gap_1h}\n"
        "  - {name: c, definition: gap_1d}\n"
    )
    assert [e.name for e in load_experiments(path, only=["c", "a"])] == ["a", "c"]
    monkeypatch.setenv("SBR_SWEEP_ONLY", "b")
    assert [e.name for e in load_experiments(path)] == ["b"]
    with pytest.raises(InputDataError, match="unknown experiments"):
        load_experiments(path, only=["zzz"])


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        load_experiments(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("experiments: [\n")
    with pytest.raises(InputDataError, match="not valid YAML"):
        load_experiments(broken)
