"""Tuning on validation: the search space is checked on load, trials are seeded, test is never read."""

from __future__ import annotations

import pytest
from test_model_interface import N_ITEMS, walk

from sbr_dagster.data import timeline
from sbr_dagster.errors import InputDataError
from sbr_dagster.experiments import search_space, tuning
from sbr_dagster.models import registry
from sbr_dagster.training import trainer


def test_the_packaged_search_space_loads_and_every_model_in_it_is_known():
    space = search_space.load_search_space()
    assert set(space.models) <= set(registry.MODELS)
    assert {"gru4rec", "sasrec", "sknn", "vsknn", "stan"} <= set(space.models)
    assert space.trials >= 1 and space.wall_s > 0


@pytest.mark.parametrize(
    "models,message",
    [
        ({"gru5rec": {"epochs": {"fixed": 2}}}, "models.gru5rec: unknown model"),
        ({"sr": {"stepz": {"low": 1, "high": 3}}}, "models.sr.stepz: sr has no such setting"),
        ({"sr": {"steps": {"low": 0, "high": 3}}}, "models.sr.steps: 0 is refused"),
        ({"sr": {"steps": {"low": 5, "high": 3}}}, "models.sr.steps needs numbers low <= high"),
        ({"sr": {"steps": {"choices": []}}}, "models.sr.steps.choices must be a non-empty list"),
        ({"sr": {"steps": {"lo": 1}}}, "models.sr.steps: unknown keys ['lo']"),
        ({"recent_pop": {"days": {"low": 0.0, "high": 3.0, "log": True}}}, "a log range must start above 0"),
    ],
)
def test_a_bad_search_space_is_one_line_naming_the_key(models, message):
    with pytest.raises(InputDataError) as error:
        search_space.parse_search_space({"models": models}, "space.yaml")
    assert message in str(error.value) and str(error.value).startswith("space.yaml")
    assert "\n" not in str(error.value)


def replay_of(seed: int) -> timeline.Replay:
    return timeline.Replay.of_sessions(walk(12, seed))


SPACE = {
    "budget": {"trials": 4, "wall_s": 600},
    "models": {
        "sr": {"steps": {"low": 1, "high": 6}},
        "gru4rec": {
            "layers": {"choices": [[4], [8]]},
            "learning_rate": {"low": 0.005, "high": 0.05, "log": True},
            "epochs": {"fixed": 3},
            "batch_size": {"fixed": 4},
        },
    },
}


@pytest.mark.parametrize("model", ["sr", "gru4rec"])
def test_trials_are_scored_on_validation_and_the_best_one_is_kept(model):
    space = search_space.parse_search_space(SPACE, "space.yaml")
    train, valid = walk(40, 0), replay_of(1)
    heard = []
    result = tuning.tune(model, space, train, N_ITEMS, valid, seed=3, log=heard.append)
    trials = result.trials
    assert trials.height == 4 and set(trials["state"]) <= {"complete", "pruned"}
    if model in registry.TRAINED:  # each epoch of a trial is said as it ends, with its trial's number
        assert any(line.startswith("trial 0: epoch 1: loss") for line in heard)
    complete = trials.filter(trials["state"] == "complete")
    best = complete.sort(["valid_recall_20", "valid_mrr_20"], descending=True).row(0, named=True)
    assert result.best_value == best["valid_recall_20"]
    # The best settings, refitted, score what their trial scored on validation.
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in result.best_settings.items()}
    refit = registry.build(model, settings)
    fit = trainer.fit(refit, train, N_ITEMS, valid, log=lambda _: None)
    recall = (
        max(h[trainer.VALID_RECALL] for h in fit.history)
        if fit.history
        else trainer.validation_scores(refit, valid)[0]
    )
    assert recall == pytest.approx(result.best_value)
    for parameter in space.of(model):
        if parameter.low is not None:
            assert complete[parameter.name].is_between(parameter.low, parameter.high).all()
    again = tuning.tune(model, space, train, N_ITEMS, valid, seed=3, log=lambda _: None)
    assert again.trials.drop("seconds").equals(trials.drop("seconds"))
    assert again.best_settings == result.best_settings


def test_the_trainer_reports_every_epoch_and_a_raised_report_stops_the_fit():
    heard = []
    model = registry.build("gru4rec", {"layers": [4], "batch_size": 4, "epochs": 3})
    trainer.fit(
        model, walk(30, 0), N_ITEMS, replay_of(1), log=lambda _: None, report=lambda *a: heard.append(a)
    )
    assert [epoch for epoch, _ in heard] == [1, 2, 3]
    assert all(0.0 <= recall <= 1.0 for _, recall in heard)

    class Stop(Exception):
        pass

    def stop(epoch, recall):
        raise Stop

    with pytest.raises(Stop):
        trainer.fit(registry.build("gru4rec", {"layers": [4], "batch_size": 4, "epochs": 3}), walk(30, 0),
                    N_ITEMS, replay_of(1), log=lambda _: None, report=stop)  # fmt: skip


def test_tuning_questions_pair_each_tuned_model_with_its_default_and_structures_with_each_other():
    asked = tuning.tuning_questions(
        ["user", "gap_1h"], ("gru4rec", "sasrec", "sr"), {"user": ("gru4rec", "sasrec", "sr", "pop")}
    )
    pairs = {(q.topic, q.a, q.b) for q in asked}
    assert pairs == {
        ("tuning", ("user", "gru4rec_tuned"), ("user", "gru4rec")),
        ("tuning", ("user", "sasrec_tuned"), ("user", "sasrec")),
        ("tuning", ("user", "sr_tuned"), ("user", "sr")),
        *(
            ("tuned model", (v, a), (v, b))
            for v in ("user", "gap_1h")
            for a, b in [
                ("gru4rec_tuned", "sasrec_tuned"),
                ("gru4rec_tuned", "sr_tuned"),
                ("sasrec_tuned", "sr_tuned"),
            ]
        ),
    }
    assert len(asked) == len(pairs)  # nothing asked twice


def test_the_first_trial_is_the_defaults_so_the_search_never_ends_below_them():
    space = search_space.parse_search_space(
        {"budget": {"trials": 3, "wall_s": 600}, "models": {"sr": {"steps": {"low": 2, "high": 12}}}},
        "s.yaml",
    )
    train, valid = walk(40, 0), replay_of(1)
    result = tuning.tune("sr", space, train, N_ITEMS, valid, seed=3, log=lambda _: None)
    first = result.trials.row(0, named=True)
    default = registry.build("sr")
    assert first["steps"] == default.config.steps
    default.fit(train, N_ITEMS)
    assert first["valid_recall_20"] == trainer.validation_scores(default, valid)[0] <= result.best_value


def test_defaults_outside_the_space_are_said_and_not_tried():
    heard = []
    space = search_space.parse_search_space(SPACE, "space.yaml")  # sr's default steps (10) lie outside 1..6
    assert tuning.default_trial("sr", space.of("sr"), {}) is None
    assert tuning.default_trial("sr", space.of("sr"), {"steps": 3}) == {"steps": 3}
    tuning.tune("sr", space, walk(40, 0), N_ITEMS, replay_of(1), trials=1, log=heard.append)
    assert "sr's defaults lie outside the search space: they are not tried first" in heard


def test_a_model_already_fitted_with_a_trials_settings_is_scored_not_trained_again():
    default_rate = registry.make_config("gru4rec").learning_rate
    fixed = {"layers": [8], "epochs": 2, "batch_size": 4}
    space = search_space.parse_search_space(
        {
            "budget": {"trials": 3, "wall_s": 600},
            "models": {
                "gru4rec": {
                    "learning_rate": {"choices": [default_rate, default_rate * 3, default_rate / 3]},
                    **{name: {"fixed": value} for name, value in fixed.items()},
                }
            },
        },
        "space.yaml",
    )
    train, valid = walk(40, 0), replay_of(1)
    searched = tuning.tune("gru4rec", space, train, N_ITEMS, valid, seed=3, log=lambda _: None)
    # The defaults trial's model fitted beforehand, as the main job fits it.
    known = registry.build("gru4rec", {**fixed, "learning_rate": default_rate})
    fit = trainer.fit(known, train, N_ITEMS, valid, log=lambda _: None)
    kept = {}
    reused = tuning.tune(
        "gru4rec", space, train, N_ITEMS, valid, seed=3, log=lambda _: None,
        keep=lambda trial, model, *_: kept.setdefault(trial, model),
        fitted=tuning.Fitted(known, fit, "user/gru4rec"),
    )  # fmt: skip
    # Every trial with its settings (TPE may draw them again) takes it; the others train their own.
    rule = [
        ("user/gru4rec" if rate == default_rate else tuning.TRIAL_FIT)
        for rate in reused.trials["learning_rate"]
    ]
    assert reused.trials["fitted_by"].to_list() == rule and rule[0] == "user/gru4rec"
    assert kept[0] is known  # scored as it was, never trained again
    # Same settings, seed and data: the same validation scores and the same search as training it there.
    assert reused.trials.drop("seconds", "fitted_by").equals(searched.trials.drop("seconds", "fitted_by"))
    other = registry.build("gru4rec", {**fixed, "layers": [4], "learning_rate": default_rate})
    elsewhere = tuning.tune(
        "gru4rec", space, train, N_ITEMS, valid, seed=3, trials=1, log=lambda _: None,
        fitted=tuning.Fitted(other, fit, "user/gru4rec"),
    )  # fmt: skip
    assert elsewhere.trials["fitted_by"].to_list() == [tuning.TRIAL_FIT]  # other settings: trained


def test_a_hopeless_trial_is_pruned_and_says_so(monkeypatch):
    """A trial whose validation curve falls below the median of earlier trials stops there, in the log too."""
    space = search_space.parse_search_space(
        {
            "budget": {"trials": 8, "wall_s": 600},
            "models": {"gru4rec": {"dropout_hidden": {"low": 0.0, "high": 0.5}}},
        },
        "space.yaml",
    )

    def fit(model, train, n_items, valid, *, log, report):  # validation Recall@20 falls with dropout
        history = []
        for epoch in (1, 2, 3):
            recall = 1.0 - model.config.dropout_hidden - 0.01 * epoch
            history.append({"epoch": epoch, trainer.VALID_RECALL: recall, trainer.VALID_MRR: 0.0})
            report(epoch, recall)
        return trainer.Training(history=history, best_epoch=1)

    monkeypatch.setattr(trainer, "fit", fit)
    heard = []
    result = tuning.tune("gru4rec", space, walk(4, 0), N_ITEMS, replay_of(1), seed=3, log=heard.append)
    pruned = result.trials.filter(result.trials["state"] == "pruned")
    assert pruned.height >= 1
    for row in pruned.iter_rows(named=True):
        assert f"trial {row['trial']}: pruned after epoch {row['epochs_run']}, valid Recall@20" in " ".join(
            heard
        )
        assert row["epochs_run"] < 3  # stopped before its last epoch
