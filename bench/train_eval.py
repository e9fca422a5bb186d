"""Benchmark the trained models' (GRU4Rec, SASRec) training and full-ranking evaluation on ML-1M.

Builds the user-as-session split the pipeline uses (parse -> sessions "user" -> cleanse -> last
30 days test, 30 days before that valid), trains each model's defaults for ``--epochs``
epochs, one model after the other in the same run (validation each epoch, as in the pipeline),
then ranks every test prediction against all items. Training speed counts every training event
over the epochs' wall time (batch building and the first call's graph tracing included,
validation excluded); evaluation speed is test predictions over the model's ``rank`` wall time,
the median of ``--eval-repeats`` runs (the
ranking graph is already traced by the validation of each epoch). A speed target, never a test.

Usage: ``.venv/bin/python bench/train_eval.py [--epochs N] [--eval-repeats R] [--models gru4rec,sasrec]
[--set [model.]key=value ...]``; data from ``SBR_ML1M_DIR`` (default ``../shared/data/ml-1m``
beside the repository). Figures come last as
``key=value`` lines.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import time
from pathlib import Path

from common import data_dir


def user_split(directory: Path):
    """The pipeline's user-as-session days split (30 / 30 days)."""
    from sbr_dagster.data import cleansing, parsing, sessions, splitting

    ratings, _ = parsing.drop_duplicate_ratings(parsing.read_ratings(directory / "ratings.dat"))
    cleansed, _ = cleansing.cleanse(sessions.sessionize(ratings, sessions.parse_definition("user")))
    return splitting.split_by_days(cleansed)


def overrides_by_model(items: list[str], models: list[str]) -> dict[str, dict]:
    """``--set`` items: ``model.key=value`` for one model, a bare ``key=value`` for the first."""
    settings: dict[str, dict] = {name: {} for name in models}
    for item in items:
        key, value = item.split("=", 1)
        name, _, field = key.rpartition(".")
        settings.setdefault(name or models[0], {})[field] = ast.literal_eval(value)
    return settings


def measure(name: str, settings: dict, split, epochs: int, repeats: int) -> dict[str, object]:
    """Train ``name`` (validation each epoch) and time its ranking of every test prediction."""
    from sbr_dagster.data.arrays import Sessions
    from sbr_dagster.evaluation import metrics
    from sbr_dagster.models import registry
    from sbr_dagster.training import trainer

    model = registry.build(name, {"epochs": epochs, **settings})
    n_items = split.item_index.height
    train, valid, test = (Sessions.of(f, split.item_index) for f in (split.train, split.valid, split.test))
    fit = trainer.fit(model, train, n_items, valid)
    timings = []
    for _ in range(max(repeats, 1)):
        started = time.perf_counter()
        ranks = model.rank(test)
        timings.append(time.perf_counter() - started)
    eval_s = statistics.median(timings)
    return {
        "device": fit.device,
        "epochs": len(fit.history),
        "history": fit.history,
        "runs": timings,
        "eval_s": eval_s,
        "ranks": ranks,
        "recall": metrics.recall_at(ranks, 20),
        "mrr": metrics.mrr_at(ranks, 20),
        "train_events_per_s": fit.events_per_s,
        "eval_predictions_per_s": len(ranks) / eval_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--eval-repeats", type=int, default=3)
    parser.add_argument("--models", default="gru4rec,sasrec", help="comma-separated trained models")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="[MODEL.]KEY=VALUE", help="settings (bare: the first model)"
    )
    args = parser.parse_args()
    models = args.models.split(",")
    split = user_split(data_dir("bench/train_eval.py"))
    settings = overrides_by_model(args.set, models)
    results = {name: measure(name, settings[name], split, args.epochs, args.eval_repeats) for name in models}

    print(f"train_events={split.train.height} items={split.item_index.height}")
    for name, result in results.items():
        print(f"{name}: device={result['device']} epochs={result['epochs']} settings={settings[name]}")
        for row in result["history"]:
            print(f"{name}_epoch_{row['epoch']}_events_per_s={row['events_per_s']:.0f}")
        runs = ", ".join(f"{t:.3f}" for t in result["runs"])
        print(f"{name}: test_predictions={len(result['ranks'])} eval_s={result['eval_s']:.3f} (runs: {runs})")
        print(f"{name}_test_recall_20={result['recall']:.4f} {name}_test_mrr_20={result['mrr']:.4f}")
    for name, result in results.items():
        # The primary model keeps its historical, unprefixed names too.
        prefixes = [f"{name}_"] + ([""] if name == models[0] == "gru4rec" else [])
        for prefix in prefixes:
            print(f"{prefix}train_events_per_s={result['train_events_per_s']:.0f}")
            print(f"{prefix}eval_predictions_per_s={result['eval_predictions_per_s']:.0f}")


if __name__ == "__main__":
    main()
