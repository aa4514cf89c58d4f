from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_fanout_job.errors import JobError
from batch_fanout_job.index import format_index_map, logical_index, parse_index_map


def test_index_map_lists_indices_and_ranges_in_order() -> None:
    assert parse_index_map("3,7,10-15") == [3, 7, 10, 11, 12, 13, 14, 15]


@pytest.mark.parametrize("text", ["", "3,,4", "a", "5-3", "1,1", "-2", "3-"])
def test_malformed_index_map_is_refused_naming_it(text: str) -> None:
    with pytest.raises(JobError, match="BATCH_FANOUT_INDEX_MAP"):
        parse_index_map(text)


@given(st.lists(st.integers(min_value=0, max_value=500), unique=True, max_size=60))
def test_formatted_index_map_parses_back(indices: list[int]) -> None:
    if indices:
        assert parse_index_map(format_index_map(indices)) == indices


def test_plain_job_works_on_index_zero() -> None:
    assert logical_index({}, 5) == 0


def test_array_child_works_on_its_array_index() -> None:
    assert logical_index({"AWS_BATCH_JOB_ARRAY_INDEX": "4"}, 5) == 4


def test_retry_array_child_works_on_the_mapped_index() -> None:
    environ = {"AWS_BATCH_JOB_ARRAY_INDEX": "2", "BATCH_FANOUT_INDEX_MAP": "3,7,10-15"}
    assert logical_index(environ, 20) == 10


def test_plain_retry_of_one_child_works_on_the_single_mapped_index() -> None:
    assert logical_index({"BATCH_FANOUT_INDEX_MAP": "7"}, 12) == 7


def test_plain_job_with_a_map_of_several_indices_is_refused() -> None:
    with pytest.raises(JobError, match="not an array job"):
        logical_index({"BATCH_FANOUT_INDEX_MAP": "3,4"}, 12)


def test_index_past_the_end_of_the_work_list_is_refused() -> None:
    with pytest.raises(JobError, match=r"logical index 12 is past the end of the stress tests \(12 items\)"):
        logical_index({"AWS_BATCH_JOB_ARRAY_INDEX": "12"}, 12, "stress tests")


def test_array_index_past_the_end_of_the_map_is_refused() -> None:
    environ = {"AWS_BATCH_JOB_ARRAY_INDEX": "2", "BATCH_FANOUT_INDEX_MAP": "3,7"}
    with pytest.raises(JobError, match="past the end of BATCH_FANOUT_INDEX_MAP"):
        logical_index(environ, 20)


def test_mapped_index_past_the_end_of_the_work_list_is_refused() -> None:
    environ = {"AWS_BATCH_JOB_ARRAY_INDEX": "0", "BATCH_FANOUT_INDEX_MAP": "30"}
    with pytest.raises(JobError, match="logical index 30 is past the end"):
        logical_index(environ, 20)


def test_non_numeric_array_index_is_refused() -> None:
    with pytest.raises(JobError, match="AWS_BATCH_JOB_ARRAY_INDEX='x'"):
        logical_index({"AWS_BATCH_JOB_ARRAY_INDEX": "x"}, 3)
