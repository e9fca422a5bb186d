"""Dagster resources: where the lake is, where MovieLens comes from, and the preprocessing knobs."""

from pathlib import Path
from typing import Literal

import dagster as dg
import polars as pl
import pydantic

from sbr_dagster import settings
from sbr_dagster.data import cleansing, parsing, sessions, source, splitting
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import files, layout
from sbr_dagster.models import registry


class DataLake(dg.ConfigurableResource):
    """Root of the data lake, a local path or an fsspec URL (``s3://bucket/lake``).

    Paths come from ``lake.layout``: a table is ``<root>/<asset key path>.parquet``.
    """

    root: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A local root that cannot be a directory fails when the run starts, before any write."""
        if files.is_remote(self.root):
            files.check_reachable(self.root)
        else:
            files.ensure_directory(self.root)

    def table_path(self, key: dg.AssetKey | layout.Key) -> Path:
        return layout.table_path(self.root, tuple(key.path if isinstance(key, dg.AssetKey) else key))

    def split_dir(self, definition: str) -> Path:
        return layout.split_dir(self.root, definition)

    def model_dir(self, prefix: layout.Key, model: str) -> Path:
        return layout.model_dir(self.root, prefix, model)

    def download_dir(self) -> Path:
        return layout.download_dir(self.root)


class RunSettings(dg.ConfigurableResource):
    """Checks every op setting of a run when it starts, so a wrong model setting fails before the
    preprocessing steps of the same run rewrite a table. ``models`` maps each training op to its
    model (filled in by the pipeline); counts named in ``POSITIVE_SETTINGS`` must be >= 1 in any op.
    The IO manager holds it too: each step initialises only the resources it uses, in its own
    process when steps run in parallel, and every step reads or writes through the IO manager."""

    models: dict[str, str] = pydantic.Field(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        ops = (context.dagster_run.run_config or {}).get("ops", {}) if context.dagster_run else {}
        for op, entry in ops.items():
            settings_of = dict((entry or {}).get("config") or {})
            if op in self.models:
                try:
                    registry.make_config(self.models[op], settings_of)
                except InputDataError as error:
                    raise InputDataError(f"ops.{op}.config: {error}") from None
            for name, value in settings_of.items():
                if name in POSITIVE_SETTINGS and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 1
                ):
                    raise InputDataError(
                        f"ops.{op}.config.{name} must be a whole number >= 1; got {value!r}."
                    )


# Evaluation and sample settings that must be positive counts (see defs/assets/modeling.py).
POSITIVE_SETTINGS = ("n_bootstrap", "n_sessions", "history_length")


class LakeParquetIOManager(dg.ConfigurableIOManager):
    """Stores Polars frames as Parquet in the lake, atomically, at a path named by the asset key;
    no step of a run whose settings are wrong reads or writes a table (``RunSettings``)."""

    lake: DataLake
    run_settings: RunSettings

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        if obj is None:
            return
        path = files.write_parquet(obj, self.lake.table_path(context.asset_key))
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path)), "rows": obj.height})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        path = self.lake.table_path(context.asset_key)
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: materialize {context.asset_key.to_user_string()} first"
            )
        return files.read_parquet(path)


class MovieLensSource(dg.ConfigurableResource):
    """A local ML-1M directory (``SBR_ML1M_DIR``) or, when unset, the verified GroupLens download."""

    local_dir: str | None = None
    url: str = source.ML1M_URL
    md5: str = source.ML1M_ZIP_MD5

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A local copy that is not there fails when the run starts, not after other steps wrote."""
        if self.local_dir:
            source.check_dataset_dir(Path(self.local_dir), f"from {settings.ENV_ML1M_DIR} / local_dir")

    def locate(self, cache_dir: Path) -> Path:
        return source.locate_ml1m(self.local_dir, cache_dir, url=self.url, md5=self.md5)


class PreprocessingSettings(dg.ConfigurableResource):
    """Knobs shared by every session definition; override per run under ``resources.preprocessing``."""

    min_rating: int = 1
    min_session_length: int = 2
    min_item_support: int = 5
    # timeline: one shared test for every variant (data.timeline); days / fraction: each
    # definition's own test sessions, as the reference GRU4Rec and the seeds report.
    split_method: Literal["timeline", "days", "fraction"] = "timeline"
    test_days: float = 30.0
    valid_days: float = 30.0
    test_fraction: float = 0.1
    valid_fraction: float = 0.1
    # Ratings dated outside [earliest_rating, latest_rating] are errors (a wrong clock or unit); ISO
    # dates or date-times, UTC unless an offset is given; latest_rating unset = the time of the run.
    earliest_rating: str = parsing.MOVIELENS_START.date().isoformat()
    latest_rating: str | None = None
    # Ratings of movies missing from movies.dat are an error, or with this set, dropped and counted.
    drop_unknown_movies: bool = False

    def rating_window(self) -> parsing.RatingWindow:
        latest = (
            None
            if self.latest_rating is None
            else parsing.parse_moment(self.latest_rating, parsing.LATEST_SETTING)
        )
        earliest = parsing.parse_moment(self.earliest_rating, parsing.EARLIEST_SETTING)
        return parsing.rating_window(earliest, latest)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Every knob is checked when the run starts, before any asset writes a table."""
        sessions.check_min_rating(self.min_rating)
        self.rating_window()
        cleansing.check_thresholds(self.min_session_length, self.min_item_support)
        splitting.check_settings(
            self.split_method,
            test_days=self.test_days,
            valid_days=self.valid_days,
            test_fraction=self.test_fraction,
            valid_fraction=self.valid_fraction,
        )


def default_resources(run_settings: RunSettings | None = None) -> dict[str, object]:
    data_lake = DataLake(root=settings.lake_root())
    run_settings = run_settings or RunSettings()
    return {
        "lake": data_lake,
        "run_settings": run_settings,
        "io_manager": LakeParquetIOManager(lake=data_lake, run_settings=run_settings),
        "movielens": MovieLensSource(local_dir=settings.ml1m_dir()),
        "preprocessing": PreprocessingSettings(),
    }
