"""The submission rules on their own (no Airflow, no network): retry plans, layouts, dependency
rewriting and the SubmitJob request."""

from __future__ import annotations

from typing import Any

import pytest

from batch_fanout import job_contract
from batch_fanout.submission import (
    array_layout,
    build_submit_request,
    plan_retry,
    resolve_dependencies,
)


def failed_array(size: int, index_map: str | None = None) -> dict[str, Any]:
    environment = [{"name": "BATCH_FANOUT_INDEX_MAP", "value": index_map}] if index_map else []
    return {
        "jobId": "prev",
        "status": "FAILED",
        "arrayProperties": {"size": size},
        "container": {"environment": environment},
    }


def test_only_failed_children_are_planned_for_a_definition_that_declares_the_contract() -> None:
    plan = plan_retry(failed_array(5), [2, 4], declares_index_map=True)
    assert plan.indices == [2, 4]
    assert "only logical indices 2,4" in plan.reason


def test_failed_children_of_a_mapped_retry_map_back_to_their_logical_indices() -> None:
    plan = plan_retry(failed_array(5, "0,2-5"), [1, 4], declares_index_map=True)
    assert plan.indices == [2, 5]


def test_a_definition_without_the_contract_is_run_whole_again_saying_why() -> None:
    plan = plan_retry(failed_array(5), [2, 4], declares_index_map=False)
    assert plan.indices is None
    assert "batch-fanout:index-map=true" in plan.reason and "whole job" in plan.reason


def test_retry_only_failed_children_off_runs_the_whole_array() -> None:
    plan = plan_retry(failed_array(5), [2], declares_index_map=True, only_failed_children=False)
    assert plan.indices is None


def test_no_failed_child_listed_runs_what_the_job_covered() -> None:
    assert plan_retry(failed_array(4), [], declares_index_map=True).indices is None
    assert plan_retry(failed_array(2, "3,8"), [], declares_index_map=True).indices == [3, 8]


def test_a_failed_plain_job_keeps_its_one_mapped_index() -> None:
    plain = {
        "jobId": "p",
        "status": "FAILED",
        "container": {"environment": [{"name": "BATCH_FANOUT_INDEX_MAP", "value": "7"}]},
    }
    assert plan_retry(plain, [], declares_index_map=True).indices == [7]


@pytest.mark.parametrize(
    ("size", "indices", "count", "logical", "index_map"),
    [
        (None, None, None, None, None),
        (1, None, 1, [0], "0"),
        (4, None, 4, [0, 1, 2, 3], None),
        (6, [1, 2, 3, 5], 4, [1, 2, 3, 5], "1-3,5"),
        (6, [4], 1, [4], "4"),
    ],
)
def test_array_layout(
    *, size: int | None, indices: list[int] | None, count: int | None, logical: Any, index_map: str | None
) -> None:
    layout = array_layout(size, indices)
    assert (layout.count, layout.logical, layout.index_map) == (count, logical, index_map)
    assert layout.is_array == (count is not None and count >= 2)


def upstream(size: int, status: str = "RUNNING", index_map: str | None = None) -> dict[str, Any]:
    return {**failed_array(size, index_map), "jobId": "up", "status": status}


def test_n_to_n_is_kept_when_both_sides_cover_the_same_indices() -> None:
    depends, notes = resolve_dependencies(
        [{"job_id": "up", "type": "N_TO_N"}],
        array_layout(6, [1, 3]),
        is_retry=True,
        described={"up": upstream(2, index_map="1,3")},
    )
    assert depends == [{"jobId": "up", "type": "N_TO_N"}] and notes == []


def test_n_to_n_becomes_a_whole_job_wait_when_the_indices_differ() -> None:
    depends, notes = resolve_dependencies(
        [{"job_id": "up", "type": "N_TO_N"}],
        array_layout(6, [2, 5]),
        is_retry=True,
        described={"up": upstream(6)},
    )
    assert depends == [{"jobId": "up"}]
    assert "waiting for all of it" in notes[0]


def test_n_to_n_on_a_succeeded_upstream_with_other_indices_is_dropped() -> None:
    depends, notes = resolve_dependencies(
        [{"job_id": "up", "type": "N_TO_N"}],
        array_layout(6, [2]),
        is_retry=True,
        described={"up": upstream(6, "SUCCEEDED")},
    )
    # A one-index retry is a plain job: it waits for the whole upstream, whatever the type.
    assert depends == [{"jobId": "up"}] and notes == []
    depends, notes = resolve_dependencies(
        [{"job_id": "up", "type": "N_TO_N"}],
        array_layout(6, [2, 4]),
        is_retry=True,
        described={"up": upstream(6, "SUCCEEDED")},
    )
    assert depends == [] and "dropping it" in notes[0]


def test_sequential_alone_and_plain_dependencies_pass_through() -> None:
    depends, _ = resolve_dependencies(
        [{"job_id": None, "type": "SEQUENTIAL"}, {"job_id": "a", "type": None}],
        array_layout(3, None),
        is_retry=False,
        described={},
    )
    assert depends == [{"type": "SEQUENTIAL"}, {"jobId": "a"}]


def test_request_puts_the_index_map_last_in_the_environment_and_drops_empty_fields() -> None:
    request = build_submit_request(
        job_name="n",
        job_queue="q",
        job_definition="d",
        layout=array_layout(5, [1, 3]),
        depends_on=[],
        tags={"t": "1"},
        container_overrides={
            "environment": [{"name": "BATCH_FANOUT_INDEX_MAP", "value": "stale"}, {"name": "A", "value": "1"}]
        },
        array_properties={"size": 5},
        parameters=None,
        retryStrategy={"attempts": 2},
    )
    assert request == {
        "jobName": "n",
        "jobQueue": "q",
        "jobDefinition": "d",
        "arrayProperties": {"size": 2},
        "containerOverrides": {
            "environment": [{"name": "A", "value": "1"}, {"name": "BATCH_FANOUT_INDEX_MAP", "value": "1,3"}]
        },
        "retryStrategy": {"attempts": 2},
        "tags": {"t": "1"},
    }


def test_the_contract_tag_and_the_bad_input_code() -> None:
    assert job_contract.EXIT_BAD_INPUT == 65
    assert job_contract.declares_index_map({"batch-fanout:index-map": "True"})
    assert not job_contract.declares_index_map({"batch-fanout:index-map": "no"})
    assert not job_contract.declares_index_map(None)
    with pytest.raises(job_contract.IndexContractError, match="BATCH_FANOUT_INDEX_MAP='2,2'"):
        job_contract.logical_index({"AWS_BATCH_JOB_ARRAY_INDEX": "0", "BATCH_FANOUT_INDEX_MAP": "2,2"})


def test_the_contract_module_imports_nothing_but_the_standard_library() -> None:
    import ast
    import sys
    from pathlib import Path

    tree = ast.parse(Path(job_contract.__file__).read_text())
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
    init = Path(job_contract.__file__).with_name("__init__.py").read_text()
    assert "import" not in init.replace("from __future__ import annotations", "")
