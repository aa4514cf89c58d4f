"""The jobs' results store on S3, as the images use it (s3fs behind fsspec)."""

from __future__ import annotations

import boto3
import pytest

from batch_fanout_job.errors import JobError
from batch_fanout_job.store import RunStore


def test_a_run_store_on_s3_writes_reads_and_replaces_whole_objects(s3_bucket: str) -> None:
    store = RunStore(f"{s3_bucket}/results", "dag_a/run_1")
    store.write_json("stress/3.json", {"index": 3, "bogo_ops": 10})
    store.write_json("stress/3.json", {"index": 3, "bogo_ops": 11})  # a retried child overwrites
    assert store.read_json("stress/3.json") == {"index": 3, "bogo_ops": 11}
    assert store.exists("stress/3.json") and not store.exists("stress/4.json")
    keys = [
        item["Key"]
        for item in boto3.client("s3", region_name="us-east-1").list_objects_v2(
            Bucket="batch-fanout-results"
        )["Contents"]
    ]
    assert keys == ["results/dag_a/run_1/stress/3.json"]


def test_a_missing_bucket_is_a_clear_error(s3_bucket: str) -> None:
    with pytest.raises(JobError, match="no-such-bucket"):
        RunStore("s3://no-such-bucket/results", "dag_a/run_1").write_json("manifest.json", {})
