"""The shared test (``data.timeline``): cut times, candidates and targets from the raw ratings,
built once for every session definition, rating policy and model; and the comparison of every
variant's predictions of those targets."""

import warnings

import dagster as dg
import polars as pl

from sbr_dagster.data import schema, timeline
from sbr_dagster.defs.assets import CODE_VERSION, MODELING_TAGS, PREPROCESSING_OP_TAGS, PREPROCESSING_TAGS
from sbr_dagster.defs.assets.source import RATINGS_KEY
from sbr_dagster.defs.metadata import flatten, table_md, table_output
from sbr_dagster.defs.resources import DataLake, PreprocessingSettings
from sbr_dagster.errors import InputDataError
from sbr_dagster.evaluation import comparison, streams
from sbr_dagster.lake import files, layout
from sbr_dagster.models import registry
from sbr_dagster.reports import plots

GROUP = layout.TIMELINE
CUTS_KEY = dg.AssetKey(list(layout.CUTS))
CANDIDATES_KEY = dg.AssetKey(list(layout.CANDIDATES))
TARGETS_KEY = dg.AssetKey(list(layout.TARGETS))
# What a variant's training and metrics read to replay the shared targets, by input name.
REPLAY_INS = {"cuts": dg.AssetIn(CUTS_KEY), "targets": dg.AssetIn(TARGETS_KEY)}
PROTOCOL_INS = {**REPLAY_INS, "candidates": dg.AssetIn(CANDIDATES_KEY)}  # what a split reads
PROTOCOL_KEYS = (CUTS_KEY, CANDIDATES_KEY, TARGETS_KEY)


COMPARISON_KEY = dg.AssetKey(list(layout.COMPARISON))
FINDINGS: layout.Key = (layout.TIMELINE, "findings")  # the comparison's verdicts, one row per view


def timeline_assets(definitions: tuple[str, ...]) -> list[dg.AssetsDefinition]:
    """The protocol's tables, and the comparison of ``definitions`` (their metrics and ranks)."""
    shared = {
        "group_name": GROUP,
        "kinds": {"polars", "parquet"},
        "tags": PREPROCESSING_TAGS,
        "is_required": False,  # yielded only when selected (``can_subset``)
    }

    @dg.multi_asset(
        name="timeline",
        op_tags=PREPROCESSING_OP_TAGS,
        ins={"ratings": dg.AssetIn(RATINGS_KEY)},
        can_subset=True,  # a selection such as '+gap_1h/metrics' reaches the cuts and targets only
        outs={
            "cuts": dg.AssetOut(
                key=CUTS_KEY,
                code_version=CODE_VERSION,
                **shared,
                description="T_valid and T_test: the global cut times of every variant.",
            ),
            "candidates": dg.AssetOut(
                key=CANDIDATES_KEY,
                code_version=CODE_VERSION,
                **shared,
                description="The movies every variant ranks: rated at least "
                "min_item_support times before T_valid.",
            ),
            "targets": dg.AssetOut(
                key=TARGETS_KEY,
                code_version=CODE_VERSION,
                **shared,
                description="The shared next-movie targets of validation and test.",
            ),
        },
    )
    def timeline_asset(
        context: dg.AssetExecutionContext, ratings: pl.DataFrame, preprocessing: PreprocessingSettings
    ):
        try:
            cuts = timeline.cut_times(ratings, preprocessing.test_fraction, preprocessing.valid_fraction)
            candidates = timeline.candidates(ratings, cuts, preprocessing.min_item_support)
        except InputDataError as error:
            if preprocessing.split_method == streams.TIMELINE:
                raise
            # Another split method does not use the shared test: data too small for it is no error.
            context.log.warning(
                f"no shared test (unused by split_method {preprocessing.split_method}): {error}"
            )
            cuts = timeline.Cuts(valid=ratings["timestamp"].max(), test=ratings["timestamp"].max())
            candidates = pl.DataFrame(schema=schema.ITEM_INDEX)
        targets = timeline.targets(ratings, cuts, candidates["item_id"])
        common = {
            "valid_cut": str(cuts.valid),
            "test_cut": str(cuts.test),
            "test_fraction": preprocessing.test_fraction,
            "valid_fraction": preprocessing.valid_fraction,
        }
        per_split = {
            split: {
                "targets": part.height,
                "users": part["user_id"].n_unique(),
                "liked_targets": int(part["liked"].sum()),
            }
            for split in ("valid", "test")
            for part in [targets.filter(pl.col("split") == split)]
        }
        tables = {
            "cuts": (timeline.cuts_frame(cuts), common),
            "candidates": (candidates, {"candidates": candidates.height,
                                        "min_item_support": preprocessing.min_item_support}),
            "targets": (targets, {**common, **flatten(per_split)}),
        }  # fmt: skip
        with warnings.catch_warnings():  # data versions are a beta API of Dagster
            warnings.simplefilter("ignore", dg.BetaWarning)
            for name, (frame, metadata) in tables.items():
                if name not in context.op_execution_context.selected_output_names:
                    continue
                yield dg.Output(
                    frame,
                    output_name=name,
                    metadata={"rows": frame.height, **metadata},
                    data_version=dg.DataVersion(files.fingerprint(frame)),
                )

    metric_keys = {name: dg.AssetKey([name, layout.METRICS]) for name in definitions}

    @dg.asset(
        key=COMPARISON_KEY,
        ins={"targets": dg.AssetIn(TARGETS_KEY)},
        deps=list(metric_keys.values()),
        group_name=GROUP,
        kinds={"polars", "parquet"},
        tags=MODELING_TAGS,
        code_version=CODE_VERSION,
        description="Every session definition and model on the same test targets: which definition "
        f"predicts the next movie best, and {registry.PRIMARY} against every baseline, with paired 95% "
        "intervals, on all and liked targets, ranked among all and unseen movies.",
    )
    def comparison_asset(
        context: dg.AssetExecutionContext, lake: DataLake, targets: pl.DataFrame
    ) -> dg.Output[pl.DataFrame]:
        metrics = {name: files.read_parquet(lake.table_path(key)) for name, key in metric_keys.items()}
        ranks = {name: files.read_parquet(lake.table_path((name, layout.RANKS))) for name in definitions}
        table = comparison.comparison_frame(metrics)
        on_timeline = streams.all_on_timeline(metrics)
        models = list(dict.fromkeys(table["model"].to_list()))
        asked = comparison.questions(list(definitions), models, registry.PRIMARY, registry.TRAINED)
        found = comparison.protocol_findings(ranks, targets, asked, on_timeline)
        found = pl.DataFrame() if found is None else found
        files.write_parquet(found, lake.table_path(FINDINGS))  # empty when nothing is paired: never stale
        context.log.info(f"comparison: {found.height} paired findings over {len(definitions)} variants")
        return table_output(table, comparison_metadata(table, found, on_timeline))

    return [timeline_asset, comparison_asset]


NOT_PAIRED = (
    "The split method is not 'timeline': each definition has its own test set, so definitions are not "
    "paired, only the models of each definition (sessions as the bootstrap's unit: viewers under `user`). "
    "Set resources.preprocessing.config.split_method to timeline to pair definitions and rating policies too."
)


def protocol_markdown(found: pl.DataFrame, on_timeline: bool) -> str:
    """The findings' sentences, said to pair only within definitions when not on the timeline."""
    return findings_markdown(found) if on_timeline else f"{NOT_PAIRED}\n\n{findings_markdown(found)}"


def findings_markdown(found: pl.DataFrame) -> str:
    """The paired verdicts' sentences, one section per topic."""
    sections = []
    for topic in dict.fromkeys(found["topic"].to_list()) if found.height else []:
        lines = found.filter(pl.col("topic") == topic)["sentence"].to_list()
        sections.append(f"### {topic}\n\n" + "\n".join(f"- {line}" for line in lines))
    return "\n\n".join(sections) or "nothing to compare"


def comparison_metadata(table: pl.DataFrame, found: pl.DataFrame, on_timeline: bool) -> dict:
    k = comparison.K
    test = comparison.test_at_k(table)
    labels, series = [], {}
    for ranking in ("all", "unseen"):
        part = test.filter(pl.col("ranking") == ranking).sort("variant", "model")
        labels = [f"{v}/{m}" for v, m in zip(part["variant"], part["model"], strict=True)]
        series[f"Recall@{k}, ranked among {ranking}"] = (
            part["recall"],
            part["recall_ci_low"],
            part["recall_ci_high"],
        )
    chart = plots.interval_png(labels, series, f"Test Recall@{k} per variant and model (95% CI)")
    findings = protocol_markdown(found, on_timeline)
    best = comparison.best_variant(table, registry.PRIMARY)
    return {
        "variants": table["variant"].n_unique(),
        "best_variant": best or "none",
        "n_predictions/test": int(test["n_predictions"].max() or 0),
        "findings": dg.MetadataValue.md(findings),
        f"test_at_{k}": table_md(comparison.headline(table)),
        "chart": dg.MetadataValue.md(plots.markdown_image(chart, f"test Recall@{k} per variant and model")),
    }
