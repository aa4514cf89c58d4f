"""The work plan a leader writes and its children read: array sizes, origins and shards.

Pure functions, so that a DAG can plan the same array sizes as the leader without running it:

>>> planned_array_sizes("stress,shortest_path", tests="12", shards="4")
{'stress': 12, 'shortest_path': 4}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from batch_fanout_job.errors import BadInputError, JobError

WORKLOADS = ("stress", "shortest_path")


def parse_workloads(text: str) -> list[str]:
    """Parse ``--workloads`` (``stress``, ``shortest_path`` or both, comma-separated).

    :raises BadInputError: on an unknown or empty workload list.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOADS]
    if not names or unknown:
        raise BadInputError(f"--workloads {text!r}: expected stress, shortest_path or stress,shortest_path")
    return [name for name in WORKLOADS if name in names]


def parse_positive_int(text: str, option: str) -> int:
    """Parse a positive integer option value, naming the option when it is not one."""
    if not text.strip().isdigit() or int(text) < 1:
        raise BadInputError(f"{option} {text!r}: expected a positive integer")
    return int(text)


def planned_array_sizes(workloads: str, tests: str, shards: str) -> dict[str, int]:
    """The array sizes the leader will produce for these parameters, without running it.

    :param workloads: the leader's ``--workloads``.
    :param tests: the leader's ``--tests`` (a count; ``all`` depends on the installed stress-ng and
        cannot be planned).
    :param shards: the leader's ``--shards`` (``none`` means 1).
    :raises BadInputError: when a size cannot be known in advance or a value is malformed.
    """
    chosen = parse_workloads(workloads)
    sizes = {"stress": 0, "shortest_path": 0}
    if "stress" in chosen:
        if tests.strip().lower() in ("all", "none", ""):
            raise BadInputError(
                "--tests all: the number of tests depends on the installed stress-ng; give a count"
            )
        sizes["stress"] = parse_positive_int(tests, "--tests")
    if "shortest_path" in chosen:
        sizes["shortest_path"] = (
            1 if shards.strip().lower() in ("none", "") else parse_positive_int(shards, "--shards")
        )
    return sizes


def plan_shards(origins: np.ndarray, shard_count: int) -> list[dict[str, Any]]:
    """Split the origins (1-based node ids, in order) into exactly ``shard_count`` balanced shards.

    A shard of consecutive ids is written as a range ``{"first": a, "last": b, "count": n}`` so that a
    plan over all nodes of a large graph stays small; any other shard lists its ``origins``.

    :raises BadInputError: when there are fewer origins than shards.
    """
    if shard_count > origins.shape[0]:
        raise BadInputError(
            f"--shards {shard_count}: only {origins.shape[0]} origins to share; every shard needs at least one"
        )
    shards: list[dict[str, Any]] = []
    for part in np.array_split(origins, shard_count):
        first, last = int(part[0]), int(part[-1])
        if last - first + 1 == part.shape[0] and bool(np.all(np.diff(part) == 1)):
            shards.append({"first": first, "last": last, "count": int(part.shape[0])})
        else:
            shards.append({"origins": [int(node) for node in part], "count": int(part.shape[0])})
    return shards


def shard_origins(shard: dict[str, Any]) -> np.ndarray:
    """The 1-based origin ids of one shard entry of the manifest.

    :raises JobError: when the entry is neither a range nor a list.
    """
    if "origins" in shard:
        return np.asarray(shard["origins"], dtype=np.int64)
    if "first" in shard and "last" in shard:
        return np.arange(int(shard["first"]), int(shard["last"]) + 1, dtype=np.int64)
    raise JobError(f"manifest shard entry {shard!r} has neither 'origins' nor 'first'/'last'")
