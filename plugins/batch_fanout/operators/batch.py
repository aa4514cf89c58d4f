"""The batch-fanout operator: dependent and array AWS Batch jobs that re-attach instead of resubmitting.

:class:`BatchFanoutOperator` subclasses the Amazon provider's
:class:`~airflow.providers.amazon.aws.operators.batch.BatchOperator` (same arguments) and adds
``depends_on`` (``N_TO_N``, ``SEQUENTIAL``, plain; templated, job ids from upstream XCom, so a whole
graph is submitted at once with ``wait_for_completion=False`` and Batch gates it), ``array_size``
rendered as an int, ``tolerated_failures`` / ``fail_fast``, re-attach to the job an earlier try
submitted (``ResumableJobMixin``'s task state store, else the job's tags), retry of only the failed
children for job definitions that declare the index-map contract (:mod:`batch_fanout.job_contract`;
any other array is resubmitted whole, and the log says why), no Airflow retries for input errors
(exit code 65), ``on_kill`` that terminates the job. ``job_name`` defaults to the task id.
``docs/provider.md`` describes each in full.

XCom: the return value is the job id (of this try's job). Also pushed: ``batch_job_id`` (as soon as
the job is submitted or re-attached), ``index_map`` (the logical indices the job works on, or
``None``), ``failed_indices`` (logical indices of tolerated failed children).

The decisions (arguments, retries, dependency rewriting, the request) are the pure functions of
:mod:`batch_fanout.submission`, and what a finished job means for the task is shared with the sensor
(:mod:`batch_fanout.operators._watch`); this module is the Airflow glue around them. It is a little over 400
lines because it is the glue of three interfaces at once (``BatchOperator``'s execute and deferral,
``ResumableJobMixin``'s submit / poll / result, the links); each method only calls the rules above.

Example::

    leader = BatchFanoutOperator(
        task_id="leader", job_definition="my-leader", job_queue="my-queue", wait_for_completion=False
    )
    followers = BatchFanoutOperator(
        task_id="followers", job_definition="my-worker", job_queue="my-queue",
        array_size="{{ params.tests }}", depends_on=[leader.output], wait_for_completion=False,
    )
    watch = BatchFanoutSensor(task_id="watch_followers", job_id=followers.output)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.amazon.aws.links.batch import BatchJobDefinitionLink, BatchJobQueueLink
from airflow.providers.amazon.aws.operators.batch import BatchOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import AirflowException, AirflowSkipException, ResumableJobMixin

from batch_fanout.hooks.batch_client import BatchFanoutClientHook, BatchJobState, fail_fast_reason
from batch_fanout.job_contract import declares_index_map
from batch_fanout.links.batch import OPERATOR_LINKS, BatchFanoutResultsLink, persist_job_links
from batch_fanout.operators._watch import finish_job, trigger_for
from batch_fanout.polling import next_poll_delay
from batch_fanout.submission import (
    TAG_RETRY_OF,
    Dependency,
    JobDescription,
    array_layout,
    build_submit_request,
    is_unrendered,
    normalize_depends_on,
    parse_array_size,
    parse_tolerated_failures,
    plan_retry,
    request_summary,
    resolve_dependencies,
    resource_arns,
    task_tags,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

ACTIVE_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
__all__ = ["BatchFanoutOperator", "normalize_depends_on", "parse_array_size"]


class BatchFanoutOperator(ResumableJobMixin, BatchOperator):
    """Submit an AWS Batch job (plain or array, with dependencies) and optionally wait for it.

    See the module docstring for the behaviour. Arguments besides those of
    :class:`~airflow.providers.amazon.aws.operators.batch.BatchOperator`:

    :param job_name: the Batch job's name; the task id when not given.
    :param depends_on: dependencies, ``[{"job_id": ..., "type": "N_TO_N" | "SEQUENTIAL" | None}]``
        (templated; job ids may be ``XComArg``).
    :param array_size: number of children (templated, rendered as an int); ``None`` for a plain job.
    :param tolerated_failures: failed children that still let the task succeed (templated, rendered
        as an int).
    :param fail_fast: terminate the job as soon as more than ``tolerated_failures`` children failed.
    :param retry_only_failed_children: on retry after a job with failed children, submit only those
        (for job definitions that declare the index-map contract; others run whole again).
    :param tag_lookup: find an earlier try's job by its tags when ``task_state_store`` has none.
    :param failed_log_children: copy the logs of at most this many failed children into the task log.
    :param failed_log_lines: copy at most this many last lines of each.
    :param failed_log_line_length: cut copied lines to this many characters.
    :param results_uri: base of the results store (templated); when set, a "Run Results" link points
        at ``<results_uri>/<dag_id>/<run_id>/``.
    :param aws_conn_id: the Airflow AWS connection, ``aws_default`` by default (as the Amazon provider).
    :param poll_interval: the longest pause between two polls, synchronous and deferred: a finished job
        is noticed within one interval, and sooner while the task has watched it for less than a few
        (:func:`batch_fanout.polling.next_poll_delay`).
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
        job_name: str | None = None,
        depends_on: object = None,
        array_size: object = None,
        tolerated_failures: object = 0,
        fail_fast: bool = False,
        retry_only_failed_children: bool = True,
        tag_lookup: bool = True,
        failed_log_children: int = 5,
        failed_log_lines: int = 20,
        failed_log_line_length: int = 1000,
        results_uri: str | None = None,
        aws_conn_id: str | None = "aws_default",
        poll_interval: float = 30,
        **kwargs: Any,
    ) -> None:
        job_name = job_name or kwargs.get("task_id")
        super().__init__(job_name=job_name, aws_conn_id=aws_conn_id, poll_interval=poll_interval, **kwargs)
        self.depends_on = depends_on
        self.array_size = array_size
        # An int once rendered (_validate_rendered); a template string before.
        self.tolerated_failures = cast("int", tolerated_failures)
        self.fail_fast = fail_fast
        self.retry_only_failed_children = retry_only_failed_children
        self.tag_lookup = tag_lookup
        self.failed_log_children = failed_log_children
        self.failed_log_lines = failed_log_lines
        self.failed_log_line_length = failed_log_line_length
        self.results_uri = results_uri
        # What can be checked before rendering is checked now, so a DAG with a bad value never parses.
        normalize_depends_on(depends_on, allow_unresolved=True)
        if isinstance(array_size, int) or (isinstance(array_size, str) and not is_unrendered(array_size)):
            parse_array_size(array_size)
        if not is_unrendered(tolerated_failures):
            parse_tolerated_failures(tolerated_failures)
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval}")
        self._size: int | None = None
        self._dependencies: list[Dependency] = []
        self._kill_requested = False
        self._linked_job: str | None = None

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
            size = parse_array_size(self.array_properties.get("size"))
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
                trigger=trigger_for(self, job_id, poll_interval=self.poll_interval, terminate_on_kill=True),
                method_name="execute_complete",
                timeout=self.execution_timeout,
            )
        return cast("str | None", self.execute_resumable(context))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        validated = validate_execute_complete_event(event)
        job_id = str(validated["job_id"])
        self.job_id = job_id
        if validated["status"] == "error":
            raise AirflowException(f"Watching AWS Batch job {job_id} failed: {validated.get('message')}")
        description = self.fanout_hook.get_job_description(job_id)
        reason = validated.get("message") if validated["status"] == "fail_fast" else None
        return self._finish(context, description, fail_fast=reason)

    def on_kill(self) -> None:
        self._kill_requested = True
        if not self.job_id:
            return
        self.fanout_hook.terminate(self.job_id, "Airflow task killed")

    # -- ResumableJobMixin ---------------------------------------------------------------------------

    def get_job_status(self, external_id: object, context: Context) -> str:
        try:
            return str(self.fanout_hook.get_job_description(str(external_id)).get("status", "UNKNOWN"))
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
            indices = self._indices_to_retry(previous)
        request = self._submit_request(context, indices)
        if previous is not None:
            # The array view follows a logical index across the jobs that reran it.
            request["tags"][TAG_RETRY_OF] = str(previous["jobId"])
        self.log.info(
            "Submitting AWS Batch job %r to %s with definition %s: %s",
            self.job_name,
            self.job_queue,
            self.job_definition,
            request_summary(request),
        )
        try:
            response = self.fanout_hook.submit(request)
        except Exception as error:
            raise AirflowException(f"AWS Batch refused job {self.job_name!r}: {error}") from error
        job_id = str(response["jobId"])
        # Known at once, so that a kill from here on terminates this job.
        self.job_id = job_id
        self.log.info("AWS Batch job %s submitted", job_id)
        if self._kill_requested:
            # The kill came while SubmitJob was under way: the job it created must not run on.
            self.fanout_hook.terminate(job_id, "Airflow task killed")
            raise AirflowException(f"Airflow task killed while submitting; AWS Batch job {job_id} terminated")
        self._persist_definition_and_queue_links(context, request, str(response.get("jobArn", "")))
        # What the links need is in the request: no DescribeJobs call for it.
        self._set_job(context, job_id, {"jobId": job_id, "arrayProperties": request.get("arrayProperties")})
        return job_id

    def _persist_definition_and_queue_links(
        self, context: Context, request: dict[str, Any], job_arn: str
    ) -> None:
        """The Amazon provider's job definition and queue links, from the request and the job's ARN:
        no DescribeJobs call, and the links are there even when the task does not wait for the job."""
        arns = resource_arns(job_arn, str(request["jobDefinition"]), str(request["jobQueue"]))
        if arns is None:
            return
        common: dict[str, Any] = {"context": context, "operator": self, **arns.link_location}
        BatchJobDefinitionLink.persist(**common, job_definition_arn=arns.job_definition)
        BatchJobQueueLink.persist(**common, job_queue_arn=arns.job_queue)

    def poll_until_complete(self, external_id: object, context: Context) -> str:  # type: ignore[override]
        job_id = str(external_id)
        self._set_job(context, job_id)
        if not self.wait_for_completion:
            self.log.info("Not waiting for AWS Batch job %s (wait_for_completion=False)", job_id)
            return job_id
        watch_started = time.monotonic()
        while True:
            description = self.fanout_hook.get_job_description(job_id)
            state = BatchJobState.from_description(description)
            self.log.info("%s", state.progress_line())
            if state.is_terminal:
                return self._finish(context, description)
            reason = fail_fast_reason(
                state, fail_fast=self.fail_fast, tolerated_failures=self.tolerated_failures
            )
            if reason is not None:
                self.fanout_hook.terminate(job_id, reason)
                return self._finish(context, description, fail_fast=reason)
            # Soon after the submission, then every poll_interval: a short job is seen ending at once.
            time.sleep(next_poll_delay(time.monotonic() - watch_started, self.poll_interval))

    def get_job_result(self, external_id: object, context: Context) -> str:
        job_id = str(external_id)
        self._set_job(context, job_id)
        return job_id

    # -- internals -----------------------------------------------------------------------------------

    def _task_tags(self, context: Context) -> dict[str, str]:
        ti = context["ti"]
        return task_tags(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1))

    def _previous_job(self, context: Context) -> JobDescription | None:
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

    def _indices_to_retry(self, previous: JobDescription) -> list[int] | None:
        """Logical indices to run again after ``previous`` failed; ``None`` means the whole job."""
        is_array = bool((previous.get("arrayProperties") or {}).get("size"))
        definition = str(previous.get("jobDefinition") or self.job_definition)
        declares = declares_index_map(self.fanout_hook.job_definition_tags(definition))
        wanted = self.retry_only_failed_children and is_array and declares
        failed = self.fanout_hook.failed_child_indices(str(previous["jobId"])) if wanted else []
        plan = plan_retry(
            previous,
            failed,
            declares_index_map=declares,
            only_failed_children=self.retry_only_failed_children,
        )
        self.log.info("%s", plan.reason)
        return plan.indices

    def _submit_request(self, context: Context, indices: list[int] | None) -> dict[str, Any]:
        layout = array_layout(self._size, indices)
        n_to_n = [d["job_id"] for d in self._dependencies if d["type"] == "N_TO_N" and d["job_id"]]
        described = (
            {d["jobId"]: d for d in self.fanout_hook.describe_jobs(n_to_n)}
            if n_to_n and layout.is_array
            else {}
        )
        depends_on, notes = resolve_dependencies(
            self._dependencies, layout, is_retry=indices is not None, described=described
        )
        for note in notes:
            self.log.info("%s", note)
        return build_submit_request(
            job_name=self.job_name,
            job_queue=self.job_queue,
            job_definition=self.job_definition,
            layout=layout,
            depends_on=depends_on,
            tags={**(self.tags or {}), **self._task_tags(context)},
            container_overrides=self.container_overrides,
            array_properties=self.array_properties,
            parameters=self.parameters,
            ecsPropertiesOverride=self.ecs_properties_override,
            eksPropertiesOverride=self.eks_properties_override,
            nodeOverrides=self.node_overrides,
            retryStrategy=self.retry_strategy,
            shareIdentifier=self.share_identifier,
            schedulingPriorityOverride=self.scheduling_priority_override,
            timeout={"attemptDurationSeconds": self.submit_job_timeout} if self.submit_job_timeout else None,
        )

    def _set_job(self, context: Context, job_id: str, description: JobDescription | None = None) -> None:
        """Record the job this try works with: attribute, XCom and links (once per job)."""
        if self.job_id == job_id and self._linked_job == job_id:
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
            description=dict(description) if description else None,
        )

    def _finish(self, context: Context, description: JobDescription, fail_fast: str | None = None) -> str:
        """Turn a terminal job into the task's result: return its id, or raise listing failed children."""
        self.job_id = str(description["jobId"])
        if description.get("jobDefinition") and description.get("jobQueue"):
            # The Amazon provider's definition and queue links, from the description already at hand.
            self._persist_links(context, job_description=dict(description))
        return finish_job(
            self, context, self.fanout_hook, description, fail_fast=fail_fast, retry_on_failure=True
        )
