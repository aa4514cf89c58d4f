"""The batch-fanout operator: dependent and array AWS Batch jobs that re-attach instead of resubmitting.

:class:`BatchFanoutOperator` subclasses the Amazon provider's
:class:`~airflow.providers.amazon.aws.operators.batch.BatchOperator` (same arguments: ``job_name``,
``job_definition``, ``job_queue``, ``container_overrides``, ``parameters``, ``retry_strategy``,
``tags``, ``wait_for_completion``, ``deferrable``, ``poll_interval`` ...) and adds:

``depends_on``
    A list of ``{"job_id": ..., "type": "N_TO_N" | "SEQUENTIAL" | None}`` (a bare job id string is a
    plain dependency). Templated; job ids usually come from upstream tasks' output
    (``other_task.output``), which also sets the Airflow dependency. At most 20 entries, types checked,
    before anything is submitted. With ``wait_for_completion=False`` the operator returns the job id at
    once, so a whole graph of jobs is submitted in one go and AWS Batch gates it; watch each job with
    :class:`~batch_fanout.sensors.batch.BatchFanoutSensor`.
``array_size``
    The number of children; templated and rendered as an int (also from a Jinja string or an
    ``XComArg``). ``0`` skips the task, ``1`` submits a plain job that still sees logical index 0
    (through ``BATCH_FANOUT_INDEX_MAP=0``), above 10,000 is an error.
``tolerated_failures`` / ``fail_fast``
    By default the task fails once every child is terminal and some failed; its error lists the failed
    logical indices with each one's ``statusReason`` and exit code, and the last lines of their logs
    are copied into the task log. Up to ``tolerated_failures`` failed children let the task succeed
    (their logical indices go to the XCom ``failed_indices``). ``fail_fast`` terminates the job as
    soon as more than that have failed.
Re-attach and retry only failed children
    A retried task (Airflow retry, killed worker, restarted triggerer) finds the job its earlier try
    submitted (Airflow 3.3's ``task_state_store`` through ``ResumableJobMixin``, else the job's tags
    ``batch-fanout:dag-id`` / ``task-id`` / ``run-id`` / ``map-index``) and waits for it instead of
    submitting a duplicate. If that job ended with failed children, only those are submitted again, as
    a smaller array (a plain job for one) with ``BATCH_FANOUT_INDEX_MAP`` so that each child works on
    its original logical index. An ``N_TO_N`` dependency on an array that was itself re-run that way
    stays ``N_TO_N`` when both cover the same logical indices; otherwise it waits for the whole job, or
    is dropped once that job has succeeded.
``on_kill``
    Terminates the job; while deferred the trigger's ``on_kill`` does the same.

XCom: the return value is the job id (of this try's job). Also pushed: ``batch_job_id`` (as soon as
the job is submitted or re-attached), ``index_map`` (the logical indices the job works on, or
``None``), ``failed_indices`` (logical indices of tolerated failed children).

Example::

    leader = BatchFanoutOperator(
        task_id="leader", job_name="leader", job_definition="batch-fanout-leader",
        job_queue="batch-fanout-queue", wait_for_completion=False,
    )
    followers = BatchFanoutOperator(
        task_id="followers", job_name="followers", job_definition="batch-fanout-stress-ng",
        job_queue="batch-fanout-queue", array_size="{{ params.tests }}",
        depends_on=[{"job_id": leader.output, "type": None}], wait_for_completion=False,
    )
    watch = BatchFanoutSensor(task_id="watch_followers", job_id=followers.output)
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.amazon.aws.links.batch import BatchJobDefinitionLink, BatchJobQueueLink
from airflow.providers.amazon.aws.operators.batch import BatchOperator
from airflow.providers.amazon.aws.utils import trim_none_values, validate_execute_complete_event
from airflow.providers.common.compat.sdk import AirflowException, AirflowSkipException, ResumableJobMixin

from batch_fanout.hooks.batch_client import (
    ARRAY_SIZE_LIMIT,
    DEPENDS_ON_LIMIT,
    BatchFanoutClientHook,
    BatchJobState,
)
from batch_fanout.hooks.batch_outcome import (
    assess_finished_job,
    index_map_of,
    logical_indices_of,
    parse_tolerated_failures,
)
from batch_fanout.links.batch import OPERATOR_LINKS, BatchFanoutResultsLink, persist_job_links
from batch_fanout.triggers.batch import BatchFanoutTrigger
from batch_fanout_job.index import INDEX_MAP_VARIABLE, format_index_map

if TYPE_CHECKING:
    from airflow.sdk import Context

DEPENDENCY_TYPES = ("N_TO_N", "SEQUENTIAL")
TAG_DAG_ID = "batch-fanout:dag-id"
TAG_TASK_ID = "batch-fanout:task-id"
TAG_RUN_ID = "batch-fanout:run-id"
TAG_MAP_INDEX = "batch-fanout:map-index"
#: On a job that reruns (the failed children of) an earlier job: that job's id, so the array view can
#: show a logical index's whole history.
TAG_RETRY_OF = "batch-fanout:retry-of"
ACTIVE_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


def normalize_depends_on(depends_on: Any, *, allow_unresolved: bool = False) -> list[dict[str, Any]]:
    """Check ``depends_on`` and return it as ``[{"job_id": str | None, "type": str | None}]``.

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
    normalized: list[dict[str, Any]] = []
    for position, entry in enumerate(depends_on):
        where = f"depends_on[{position}]"
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


def parse_array_size(value: Any) -> int | None:
    """The array size as an int (``None`` for a plain job), from an int or a rendered string.

    :raises ValueError: naming the value when it is not a whole number in 0..10,000.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, bool):
        raise ValueError(f"array_size must be a whole number, got the boolean {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise ValueError(f"array_size must be a whole number, got {value!r}")
        value = int(text)
    if not isinstance(value, int):
        raise ValueError(f"array_size must be a whole number, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"array_size must be 0 or more, got {value}")
    if value > ARRAY_SIZE_LIMIT:
        raise ValueError(f"array_size {value} is above the AWS Batch limit of {ARRAY_SIZE_LIMIT:,} children")
    return value


class BatchFanoutOperator(ResumableJobMixin, BatchOperator):
    """Submit an AWS Batch job (plain or array, with dependencies) and optionally wait for it.

    See the module docstring for the behaviour. Arguments besides those of
    :class:`~airflow.providers.amazon.aws.operators.batch.BatchOperator`:

    :param depends_on: dependencies, ``[{"job_id": ..., "type": "N_TO_N" | "SEQUENTIAL" | None}]``
        (templated; job ids may be ``XComArg``).
    :param array_size: number of children (templated, rendered as an int); ``None`` for a plain job.
    :param tolerated_failures: failed children that still let the task succeed (templated, rendered
        as an int).
    :param fail_fast: terminate the job as soon as more than ``tolerated_failures`` children failed.
    :param retry_only_failed_children: on retry after a job with failed children, submit only those.
    :param tag_lookup: find an earlier try's job by its tags when ``task_state_store`` has none.
    :param failed_log_children: copy the logs of at most this many failed children into the task log.
    :param failed_log_lines: copy at most this many last lines of each.
    :param failed_log_line_length: cut copied lines to this many characters.
    :param results_uri: base of the results store (templated); when set, a "Run Results" link points
        at ``<results_uri>/<dag_id>/<run_id>/``.
    :param aws_conn_id: the Airflow AWS connection, ``batch_fanout_aws`` by default.
    :param poll_interval: seconds between polls, synchronous and deferred; a finished job is noticed
        within one interval.
    """

    aws_hook_class = BatchFanoutClientHook
    external_id_key = "batch_fanout_job_id"

    template_fields: Sequence[str] = (
        *BatchOperator.template_fields,
        "depends_on",
        "array_size",
        "tolerated_failures",
        "results_uri",
    )
    template_fields_renderers = {**BatchOperator.template_fields_renderers, "depends_on": "json"}

    operator_extra_links = OPERATOR_LINKS  # type: ignore[assignment]

    def __init__(
        self,
        *,
        depends_on: list[Any] | None = None,
        array_size: Any = None,
        tolerated_failures: Any = 0,
        fail_fast: bool = False,
        retry_only_failed_children: bool = True,
        tag_lookup: bool = True,
        failed_log_children: int = 5,
        failed_log_lines: int = 20,
        failed_log_line_length: int = 1000,
        results_uri: str | None = None,
        aws_conn_id: str | None = "batch_fanout_aws",
        poll_interval: float = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(aws_conn_id=aws_conn_id, poll_interval=poll_interval, **kwargs)
        self.depends_on = depends_on
        self.array_size = array_size
        self.tolerated_failures = tolerated_failures
        self.fail_fast = fail_fast
        self.retry_only_failed_children = retry_only_failed_children
        self.tag_lookup = tag_lookup
        self.failed_log_children = failed_log_children
        self.failed_log_lines = failed_log_lines
        self.failed_log_line_length = failed_log_line_length
        self.results_uri = results_uri
        # What can be checked before rendering is checked now, so a DAG with a bad value never parses.
        normalize_depends_on(depends_on, allow_unresolved=True)
        if isinstance(array_size, int) or (isinstance(array_size, str) and "{" not in array_size):
            parse_array_size(array_size)
        if not (isinstance(tolerated_failures, str) and "{" in tolerated_failures):
            parse_tolerated_failures(tolerated_failures)
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval}")
        self._size: int | None = None
        self._dependencies: list[dict[str, Any]] = []
        self._kill_requested = False

    @property
    def fanout_hook(self) -> BatchFanoutClientHook:
        """The operator's hook, typed as the batch-fanout hook it is."""
        return cast("BatchFanoutClientHook", self.hook)

    # -- execute -------------------------------------------------------------------------------------

    def _validate_rendered(self) -> None:
        """Check the rendered arguments; nothing has been submitted yet."""
        self._dependencies = normalize_depends_on(self.depends_on)
        self.tolerated_failures = parse_tolerated_failures(self.tolerated_failures)
        size = parse_array_size(self.array_size)
        if size is None and self.array_properties:
            size = parse_array_size((self.array_properties or {}).get("size"))
        self._size = size

    def execute(self, context: Context) -> str | None:
        self._validate_rendered()
        if self._size == 0:
            raise AirflowSkipException(
                f"array_size is 0: no Batch job submitted for {self.job_name!r}, skipping the task"
            )
        if self.results_uri:
            BatchFanoutResultsLink.persist_results(context, self, self.results_uri)
        if self.deferrable and self.wait_for_completion:
            job_id = self.submit_job(context)
            store = context.get("task_state_store")
            if store is not None and self.durable:
                store.set(self.external_id_key, job_id)
            description = self.fanout_hook.get_job_description(job_id)
            state = BatchJobState.from_description(description)
            self.log.info("%s", state.progress_line())
            if state.is_terminal:
                return self._finish(context, description)
            self.defer(
                trigger=BatchFanoutTrigger.for_task(self, job_id, poll_interval=self.poll_interval),
                method_name="execute_complete",
                timeout=self.execution_timeout,
            )
        return self.execute_resumable(context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        validated = validate_execute_complete_event(event)
        self.job_id = validated["job_id"]
        if validated["status"] == "error":
            raise AirflowException(f"Watching AWS Batch job {self.job_id} failed: {validated.get('message')}")
        description = self.fanout_hook.get_job_description(self.job_id)
        fail_fast_reason = validated.get("message") if validated["status"] == "fail_fast" else None
        return self._finish(context, description, fail_fast_reason=fail_fast_reason)

    def on_kill(self) -> None:
        self._kill_requested = True
        if not self.job_id:
            return
        self.fanout_hook.terminate(self.job_id, "Airflow task killed")

    # -- ResumableJobMixin ---------------------------------------------------------------------------

    def get_job_status(self, external_id: Any, context: Context) -> str:
        try:
            return self.fanout_hook.get_job_description(str(external_id)).get("status", "UNKNOWN")
        except AirflowException:
            return "NOT_FOUND"

    def is_job_active(self, status: str) -> bool:
        return status in ACTIVE_STATES

    def is_job_succeeded(self, status: str) -> bool:
        return status == "SUCCEEDED"

    def submit_job(self, context: Context) -> str:
        """Re-attach to this task's earlier job, or submit (only the failed children of it)."""
        previous = self._previous_job(context)
        indices: list[int] | None = None
        if previous is not None:
            state = BatchJobState.from_description(previous)
            if not state.is_terminal or state.is_successful:
                self.log.info(
                    "Re-attaching to AWS Batch job %s (%s) submitted by an earlier try; not submitting again",
                    state.job_id,
                    state.status,
                )
                self._set_job(context, state.job_id, previous)
                return state.job_id
            indices = self._indices_to_retry(previous) if self.retry_only_failed_children else None
        request = self._submit_request(context, indices)
        if previous is not None:
            request["tags"][TAG_RETRY_OF] = previous["jobId"]
        self.log.info(
            "Submitting AWS Batch job %r to %s with definition %s: %s",
            self.job_name,
            self.job_queue,
            self.job_definition,
            _request_summary(request),
        )
        try:
            response = self.fanout_hook.submit(request)
        except Exception as error:
            raise AirflowException(f"AWS Batch refused job {self.job_name!r}: {error}") from error
        job_id = response["jobId"]
        # Known at once, so that a kill from here on terminates this job.
        self.job_id = job_id
        self.log.info("AWS Batch job %s submitted", job_id)
        if self._kill_requested:
            # The kill came while SubmitJob was under way: the job it created must not run on.
            self.fanout_hook.terminate(job_id, "Airflow task killed")
            raise AirflowException(f"Airflow task killed while submitting; AWS Batch job {job_id} terminated")
        self._persist_definition_and_queue_links(context, request, response.get("jobArn", ""))
        # What the links need is in the request: no DescribeJobs call for it.
        self._set_job(context, job_id, {"jobId": job_id, "arrayProperties": request.get("arrayProperties")})
        return job_id

    def _persist_definition_and_queue_links(
        self, context: Context, request: dict[str, Any], job_arn: str
    ) -> None:
        """The Amazon provider's job definition and queue links, from the request and the job's ARN
        (``arn:<partition>:batch:<region>:<account>:job/<id>``): no DescribeJobs call, and the links
        are there even when the task does not wait for the job."""
        parts = job_arn.split(":")
        if len(parts) < 6 or parts[2] != "batch":
            return
        prefix = ":".join(parts[:5])

        def arn(kind: str, name: str) -> str:
            return name if name.startswith("arn:") else f"{prefix}:{kind}/{name}"

        common = {
            "context": context,
            "operator": self,
            "region_name": parts[3],
            "aws_partition": parts[1],
        }
        BatchJobDefinitionLink.persist(
            **common, job_definition_arn=arn("job-definition", str(request["jobDefinition"]))
        )
        BatchJobQueueLink.persist(**common, job_queue_arn=arn("job-queue", str(request["jobQueue"])))

    def poll_until_complete(self, external_id: Any, context: Context) -> str:  # type: ignore[override]
        job_id = str(external_id)
        self._set_job(context, job_id)
        if not self.wait_for_completion:
            self.log.info("Not waiting for AWS Batch job %s (wait_for_completion=False)", job_id)
            return job_id
        while True:
            description = self.fanout_hook.get_job_description(job_id)
            state = BatchJobState.from_description(description)
            self.log.info("%s", state.progress_line())
            if state.is_terminal:
                return self._finish(context, description)
            if self.fail_fast and state.failed > self.tolerated_failures:
                reason = (
                    f"fail-fast: {state.failed} children failed, more than the "
                    f"{self.tolerated_failures} tolerated"
                )
                self.fanout_hook.terminate(job_id, reason)
                return self._finish(context, description, fail_fast_reason=reason)
            # Jitter spreads many tasks' polls apart; the upper bound keeps "seen within one interval".
            time.sleep(self.poll_interval * random.uniform(0.8, 1.0))

    def get_job_result(self, external_id: Any, context: Context) -> str:
        job_id = str(external_id)
        self._set_job(context, job_id)
        return job_id

    # -- internals -----------------------------------------------------------------------------------

    def _task_tags(self, context: Context) -> dict[str, str]:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return {
            TAG_DAG_ID: str(ti.dag_id),
            TAG_TASK_ID: str(ti.task_id),
            TAG_RUN_ID: str(ti.run_id),
            TAG_MAP_INDEX: str(-1 if map_index is None else map_index),
        }

    def _previous_job(self, context: Context) -> dict[str, Any] | None:
        """The job an earlier try of this task instance submitted, newest first, if any."""
        store = context.get("task_state_store")
        if store is not None and self.durable:
            stored = store.get(self.external_id_key)
            if stored:
                try:
                    return self.fanout_hook.get_job_description(str(stored))
                except AirflowException:
                    self.log.warning("Job %s recorded by an earlier try is unknown to Batch", stored)
        ti = context["ti"]
        if self.tag_lookup and (getattr(ti, "try_number", 1) or 1) > 1:
            matches = self.fanout_hook.find_jobs_by_tags(
                self.job_queue, self.job_name, self._task_tags(context)
            )
            if matches:
                self.log.info("Found job %s of an earlier try by its tags", matches[0]["jobId"])
                return matches[0]
        return None

    def _indices_to_retry(self, previous: dict[str, Any]) -> list[int] | None:
        """Logical indices to run again after ``previous`` failed; ``None`` means the whole job."""
        state = BatchJobState.from_description(previous)
        covered = logical_indices_of(previous) if state.is_array else index_map_of(previous)
        if not state.is_array:
            # A failed plain job is run again as it was (keeping its one mapped index, if any).
            return covered
        failed = self.fanout_hook.failed_child_indices(state.job_id)
        if not failed or covered is None:
            self.log.info(
                "Earlier array job %s failed with no failed child listed; running it all", state.job_id
            )
            return covered if index_map_of(previous) is not None else None
        indices = [covered[index] for index in failed if index < len(covered)]
        self.log.info(
            "Earlier array job %s had %d failed of %d children; submitting only logical indices %s",
            state.job_id,
            len(indices),
            state.total,
            format_index_map(indices),
        )
        return indices

    def _submit_request(self, context: Context, indices: list[int] | None) -> dict[str, Any]:
        overrides = copy.deepcopy(self.container_overrides) if self.container_overrides else {}
        environment = [e for e in overrides.get("environment", []) if e.get("name") != INDEX_MAP_VARIABLE]
        array_properties = {k: v for k, v in (self.array_properties or {}).items() if k != "size"}
        if indices is not None:
            logical: list[int] | None = indices
            environment.append({"name": INDEX_MAP_VARIABLE, "value": format_index_map(indices)})
            count: int | None = len(indices)
        elif self._size == 1:
            # AWS Batch refuses an array of size 1: a plain job with a one-entry map still sees index 0.
            logical = [0]
            environment.append({"name": INDEX_MAP_VARIABLE, "value": "0"})
            count = 1
        else:
            count = self._size
            logical = list(range(count)) if count else None
        if environment or "environment" in overrides:
            overrides["environment"] = environment
        is_array = count is not None and count >= 2
        if is_array:
            array_properties["size"] = count
        request: dict[str, Any] = {
            "jobName": self.job_name,
            "jobQueue": self.job_queue,
            "jobDefinition": self.job_definition,
            "arrayProperties": array_properties or None,
            "dependsOn": self._resolve_dependencies(logical if is_array else None, indices is not None)
            or None,
            "parameters": self.parameters,
            "containerOverrides": overrides or None,
            "ecsPropertiesOverride": self.ecs_properties_override,
            "eksPropertiesOverride": self.eks_properties_override,
            "nodeOverrides": self.node_overrides,
            "retryStrategy": self.retry_strategy,
            "shareIdentifier": self.share_identifier,
            "schedulingPriorityOverride": self.scheduling_priority_override,
            "tags": {**(self.tags or {}), **self._task_tags(context)},
        }
        if self.submit_job_timeout:
            request["timeout"] = {"attemptDurationSeconds": self.submit_job_timeout}
        return trim_none_values(request)

    def _resolve_dependencies(self, logical: list[int] | None, is_retry: bool) -> list[dict[str, str]]:
        """``dependsOn`` for this submission; ``logical`` is ``None`` when this job is not an array.

        ``N_TO_N`` pairs child *j* with child *j* of the dependency, so it is only kept when both jobs
        cover the same logical indices in the same order; when a retry changed either side, the
        dependency waits for the whole job instead, or is dropped if that job already succeeded.
        """
        resolved: list[dict[str, str]] = []
        n_to_n = [d["job_id"] for d in self._dependencies if d["type"] == "N_TO_N" and d["job_id"]]
        described = (
            {d["jobId"]: d for d in self.fanout_hook.describe_jobs(n_to_n)} if n_to_n and logical else {}
        )
        for dependency in self._dependencies:
            job_id, kind = dependency["job_id"], dependency["type"]
            if logical is None:
                # A plain job waits for the whole of each dependency; SEQUENTIAL alone means nothing.
                if job_id:
                    resolved.append({"jobId": job_id})
                continue
            if kind != "N_TO_N":
                resolved.append(trim_none_values({"jobId": job_id, "type": kind}))
                continue
            other = described.get(job_id)
            if other is None:
                resolved.append({"jobId": job_id, "type": kind})
                continue
            other_logical = logical_indices_of(other)
            mapped = is_retry or index_map_of(other) is not None
            if not mapped or other_logical == logical:
                resolved.append({"jobId": job_id, "type": kind})
            elif other.get("status") == "SUCCEEDED":
                self.log.info(
                    "Dependency %s already succeeded for the indices it covers; dropping it", job_id
                )
            else:
                self.log.info(
                    "Dependency %s covers other logical indices than this job; waiting for all of it", job_id
                )
                resolved.append({"jobId": job_id})
        return resolved

    def _set_job(self, context: Context, job_id: str, description: dict[str, Any] | None = None) -> None:
        """Record the job this try works with: attribute, XCom and links (once per job)."""
        if self.job_id == job_id and getattr(self, "_linked_job", None) == job_id:
            return
        self.job_id = job_id
        self._linked_job = job_id
        if self.do_xcom_push:
            context["ti"].xcom_push(key="batch_job_id", value=job_id)
        persist_job_links(
            context,
            self,
            region_name=self.fanout_hook.conn_region_name,
            aws_partition=self.fanout_hook.conn_partition,
            job_id=job_id,
            description=description,
        )

    def _finish(
        self, context: Context, description: dict[str, Any], fail_fast_reason: str | None = None
    ) -> str:
        """Turn a terminal job into the task's result: return its id, or raise listing failed children."""
        job_id = description["jobId"]
        self.job_id = job_id
        outcome = assess_finished_job(
            self.fanout_hook,
            description,
            tolerated_failures=self.tolerated_failures,
            log=self.log,
            failed_log_children=self.failed_log_children,
            failed_log_lines=self.failed_log_lines,
            failed_log_line_length=self.failed_log_line_length,
            fail_fast_reason=fail_fast_reason,
        )
        first_failed = outcome.failed_children[0] if outcome.failed_children else None
        persist_job_links(
            context,
            self,
            region_name=self.fanout_hook.conn_region_name,
            aws_partition=self.fanout_hook.conn_partition,
            job_id=job_id,
            description=description,
            first_failed_child=(
                {
                    "job_id": first_failed.job_id,
                    "log_group": first_failed.log_group,
                    "log_stream": first_failed.log_stream,
                }
                if first_failed
                else None
            ),
        )
        if description.get("jobDefinition") and description.get("jobQueue"):
            # The Amazon provider's definition and queue links, from the description already at hand.
            self._persist_links(context, job_description=description)
        if self.do_xcom_push:
            mapped = index_map_of(description)
            context["ti"].xcom_push(key="index_map", value=format_index_map(mapped) if mapped else None)
            context["ti"].xcom_push(key="failed_indices", value=outcome.failed_logical_indices)
        if not outcome.succeeded:
            raise AirflowException(outcome.message)
        if outcome.failed_logical_indices:
            self.log.warning("%s; succeeding as tolerated", outcome.message)
        else:
            self.log.info("%s", outcome.message)
        return job_id


def _request_summary(request: dict[str, Any]) -> str:
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
