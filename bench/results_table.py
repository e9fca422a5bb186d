"""The README's results table from a lake: test Recall@20 / MRR@20 of every model in every variant,
ranked among all candidates · among the unseen ones (``timeline/comparison``), best of each column bold;
with the tune job's models (``<definition>/tuned/<model>``, as ``<model>_tuned``) and the blend job's
blend (``<definition>/blend``) where the lake has them.

Usage: ``.venv/bin/python bench/results_table.py [LAKE]`` (default: ``SBR_DATA_LAKE`` or data_lake/).
"""

from __future__ import annotations

import argparse


def main() -> None:
    import polars as pl

    from sbr_dagster import settings
    from sbr_dagster.evaluation.comparison import comparison_frame, test_at_k
    from sbr_dagster.lake import layout
    from sbr_dagster.models import registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake", nargs="?", default=None)
    root = parser.parse_args().lake or settings.lake_root()
    table = pl.read_parquet(layout.table_path(root, layout.COMPARISON))
    extra = {}
    for variant in table["variant"].unique().to_list():
        keys = [(*layout.tuned_prefix(variant), model) for model in registry.MODELS]
        paths = [layout.table_path(root, key) for key in [*keys, (variant, layout.BLEND)]]
        found = [pl.read_parquet(path) for path in paths if path.exists()]
        if found:
            extra[variant] = pl.concat(found)
    if extra:
        table = pl.concat([table, comparison_frame(extra)], how="vertical_relaxed")
    rows = test_at_k(table)
    variants = sorted(rows["variant"].unique(), key=lambda v: (v != "user", v))
    best = rows.group_by("variant", "ranking").agg(pl.col("recall").max().alias("top_recall"),
                                                   pl.col("mrr").max().alias("top_mrr"))  # fmt: skip
    rows = rows.join(best, on=["variant", "ranking"])
    order = rows.filter(pl.col("ranking") == "all").group_by("model").agg(pl.col("recall").mean())
    print("| model | " + " | ".join(f"`{v}`" for v in variants) + " |")
    print("|---|" + "---|" * len(variants))
    for model in order.sort("recall", descending=True)["model"]:
        cells = []
        for variant in variants:
            found = rows.filter((pl.col("model") == model) & (pl.col("variant") == variant))
            if found.height == 0:
                cells.append("\u2013")  # not trained there
                continue
            parts = []
            for ranking in ("all", "unseen"):
                r = found.filter(pl.col("ranking") == ranking).row(0, named=True)
                recall = f"{r['recall']:.3f}" if r["recall"] < r["top_recall"] else f"**{r['recall']:.3f}**"
                mrr = f"{r['mrr']:.3f}" if r["mrr"] < r["top_mrr"] else f"**{r['mrr']:.3f}**"
                parts.append(f"{recall} / {mrr}")
            cells.append(" · ".join(parts))
        print(f"| `{model}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
