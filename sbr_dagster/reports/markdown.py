"""Markdown for people: metric comparisons, plain tables and sample recommendations.

Dagster shows Markdown metadata as rendered text; nothing here knows about Dagster.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from sbr_dagster.serving.recommender import display_title
from sbr_dagster.serving.samples import Sample


def table(frame: pl.DataFrame) -> str:
    """A small frame as a Markdown table (floats to 4 significant digits)."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(_plain(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows])


def _plain(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _cell(value: float, low: float | None, high: float | None) -> str:
    text = f"{value:.3f}"
    return text if low is None or high is None else f"{text} [{low:.3f}, {high:.3f}]"


def comparison_markdown(metrics: pl.DataFrame) -> str:
    """Markdown table, one row per model, Recall@k then MRR@k columns; intervals where computed.

    Definition and split become row labels only when the table mixes several of them.
    """
    labels = [name for name in ("definition", "split") if metrics[name].n_unique() > 1] + ["model"]
    ks = sorted(metrics["k"].unique().to_list())
    columns = [f"Recall@{k}" for k in ks] + [f"MRR@{k}" for k in ks]
    table: dict[tuple, dict[str, str]] = {}
    for row in metrics.iter_rows(named=True):
        cells = table.setdefault(tuple(row[name] for name in labels), {})
        cells[f"Recall@{row['k']}"] = _cell(row["recall"], row["recall_ci_low"], row["recall_ci_high"])
        cells[f"MRR@{row['k']}"] = _cell(row["mrr"], row["mrr_ci_low"], row["mrr_ci_high"])
    lines = [
        "| " + " | ".join(labels + columns) + " |",
        "|" + "---|" * len(labels) + "---:|" * len(columns),
        *(
            "| " + " | ".join([*map(str, label), *(cells.get(c, "") for c in columns)]) + " |"
            for label, cells in table.items()
        ),
    ]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def samples_markdown(samples: list[Sample], *, k: int, prefix_len: int, seed: int) -> str:
    """Each sample's history, the movie watched next (bold ✓ when in the list, else its rank), the list."""
    hits = sum(sample.rank <= k for sample in samples)
    lines = [
        f"**{hits} of {len(samples)}** sampled test sessions have the next movie in the top {k} "
        f"(history: first {prefix_len} movies; seed {seed}).",
    ]
    for sample in samples:
        target_title = sample.watched_next["display"][0]
        target_id = sample.watched_next["item_id"][0]
        verdict = (
            f"**{_md(target_title)}** ✓ rank {sample.rank}"
            if sample.rank <= k
            else f"{_md(target_title)} ✗ not in the top {k} (rank {sample.rank:,} of {sample.candidates:,})"
        ) + f"; rank {sample.rank_among_all:,} among all movies, seen ones included"
        user = f", user {sample.user_id}" if sample.user_id is not None else ""
        history = sample.history.select("display", "rating").iter_rows()
        lines += [
            "",
            f"#### Session {sample.session_id}{user}",
            "History: " + " → ".join(f"{_md(title)} ★{stars}" for title, stars in history),
            "",
            f"Watched next: {verdict}",
            "",
            "| # | movie | genres | score |",
            "|---:|---|---|---:|",
        ]
        shown = sample.recommendations.with_columns(display_title().alias("display"))
        for rec in shown.iter_rows(named=True):
            name = _md(rec["display"])
            if rec["item_id"] == target_id:
                name = f"**{name}** ✓"
            genres = ", ".join(rec["genres"] or [])
            lines.append(f"| {rec['rank']} | {name} | {genres} | {rec['score']:.3f} |")
    return "\n".join(lines) + "\n"
