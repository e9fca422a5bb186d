"""The validation grid that chose the neighbour baselines' defaults (``models/neighbours.py``).

Each setting is fitted on a definition's train split and scored on its timeline validation stream
only (never test); the default is the setting with the best mean validation Recall@20, ranked among
all candidates (what the trainer selects GRU4Rec's epochs on), over the definitions run. Needs the
preprocess job's tables in the lake, e.g. ``SBR_ML1M_DIR=../shared/data/ml-1m dg launch --job
preprocess``.

Usage: ``.venv/bin/python bench/tune_neighbours.py [--lake data_lake] [--definitions user,gap_1h]
[--models sknn,vsknn,stan,recent_pop]``. Prints one line per (definition, model, setting), then
``best_<model>=<settings>`` lines.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import polars as pl

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.evaluation import metrics, streams
from sbr_dagster.lake import layout
from sbr_dagster.models import registry


def grid(**axes: tuple) -> list[dict]:
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


DAY_S = 86_400
GRIDS = {
    "recent_pop": grid(days=(7, 30, 90, 365)),
    "sknn": [*grid(k=(50, 100, 500), sample_size=(500, 5000)), {"similarity": "jaccard"}],
    "vsknn": grid(
        k=(100, 500), sample_size=(500, 5000), weighting=("linear", "quadratic"), idf_weighting=(False, True)
    ),
    "stan": [
        {"k": 100, "lambda_position": 1.02, "lambda_time_s": 5 * DAY_S, "lambda_neighbour": 2.05},
        {"k": 100, "lambda_position": 20, "lambda_time_s": 50 * DAY_S, "lambda_neighbour": 10},
        {"k": 500, "lambda_position": 1.02, "lambda_time_s": 5 * DAY_S, "lambda_neighbour": 2.05},
        {"k": 100, "lambda_position": 5, "lambda_time_s": 5 * DAY_S, "lambda_neighbour": 2.05},
        {"k": 100, "lambda_position": 1.02, "lambda_time_s": 50 * DAY_S, "lambda_neighbour": 2.05},
        {"k": 100, "lambda_position": 1.02, "lambda_time_s": 5 * DAY_S, "lambda_neighbour": 10},
        {"k": 500, "lambda_position": 5, "lambda_time_s": 50 * DAY_S, "lambda_neighbour": 5},
    ],
}


def validation(lake: Path, definition: str) -> tuple[Sessions, object, int]:
    def table(*key: str) -> pl.DataFrame:
        return pl.read_parquet(layout.table_path(lake, key))

    item_index = table(*layout.definition_key(definition, layout.ITEM_INDEX))
    train = Sessions.of(table(*layout.definition_key(definition, "train")), item_index)
    stream = streams.split_streams(
        streams.TIMELINE, definition, tables={}, item_index=item_index,
        ratings=table(layout.RAW, "ratings"), cuts=table(*layout.CUTS),
        targets=table(*layout.TARGETS), min_rating=None, parts=("valid",),
    )["valid"]  # fmt: skip
    return train, stream, item_index.height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, default=Path("data_lake"))
    parser.add_argument("--definitions", default="user,gap_1h")
    parser.add_argument("--models", default=",".join(GRIDS))
    args = parser.parse_args()
    names = [name for name in args.models.split(",") if name]
    scores: dict[tuple[str, str], list[float]] = {}
    for definition in args.definitions.split(","):
        train, stream, n_items = validation(args.lake, definition)
        for name in names:
            for settings in GRIDS[name]:
                model = registry.build(name, settings)
                started = time.perf_counter()
                model.fit(train, n_items)
                ranks, unseen = model.rank_replay(stream)
                recall = metrics.recall_at(ranks, 20)
                scores.setdefault((name, json.dumps(model.config.to_dict())), []).append(recall)
                print(
                    f"{definition} {name} {settings}: valid recall@20 {recall:.4f} (unseen "
                    f"{metrics.recall_at(unseen, 20):.4f}), {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
    for name in names:
        mine = {
            settings: sum(values) / len(values)
            for (model, settings), values in scores.items()
            if model == name
        }
        print(f"best_{name}={max(mine, key=mine.__getitem__)}")


if __name__ == "__main__":
    main()
