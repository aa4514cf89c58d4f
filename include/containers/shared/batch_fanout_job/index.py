"""The logical work index of a job, as the provider's job contract defines it.

The contract lives in one place, :mod:`batch_fanout.job_contract` (copied into each image beside this
package); this module only turns its errors into :class:`~batch_fanout_job.errors.JobError`, so a job
reports a malformed index map as every other failure, in one line.
"""

from __future__ import annotations

from collections.abc import Mapping

from batch_fanout import job_contract
from batch_fanout.job_contract import ARRAY_INDEX_VARIABLE, INDEX_MAP_VARIABLE, format_index_map
from batch_fanout_job.errors import JobError

__all__ = [
    "ARRAY_INDEX_VARIABLE",
    "INDEX_MAP_VARIABLE",
    "format_index_map",
    "logical_index",
    "parse_index_map",
]


def parse_index_map(text: str) -> list[int]:
    """:func:`batch_fanout.job_contract.parse_index_map`, raising :class:`JobError`."""
    try:
        return job_contract.parse_index_map(text)
    except job_contract.IndexContractError as error:
        raise JobError(str(error)) from None


def logical_index(
    environ: Mapping[str, str], work_count: int | None = None, work_name: str = "work list"
) -> int:
    """:func:`batch_fanout.job_contract.logical_index`, raising :class:`JobError`."""
    try:
        return job_contract.logical_index(environ, work_count, work_name)
    except job_contract.IndexContractError as error:
        raise JobError(str(error)) from None
