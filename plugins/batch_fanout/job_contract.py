"""The contract between the provider and the job containers: the logical index and "bad input".

This one module is shared by the Airflow side and the jobs. It imports nothing but the standard
library (never Airflow), so a job image copies it in as ``batch_fanout/job_contract.py`` beside an
empty ``batch_fanout/__init__.py`` and imports it as the provider does.

**The logical index.** AWS Batch cannot resubmit chosen children of an array, so the provider retries
only the failed children as a new, smaller array with an index map in the environment
(:data:`INDEX_MAP_VARIABLE`): child *j* works on the *j*-th listed logical index. A job that resolves
its index with :func:`logical_index` works on the right item after such a retry; a job that reads
``AWS_BATCH_JOB_ARRAY_INDEX`` directly would not. So the provider resubmits chosen indices only for
job definitions that declare the contract with the tag :data:`INDEX_MAP_TAG` set to ``"true"``; for
every other definition a retry resubmits the whole array.

**Bad input.** A job that finds its input unusable (a malformed graph, a test list it cannot run)
exits with :data:`EXIT_BAD_INPUT` after printing one line that says what is wrong. The project's job
definitions do not retry that exit code (an ``evaluateOnExit`` rule), and the operator and sensor fail
the Airflow task without retries, with that last log line in the task's error: running the same job
on the same input again can only fail again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

#: Set by AWS Batch on every child of an array job.
ARRAY_INDEX_VARIABLE = "AWS_BATCH_JOB_ARRAY_INDEX"
#: Set by the provider when a job works on chosen logical indices: ``3,7,10-15``.
INDEX_MAP_VARIABLE = "BATCH_FANOUT_INDEX_MAP"
#: The job-definition tag by which a definition declares that its jobs resolve their index through
#: :func:`logical_index` (value ``"true"``), so that a retry may resubmit only chosen indices.
INDEX_MAP_TAG = "batch-fanout:index-map"
#: The one exit code for "the input is bad": not retried by Batch nor by Airflow (``EX_DATAERR``).
EXIT_BAD_INPUT = 65

_ENTRY = re.compile(r"^(\d+)(?:-(\d+))?$")


class IndexContractError(ValueError):
    """The index variables are malformed or out of range; the message names the variable."""


def declares_index_map(tags: Mapping[str, str] | None) -> bool:
    """Whether a job definition's tags declare the index-map contract (:data:`INDEX_MAP_TAG`)."""
    return str((tags or {}).get(INDEX_MAP_TAG, "")).strip().lower() == "true"


def parse_index_map(text: str) -> list[int]:
    """Parse an index map such as ``3,7,10-15`` into the list of logical indices, in order.

    :param text: comma-separated non-negative integers and inclusive ranges ``A-B`` with ``A <= B``.
    :raises IndexContractError: on an empty map, a malformed entry, a reversed range or a repeated index.
    """
    entries = [entry.strip() for entry in text.split(",")]
    if not text.strip() or any(not entry for entry in entries):
        raise IndexContractError(
            f"{INDEX_MAP_VARIABLE}={text!r}: empty entry; expected indices and ranges like 3,7,10-15"
        )
    indices: list[int] = []
    for entry in entries:
        match = _ENTRY.match(entry)
        if not match:
            raise IndexContractError(
                f"{INDEX_MAP_VARIABLE}={text!r}: {entry!r} is not an index or a range A-B"
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise IndexContractError(f"{INDEX_MAP_VARIABLE}={text!r}: range {entry!r} ends before it starts")
        indices.extend(range(first, last + 1))
    if len(set(indices)) != len(indices):
        raise IndexContractError(f"{INDEX_MAP_VARIABLE}={text!r}: an index is listed more than once")
    return indices


def format_index_map(indices: Sequence[int]) -> str:
    """Format logical indices as the shortest index map (runs of three or more become ranges).

    :param indices: distinct non-negative indices, in the order the children should take them.
    """
    parts: list[str] = []
    position = 0
    while position < len(indices):
        end = position
        while end + 1 < len(indices) and indices[end + 1] == indices[end] + 1:
            end += 1
        if end - position >= 2:
            parts.append(f"{indices[position]}-{indices[end]}")
        else:
            parts.extend(str(index) for index in indices[position : end + 1])
        position = end + 1
    return ",".join(parts)


def logical_index(
    environ: Mapping[str, str], work_count: int | None = None, work_name: str = "work list"
) -> int:
    """Return the logical index this job works on.

    ``AWS_BATCH_JOB_ARRAY_INDEX`` (0 for a plain job) mapped through ``BATCH_FANOUT_INDEX_MAP`` when
    set. A plain job with a map of exactly one entry works on that entry.

    :param environ: the job's environment.
    :param work_count: the number of items in the work list, to refuse an index past its end.
    :param work_name: how the work list is named in error messages.
    :raises IndexContractError: on a malformed variable, or an index outside the map or the work list.
    """
    raw_index = environ.get(ARRAY_INDEX_VARIABLE, "").strip()
    array_index: int | None = None
    if raw_index:
        if not raw_index.isdigit():
            raise IndexContractError(f"{ARRAY_INDEX_VARIABLE}={raw_index!r} is not a non-negative integer")
        array_index = int(raw_index)
    raw_map = environ.get(INDEX_MAP_VARIABLE, "").strip()
    if raw_map:
        index_map = parse_index_map(raw_map)
        if array_index is None:
            if len(index_map) != 1:
                raise IndexContractError(
                    f"{INDEX_MAP_VARIABLE}={raw_map!r} lists {len(index_map)} indices but this is not an "
                    f"array job ({ARRAY_INDEX_VARIABLE} is not set)"
                )
            index = index_map[0]
        else:
            if array_index >= len(index_map):
                raise IndexContractError(
                    f"{ARRAY_INDEX_VARIABLE}={array_index} is past the end of {INDEX_MAP_VARIABLE}={raw_map!r} "
                    f"({len(index_map)} entries)"
                )
            index = index_map[array_index]
    else:
        index = array_index if array_index is not None else 0
    if work_count is not None and index >= work_count:
        raise IndexContractError(
            f"logical index {index} is past the end of the {work_name} ({work_count} items)"
        )
    return index
