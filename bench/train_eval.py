"""Benchmark GRU4Rec training and full-ranking evaluation on the real MovieLens 1M.

Builds the user-as-session split the pipeline uses (parse -> sessions "user" -> cleanse -> last
30 days test, 30 days before that valid), trains the default configuration for ``--epochs``
epochs (validation each epoch, as in the pipeline), then ranks every test prediction against
all items. Training speed counts every training event over the epochs' wall time (schedule
building and the first call's graph tracing included, validation excluded); evaluation speed is
test predictions over the model's ``rank`` wall time, the median of ``--eval-repeats`` runs (the
ranking graph is already traced by the validation of each epoch). A speed target, never a test.

Usage: ``.venv/bin/python bench/train_eval.py [--epochs N] [--eval-repeats R] [--set key=value ...]``;
data from
``SBR_ML1M_DIR`` (default ``../shared/data/ml-1m`` beside the repository). Figures come last as
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--eval-repeats", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="GRU4RecConfig overrides")
    args = parser.parse_args()

    from sbr_dagster.data.arrays import Sessions
    from sbr_dagster.evaluation import metrics
    from sbr_dagster.models import registry
    from sbr_dagster.training import trainer

    split = user_split(data_dir("bench/train_eval.py"))
    overrides = {key: ast.literal_eval(value) for key, value in (item.split("=", 1) for item in args.set)}
    model = registry.build(registry.PRIMARY, {"epochs": args.epochs, **overrides})
    n_items = split.item_index.height
    train, valid = (Sessions.of(frame, split.item_index) for frame in (split.train, split.valid))
    fit = trainer.fit(model, train, n_items, valid)

    test = Sessions.of(split.test, split.item_index)
    timings = []
    for _ in range(max(args.eval_repeats, 1)):
        started = time.perf_counter()
        ranks = model.rank(test)
        timings.append(time.perf_counter() - started)
    eval_s = statistics.median(timings)

    print(f"device={fit.device}")
    print(f"train_events={split.train.height} items={n_items} epochs={len(fit.history)}")
    for row in fit.history:
        print(f"epoch_{row['epoch']}_events_per_s={row['events_per_s']:.0f}")
    runs = ", ".join(f"{t:.3f}" for t in timings)
    print(f"test_predictions={len(ranks)} eval_s={eval_s:.3f} (runs: {runs})")
    print(f"test_recall_20={metrics.recall_at(ranks, 20):.4f} test_mrr_20={metrics.mrr_at(ranks, 20):.4f}")
    print(f"train_events_per_s={fit.events_per_s:.0f}")
    print(f"eval_predictions_per_s={len(ranks) / eval_s:.0f}")


if __name__ == "__main__":
    main()
