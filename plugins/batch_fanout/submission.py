"""What to submit to AWS Batch, decided without Airflow or a network call: arguments, retries, requests.

The operator (:mod:`batch_fanout.operators.batch`) is Airflow glue over these pure functions, so each
rule is tested on its own:

- :func:`normalize_depends_on`, :func:`parse_array_size`, :func:`parse_tolerated_failures`: check the
  (rendered) arguments, with errors that name the argument and the entry;
- :func:`plan_retry`: which logical indices a retry runs after an earlier job failed, and why;
- :func:`array_layout`: how many children a submission has and which logical index each works on;
- :func:`resolve_dependencies`: ``dependsOn`` for a submission, rewriting ``N_TO_N`` where a retry
  changed which indices either side covers;
- :func:`build_submit_request`: the SubmitJob request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from batch_fanout.job_contract import INDEX_MAP_VARIABLE, format_index_map, parse_index_map

#: The largest array AWS Batch accepts.
ARRAY_SIZE_LIMIT = 10_000
#: The most dependencies one job may have.
DEPENDS_ON_LIMIT = 20
DEPENDENCY_TYPES = ("N_TO_N", "SEQUENTIAL")

#: Tags the operator puts on every job, so a later try of the same task instance finds it.
TAG_DAG_ID = "batch-fanout:dag-id"
TAG_TASK_ID = "batch-fanout:task-id"
TAG_RUN_ID = "batch-fanout:run-id"
TAG_MAP_INDEX = "batch-fanout:map-index"
#: On a job that reruns (the failed children of) an earlier job: that job's id, so the array view can
#: show a logical index's whole history.
TAG_RETRY_OF = "batch-fanout:retry-of"

#: One entry of DescribeJobs (``jobs[i]``): boto3 answers are plain JSON mappings.
JobDescription = Mapping[str, Any]


class Dependency(TypedDict):
    """One checked ``depends_on`` entry: a job id (``None`` only for ``SEQUENTIAL``) and its type."""

    job_id: str | None
    type: str | None


def normalize_depends_on(depends_on: object, *, allow_unresolved: bool = False) -> list[Dependency]:
    """Check ``depends_on`` and return it as a list of :class:`Dependency`.

    :param depends_on: ``None``, or a list of job id strings and ``{"job_id", "type"}`` mappings
        (``jobId`` is accepted too).
    :param allow_unresolved: accept values that are not strings yet (templates and ``XComArg`` before
        rendering), checking only what is already known.
    :raises ValueError: naming the entry and what is wrong with it.
    """
    if depends_on is None:
        return []
    if isinstance(depends_on, (str, dict)) or not isinstance(depends_on, (list, tuple)):
        if allow_unresolved and not isinstance(depends_on, (str, dict)):
            return []
        raise ValueError(
            f"depends_on must be a list of job ids or {{'job_id', 'type'}} mappings, got {depends_on!r}"
        )
    if len(depends_on) > DEPENDS_ON_LIMIT:
        raise ValueError(
            f"depends_on has {len(depends_on)} entries; AWS Batch allows at most {DEPENDS_ON_LIMIT} per job"
        )
    normalized: list[Dependency] = []
    for position, entry in enumerate(depends_on):
        where = f"depends_on[{position}]"
        job_id: object
        kind: object
        if isinstance(entry, dict):
            unknown = set(entry) - {"job_id", "jobId", "type"}
            if unknown:
                raise ValueError(f"{where} has unknown keys {sorted(unknown)}; expected 'job_id' and 'type'")
            job_id = entry.get("job_id", entry.get("jobId"))
            kind = entry.get("type")
        else:
            job_id, kind = entry, None
        if isinstance(kind, str):
            kind = kind.strip().upper() or None
        if kind is not None and not isinstance(kind, str):
            if allow_unresolved:
                continue
            raise ValueError(f"{where}.type must be a string, got {kind!r}")
        if kind is not None and kind not in DEPENDENCY_TYPES:
            raise ValueError(
                f"{where}.type is {kind!r}; expected one of {', '.join(DEPENDENCY_TYPES)} or none"
            )
        if job_id is None or (isinstance(job_id, str) and not job_id.strip()):
            if kind == "SEQUENTIAL":
                normalized.append({"job_id": None, "type": kind})
                continue
            raise ValueError(
                f"{where} has no job id (got {job_id!r}); an upstream task that should return a job id "
                "returned nothing"
            )
        if not isinstance(job_id, str):
            if allow_unresolved:
                normalized.append({"job_id": None, "type": kind})
                continue
            raise ValueError(
                f"{where}.job_id must be a string job id, got {type(job_id).__name__} {job_id!r}"
            )
        normalized.append({"job_id": job_id.strip(), "type": kind})
    return normalized


def _whole_number(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number, got the boolean {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        value = int(text)
    if not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}")
    return value


def parse_array_size(value: object) -> int | None:
    """The array size as an int (``None`` for a plain job), from an int or a rendered string.

    :raises ValueError: naming the value when it is not a whole number in 0..10,000.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    size = _whole_number("array_size", value)
    if size > ARRAY_SIZE_LIMIT:
        raise ValueError(f"array_size {size} is above the AWS Batch limit of {ARRAY_SIZE_LIMIT:,} children")
    return size


def parse_tolerated_failures(value: object) -> int:
    """``tolerated_failures`` as an int, from an int or a rendered string.

    :raises ValueError: naming the value when it is not a whole number of 0 or more.
    """
    if isinstance(value, float):
        raise ValueError(f"tolerated_failures must be a whole number, got float {value!r}")
    return _whole_number("tolerated_failures", value)


def is_unrendered(value: object) -> bool:
    """Whether ``value`` is still a Jinja template (checked again once rendered)."""
    return isinstance(value, str) and "{" in value


def index_map_of(description: JobDescription) -> list[int] | None:
    """The logical indices a job works on, from its ``BATCH_FANOUT_INDEX_MAP`` (``None`` if unset)."""
    environment = (description.get("container") or {}).get("environment") or []
    for variable in environment:
        if variable.get("name") == INDEX_MAP_VARIABLE and variable.get("value"):
            return parse_index_map(str(variable["value"]))
    return None


def logical_indices_of(description: JobDescription) -> list[int] | None:
    """The logical indices a job covers: its index map, else ``0..size-1`` for an array, else ``None``."""
    mapped = index_map_of(description)
    if mapped is not None:
        return mapped
    size = (description.get("arrayProperties") or {}).get("size")
    return list(range(int(size))) if size else None


@dataclass(frozen=True)
class RetryPlan:
    """What a retry submits after an earlier job failed.

    :param indices: the logical indices to run (through an index map), or ``None`` for the whole job.
    :param reason: one line for the task log saying why.
    """

    indices: list[int] | None
    reason: str


def plan_retry(
    previous: JobDescription,
    failed_child_indices: Sequence[int],
    *,
    declares_index_map: bool,
    only_failed_children: bool = True,
) -> RetryPlan:
    """Decide what to submit after ``previous`` (a failed job of an earlier try) ended.

    Only failed children are run again when that is asked for and the job definition declares that
    its jobs resolve their index through the index map (:data:`batch_fanout.job_contract.INDEX_MAP_TAG`):
    a job that reads ``AWS_BATCH_JOB_ARRAY_INDEX`` itself would work on the wrong items.

    :param previous: the earlier job's description.
    :param failed_child_indices: the array indices of its failed children (empty for a plain job).
    :param declares_index_map: whether its job definition declares the index-map contract.
    :param only_failed_children: the operator's ``retry_only_failed_children``.
    """
    job_id = previous.get("jobId", "?")
    mapped = index_map_of(previous)
    is_array = bool((previous.get("arrayProperties") or {}).get("size"))
    if not declares_index_map:
        return RetryPlan(
            None,
            f"Earlier job {job_id} failed; submitting the whole job again: its job definition does not "
            "declare the tag batch-fanout:index-map=true, so its jobs may not read BATCH_FANOUT_INDEX_MAP "
            "and a smaller array would work on the wrong indices",
        )
    if not is_array:
        # A failed plain job runs again as it was (keeping its one mapped index, if any).
        return RetryPlan(mapped, f"Earlier job {job_id} failed; submitting it again")
    covered = logical_indices_of(previous) or []
    if not only_failed_children:
        return RetryPlan(mapped, f"Earlier array job {job_id} failed; submitting it whole again")
    indices = [covered[index] for index in failed_child_indices if index < len(covered)]
    if not indices:
        return RetryPlan(
            mapped,
            f"Earlier array job {job_id} failed with no failed child listed; submitting it whole again",
        )
    return RetryPlan(
        indices,
        f"Earlier array job {job_id} had {len(indices)} failed of {len(covered)} children; submitting "
        f"only logical indices {format_index_map(indices)}",
    )


@dataclass(frozen=True)
class ArrayLayout:
    """How one submission lays out its work.

    :param count: children of the array, 1 for a plain job that still has a logical index, ``None``
        for a plain job.
    :param logical: the logical index of each child, or ``None`` for a plain job.
    :param index_map: the value of ``BATCH_FANOUT_INDEX_MAP``, if the job gets one.
    """

    count: int | None
    logical: list[int] | None
    index_map: str | None

    @property
    def is_array(self) -> bool:
        return self.count is not None and self.count >= 2


def array_layout(size: int | None, indices: Sequence[int] | None) -> ArrayLayout:
    """The layout of a job of ``size`` children, or of the chosen logical ``indices`` of a retry."""
    if indices is not None:
        chosen = list(indices)
        return ArrayLayout(len(chosen), chosen, format_index_map(chosen))
    if size == 1:
        # AWS Batch refuses an array of size 1: a plain job with a one-entry map still sees index 0.
        return ArrayLayout(1, [0], "0")
    return ArrayLayout(size, list(range(size)) if size else None, None)


def resolve_dependencies(
    dependencies: Sequence[Dependency],
    layout: ArrayLayout,
    *,
    is_retry: bool,
    described: Mapping[str, JobDescription],
) -> tuple[list[dict[str, str]], list[str]]:
    """``dependsOn`` for a submission, and one log line per rewritten dependency.

    ``N_TO_N`` pairs child *j* with child *j* of the dependency, so it is kept only when both jobs
    cover the same logical indices in the same order; when a retry changed either side, the
    dependency waits for the whole job instead, or is dropped if that job already succeeded.

    :param dependencies: the checked ``depends_on``.
    :param layout: this submission's layout.
    :param is_retry: whether this submission runs chosen indices of an earlier job.
    :param described: descriptions of the ``N_TO_N`` dependencies, by job id.
    """
    resolved: list[dict[str, str]] = []
    notes: list[str] = []
    for dependency in dependencies:
        job_id, kind = dependency["job_id"], dependency["type"]
        if not layout.is_array:
            # A plain job waits for the whole of each dependency; SEQUENTIAL alone means nothing.
            if job_id:
                resolved.append({"jobId": job_id})
            continue
        entry = {"jobId": job_id, "type": kind} if job_id else {"type": kind}
        other = described.get(job_id) if job_id and kind == "N_TO_N" else None
        if other is None:
            resolved.append({key: value for key, value in entry.items() if value is not None})
            continue
        mapped = is_retry or index_map_of(other) is not None
        if not mapped or logical_indices_of(other) == layout.logical:
            resolved.append({"jobId": str(job_id), "type": "N_TO_N"})
        elif other.get("status") == "SUCCEEDED":
            notes.append(f"Dependency {job_id} already succeeded for the indices it covers; dropping it")
        else:
            notes.append(
                f"Dependency {job_id} covers other logical indices than this job; waiting for all of it"
            )
            resolved.append({"jobId": str(job_id)})
    return resolved, notes


def build_submit_request(
    *,
    job_name: str,
    job_queue: str,
    job_definition: str,
    layout: ArrayLayout,
    depends_on: Sequence[Mapping[str, str]],
    tags: Mapping[str, str],
    container_overrides: Mapping[str, Any] | None = None,
    array_properties: Mapping[str, Any] | None = None,
    **optional: Any,
) -> dict[str, Any]:
    """The SubmitJob request: the layout's size and index map merged into the caller's overrides.

    :param optional: further SubmitJob fields (``parameters``, ``retryStrategy``, ...); ``None``
        values are left out, as are empty ``dependsOn`` and overrides.
    """
    overrides = {key: value for key, value in (container_overrides or {}).items()}
    environment = [e for e in overrides.get("environment", []) if e.get("name") != INDEX_MAP_VARIABLE]
    if layout.index_map is not None:
        environment.append({"name": INDEX_MAP_VARIABLE, "value": layout.index_map})
    if environment or "environment" in overrides:
        overrides["environment"] = environment
    properties = {key: value for key, value in (array_properties or {}).items() if key != "size"}
    if layout.is_array:
        properties["size"] = layout.count
    request: dict[str, Any] = {
        "jobName": job_name,
        "jobQueue": job_queue,
        "jobDefinition": job_definition,
        "arrayProperties": properties or None,
        "dependsOn": list(depends_on) or None,
        "containerOverrides": overrides or None,
        **optional,
        "tags": dict(tags),
    }
    return {key: value for key, value in request.items() if value is not None}


def task_tags(dag_id: str, task_id: str, run_id: str, map_index: int | None) -> dict[str, str]:
    """The tags that identify the task instance a job was submitted by (found again on retry)."""
    return {
        TAG_DAG_ID: str(dag_id),
        TAG_TASK_ID: str(task_id),
        TAG_RUN_ID: str(run_id),
        TAG_MAP_INDEX: str(-1 if map_index is None else map_index),
    }


@dataclass(frozen=True)
class ResourceArns:
    """Where a submitted job's definition and queue are, for the Amazon provider's links."""

    job_definition: str
    job_queue: str
    region_name: str
    aws_partition: str

    @property
    def link_location(self) -> dict[str, str]:
        return {"region_name": self.region_name, "aws_partition": self.aws_partition}


def resource_arns(job_arn: str, job_definition: str, job_queue: str) -> ResourceArns | None:
    """The ARNs of a job's definition and queue, from the job's ARN
    (``arn:<partition>:batch:<region>:<account>:job/<id>``); ``None`` if it is not one."""
    parts = job_arn.split(":")
    if len(parts) < 6 or parts[2] != "batch":
        return None
    prefix = ":".join(parts[:5])

    def arn(kind: str, name: str) -> str:
        return name if name.startswith("arn:") else f"{prefix}:{kind}/{name}"

    return ResourceArns(
        arn("job-definition", job_definition), arn("job-queue", job_queue), parts[3], parts[1]
    )


def request_summary(request: Mapping[str, Any]) -> str:
    """One line for the task log: array or plain, index map, dependencies."""
    parts = []
    if "arrayProperties" in request:
        parts.append(f"array of {request['arrayProperties'].get('size')}")
    else:
        parts.append("plain job")
    for variable in (request.get("containerOverrides") or {}).get("environment", []):
        if variable.get("name") == INDEX_MAP_VARIABLE:
            parts.append(f"{INDEX_MAP_VARIABLE}={variable['value']}")
    if request.get("dependsOn"):
        parts.append(f"dependsOn={request['dependsOn']}")
    return ", ".join(parts)
