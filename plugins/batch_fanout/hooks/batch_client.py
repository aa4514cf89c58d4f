"""A Batch client hook for fan-out work: batched DescribeJobs, throttling backoff, array progress.

:class:`BatchFanoutClientHook` subclasses the Amazon provider's
:class:`~airflow.providers.amazon.aws.hooks.batch_client.BatchClientHook` and keeps everything it does
well (connection handling, log-stream lookup, states). It adds:

- ``describe_jobs``: DescribeJobs for any number of ids, at most 100 ids a call (the AWS limit);
- jittered exponential backoff ("full jitter") on ``TooManyRequestsException`` and the other throttling
  error codes, for every call it makes, bounded in attempts and in delay;
- ``job_state``: a small value object (:class:`BatchJobState`) read from one DescribeJobs call, with the
  parent's ``statusSummary`` for array jobs, so a poll costs one call whatever the array size;
- failed-children lookup (ListJobs by array and status, then DescribeJobs in batches) and the tail of a
  child's CloudWatch log;
- lookup of a job by its tags (ListJobs filtered by name, then DescribeJobs), used to re-attach a
  retried task to the job its earlier try submitted;
- ``a_``-prefixed async twins for the trigger. They run the same methods in a worker thread, so the
  triggerer's event loop never blocks, the backoff loop is the same one, and no async AWS SDK is
  needed;
- one botocore data loader per process (:func:`share_data_loader`): every task builds a new hook and
  boto3 session, and each session would otherwise read and parse botocore's JSON models (the Batch
  model, the endpoints) again, the largest part of a short task's own time.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import boto3
import botocore.exceptions
from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook
from airflow.providers.common.compat.sdk import AirflowException

from batch_fanout.hooks.batch_state import (
    JOB_STATES,
    TERMINAL_STATES,
    BatchJobState,
    FailedChild,
    fail_fast_reason,
)
from batch_fanout.submission import JobDescription

__all__ = [
    "JOB_STATES",
    "TERMINAL_STATES",
    "BatchFanoutClientHook",
    "BatchJobState",
    "FailedChild",
    "fail_fast_reason",
    "is_throttling_error",
]

#: AWS rejects DescribeJobs with more than 100 ids.
DESCRIBE_JOBS_MAX_IDS = 100

#: Error codes AWS services use for "slow down"; all are retried with backoff.
THROTTLING_ERROR_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "LimitExceededException",
    }
)

T = TypeVar("T")


def is_throttling_error(error: BaseException) -> bool:
    """Whether ``error`` is an AWS "slow down" answer worth retrying after a pause."""
    if not isinstance(error, botocore.exceptions.ClientError):
        return False
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in THROTTLING_ERROR_CODES or status == 429


_SHARED_LOADERS: dict[tuple[str, ...], Any] = {}
_SHARED_LOADERS_LOCK = threading.Lock()


def share_data_loader(session: boto3.session.Session) -> None:
    """Give ``session`` the process's botocore data loader for its search paths.

    A loader caches the service models and endpoint data it has parsed, which never change while a
    process runs; clients only read them. Sessions with other search paths (``AWS_DATA_PATH``) keep
    a loader of their own. Call before the session creates its first client.
    """
    botocore_session = session._session
    loader = botocore_session.get_component("data_loader")
    key = tuple(str(path) for path in loader.search_paths)
    with _SHARED_LOADERS_LOCK:
        shared = _SHARED_LOADERS.setdefault(key, loader)
    if shared is not loader:
        botocore_session.register_component("data_loader", shared)
        # boto3 keeps its own reference, for resources.
        session._loader = shared


class BatchFanoutClientHook(BatchClientHook):
    """Interact with AWS Batch for fan-out work; see the module docstring for what it adds.

    :param throttle_retries: how many times a throttled call is retried before its error is raised.
    :param backoff_base: the first backoff ceiling in seconds; it doubles with every retry.
    :param backoff_cap: the largest backoff ceiling in seconds.

    Other arguments (``aws_conn_id``, ``region_name``, ``max_retries``, ...) go to
    :class:`~airflow.providers.amazon.aws.hooks.batch_client.BatchClientHook`.
    """

    def __init__(
        self,
        *args: Any,
        throttle_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if throttle_retries < 0:
            raise ValueError(f"throttle_retries must be >= 0, got {throttle_retries}")
        if backoff_base <= 0 or backoff_cap < backoff_base:
            raise ValueError(
                f"backoff_base must be > 0 and backoff_cap >= backoff_base, got {backoff_base}, {backoff_cap}"
            )
        self.throttle_retries = throttle_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        # Replaceable so that tests and benchmarks can record the pauses instead of sleeping.
        self.sleep: Callable[[float], None] = time.sleep

    @property
    def batch(self) -> Any:
        """The boto3 Batch client (untyped: botocore clients are generated at runtime)."""
        return self.conn

    def get_session(self, region_name: str | None = None, deferrable: bool = False) -> boto3.session.Session:
        """The Amazon provider's session, with the process's shared botocore data loader."""
        session = super().get_session(region_name=region_name, deferrable=deferrable)
        if isinstance(session, boto3.session.Session):
            share_data_loader(session)
        return session

    # -- backoff -------------------------------------------------------------------------------------

    def backoff_delay(self, retry: int) -> float:
        """The pause before retry number ``retry`` (1-based): uniform in [0, min(cap, base * 2**(retry-1))]."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (retry - 1))
        return random.uniform(0, ceiling)

    def call_with_backoff(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``call(*args, **kwargs)``, retrying throttled calls with jittered exponential backoff."""
        retry = 0
        while True:
            try:
                return call(*args, **kwargs)
            except botocore.exceptions.ClientError as error:
                if not is_throttling_error(error) or retry >= self.throttle_retries:
                    raise
                retry += 1
                pause = self.backoff_delay(retry)
                self.log.warning(
                    "AWS throttled %s (%s); retry %d of %d in %.2f s",
                    getattr(call, "__name__", "call"),
                    error.response.get("Error", {}).get("Code"),
                    retry,
                    self.throttle_retries,
                    pause,
                )
                self.sleep(pause)

    # -- jobs ----------------------------------------------------------------------------------------

    def describe_jobs(self, job_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Describe any number of jobs, at most 100 ids a DescribeJobs call, in the order AWS returns them.

        :param job_ids: the job ids; duplicates are asked for once.
        """
        unique = list(dict.fromkeys(job_ids))
        descriptions: list[dict[str, Any]] = []
        for start in range(0, len(unique), DESCRIBE_JOBS_MAX_IDS):
            chunk = unique[start : start + DESCRIBE_JOBS_MAX_IDS]
            response = self.call_with_backoff(self.batch.describe_jobs, jobs=chunk)
            descriptions.extend(response.get("jobs", []))
        return descriptions

    def get_job_description(self, job_id: str) -> dict[str, Any]:
        """Describe one job (one DescribeJobs call, with throttling backoff).

        :raises AirflowException: if Batch does not know the job.
        """
        for description in self.describe_jobs([job_id]):
            if description.get("jobId") == job_id:
                return description
        raise AirflowException(f"AWS Batch job ({job_id}) not found")

    def job_state(self, job_id: str) -> BatchJobState:
        """The job's state, with per-state child counts for an array: one DescribeJobs call."""
        return BatchJobState.from_description(self.get_job_description(job_id))

    def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        """SubmitJob with throttling backoff (SubmitJob is limited to 50 calls a second per account)."""
        return self.call_with_backoff(self.batch.submit_job, **request)

    def terminate(self, job_id: str, reason: str) -> None:
        """TerminateJob; on an array parent this terminates the children that have not finished."""
        self.call_with_backoff(self.batch.terminate_job, jobId=job_id, reason=reason)
        self.log.info("AWS Batch job %s terminated: %s", job_id, reason)

    def list_jobs(self, **request: Any) -> list[dict[str, Any]]:
        """ListJobs over every page.

        :param request: ListJobs arguments (``jobQueue``, ``arrayJobId``, ``jobStatus``, ``filters`` ...).
        """
        summaries: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page_request = dict(request, nextToken=token) if token else request
            response = self.call_with_backoff(self.batch.list_jobs, **page_request)
            summaries.extend(response.get("jobSummaryList", []))
            token = response.get("nextToken")
            if not token:
                return summaries

    def failed_children(
        self, job_id: str, limit: int | None = None, description: JobDescription | None = None
    ) -> list[FailedChild]:
        """The failed children of an array job (or the job itself if it is a failed plain job).

        :param job_id: the job id.
        :param limit: describe at most this many children (all are still listed).
        :param description: the job's description if already at hand (saves a DescribeJobs call).
        :return: failed children sorted by array index.
        """
        description = description or self.get_job_description(job_id)
        if not (description.get("arrayProperties") or {}).get("size"):
            return (
                [FailedChild.from_description(description)] if description.get("status") == "FAILED" else []
            )
        ids = [summary["jobId"] for summary in self.list_jobs(arrayJobId=job_id, jobStatus="FAILED")]
        ids.sort(key=_index_of_child_id)
        if limit is not None:
            ids = ids[:limit]
        children = [FailedChild.from_description(d) for d in self.describe_jobs(ids)]
        children.sort(key=lambda child: (child.array_index is None, child.array_index or 0))
        return children

    def failed_child_indices(self, job_id: str) -> list[int]:
        """Array indices of the failed children of an array job, sorted (one ListJobs listing)."""
        summaries = self.list_jobs(arrayJobId=job_id, jobStatus="FAILED")
        return sorted(_index_of_child_id(summary["jobId"]) for summary in summaries)

    def find_jobs_by_tags(self, job_queue: str, job_name: str, tags: dict[str, str]) -> list[dict[str, Any]]:
        """Jobs named ``job_name`` in ``job_queue`` that carry all of ``tags``, newest first.

        ListJobs cannot filter on tags, so this lists the jobs of that name (in every state, which a
        filter implies) and describes them, 100 ids a call.
        """
        summaries = self.list_jobs(jobQueue=job_queue, filters=[{"name": "JOB_NAME", "values": [job_name]}])
        # Array children are never top-level results, but be safe against endpoints that list them.
        ids = [s["jobId"] for s in summaries if ":" not in s["jobId"]]
        matches = [
            description
            for description in self.describe_jobs(ids)
            if all((description.get("tags") or {}).get(key) == value for key, value in tags.items())
        ]
        matches.sort(key=lambda description: description.get("createdAt", 0), reverse=True)
        return matches

    def job_definition_tags(self, job_definition: str) -> dict[str, str]:
        """The tags of a job definition (an ARN, ``name:revision``, or a name for its newest active
        revision): one DescribeJobDefinitions call.

        :raises AirflowException: if Batch does not know the job definition.
        """
        if job_definition.startswith("arn:") or ":" in job_definition:
            response = self.call_with_backoff(
                self.batch.describe_job_definitions, jobDefinitions=[job_definition]
            )
        else:
            response = self.call_with_backoff(
                self.batch.describe_job_definitions, jobDefinitionName=job_definition, status="ACTIVE"
            )
        definitions = sorted(response.get("jobDefinitions", []), key=lambda d: int(d.get("revision", 0)))
        if not definitions:
            raise AirflowException(f"AWS Batch job definition {job_definition!r} not found")
        return {str(key): str(value) for key, value in (definitions[-1].get("tags") or {}).items()}

    def log_tail(self, log_group: str, log_stream: str, lines: int) -> list[str]:
        """The last ``lines`` messages of a CloudWatch Logs stream, oldest first."""
        logs: Any = AwsLogsHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.config
        ).conn
        response = self.call_with_backoff(
            logs.get_log_events,
            logGroupName=log_group,
            logStreamName=log_stream,
            limit=lines,
            startFromHead=False,
        )
        return [event.get("message", "") for event in response.get("events", [])][-lines:]

    # -- async twins for triggers --------------------------------------------------------------------
    # Each runs its synchronous twin, backoff included, in a worker thread: one code path for both,
    # and the triggerer's event loop never blocks on a call or a pause.

    async def a_describe_jobs(self, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Async twin of :meth:`describe_jobs`."""
        return await asyncio.to_thread(self.describe_jobs, job_ids)

    async def a_job_state(self, job_id: str) -> BatchJobState:
        """Async twin of :meth:`job_state`."""
        return await asyncio.to_thread(self.job_state, job_id)

    async def a_terminate(self, job_id: str, reason: str) -> None:
        """Async twin of :meth:`terminate`."""
        await asyncio.to_thread(self.terminate, job_id, reason)


def _index_of_child_id(child_id: str) -> int:
    """The array index of a child job id ``<parent>:<index>``."""
    _, _, index = child_id.rpartition(":")
    if not index.isdigit():
        raise AirflowException(f"{child_id!r} is not an array child job id (<parent id>:<index>)")
    return int(index)
