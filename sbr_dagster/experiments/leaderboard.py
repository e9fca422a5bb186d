"""The sweep's leaderboard: one row per experiment, and in words what each single change did.

A change "helped" only when the 95% interval of its difference excludes zero. Experiments that
ranked the same targets (any two on the timeline protocol, or two on the same split otherwise) are
compared paired: the same predictions, a bootstrap of the difference over viewers (or sessions).
Across different test sets (another definition on the days protocol) there is no pairing, so the
two intervals are reported side by side and no verdict is claimed unless they do not overlap.
Each comparison is made on all targets and on liked ones, ranked among all and among unseen movies.

Where the tune job has tested a tuned trained model of a definition the sweep uses, the leaderboard
gets a row for it too (``tuned_experiment``), compared with the sweep's experiment of the same model
at its defaults on that definition.
"""

from __future__ import annotations

import polars as pl

from sbr_dagster.evaluation import metrics
from sbr_dagster.evaluation.metrics_table import CI_COLUMNS
from sbr_dagster.experiments.declarations import Experiment
from sbr_dagster.models import registry
from sbr_dagster.models.base import ModelConfig
from sbr_dagster.training.trainer import SELECTION_K

K = SELECTION_K  # the cut-off of every verdict: the one epochs and settings are chosen by
# (ranking, slice) of each verdict; the first is the headline, and the leaderboard's order.
VIEWS = (("all", "all"), ("unseen", "all"), ("all", "liked"), ("unseen", "liked"))


def view_prefix(split: str, ranking: str, slice_name: str) -> str:
    """Column prefix of a view: ``test_``, ``test_unseen_``, ``test_liked_``, ``test_unseen_liked_``."""
    return split + "_" + "".join(f"{name}_" for name in (ranking, slice_name) if name != "all")


def rank_column(ranking: str) -> str:
    return "rank" if ranking == "all" else f"rank_{ranking}"


TUNED_CHANGE = "settings tuned on validation (the tune job, the main job's epoch budget)"


def tuned_experiment(
    definition: str, model: str, config: ModelConfig, experiments: list[Experiment]
) -> Experiment:
    """The leaderboard's row of the tune job's ``model`` on ``definition``: named
    ``<definition>_<model>_tuned`` and compared with the sweep's experiment of that model on that
    definition closest to the model's defaults (the fewest settings changed; the earlier one on a
    tie), e.g. ``user_default``, which differs from them only in the sweep's shorter epoch budget."""
    defaults = registry.make_config(model).to_dict()

    def changed(experiment: Experiment) -> int:
        return sum(value != defaults[name] for name, value in experiment.config.to_dict().items())

    same = [e for e in experiments if (e.definition, e.model) == (definition, model)]
    base = min(same, key=changed).name if same else None
    return Experiment(f"{definition}_{model}_tuned", definition, model, config, base, TUNED_CHANGE)


def leaderboard_frame(
    experiments: list[Experiment], metric_tables: dict[str, pl.DataFrame], summaries: dict[str, dict]
) -> pl.DataFrame:
    """One row per experiment: its settings, valid/test Recall@k and MRR@k (CIs at k=20), cost."""
    rows = []
    for experiment in experiments:
        table = metric_tables[experiment.name].filter(pl.col("model") == experiment.model)
        row = {
            "experiment": experiment.name,
            "definition": experiment.definition,
            "model": experiment.model,
            "change": experiment.change,
            **{
                name: "x".join(map(str, value)) if isinstance(value, list) else value
                for name, value in experiment.config.to_dict().items()
            },
        }
        for entry in table.iter_rows(named=True):
            prefix = view_prefix(entry["split"], entry["ranking"], entry["slice"])
            row[f"{prefix}recall_{entry['k']}"] = entry["recall"]
            row[f"{prefix}mrr_{entry['k']}"] = entry["mrr"]
            if entry["recall_ci_low"] is not None:
                for col in CI_COLUMNS:
                    row[f"{prefix}{col}_{entry['k']}"] = entry[col]
            row[f"{prefix}n_predictions"] = entry["n_predictions"]
        row["protocol"] = table["protocol"][0] if table.height else None
        summary = summaries.get(experiment.name, {})
        row |= {
            "best_epoch": summary.get("best_epoch"),
            "train_s": summary.get("wall_s"),
            "train_events_per_s": summary.get("events_per_s"),
        }
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None).sort(f"test_recall_{K}", descending=True)


def findings(
    experiments: list[Experiment],
    board: pl.DataFrame,
    test_ranks: dict[str, pl.DataFrame],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> pl.DataFrame:
    """For each experiment with ``compare_to`` and each view: the change in test Recall@20 / MRR@20
    and a verdict.

    ``test_ranks`` maps an experiment to its model's test ranks (``evaluate.RANKS_SCHEMA``).
    """
    rows = []
    by_name = {row["experiment"]: row for row in board.iter_rows(named=True)}
    for experiment in experiments:
        base = experiment.compare_to
        if base is None or base not in by_name or experiment.name not in by_name:
            continue
        new, old = by_name[experiment.name], by_name[base]
        ranks_new, ranks_old = (test_ranks[name].sort("target") for name in (experiment.name, base))
        paired = ranks_new["target"].equals(ranks_old["target"])
        for ranking, slice_name in VIEWS:
            prefix = view_prefix("test", ranking, slice_name)
            if f"{prefix}recall_{K}" not in new or f"{prefix}recall_{K}" not in old:
                continue
            entry = {
                "experiment": experiment.name,
                "compare_to": base,
                "change": experiment.change,
                "ranking": ranking,
                "slice": slice_name,
                "paired": paired,
            }
            if paired:
                chosen = pl.col("liked") | (slice_name == "all")
                a, b = (r.filter(chosen)[rank_column(ranking)].to_numpy() for r in (ranks_new, ranks_old))
                paired_ci = metrics.difference_ci(
                    a, b, ranks_new.filter(chosen)["group"].to_numpy(), K, n_boot=n_boot, seed=seed
                )
            for measure in ("recall", "mrr"):
                delta = new[f"{prefix}{measure}_{K}"] - old[f"{prefix}{measure}_{K}"]
                if paired:
                    low, high = paired_ci[measure]
                else:
                    # No pairing: the difference of the two intervals' far ends bounds it conservatively.
                    low = new[f"{prefix}{measure}_ci_low_{K}"] - old[f"{prefix}{measure}_ci_high_{K}"]
                    high = new[f"{prefix}{measure}_ci_high_{K}"] - old[f"{prefix}{measure}_ci_low_{K}"]
                entry |= {
                    f"delta_{measure}_{K}": delta,
                    f"delta_{measure}_ci_low": low,
                    f"delta_{measure}_ci_high": high,
                }
            entry["verdict"] = verdict(entry["delta_recall_ci_low"], entry["delta_recall_ci_high"])
            entry["sentence"] = sentence(entry)
            rows.append(entry)
    return pl.DataFrame(rows, infer_schema_length=None)


def verdict(low: float, high: float) -> str:
    return {1: "helped", -1: "hurt", 0: "no clear difference"}[metrics.interval_sign(low, high)]


def sentence(entry: dict) -> str:
    how = "paired on the same test predictions" if entry["paired"] else "different test sets, unpaired"
    view = f"{'all' if entry['slice'] == 'all' else 'liked'} targets, ranked among {entry['ranking']} movies"
    return (
        f"{entry['experiment']} ({entry['change'] or 'change'}) vs {entry['compare_to']}, {view}: "
        f"Recall@{K} {entry[f'delta_recall_{K}']:+.4f} [{entry['delta_recall_ci_low']:+.4f}, "
        f"{entry['delta_recall_ci_high']:+.4f}], MRR@{K} {entry[f'delta_mrr_{K}']:+.4f} "
        f"[{entry['delta_mrr_ci_low']:+.4f}, {entry['delta_mrr_ci_high']:+.4f}] ({how}): {entry['verdict']}."
    )
