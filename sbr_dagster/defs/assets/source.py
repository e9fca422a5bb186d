"""Raw MovieLens tables, parsed once and shared by every session definition."""

import dagster as dg
import polars as pl

from sbr_dagster.data import parsing, source
from sbr_dagster.defs.assets import CODE_VERSION, PREPROCESSING_OP_TAGS, PREPROCESSING_TAGS
from sbr_dagster.defs.metadata import table_output
from sbr_dagster.defs.resources import DataLake, MovieLensSource, PreprocessingSettings
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import layout

RATINGS_KEY = dg.AssetKey(list(layout.RATINGS))
MOVIES_KEY = dg.AssetKey(list(layout.MOVIES))
RAW = {
    "group_name": layout.RAW,
    "kinds": {"polars", "parquet"},
    "tags": PREPROCESSING_TAGS,
    "op_tags": PREPROCESSING_OP_TAGS,
}


def raw_assets() -> list[dg.AssetsDefinition]:
    @dg.asset(key=RATINGS_KEY, ins={"movies": dg.AssetIn(MOVIES_KEY)}, code_version=CODE_VERSION, **RAW)
    def ratings(
        context: dg.AssetExecutionContext,
        movielens: MovieLensSource,
        lake: DataLake,
        preprocessing: PreprocessingSettings,
        movies: pl.DataFrame,
    ):
        """Every rating of ratings.dat with its line number (the tie-breaker for equal timestamps).

        A rating dated outside the plausible window, or of a movie movies.dat does not list, is an
        error; the second can be dropped instead (``drop_unknown_movies``), counted in the metadata.
        """
        directory = movielens.locate(cache_dir=lake.download_dir())
        path, movies_path = directory / "ratings.dat", directory / "movies.dat"
        window = preprocessing.rating_window()
        latest = None if window.latest_is_now else window.latest
        parsed = parsing.read_ratings(path, earliest=window.earliest, latest=latest)
        frame, duplicates = parsing.drop_duplicate_ratings(parsed)
        unknown = parsing.unknown_movies(frame, movies)
        if unknown.height and not preprocessing.drop_unknown_movies:
            raise InputDataError(parsing.unknown_movies_problem(unknown, movies_path))
        frame = frame.filter(~pl.col("line").is_in(unknown["line"].implode()))
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
                "unknown_movie_ratings_dropped": unknown.height,
                "rating_window": f"{window.earliest:%Y-%m-%d %H:%M} .. {window.latest:%Y-%m-%d %H:%M} UTC",
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
