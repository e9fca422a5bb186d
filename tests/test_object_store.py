"""The lake on an object store: the whole pipeline against an S3-compatible server on loopback (moto)."""

import socket

import dagster as dg
import polars as pl
import pytest
from pipeline_runs import run_job

from sbr_dagster.defs.resources import DataLake
from sbr_dagster.lake import files as lake

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

BUCKET = "sbr-lake"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_endpoint(monkeypatch):
    import boto3
    import s3fs

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_pipeline_writes_and_reads_an_s3_lake(ml1m_like_dir, s3_endpoint):
    import boto3

    root = f"s3://{BUCKET}/lake"
    run_config = {
        "ops": {
            "gap_1h__gru4rec": {"config": {"layers": [16], "epochs": 1, "batch_size": 16}},
            "gap_1h__metrics": {"config": {"n_bootstrap": 50}},
        }
    }
    result = run_job(
        "everything", data=ml1m_like_dir, lake_root=root, names=("gap_1h",), run_config=run_config
    )
    assert result.success
    # A 1-epoch model need not beat anything: its quality checks are left out (the rest must pass).
    quality = ("gru4rec_beats_popularity", "best_trained_model_beats_every_baseline")
    evaluations = result.get_asset_check_evaluations()
    assert all(e.passed for e in evaluations if e.asset_check_key.name not in quality)

    listed = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix="lake/")
    keys = {item["Key"] for item in listed["Contents"]}
    for key in (
        "raw/ratings.parquet",
        "gap_1h/split/train.parquet",
        "gap_1h/split/test.parquet",
        "gap_1h/metrics.parquet",
        "gap_1h/gru4rec/model.keras",
        "gap_1h/gru4rec/item_index.parquet",
        "gap_1h/ranks.parquet",
    ):
        assert f"lake/{key}" in keys, key
    assert not [k for k in keys if k.endswith(".tmp")]
    train = lake.read_parquet(DataLake(root=root).table_path(dg.AssetKey(["gap_1h", "train"])))
    assert train.height > 0 and "session_id" in train.columns
    metrics = lake.read_parquet(f"{root}/gap_1h/metrics.parquet")
    assert set(metrics["split"]) == {"valid", "test"}
    assert isinstance(metrics, pl.DataFrame)
