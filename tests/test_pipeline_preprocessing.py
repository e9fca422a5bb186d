"""The preprocessing assets and their blocking checks, materialized through Dagster end to end."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from pipeline_runs import resources_for, run_job

from sbr_dagster.data import schema
from sbr_dagster.defs.pipeline import build_definitions
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import layout

DEFINITIONS = ("user", "gap_30m", "gap_1h", "gap_1d")


def run_preprocessing(
    data_dir: Path, lake_root: Path, names=DEFINITIONS, **settings
) -> dg.ExecuteInProcessResult:
    return run_job("preprocess", data=data_dir, lake_root=lake_root, names=names, **settings)


def assert_all_checks_passed(result: dg.ExecuteInProcessResult) -> int:
    evaluations = result.get_asset_check_evaluations()
    failed = [(e.asset_check_key.to_user_string(), e.description) for e in evaluations if not e.passed]
    assert not failed
    return len(evaluations)


def test_materializes_every_table_for_every_definition(ml1m_like_dir, tmp_path):
    result = run_preprocessing(ml1m_like_dir, tmp_path)
    assert result.success
    # 2 raw checks + 3 per definition
    assert assert_all_checks_passed(result) == 3 + 3 * len(DEFINITIONS)  # raw: schema, fingerprint, movies
    assert (tmp_path / "raw" / "ratings.parquet").is_file()
    assert (tmp_path / "raw" / "movies.parquet").is_file()
    for name in DEFINITIONS:
        for table in ("sessions", "cleansed", "train", "valid", "test", "item_index"):
            path = layout.table_path(tmp_path, (name, table))
            assert path.is_file(), path
        train = pl.read_parquet(layout.table_path(tmp_path, (name, "train")))
        assert dict(train.schema) == schema.SPLIT
        test = pl.read_parquet(layout.table_path(tmp_path, (name, "test")))
        items = pl.read_parquet(layout.table_path(tmp_path, (name, "item_index")))["item_id"]
        assert set(test["item_id"].unique()) <= set(items)
    # The timeline protocol: every definition's test table is the same shared targets.
    targets = pl.read_parquet(tmp_path / "timeline" / "targets.parquet")
    for name in DEFINITIONS:
        test = pl.read_parquet(layout.table_path(tmp_path, (name, "test")))
        assert test.height == targets.filter(pl.col("split") == "test").height


def test_metadata_has_stats_and_plots(ml1m_like_dir, tmp_path):
    result = run_preprocessing(ml1m_like_dir, tmp_path, names=("gap_1h",))
    sessions = result.asset_materializations_for_node("gap_1h__sessions")
    assert sessions, "sessions asset materialized"
    metadata = sessions[0].metadata
    assert metadata["events"].value > 0
    assert "data:image/png;base64," in metadata["plots"].value
    split = result.asset_materializations_for_node("gap_1h__split")
    cutoffs = {m.asset_key.path[-1]: m.metadata["test_cutoff"].value for m in split}
    assert set(cutoffs) == {"train", "valid", "test", "item_index"}


def test_fraction_split_is_selectable_per_run(ml1m_like_dir, tmp_path):
    result = run_preprocessing(
        ml1m_like_dir,
        tmp_path,
        names=("gap_1h",),
        split_method="fraction",
        test_fraction=0.2,
        valid_fraction=0.2,
    )
    assert result.success
    assert_all_checks_passed(result)
    sessions = {
        part: pl.read_parquet(layout.table_path(tmp_path, ("gap_1h", part)))["session_id"].n_unique()
        for part in ("train", "valid", "test")
    }
    assert sessions["test"] > 0.1 * sum(sessions.values())


def test_rerun_is_idempotent(ml1m_like_dir, tmp_path):
    run_preprocessing(ml1m_like_dir, tmp_path, names=("user",))
    first = {p: p.read_bytes() for p in (tmp_path / "user").glob("*.parquet")}
    run_preprocessing(ml1m_like_dir, tmp_path, names=("user",))
    second = {p: p.read_bytes() for p in (tmp_path / "user").glob("*.parquet")}
    assert first == second
    assert not list(tmp_path.rglob("*.tmp")), "no temporary files left behind"


def test_bad_source_fails_without_writing(tmp_path):
    data_dir = tmp_path / "bad"
    data_dir.mkdir()
    (data_dir / "ratings.dat").write_text("1::10::5::978300760\n1,11,4,978300761\n")
    (data_dir / "movies.dat").write_text("10::A (1999)::Drama\n11::B (1999)::Drama\n")
    with pytest.raises(InputDataError, match=r"ratings\.dat, line 2: .*separated by commas"):
        run_preprocessing(data_dir, tmp_path / "lake", names=("user",))
    assert not (tmp_path / "lake" / "raw" / "ratings.parquet").exists()
    assert not list((tmp_path / "lake").rglob("*.tmp")), "nothing half-written left behind"


@pytest.mark.real_data
def test_real_ml1m_preprocessing(real_ml1m_dir, tmp_path):
    result = run_preprocessing(real_ml1m_dir, tmp_path)
    assert result.success
    assert_all_checks_passed(result)
    ratings = result.asset_materializations_for_node("raw__ratings")[0].metadata
    assert ratings["ratings"].value == 1_000_209
    cuts = pl.read_parquet(tmp_path / "timeline" / "cuts.parquet").row(0, named=True)
    assert str(cuts["valid_cut"]) == "2000-12-02 14:52:18+00:00"
    train = pl.read_parquet(layout.table_path(tmp_path, ("user", "train")))
    assert train.height == 799_531 and train["timestamp"].max() < cuts["valid_cut"]
    for name in DEFINITIONS:
        test = pl.read_parquet(layout.table_path(tmp_path, (name, "test")))
        assert test.height == 99_604, name  # the same shared targets under every definition
    # The days split stays as the reference GRU4Rec has it.
    days = run_preprocessing(real_ml1m_dir, tmp_path / "days", names=("user",), split_method="days")
    assert days.success
    assert_all_checks_passed(days)
    assert pl.read_parquet(layout.table_path(tmp_path / "days", ("user", "train"))).height == 919_209


def test_a_selection_may_take_part_of_the_shared_test(ml1m_like_dir, tmp_path):
    """'+<definition>/metrics' reaches the cuts and targets but not the candidates: the timeline
    asset runs for the part selected instead of refusing the whole selection."""
    run_preprocessing(ml1m_like_dir, tmp_path, names=("user",))
    candidates = layout.table_path(tmp_path, layout.CANDIDATES)
    before = candidates.stat().st_mtime_ns
    defs = build_definitions(("user",), resources=resources_for(ml1m_like_dir, tmp_path))
    selected = [dg.AssetKey(list(layout.CUTS)), dg.AssetKey(list(layout.TARGETS))]
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(selected))
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert {e.asset_key for e in result.get_asset_materialization_events()} == set(selected)
    assert candidates.stat().st_mtime_ns == before
