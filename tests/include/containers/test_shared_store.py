from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from batch_fanout_job.errors import EXIT_INJECTED_FAILURE, JobError
from batch_fanout_job.plan import plan_shards, planned_array_sizes, shard_origins
from batch_fanout_job.runtime import fail_once_indices, maybe_fail_once, parse_optional
from batch_fanout_job.store import RunStore


def test_writes_land_under_the_run_prefix_and_leave_no_temporary_file(tmp_path: Path) -> None:
    store = RunStore(tmp_path.as_uri(), "dag/run_1")
    uri = store.write_json("stress/3.json", {"index": 3})
    assert uri == f"{tmp_path.as_uri()}/dag/run_1/stress/3.json"
    assert store.read_json("stress/3.json") == {"index": 3}
    assert [p.name for p in (tmp_path / "dag" / "run_1" / "stress").iterdir()] == ["3.json"]


def test_a_rewrite_replaces_the_whole_object(tmp_path: Path) -> None:
    store = RunStore(tmp_path.as_uri(), "run")
    store.write_text("a.txt", "a much longer first version\n")
    store.write_text("a.txt", "short\n")
    assert store.read_text("a.txt") == "short\n"


def test_missing_results_uri_is_a_clear_error() -> None:
    with pytest.raises(JobError, match="RESULTS_URI is not set"):
        RunStore.from_environ({})


def test_results_uri_without_a_scheme_is_refused() -> None:
    with pytest.raises(JobError, match="is not a URI"):
        RunStore("/tmp/results", "run")


def test_results_folder_that_does_not_exist_is_named(tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere").as_uri()
    with pytest.raises(JobError, match="does not exist"):
        RunStore(missing, "run")


def test_reading_a_missing_object_names_its_uri(tmp_path: Path) -> None:
    store = RunStore(tmp_path.as_uri(), "run")
    with pytest.raises(JobError, match=r"run/manifest\.json does not exist"):
        store.read_json("manifest.json")


def test_corrupt_json_is_named(tmp_path: Path) -> None:
    store = RunStore(tmp_path.as_uri(), "run")
    store.write_text("manifest.json", "{not json")
    with pytest.raises(JobError, match=r"manifest\.json is not valid JSON"):
        store.read_json("manifest.json")


def test_fail_once_fails_the_first_try_and_lets_the_retry_through(tmp_path: Path) -> None:
    store = RunStore(tmp_path.as_uri(), "run")
    environ = {"BATCH_FANOUT_FAIL_ONCE": "2,5"}
    maybe_fail_once(environ, store, "stress", 1)  # not listed
    with pytest.raises(JobError, match="injected failure") as caught:
        maybe_fail_once(environ, store, "stress", 2)
    assert caught.value.exit_code == EXIT_INJECTED_FAILURE
    maybe_fail_once(environ, store, "stress", 2)  # the retry
    with pytest.raises(JobError, match="injected failure"):
        maybe_fail_once(environ, store, "shortest_path", 2)  # another workload's first try


def test_malformed_fail_once_list_is_refused() -> None:
    assert fail_once_indices({"BATCH_FANOUT_FAIL_ONCE": "none"}) == set()
    with pytest.raises(JobError, match="BATCH_FANOUT_FAIL_ONCE"):
        fail_once_indices({"BATCH_FANOUT_FAIL_ONCE": "1,x"})


def test_none_means_not_set() -> None:
    assert parse_optional("none") is None
    assert parse_optional(" None ") is None
    assert parse_optional("") is None
    assert parse_optional("12") == "12"


def test_planned_array_sizes_match_the_parameters() -> None:
    assert planned_array_sizes("stress,shortest_path", "12", "4") == {"stress": 12, "shortest_path": 4}
    assert planned_array_sizes("shortest_path", "all", "none") == {"stress": 0, "shortest_path": 1}
    with pytest.raises(JobError, match="--tests all"):
        planned_array_sizes("stress", "all", "3")


def test_shards_are_balanced_and_cover_every_origin_once() -> None:
    origins = np.arange(1, 1001, dtype=np.int64)
    shards = plan_shards(origins, 7)
    counts = [shard["count"] for shard in shards]
    assert len(shards) == 7 and max(counts) - min(counts) <= 1
    assert np.array_equal(np.concatenate([shard_origins(shard) for shard in shards]), origins)
    assert "first" in shards[0]  # consecutive ids are written as ranges


def test_listed_origins_keep_their_order_in_shards() -> None:
    shards = plan_shards(np.array([9, 2, 7]), 2)
    assert [list(shard_origins(shard)) for shard in shards] == [[9, 2], [7]]


def test_more_shards_than_origins_is_refused() -> None:
    with pytest.raises(JobError, match="--shards 5: only 3 origins"):
        plan_shards(np.array([1, 2, 3]), 5)


@pytest.mark.parametrize("uri", ["nosuch://bucket/prefix", "s3://bucket/prefix"])
def test_a_store_that_cannot_be_opened_is_named(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # s3:// without s3fs (the images carry it; tests do not need it): a None entry makes imports fail.
    monkeypatch.setitem(sys.modules, "s3fs", None)
    # ... and fsspec must not have the class already from a test that used s3fs before this one.
    monkeypatch.delitem(importlib.import_module("fsspec.registry")._registry, "s3", raising=False)
    with pytest.raises(JobError, match=f"RESULTS_URI='{uri}': cannot open the store"):
        RunStore(uri, "run")
