"""Dagster resources: where the lake is, where MovieLens comes from, and the preprocessing knobs."""

from pathlib import Path
from typing import Literal

import dagster as dg
import polars as pl

from sbr_dagster import settings
from sbr_dagster.data import cleansing, source, splitting
from sbr_dagster.lake import files, layout


class DataLake(dg.ConfigurableResource):
    """Root of the data lake, a local path or an fsspec URL (``s3://bucket/lake``).

    Paths come from ``lake.layout``: a table is ``<root>/<asset key path>.parquet``.
    """

    root: str

    def table_path(self, key: dg.AssetKey | layout.Key) -> Path:
        return layout.table_path(self.root, tuple(key.path if isinstance(key, dg.AssetKey) else key))

    def split_dir(self, definition: str) -> Path:
        return layout.split_dir(self.root, definition)

    def model_dir(self, prefix: layout.Key, model: str) -> Path:
        return layout.model_dir(self.root, prefix, model)

    def download_dir(self) -> Path:
        return layout.download_dir(self.root)


class LakeParquetIOManager(dg.ConfigurableIOManager):
    """Stores Polars frames as Parquet in the lake, atomically, at a path named by the asset key."""

    lake: DataLake

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

    def locate(self, cache_dir: Path) -> Path:
        return source.locate_ml1m(self.local_dir, cache_dir, url=self.url, md5=self.md5)


class PreprocessingSettings(dg.ConfigurableResource):
    """Knobs shared by every session definition; override per run under ``resources.preprocessing``."""

    min_rating: int = 1
    min_session_length: int = 2
    min_item_support: int = 5
    split_method: Literal["days", "fraction"] = "days"
    test_days: float = 30.0
    valid_days: float = 30.0
    test_fraction: float = 0.1
    valid_fraction: float = 0.1

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Every knob is checked when the run starts, before any asset writes a table."""
        cleansing.check_thresholds(self.min_session_length, self.min_item_support)
        splitting.check_settings(
            self.split_method,
            test_days=self.test_days,
            valid_days=self.valid_days,
            test_fraction=self.test_fraction,
            valid_fraction=self.valid_fraction,
        )


def default_resources() -> dict[str, object]:
    data_lake = DataLake(root=settings.lake_root())
    return {
        "lake": data_lake,
        "io_manager": LakeParquetIOManager(lake=data_lake),
        "movielens": MovieLensSource(local_dir=settings.ml1m_dir()),
        "preprocessing": PreprocessingSettings(),
    }
