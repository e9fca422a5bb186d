"""Seeds on the days protocol's `user` split: each variant over several seeds, paired with a reference.

The split is the one the reference GRU4Rec is compared on (``train_eval.user_split``: last 30 days
test, 30 before valid). Every variant is trained once per seed (best validation epoch kept, as in the
pipeline) and ranks every test prediction among all items and among the unseen ones; each run is then
paired with the reference's seed-0 run on the same predictions (viewers are the bootstrap's unit), so
"beats the reference" is a paired 95% interval above zero, seed by seed.

Each run prints its best epoch's validation Recall@20 first: a variant is kept only if validation
says so, its test figures are then the confirmation.

Usage: ``.venv/bin/python bench/seeds.py [--seeds 0,1,2] [--variants NAME=MODEL[:KEY=VALUE,...] ...]
[--reference NAME]``, e.g. ``--variants gru4rec_8=gru4rec:batch_size=128,epochs=8,gap_dim=0,exclude_seen=False
gru4rec=gru4rec sasrec=sasrec --reference gru4rec_8`` (``gru4rec_8``: the reference setting, 0.2585 at
seed 0), or ``--variants gru4rec --reference gru4rec_8=gru4rec:batch_size=128,epochs=8,gap_dim=0,
exclude_seen=False`` (a reference outside the variants runs at seed 0 only).
Figures come last as ``key=value`` lines.
"""

from __future__ import annotations

import argparse
import ast
import statistics

from common import data_dir
from train_eval import user_split

K = 20
REFERENCE = "gru4rec_8"  # the earlier defaults: batch 128, a fixed 8 epochs, no gaps, seen movies scored


def parse_variant(text: str) -> tuple[str, str, dict]:
    """``name=model[:key=value,...]``."""
    name, _, rest = text.partition("=")
    model, _, settings = rest.partition(":")
    values = {}
    for item in filter(None, settings.split(",")):
        key, value = item.split("=", 1)
        values[key] = ast.literal_eval(value)
    return name, model or name, values


def run(model_name: str, settings: dict, split, seed: int):
    """Test ranks (all, unseen) of one fit, and its training summary."""
    from sbr_dagster.data.arrays import Sessions
    from sbr_dagster.data.timeline import Replay
    from sbr_dagster.models import registry
    from sbr_dagster.training import trainer

    model = registry.build(model_name, {**settings, "seed": seed})
    train, valid, test = (Sessions.of(f, split.item_index) for f in (split.train, split.valid, split.test))
    fit = trainer.fit(model, train, split.item_index.height, valid, log=lambda _: None)
    ranks, unseen = model.rank_replay(Replay.of_sessions(test))
    return ranks, unseen, fit


def main() -> None:
    import numpy as np

    from sbr_dagster.data.arrays import Sessions
    from sbr_dagster.evaluation import metrics
    from sbr_dagster.training import trainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=[f"{REFERENCE}=gru4rec:batch_size=128,epochs=8,gap_dim=0,exclude_seen=False", "gru4rec"],
    )
    parser.add_argument(
        "--reference",
        default=REFERENCE,
        help="a variant's name (its seed-0 run), or NAME=MODEL[:KEY=VALUE,...] run at seed 0 only",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [parse_variant(v) for v in args.variants]
    named = [name for name, _, _ in variants]
    if "=" in args.reference:
        reference = parse_variant(args.reference)
    elif args.reference in named:
        reference = variants[named.index(args.reference)]
    else:
        parser.error(f"--reference {args.reference!r} is not one of the variants (or NAME=MODEL[:...])")
    split = user_split(data_dir("bench/seeds.py"))

    test = Sessions.of(split.test, split.item_index)
    # Predictions come session by session, one per event after the first; on `user` a session is a viewer.
    groups = np.repeat(np.arange(len(test.offsets) - 1), np.diff(test.offsets) - 1)

    def say(name: str, seed: int) -> None:
        ranks, unseen, fit = results[(name, seed)]
        best = next(h for h in fit.history if h["epoch"] == fit.best_epoch)
        print(
            f"{name} seed {seed}: valid Recall@{K} {best[trainer.VALID_RECALL]:.4f}; test Recall@{K} "
            f"{metrics.recall_at(ranks, K):.4f} MRR@{K} {metrics.mrr_at(ranks, K):.4f}, unseen "
            f"{metrics.recall_at(unseen, K):.4f}; best epoch {fit.best_epoch} of {len(fit.history)}, "
            f"{fit.wall_s:.0f} s",
            flush=True,
        )

    results: dict[tuple[str, int], tuple] = {}
    results[(reference[0], 0)] = run(reference[1], reference[2], split, 0)
    if reference[0] not in named:  # a reference alone: its seed-0 run is what every seed pairs with
        say(reference[0], 0)
    for name, model_name, settings in variants:
        for seed in seeds:
            if (name, seed) not in results:
                results[(name, seed)] = run(model_name, settings, split, seed)
            say(name, seed)
    ref_ranks, ref_unseen, _ = results[(reference[0], 0)]
    if len(ref_ranks) != len(groups):
        raise SystemExit(f"bench/seeds.py: {len(ref_ranks)} predictions but {len(groups)} viewers' events")
    print(f"test_predictions={len(ref_ranks)} viewers={len(test.offsets) - 1}")
    for name, _, settings in variants:
        recalls = [metrics.recall_at(results[(name, s)][0], K) for s in seeds]
        unseens = [metrics.recall_at(results[(name, s)][1], K) for s in seeds]
        print(f"{name}_settings={settings}")
        for label, values in (("", recalls), ("unseen_", unseens)):
            spread = f"min={min(values):.4f} max={max(values):.4f}"
            print(f"{name}_{label}recall_{K}_mean={statistics.mean(values):.4f} {spread}")
        if name == reference[0]:
            continue
        for seed in seeds:
            ranks, unseen, _ = results[(name, seed)]
            for label, a, b in (("all", ranks, ref_ranks), ("unseen", unseen, ref_unseen)):
                ci = metrics.difference_ci(a, b, groups, K, n_boot=1000, seed=0)["recall"]
                delta = metrics.recall_at(a, K) - metrics.recall_at(b, K)
                key = f"{name}_vs_{reference[0]}_seed{seed}_{label}"
                print(f"{key}_delta={delta:+.4f} ci=[{ci[0]:+.4f},{ci[1]:+.4f}]")


if __name__ == "__main__":
    main()
