"""The blend job: per definition, the main job's trained models and the best neighbour method blended,
the weights chosen on validation (``evaluation.ensemble``), the blend tested once.

``<definition>/blend`` reads the main job's bundles of the definition and its ranks table, so the blend
is paired on the same test targets with the member that was best alone on validation. The main job
does not build it (about 4-5 minutes a definition on ML-1M), so its time stays bounded.

No ``from __future__ import annotations`` here: Dagster reads the config class from the annotation.
"""

import dagster as dg
import polars as pl

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.defs.assets import CODE_VERSION, MODELING_TAGS
from sbr_dagster.defs.assets.modeling import scoring_ins, trained_bundles, variant_streams
from sbr_dagster.defs.assets.timeline import protocol_markdown
from sbr_dagster.defs.metadata import table_md, table_output
from sbr_dagster.defs.resources import DataLake, PreprocessingSettings
from sbr_dagster.errors import InputDataError
from sbr_dagster.evaluation import comparison, ensemble, streams
from sbr_dagster.evaluation.comparison import Question
from sbr_dagster.evaluation.evaluate import evaluate
from sbr_dagster.evaluation.metrics import SELECTION_K
from sbr_dagster.lake import files, layout
from sbr_dagster.models import registry

GROUP = layout.BLEND
NAME = "blend"  # the blend's model name in its metrics and ranks tables
RANKS: str = f"{layout.BLEND}_{layout.RANKS}"


class BlendConfig(dg.Config):
    # The candidates for the neighbour member: the one with the best validation Recall@20 joins.
    neighbours: list[str] = ["sknn", "vsknn", "stan"]  # noqa: RUF012 (pydantic copies defaults)
    steps: int = 4  # weights in multiples of 1/steps, summing to 1
    n_bootstrap: int = 1000
    seed: int = 0


def checked(config: BlendConfig) -> BlendConfig:
    unknown = [name for name in config.neighbours if name not in registry.BASELINES]
    if unknown or not config.neighbours:
        raise InputDataError(
            f"blend config neighbours: {unknown or 'none'} is not a baseline; name one or more of "
            f"{', '.join(registry.BASELINES)}"
        )
    if not 1 <= config.steps <= 20:
        raise InputDataError(f"blend config steps must be 1 to 20 (weights in 1/steps), not {config.steps}")
    return config


def alone_frame(alone: dict[str, ensemble.Scores]) -> pl.DataFrame:
    """Each candidate member's own validation scores."""
    recall, mrr = f"valid_recall_{SELECTION_K}", f"valid_mrr_{SELECTION_K}"
    return pl.DataFrame({"member": list(alone), recall: [v[0] for v in alone.values()],
                         mrr: [v[1] for v in alone.values()]})  # fmt: skip


def weightings_frame(names: list[str], rows: list[dict]) -> pl.DataFrame:
    """Every weighting tried on validation: one column per member's weight, then its scores."""
    return pl.DataFrame(
        [{**dict(zip(names, row["weights"], strict=True)), **{k: v for k, v in row.items() if k != "weights"}}
         for row in rows]
    )  # fmt: skip


def blend_asset(definition: str, trained: tuple[str, ...]) -> dg.AssetsDefinition:
    """``<definition>/blend``: ``trained`` (the main job's bundles) and the best neighbour, blended."""
    prefix = (definition,)
    model_keys = [dg.AssetKey([*prefix, name]) for name in trained]

    @dg.asset(
        key=[definition, layout.BLEND],
        ins=scoring_ins(definition, ("train", "valid", "test", layout.ITEM_INDEX)),
        deps=[*model_keys, dg.AssetKey([definition, layout.METRICS])],
        group_name=GROUP,
        kinds={"tensorflow", "parquet"},
        tags=MODELING_TAGS,
        code_version=CODE_VERSION,
        description=f"{', '.join(trained)} and the best neighbour method on `{definition}`, their "
        "standardised scores blended with weights chosen on validation, tested once and paired with the "
        "best single member.",
    )
    def blend(
        context: dg.AssetExecutionContext,
        config: BlendConfig,
        lake: DataLake,
        preprocessing: PreprocessingSettings,
        train: pl.DataFrame,
        valid: pl.DataFrame,
        test: pl.DataFrame,
        item_index: pl.DataFrame,
        ratings: pl.DataFrame,
        cuts: pl.DataFrame,
        targets: pl.DataFrame,
    ) -> dg.Output[pl.DataFrame]:
        config = checked(config)
        main_ranks = lake.table_path((definition, layout.RANKS))
        if not main_ranks.exists():
            raise InputDataError(
                f"{main_ranks} is missing: the blend is paired with the main job's models; run the main job "
                "first (dg launch --job everything)"
            )
        n_items = item_index.height
        members = {
            name: b.model
            for name, b in trained_bundles(lake, prefix, trained, definition, item_index).items()
        }
        train_sessions = Sessions.of(train, item_index)
        neighbours = {name: registry.build(name) for name in config.neighbours}
        for model in neighbours.values():
            model.fit(train_sessions, n_items)
        split = variant_streams(
            preprocessing, definition, {"valid": valid, "test": test}, item_index=item_index,
            ratings=ratings, cuts=cuts, targets=targets,
        )  # fmt: skip
        context.log.info(f"blend of {definition}: ranking the validation targets with each candidate member")
        single, alone = ensemble.best_member({**members, **neighbours}, split["valid"])
        context.log.info(
            "alone on validation: " + ", ".join(f"{name} {recall:.4f}" for name, (recall, _) in alone.items())
        )
        neighbour = max(neighbours, key=alone.__getitem__)
        members[neighbour] = neighbours[neighbour]
        names = list(members)
        chosen, rows = ensemble.choose_weights(
            list(members.values()), ensemble.simplex(len(names), config.steps), split["valid"], n_items
        )
        weights = dict(zip(names, chosen, strict=True))
        context.log.info(
            f"blend of {definition}: weights {weights} chosen on validation; best alone {single}"
        )
        blended = ensemble.Blend(tuple(members.values()), chosen, n_items)
        result = evaluate(
            {NAME: blended}, {"test": split["test"]}, definition=definition,
            protocol=preprocessing.split_method, n_boot=config.n_bootstrap, seed=config.seed,
            log=context.log.info,
        )  # fmt: skip
        files.write_parquet(result.ranks, lake.table_path((definition, RANKS)))
        on_timeline = streams.all_on_timeline({definition: result.metrics})
        ranks = pl.concat([files.read_parquet(main_ranks), result.ranks], how="vertical_relaxed")
        asked = [Question("blend", (definition, NAME), (definition, single))]
        found = comparison.protocol_findings(
            {definition: ranks}, targets, asked, on_timeline, n_boot=config.n_bootstrap, seed=config.seed
        )
        headline = result.metrics.filter((pl.col("k") == SELECTION_K) & (pl.col("slice") == "all"))
        return table_output(
            result.metrics,
            {
                "weights": dg.MetadataValue.json(weights),
                "neighbour": neighbour,
                "best_single_on_valid": single,
                "valid_alone": table_md(alone_frame(alone)),
                "valid_weightings": table_md(weightings_frame(names, rows)),
                **{
                    f"test/{row['ranking']}/recall@{SELECTION_K}": row["recall"]
                    for row in headline.iter_rows(named=True)
                },
                "findings": dg.MetadataValue.md(protocol_markdown(found, on_timeline)),
            },
        )

    return blend
