"""Per session definition: sessions -> cleansed -> train/valid/test, under the key prefix ``<definition>``."""

import dagster as dg
import polars as pl

from sbr_dagster.data import cleansing, schema, sessions, splitting, statistics, timeline
from sbr_dagster.defs.assets import CODE_VERSION, PREPROCESSING_OP_TAGS, PREPROCESSING_TAGS
from sbr_dagster.defs.assets.source import RATINGS_KEY
from sbr_dagster.defs.assets.timeline import CUTS_KEY, PROTOCOL_INS, PROTOCOL_KEYS
from sbr_dagster.defs.metadata import flatten, session_plots, table_md, table_output
from sbr_dagster.defs.resources import DataLake, PreprocessingSettings
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import files, layout


def preprocessing_assets(name: str) -> list[dg.AssetsDefinition]:
    definition = sessions.parse_definition(name)

    @dg.asset(
        key=list(layout.definition_key(name, "sessions")),
        ins={"ratings": dg.AssetIn(RATINGS_KEY)},
        group_name=name,
        kinds={"polars", "parquet"},
        tags=PREPROCESSING_TAGS,
        op_tags=PREPROCESSING_OP_TAGS,
        code_version=CODE_VERSION,
        description=f"Events cut into sessions by `{name}`, low ratings removed per the rating policy.",
    )
    def sessions_asset(ratings: pl.DataFrame, preprocessing: PreprocessingSettings):
        all_events = sessions.assign_sessions(ratings, definition.gap)
        min_rating = sessions.rating_floor(definition, preprocessing.min_rating)
        kept = sessions.apply_rating_policy(all_events, min_rating)
        removed = {
            "events": all_events.height - kept.height,
            "sessions": all_events["session_id"].n_unique() - kept["session_id"].n_unique(),
            "items": all_events["item_id"].n_unique() - kept["item_id"].n_unique(),
        }
        metadata = {
            "definition": name,
            "gap_seconds": definition.gap.total_seconds() if definition.gap else dg.MetadataValue.null(),
            "min_rating": min_rating,
            **flatten(statistics.session_stats(kept)),
            **flatten(removed, "removed_by_rating_policy/"),
            "plots": session_plots(kept, name),
        }
        return table_output(kept, metadata)

    @dg.asset(
        key=list(layout.definition_key(name, "cleansed")),
        ins={
            "events": dg.AssetIn(list(layout.definition_key(name, "sessions"))),
            "cuts": dg.AssetIn(CUTS_KEY),
        },
        group_name=name,
        kinds={"polars", "parquet"},
        tags=PREPROCESSING_TAGS,
        op_tags=PREPROCESSING_OP_TAGS,
        code_version=CODE_VERSION,
        description="Short sessions and rare items dropped, repeatedly, until nothing changes; on the "
        "timeline protocol only the events before T_valid, so no later rating decides what is kept.",
    )
    def cleansed_asset(events: pl.DataFrame, cuts: pl.DataFrame, preprocessing: PreprocessingSettings):
        if preprocessing.split_method == "timeline":
            events = timeline.training_events(events, timeline.cuts_of(cuts))
        try:
            kept, rounds = cleansing.cleanse(
                events,
                min_session_length=preprocessing.min_session_length,
                min_item_support=preprocessing.min_item_support,
            )
        except InputDataError as error:
            raise InputDataError(f"{name}: {error}") from None
        report = pl.DataFrame(rounds)
        metadata = {
            "min_session_length": preprocessing.min_session_length,
            "min_item_support": preprocessing.min_item_support,
            "split_method": preprocessing.split_method,
            "rounds": len(rounds),
            **flatten(statistics.session_stats(kept)),
            **flatten(
                {col: int(report[col].sum()) for col in report.columns if col != "round"} if rounds else {},
                "cleansing/",
            ),
            "cleansing_rounds": table_md(report) if rounds else "none",
            "plots": session_plots(kept, f"{name} (cleansed)"),
        }
        return table_output(kept, metadata)

    @dg.multi_asset(
        name=f"{name}__split",
        op_tags=PREPROCESSING_OP_TAGS,
        ins={
            "cleansed": dg.AssetIn(list(layout.definition_key(name, "cleansed"))),
            "ratings": dg.AssetIn(RATINGS_KEY),
            **PROTOCOL_INS,
        },
        specs=[
            dg.AssetSpec(
                list(layout.definition_key(name, part)),
                deps=[list(layout.definition_key(name, "cleansed")), RATINGS_KEY, *PROTOCOL_KEYS],
                group_name=name,
                kinds={"polars", "parquet"},
                tags=PREPROCESSING_TAGS,
                code_version=CODE_VERSION,
            )
            for part in layout.SPLIT_TABLES
        ],
        description="Time split. timeline (default): train = the cleansed events before T_valid, "
        "valid/test = the shared targets, items = the shared candidates; days / fraction: test = "
        "latest sessions, valid = those before, unseen items dropped. The four tables are replaced as "
        "one unit.",
    )
    def split_asset(
        context: dg.AssetExecutionContext,
        cleansed: pl.DataFrame,
        ratings: pl.DataFrame,
        cuts: pl.DataFrame,
        candidates: pl.DataFrame,
        targets: pl.DataFrame,
        preprocessing: PreprocessingSettings,
        lake: DataLake,
    ):
        if preprocessing.split_method == "timeline":
            result = timeline.split_by_timeline(
                cleansed, ratings, candidates, targets, timeline.cuts_of(cuts), gap=definition.gap,
                min_session_length=preprocessing.min_session_length,
            )  # fmt: skip
        else:
            result = splitting.split(
                cleansed,
                method=preprocessing.split_method,
                test_days=preprocessing.test_days,
                valid_days=preprocessing.valid_days,
                test_fraction=preprocessing.test_fraction,
                valid_fraction=preprocessing.valid_fraction,
                min_session_length=preprocessing.min_session_length,
            )
        common = {
            "split_method": result.method,
            "valid_cutoff": str(result.valid_cutoff),
            "test_cutoff": str(result.test_cutoff),
            **flatten(result.report, "split/"),
        }
        context.log.info(f"{name}: split {common}")
        tables = {part: getattr(result, part) for part in schema.SPLITS}
        tables[layout.ITEM_INDEX] = result.item_index
        # One directory swap: a reader never sees a new train beside an old test or item index.
        directory = lake.split_dir(name)
        with files.atomic_directory(directory) as staging:
            for part, frame in tables.items():
                files.write_parquet(frame, staging / lake.table_path((name, part)).name)
        for part, frame in tables.items():
            sizes = (
                {"items": frame.height}
                if part == layout.ITEM_INDEX
                else {
                    "events": frame.height,
                    "sessions": frame["session_id"].n_unique(),
                    "items": frame["item_id"].n_unique(),
                }
            )
            yield dg.MaterializeResult(
                asset_key=list(layout.definition_key(name, part)),
                metadata={
                    "path": dg.MetadataValue.path(str(lake.table_path((name, part)))),
                    "rows": frame.height,
                    **common,
                    **sizes,
                },
                data_version=dg.DataVersion(files.fingerprint(frame)),
            )

    return [sessions_asset, cleansed_asset, split_asset]
