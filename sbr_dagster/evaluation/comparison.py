"""The study's answers on the timeline protocol: every variant and model on the same predictions.

Every variant (session definition with its rating policy) ranked the same shared targets, so any
two (variant, model) pairs are compared prediction by prediction: the difference of their hits is
bootstrapped over viewers, and a claim is made only where its 95% interval excludes zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from sbr_dagster.data import sessions
from sbr_dagster.evaluation.metrics import SELECTION_K, difference_ci, interval_sign, mrr_at, recall_at
from sbr_dagster.evaluation.metrics_table import CI_COLUMNS, RANKINGS, SLICES

K = SELECTION_K
COMPARISON_COLUMNS = ("variant", "model", "split", "slice", "ranking", "k", "recall", "mrr", "n_predictions",
                      *CI_COLUMNS)  # fmt: skip
BASE_VARIANT = "user"  # every other definition is compared with a viewer's whole history as one session


@dataclass(frozen=True)
class Question:
    """One paired comparison: ``a`` vs ``b``, each a (variant, model)."""

    topic: str
    a: tuple[str, str]
    b: tuple[str, str]


def comparison_frame(metrics: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """The tidy table of every variant's metrics (``metrics_table``), keyed by variant."""
    return pl.concat(
        [table.rename({"definition": "variant"}).select(COMPARISON_COLUMNS) for table in metrics.values()]
    ).sort("variant", "model", "split", "slice", "ranking", "k")


def test_at_k(table: pl.DataFrame) -> pl.DataFrame:
    """The comparison's headline rows: test, all targets, at ``K``, under both rankings."""
    return table.filter((pl.col("split") == "test") & (pl.col("k") == K) & (pl.col("slice") == "all"))


def headline(table: pl.DataFrame) -> pl.DataFrame:
    """``test_at_k`` as the metadata shows it: each ranking's (variant, model) rows, best first."""
    columns = ("variant", "model", "ranking", "recall", "recall_ci_low", "recall_ci_high", "mrr")
    shown = test_at_k(table).select(columns)
    return shown.sort("ranking", "recall", descending=[False, True])


def questions(
    variants: list[str], models: list[str], primary: str, trained: tuple[str, ...] = ()
) -> list[Question]:
    """What the comparison answers with the variants and models it has.

    Each definition against ``user`` (the primary model of both); a rating policy ``<d>_rK`` against
    ``<d>``; and in each variant, the primary model against every other model, and every other
    ``trained`` model against every baseline (a pair a variant lacks is skipped when paired).
    """
    asked = []
    for variant in variants:
        definition = sessions.parse_definition(variant)
        if definition.min_rating is not None:
            base = variant.rsplit("_r", 1)[0]
            if base in variants:
                asked.append(Question("rating policy", (variant, primary), (base, primary)))
        elif variant != BASE_VARIANT and BASE_VARIANT in variants:
            asked.append(Question("session definition", (variant, primary), (BASE_VARIANT, primary)))
    for variant in variants:
        asked += [Question("model", (variant, primary), (variant, m)) for m in models if m != primary]
        for model in (t for t in trained if t != primary and t in models):
            asked += [
                Question("model", (variant, model), (variant, m))
                for m in models
                if m not in (primary, model, *trained)
            ]
    return asked


def within_variants(asked: list[Question]) -> list[Question]:
    """The questions about models of one variant: on the days protocol each definition has its own test
    predictions, so only these pair (their models ranked the same predictions)."""
    return [question for question in asked if question.a[0] == question.b[0]]


def protocol_findings(
    ranks: Mapping[str, pl.DataFrame],
    targets: pl.DataFrame,
    asked: list[Question],
    on_timeline: bool,
    **bootstrap,
) -> pl.DataFrame | None:
    """``paired_findings`` of what the protocol pairs: on the shared timeline every question, viewers as
    the unit; on another split method the questions ``within_variants``, each variant's own ``group``
    as the unit. None when nothing is left to ask."""
    asked = asked if on_timeline else within_variants(asked)
    if not asked:
        return None
    return paired_findings(ranks, targets if on_timeline else None, asked, **bootstrap)


def paired_findings(
    ranks: Mapping[str, pl.DataFrame],
    targets: pl.DataFrame | None,
    asked: list[Question],
    *,
    split: str = "test",
    n_boot: int = 1000,
    seed: int = 0,
) -> pl.DataFrame:
    """For each question, slice and ranking: the paired difference at ``K`` and a verdict.

    ``ranks`` maps a variant to its ranks table (``evaluate.RANKS_SCHEMA``); viewers are the
    bootstrap's unit (``targets``' ``user_id`` by ``line``), or without ``targets`` (the days protocol,
    questions ``within_variants``) the ranks' own ``group``: there a session, under `user` a viewer.
    """
    users = (
        None
        if targets is None
        else targets.filter(pl.col("split") == split).select(
            pl.col("line").cast(pl.Int64).alias("target"), "user_id"
        )
    )
    rows = []
    for question in asked:
        a, b = (
            ranks[variant].filter((pl.col("split") == split) & (pl.col("model") == model)).sort("target")
            for variant, model in (question.a, question.b)
        )
        if a.height == 0 or b.height == 0:
            continue
        if not a["target"].equals(b["target"]):
            raise ValueError(f"{question.a} and {question.b} ranked different targets: they cannot be paired")
        groups = (
            a["group"]
            if users is None
            else a.select("target").join(users, on="target", how="left", maintain_order="left")["user_id"]
        )
        for slice_name in SLICES:
            chosen = a["liked"].to_numpy() if slice_name == "liked" else np.ones(a.height, bool)
            for ranking in RANKINGS:
                column = "rank" if ranking == "all" else f"rank_{ranking}"
                ra, rb = a[column].to_numpy()[chosen], b[column].to_numpy()[chosen]
                ci = difference_ci(ra, rb, groups.to_numpy()[chosen], K, n_boot=n_boot, seed=seed)
                row = {
                    "topic": question.topic,
                    "a": "/".join(question.a),
                    "b": "/".join(question.b),
                    "split": split,
                    "slice": slice_name,
                    "ranking": ranking,
                    "n_predictions": int(chosen.sum()),
                    "recall_a": recall_at(ra, K),
                    "recall_b": recall_at(rb, K),
                    "delta_recall": recall_at(ra, K) - recall_at(rb, K),
                    "delta_recall_ci_low": ci["recall"][0],
                    "delta_recall_ci_high": ci["recall"][1],
                    "delta_mrr": mrr_at(ra, K) - mrr_at(rb, K),
                    "delta_mrr_ci_low": ci["mrr"][0],
                    "delta_mrr_ci_high": ci["mrr"][1],
                }
                row["verdict"] = verdict(row)
                row["sentence"] = sentence(row)
                rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def verdict(row: dict) -> str:
    sign = interval_sign(row["delta_recall_ci_low"], row["delta_recall_ci_high"])
    return {1: f"{row['a']} is better", -1: f"{row['b']} is better", 0: "no clear difference"}[sign]


def sentence(row: dict) -> str:
    targets = "all" if row["slice"] == "all" else "liked (rated >= 4)"
    return (
        f"{row['a']} vs {row['b']} ({row['topic']}; {targets} {row['split']} targets, ranked among "
        f"{row['ranking']} movies; {row['n_predictions']:,} paired predictions): Recall@{K} "
        f"{row['recall_a']:.4f} vs {row['recall_b']:.4f}, difference {row['delta_recall']:+.4f} "
        f"[{row['delta_recall_ci_low']:+.4f}, {row['delta_recall_ci_high']:+.4f}], MRR@{K} "
        f"{row['delta_mrr']:+.4f} [{row['delta_mrr_ci_low']:+.4f}, {row['delta_mrr_ci_high']:+.4f}]: "
        f"{row['verdict']}."
    )


def best_variant(comparison: pl.DataFrame, model: str) -> str | None:
    """The variant whose ``model`` has the highest test Recall@K on all targets among all movies."""
    rows = comparison.filter(
        (pl.col("model") == model) & (pl.col("split") == "test") & (pl.col("k") == K)
        & (pl.col("slice") == "all") & (pl.col("ranking") == "all")
    ).sort("recall", descending=True)  # fmt: skip
    return rows["variant"][0] if rows.height else None


def baseline_margins(found: pl.DataFrame, trained: tuple[str, ...]) -> pl.DataFrame:
    """Per variant: its best trained model (test Recall@K, all targets, among all movies) against its
    strongest baseline, with the paired interval, and whether it beats every baseline (each interval
    above zero). Beating popularity says a model works; this says whether it is worth training."""
    split_variant = pl.col("a").str.split("/")
    pairs = found.filter(
        (pl.col("topic") == "model") & (pl.col("split") == "test") & (pl.col("slice") == "all")
        & (pl.col("ranking") == "all")
    ).with_columns(
        variant=split_variant.list.first(),
        model=split_variant.list.last(),
        baseline=pl.col("b").str.split("/").list.last(),
    ).filter(pl.col("model").is_in(trained) & ~pl.col("baseline").is_in(trained))  # fmt: skip
    best = pairs.group_by("variant").agg(pl.col("model").sort_by("recall_a").last().alias("best"))
    return (
        pairs.join(best, on="variant")
        .filter(pl.col("model") == pl.col("best"))
        .group_by("variant", "model")
        .agg(
            pl.col("recall_a").first().alias("recall"),
            pl.col("baseline").sort_by("recall_b").last().alias("strongest_baseline"),
            pl.col("recall_b").max().alias("baseline_recall"),
            pl.col("delta_recall").sort_by("recall_b").last().alias("delta_recall"),
            pl.col("delta_recall_ci_low").sort_by("recall_b").last().alias("delta_recall_ci_low"),
            pl.col("delta_recall_ci_high").sort_by("recall_b").last().alias("delta_recall_ci_high"),
            (pl.col("delta_recall_ci_low") > 0).all().alias("beats_every_baseline"),
        )
        .sort("variant")
    )
