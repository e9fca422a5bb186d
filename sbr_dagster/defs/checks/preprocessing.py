"""Blocking checks on the raw and per-definition tables: a failure stops everything downstream and the CLI."""

from datetime import datetime

import dagster as dg
import polars as pl

from sbr_dagster.data import parsing, schema, source, validation
from sbr_dagster.defs.assets import PREPROCESSING_OP_TAGS
from sbr_dagster.defs.assets.source import MOVIES_KEY, RATINGS_KEY
from sbr_dagster.defs.resources import PreprocessingSettings
from sbr_dagster.lake import layout


def result(problems: list[str], **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) if problems else "ok",
        metadata={"problems": len(problems), **metadata},
    )


def latest_metadata(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> dict:
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def raw_checks() -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset=RATINGS_KEY,
        blocking=True,
        op_tags=PREPROCESSING_OP_TAGS,
        description="Dtypes and no nulls in the parsed ratings.",
    )
    def ratings_schema(ratings: pl.DataFrame) -> dg.AssetCheckResult:
        return result(
            validation.empty_problems(ratings, "the ratings table")
            + schema.schema_errors(ratings, schema.RATINGS)
            + validation.null_problems(ratings)
        )

    @dg.asset_check(
        asset=RATINGS_KEY,
        blocking=True,
        op_tags=PREPROCESSING_OP_TAGS,
        description="When the source is the real ML-1M ratings.dat: 1,000,209 ratings, 6,040 users, "
        "3,706 items.",
    )
    def ml1m_fingerprint(
        context: dg.AssetCheckExecutionContext, ratings: pl.DataFrame
    ) -> dg.AssetCheckResult:
        md5 = latest_metadata(context, RATINGS_KEY).get("source_md5")
        actual = {
            "ratings": ratings.height,
            "users": ratings["user_id"].n_unique(),
            "items": ratings["item_id"].n_unique(),
        }
        if md5 != source.ML1M_RATINGS_MD5:
            return dg.AssetCheckResult(
                passed=True,
                description="source is not ML-1M: fingerprint not applicable",
                metadata={"source_md5": str(md5), **actual},
            )
        problems = [
            f"{k}: {actual[k]:,} != {v:,}" for k, v in source.ML1M_FINGERPRINT.items() if actual[k] != v
        ]
        return result(problems, source_md5=md5, **actual)

    @dg.asset_check(
        asset=RATINGS_KEY,
        blocking=True,
        op_tags=PREPROCESSING_OP_TAGS,
        additional_ins={"movies": dg.AssetIn(MOVIES_KEY)},
        description="Every rated movie is in the movies table (titles for recommendations).",
    )
    def every_movie_known(ratings: pl.DataFrame, movies: pl.DataFrame) -> dg.AssetCheckResult:
        unknown = parsing.unknown_movies(ratings, movies)
        problems = [parsing.unknown_movies_problem(unknown, "the movies table")] if unknown.height else []
        return result(problems, unknown_ratings=unknown.height)

    return [ratings_schema, ml1m_fingerprint, every_movie_known]


def preprocessing_checks(name: str) -> list[dg.AssetChecksDefinition]:
    cleansed_key = dg.AssetKey(list(layout.definition_key(name, "cleansed")))
    part_keys = {part: dg.AssetKey(list(layout.definition_key(name, part))) for part in schema.SPLITS}
    train_key = part_keys["train"]
    ins = {part: dg.AssetIn(key) for part, key in part_keys.items() if part != "train"}

    @dg.asset_check(
        asset=cleansed_key,
        name="cleansing_thresholds",
        blocking=True,
        op_tags=PREPROCESSING_OP_TAGS,
        description="No nulls, every session >= min length, every item >= min support.",
    )
    def cleansing_thresholds(cleansed: pl.DataFrame, preprocessing: PreprocessingSettings):
        return result(
            validation.empty_problems(cleansed, "the cleansed table")
            + schema.schema_errors(cleansed, schema.SESSIONS)
            + validation.null_problems(cleansed)
            + validation.session_length_problems(cleansed, preprocessing.min_session_length)
            + validation.item_support_problems(cleansed, preprocessing.min_item_support)
        )

    @dg.asset_check(
        asset=train_key,
        name="split_schema",
        blocking=True,
        op_tags=PREPROCESSING_OP_TAGS,
        additional_ins=ins,
        description="train/valid/test have the split schema, no nulls, sessions >= min length.",
    )
    def split_schema(
        context: dg.AssetCheckExecutionContext,
        train: pl.DataFrame,
        valid: pl.DataFrame,
        test: pl.DataFrame,
        preprocessing: PreprocessingSettings,
    ):
        # On the timeline protocol valid and test are the shared targets: single events may count.
        on_timeline = latest_metadata(context, train_key).get("split_method") == "timeline"
        problems = []
        for part, frame in {"train": train, "valid": valid, "test": test}.items():
            found = (
                validation.empty_problems(frame, "the table")
                + schema.schema_errors(frame, schema.SPLIT)
                + validation.null_problems(frame)
            )
            if part == "train" or not on_timeline:
                found += validation.session_length_problems(frame, preprocessing.min_session_length)
            problems += [f"{part}: {p}" for p in found]
        return result(problems)

    @dg.asset_check(
        asset=train_key,
        name="split_leaks_nothing",
        blocking=True,
        op_tags=PREPROCESSING_OP_TAGS,
        additional_ins=ins,
        description="timeline: no train event at or after T_valid, targets within their periods; "
        "days / fraction: sessions disjoint, valid/test items within train, cut-offs respected.",
    )
    def split_leaks_nothing(
        context: dg.AssetCheckExecutionContext, train: pl.DataFrame, valid: pl.DataFrame, test: pl.DataFrame
    ):
        meta = latest_metadata(context, train_key)
        if "valid_cutoff" not in meta or "test_cutoff" not in meta:
            return result(
                [f"{train_key.to_user_string()} has no cut-offs in its metadata: re-materialize it"]
            )
        valid_cutoff = datetime.fromisoformat(meta["valid_cutoff"])
        test_cutoff = datetime.fromisoformat(meta["test_cutoff"])
        if meta.get("split_method") == "timeline":
            problems = validation.timeline_problems(train, valid, test, valid_cutoff, test_cutoff)
            return result(problems, valid_cutoff=meta["valid_cutoff"], test_cutoff=meta["test_cutoff"])
        problems = (
            validation.disjoint_session_problems({"train": train, "valid": valid, "test": test})
            + validation.unseen_item_problems(train, {"valid": valid, "test": test})
            + validation.cutoff_problems(train, test, valid_cutoff, test_cutoff)
        )
        return result(problems, valid_cutoff=meta["valid_cutoff"], test_cutoff=meta["test_cutoff"])

    return [cleansing_thresholds, split_schema, split_leaks_nothing]
