"""Variants of a model on one definition of the timeline protocol, each paired with the first.

Every variant is trained on the definition's train split with the pipeline's validation (best epoch
kept) and ranks the shared validation and test targets among all candidates and among the unseen
ones; each later variant is then paired with the first on the same predictions (viewers are the
bootstrap's unit), validation first: a change is kept only if validation says so, test confirms.

Usage: ``.venv/bin/python bench/timeline_pair.py --definition user --variants
no_gaps=gru4rec:gap_dim=0 gaps=gru4rec:gap_dim=8``. Figures come last as ``key=value`` lines.
"""

from __future__ import annotations

import argparse

from common import data_dir, timeline_streams
from seeds import K, parse_variant


def main() -> None:
    from sbr_dagster.evaluation import metrics
    from sbr_dagster.models import registry
    from sbr_dagster.training import trainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--definition", default="user")
    parser.add_argument(
        "--variants", nargs="+", default=["no_gaps=gru4rec:gap_dim=0", "gaps=gru4rec:gap_dim=8"]
    )
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variants]
    train, streams, n_items = timeline_streams(data_dir("bench/timeline_pair.py"), args.definition)
    results: dict[str, dict[str, tuple]] = {}
    for name, model_name, settings in variants:
        model = registry.build(model_name, settings)
        fit = trainer.fit(model, train, n_items, streams["valid"], log=lambda _: None)
        results[name] = {part: model.rank_replay(stream) for part, stream in streams.items()}
        print(
            f"{args.definition} {name}: "
            + "; ".join(
                f"{part} Recall@{K} {metrics.recall_at(ranks[0], K):.4f}, unseen "
                f"{metrics.recall_at(ranks[1], K):.4f}"
                for part, ranks in results[name].items()
            )
            + f"; best epoch {fit.best_epoch} of {len(fit.history)}, {fit.wall_s:.0f} s",
            flush=True,
        )
    for part, stream in streams.items():
        groups = stream.target_groups
        print(f"{part}_predictions={len(groups)} {part}_viewers={len(set(groups.tolist()))}")
    reference = variants[0][0]
    for part, stream in streams.items():  # validation decides; test confirms
        for name, _, _ in variants[1:]:
            for i, label in enumerate(("all", "unseen")):
                a, b = results[name][part][i], results[reference][part][i]
                ci = metrics.difference_ci(a, b, stream.target_groups, K, n_boot=1000, seed=0)["recall"]
                delta = metrics.recall_at(a, K) - metrics.recall_at(b, K)
                key = f"{part}_{name}_vs_{reference}_{label}"
                print(f"{key}_delta={delta:+.4f} ci=[{ci[0]:+.4f},{ci[1]:+.4f}]")


if __name__ == "__main__":
    main()
