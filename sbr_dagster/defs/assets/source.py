"""Raw MovieLens tables, parsed once and shared by every session definition."""

import dagster as dg
import polars as pl

from sbr_dagster.data import parsing, source
from sbr_dagster.defs.assets import CODE_VERSION, PREPROCESSING_TAGS
from sbr_dagster.defs.metadata import table_output
from sbr_dagster.defs.resources import DataLake, MovieLensSource
from sbr_dagster.lake import layout

RATINGS_KEY = dg.AssetKey(list(layout.RATINGS))
MOVIES_KEY = dg.AssetKey(list(layout.MOVIES))
RAW = {"group_name": layout.RAW, "kinds": {"polars", "parquet"}, "tags": PREPROCESSING_TAGS}


def raw_assets() -> list[dg.AssetsDefinition]:
    @dg.asset(key=RATINGS_KEY, code_version=CODE_VERSION, **RAW)
    def ratings(context: dg.AssetExecutionContext, movielens: MovieLensSource, lake: DataLake):
        """Every rating of ratings.dat with its line number (the tie-breaker for equal timestamps)."""
        directory = movielens.locate(cache_dir=lake.download_dir())
        path = directory / "ratings.dat"
        frame, duplicates = parsing.drop_duplicate_ratings(parsing.read_ratings(path))
        context.log.info(f"parsed {frame.height:,} ratings from {path}")
        return table_output(
            frame,
            {
                "source_file": dg.MetadataValue.path(str(path)),
                "source_md5": source.md5_of(path),
                "ratings": frame.height,
                "users": frame["user_id"].n_unique(),
                "items": frame["item_id"].n_unique(),
                "duplicate_ratings_dropped": duplicates,
                "first_event": str(frame["timestamp"].min()),
                "last_event": str(frame["timestamp"].max()),
            },
        )

    @dg.asset(key=MOVIES_KEY, code_version=CODE_VERSION, **RAW)
    def movies(movielens: MovieLensSource, lake: DataLake) -> dg.Output[pl.DataFrame]:
        """Titles, years and genres, for people reading recommendations."""
        path = movielens.locate(cache_dir=lake.download_dir()) / "movies.dat"
        frame = parsing.read_movies(path)
        return table_output(frame, {"source_file": dg.MetadataValue.path(str(path)), "movies": frame.height})

    return [ratings, movies]
