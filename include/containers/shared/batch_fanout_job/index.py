"""The logical work index of a job: which item of the work list it works on.

AWS Batch cannot resubmit chosen children of an array, so a retry of only the failed children is a new,
smaller array with an index map (``BATCH_FANOUT_INDEX_MAP``): child *j* works on the *j*-th listed
logical index. Outputs are keyed by the logical index, so the retried outputs complete the first set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from batch_fanout_job.errors import JobError

ARRAY_INDEX_VARIABLE = "AWS_BATCH_JOB_ARRAY_INDEX"
INDEX_MAP_VARIABLE = "BATCH_FANOUT_INDEX_MAP"

_ENTRY = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_index_map(text: str) -> list[int]:
    """Parse an index map such as ``3,7,10-15`` into the list of logical indices, in order.

    :param text: comma-separated non-negative integers and inclusive ranges ``A-B`` with ``A <= B``.
    :raises JobError: on an empty map, a malformed entry, a reversed range or a repeated index.
    """
    entries = [entry.strip() for entry in text.split(",")]
    if not text.strip() or any(not entry for entry in entries):
        raise JobError(
            f"{INDEX_MAP_VARIABLE}={text!r}: empty entry; expected indices and ranges like 3,7,10-15"
        )
    indices: list[int] = []
    for entry in entries:
        match = _ENTRY.match(entry)
        if not match:
            raise JobError(f"{INDEX_MAP_VARIABLE}={text!r}: {entry!r} is not an index or a range A-B")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise JobError(f"{INDEX_MAP_VARIABLE}={text!r}: range {entry!r} ends before it starts")
        indices.extend(range(first, last + 1))
    if len(set(indices)) != len(indices):
        raise JobError(f"{INDEX_MAP_VARIABLE}={text!r}: an index is listed more than once")
    return indices


def format_index_map(indices: list[int]) -> str:
    """Format logical indices as the shortest index map (consecutive runs become ranges).

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

    ``AWS_BATCH_JOB_ARRAY_INDEX`` (0 for a plain job) mapped through ``BATCH_FANOUT_INDEX_MAP`` when set.
    A plain job with a map of exactly one entry works on that entry.

    :param environ: the job's environment.
    :param work_count: the number of items in the work list, to refuse an index past its end.
    :param work_name: how the work list is named in error messages.
    :raises JobError: on a malformed variable, or an index outside the map or the work list.
    """
    raw_index = environ.get(ARRAY_INDEX_VARIABLE, "").strip()
    array_index: int | None = None
    if raw_index:
        if not raw_index.isdigit():
            raise JobError(f"{ARRAY_INDEX_VARIABLE}={raw_index!r} is not a non-negative integer")
        array_index = int(raw_index)
    raw_map = environ.get(INDEX_MAP_VARIABLE, "").strip()
    if raw_map:
        index_map = parse_index_map(raw_map)
        if array_index is None:
            if len(index_map) != 1:
                raise JobError(
                    f"{INDEX_MAP_VARIABLE}={raw_map!r} lists {len(index_map)} indices but this is not an "
                    f"array job ({ARRAY_INDEX_VARIABLE} is not set)"
                )
            index = index_map[0]
        else:
            if array_index >= len(index_map):
                raise JobError(
                    f"{ARRAY_INDEX_VARIABLE}={array_index} is past the end of {INDEX_MAP_VARIABLE}={raw_map!r} "
                    f"({len(index_map)} entries)"
                )
            index = index_map[array_index]
    else:
        index = array_index if array_index is not None else 0
    if work_count is not None and index >= work_count:
        raise JobError(f"logical index {index} is past the end of the {work_name} ({work_count} items)")
    return index
