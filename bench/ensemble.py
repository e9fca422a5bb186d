"""A blend of GRU4Rec, SASRec and the best neighbour method on one definition of the timeline protocol.

The members: GRU4Rec and SASRec with their defaults (trained with the pipeline's validation, or the
main job's bundles when ``--lake`` holds them for this definition) and whichever of ``--neighbours``
scores the best validation Recall@20. The blend's weights (``ensemble.simplex``, ``--steps``) are
chosen on validation only; on test the blend is then paired with the best single member, chosen on
validation too (viewers are the bootstrap's unit), among all movies and among unseen ones.

Usage: ``.venv/bin/python bench/ensemble.py --definition user [--lake /tmp/lake1m] [--steps 4]``.
Figures come last as ``key=value`` lines.
"""

from __future__ import annotations

import argparse
import time

from common import data_dir, timeline_streams
from seeds import K


def members(args, train, streams, n_items):
    """``{name: fitted model}``: the trained models and the best neighbour method on validation, and
    each member's own validation Recall@20 and MRR@20."""
    from sbr_dagster.evaluation import ensemble
    from sbr_dagster.lake import layout
    from sbr_dagster.models import registry
    from sbr_dagster.serving.bundle import load_bundle
    from sbr_dagster.training import trainer

    fitted = {}
    for name in ("gru4rec", "sasrec"):
        directory = layout.model_dir(args.lake, (args.definition,), name) if args.lake else None
        tick = time.perf_counter()
        if directory is not None and directory.is_dir():
            fitted[name] = load_bundle(directory).model
            how = f"loaded from {directory}"
        else:
            fitted[name] = registry.build(name)
            fit = trainer.fit(fitted[name], train, n_items, streams["valid"], log=lambda _: None)
            how = f"trained, best epoch {fit.best_epoch} of {len(fit.history)}"
        print(f"{name}: {how} ({time.perf_counter() - tick:.0f} s)")
    neighbours = {name: registry.build(name) for name in args.neighbours.split(",")}
    for model in neighbours.values():
        model.fit(train, n_items)
    _, alone = ensemble.best_member({**fitted, **neighbours}, streams["valid"])
    for name, (recall, _) in alone.items():
        print(f"{name}: valid Recall@{K} {recall:.4f}", flush=True)
    best = max(neighbours, key=alone.__getitem__)
    fitted[best] = neighbours[best]
    return fitted, {name: alone[name] for name in fitted}


def main() -> None:
    from sbr_dagster.evaluation import ensemble, metrics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--definition", default="user")
    parser.add_argument("--lake", default=None, help="a lake whose main-job bundles to use")
    parser.add_argument("--neighbours", default="sknn,vsknn,stan")
    parser.add_argument("--steps", type=int, default=4, help="weights in multiples of 1/steps")
    args = parser.parse_args()
    train, streams, n_items = timeline_streams(data_dir("bench/ensemble.py"), args.definition)
    models, own_valid = members(args, train, streams, n_items)
    names, fitted = list(models), list(models.values())
    weightings = ensemble.simplex(len(names), args.steps)
    tick = time.perf_counter()
    chosen, rows = ensemble.choose_weights(fitted, weightings, streams["valid"], n_items)
    print(f"validation of {len(weightings)} weightings: {time.perf_counter() - tick:.0f} s", flush=True)
    for row in rows:
        print(f"  weights {dict(zip(names, row['weights'], strict=True))}: valid Recall@{K} "
              f"{row['valid_recall_20']:.4f}, unseen {row['valid_unseen_recall_20']:.4f}")  # fmt: skip
    # The best member alone, ranked its own way (a neighbour method keeps its popularity tie order).
    single = max(own_valid, key=own_valid.__getitem__)
    blend_valid = max(row["valid_recall_20"] for row in rows)
    print(f"chosen_weights={dict(zip(names, chosen, strict=True))} blend_valid_recall={blend_valid:.4f}")
    print(f"best_single={single} valid_recall={own_valid[single][0]:.4f}")
    groups = streams["test"].target_groups
    print(f"test_predictions={groups.size} viewers={len(set(groups.tolist()))}")
    test = ensemble.blend_ranks(fitted, [chosen], streams["test"], n_items)[chosen]
    alone = models[single].rank_replay(streams["test"])
    for i, ranking in enumerate(("all", "unseen")):
        blend, best = test[i], alone[i]
        ci = metrics.difference_ci(blend, best, groups, K, n_boot=1000, seed=0)["recall"]
        print(f"test_{ranking}_blend_recall={metrics.recall_at(blend, K):.4f} "
              f"best_single_recall={metrics.recall_at(best, K):.4f} "
              f"delta={metrics.recall_at(blend, K) - metrics.recall_at(best, K):+.4f} "
              f"ci=[{ci[0]:+.4f},{ci[1]:+.4f}] blend_mrr={metrics.mrr_at(blend, K):.4f} "
              f"best_single_mrr={metrics.mrr_at(best, K):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
