"""The in-memory model of jobs: states, array children, status summaries and their documents."""

from __future__ import annotations

import fnmatch
import time
from typing import Any

from batch_fanout.local.multinode import decorate_detail, decorate_summary, node_spec

STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED"})
ACTIVE_STATES = frozenset({"STARTING", "RUNNING"})

OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
EXITED_REASON = "Essential container in task exited"
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
RESTART_REASON = "Attempt interrupted: the local endpoint restarted while the attempt was running"
GONE_REASON = "Attempt interrupted: its supervisor ended without recording how the job ended"
STOP_REASON = "Attempt interrupted: the local endpoint was stopped while the attempt was running"


def now_ms() -> int:
    return int(time.time() * 1000)


class Job:
    """One job: a plain job, an array parent, an array child, a multi-node job or one of its nodes.

    An array child shares its parent's ``spec`` (definition, command, environment, dependencies,
    retry strategy), so that a 10,000-child array costs one spec and 10,000 small records.
    """

    __slots__ = (
        "array_size",
        "attempts",
        "children",
        "container_reason",
        "created_at",
        "current",
        "exit_code",
        "index",
        "is_cancelled",
        "is_terminated",
        "job_arn",
        "job_id",
        "log_stream",
        "name",
        "node_index",
        "parent",
        "queue_arn",
        "region",
        "registered_waits",
        "seq",
        "spec",
        "started_at",
        "status",
        "status_reason",
        "stopped_at",
        "summary",
        "summary_updated_at",
    )

    def __init__(  # noqa: PLR0917 - built in two places, from a request and from a document
        self,
        job_id: str,
        seq: int,
        name: str,
        queue_arn: str,
        region: str,
        spec: dict[str, Any],
        created_at: int,
        parent: Job | None = None,
        index: int | None = None,
        array_size: int | None = None,
        node_index: int | None = None,
    ) -> None:
        self.job_id = job_id
        self.seq = seq
        self.name = name
        self.queue_arn = queue_arn
        self.region = region
        self.spec = spec
        self.job_arn = spec["jobArnPrefix"] + job_id
        self.created_at = created_at
        self.parent = parent
        self.index = index
        self.array_size = array_size
        self.node_index = node_index  # the node's index, for a node of a multi-node job
        self.children: list[Job] = []
        self.status = "SUBMITTED"
        self.status_reason: str | None = None
        self.started_at: int | None = None
        self.stopped_at: int | None = None
        self.attempts: list[dict[str, Any]] = []
        self.exit_code: int | None = None
        self.container_reason: str | None = None
        self.log_stream: str | None = None
        self.is_cancelled = False
        self.is_terminated = False
        # Persisted description of the attempt that runs now (pid, start time, stream), for recovery.
        self.current: dict[str, Any] | None = None
        self.registered_waits: set[str] = set()
        self.summary: dict[str, int] | None = dict.fromkeys(STATES, 0) if array_size is not None else None
        self.summary_updated_at: int | None = None

    @property
    def is_parent(self) -> bool:
        return self.array_size is not None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    # ---- documents -------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """The stored form of the job."""
        document: dict[str, Any] = {
            "jobId": self.job_id,
            "seq": self.seq,
            "status": self.status,
            "statusReason": self.status_reason,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "stoppedAt": self.stopped_at,
            "attempts": self.attempts,
            "exitCode": self.exit_code,
            "reason": self.container_reason,
            "logStreamName": self.log_stream,
            "isCancelled": self.is_cancelled,
            "isTerminated": self.is_terminated,
            "current": self.current,
        }
        if self.parent is not None:
            document["parentId"] = self.parent.job_id
            document["index"] = self.index
            if self.node_index is not None:
                document["nodeIndex"] = self.node_index
        else:
            document.update(
                jobName=self.name,
                jobQueue=self.queue_arn,
                region=self.region,
                spec=self.spec,
                arraySize=self.array_size,
            )
        return document

    @classmethod
    def from_document(cls, document: dict[str, Any], parent: Job | None) -> Job:
        if parent is not None:
            node_index = document.get("nodeIndex")
            job = cls(
                document["jobId"],
                document["seq"],
                parent.name,
                parent.queue_arn,
                parent.region,
                parent.spec if node_index is None else node_spec(parent.spec, node_index),
                document["createdAt"],
                parent=parent,
                index=document["index"],
                node_index=node_index,
            )
        else:
            job = cls(
                document["jobId"],
                document["seq"],
                document["jobName"],
                document["jobQueue"],
                document["region"],
                document["spec"],
                document["createdAt"],
                array_size=document.get("arraySize"),
            )
        job.status = document["status"]
        job.status_reason = document.get("statusReason")
        job.started_at = document.get("startedAt")
        job.stopped_at = document.get("stoppedAt")
        job.attempts = document.get("attempts") or []
        job.exit_code = document.get("exitCode")
        job.container_reason = document.get("reason")
        job.log_stream = document.get("logStreamName")
        job.is_cancelled = bool(document.get("isCancelled"))
        job.is_terminated = bool(document.get("isTerminated"))
        job.current = document.get("current")
        return job

    # ---- API views -------------------------------------------------------------------------

    def detail(self) -> dict[str, Any]:
        """The job as DescribeJobs shows it (botocore shape ``JobDetail``)."""
        spec = self.spec
        detail: dict[str, Any] = {
            "jobArn": self.job_arn,
            "jobName": self.name,
            "jobId": self.job_id,
            "jobQueue": self.queue_arn,
            "status": self.status,
            "attempts": self.attempts,
            "createdAt": self.created_at,
            "dependsOn": spec["dependsOn"],
            "jobDefinition": spec["jobDefinition"],
            "parameters": spec["parameters"],
            "tags": spec["tags"],
            "propagateTags": spec["propagateTags"],
            "platformCapabilities": spec["platformCapabilities"],
            "isCancelled": self.is_cancelled,
            "isTerminated": self.is_terminated,
        }
        if self.parent is not None:
            # AWS lists the parent's dependencies on the parent only.
            detail["dependsOn"] = []
        for key, value in (
            ("statusReason", self.status_reason),
            ("startedAt", self.started_at),
            ("stoppedAt", self.stopped_at),
            ("retryStrategy", spec.get("retryStrategy")),
            ("timeout", spec.get("timeout")),
            ("schedulingPriority", spec.get("schedulingPriority")),
            ("shareIdentifier", spec.get("shareIdentifier")),
            ("consumableResourceProperties", spec.get("consumableResourceProperties")),
        ):
            if value is not None:
                detail[key] = value
        container = dict(spec["container"])
        if not self.is_parent:
            for key, value in (
                ("exitCode", self.exit_code),
                ("reason", self.container_reason),
                ("logStreamName", self.log_stream),
            ):
                if value is not None:
                    container[key] = value
        detail["container"] = container
        if self.is_parent:
            assert self.summary is not None
            detail["arrayProperties"] = {
                "statusSummary": dict(self.summary),
                "statusSummaryLastUpdatedAt": self.summary_updated_at or self.created_at,
                "size": self.array_size,
            }
        elif self.index is not None:
            detail["arrayProperties"] = {"index": self.index}
        decorate_detail(self, detail)
        return detail

    def summary_view(self) -> dict[str, Any]:
        """The job as ListJobs shows it (botocore shape ``JobSummary``)."""
        view: dict[str, Any] = {
            "jobArn": self.job_arn,
            "jobId": self.job_id,
            "jobName": self.name,
            "createdAt": self.created_at,
            "status": self.status,
            "jobDefinition": self.spec["jobDefinition"],
            "isCancelled": self.is_cancelled,
            "isTerminated": self.is_terminated,
        }
        for key, value in (
            ("statusReason", self.status_reason),
            ("startedAt", self.started_at),
            ("stoppedAt", self.stopped_at),
        ):
            if value is not None:
                view[key] = value
        container: dict[str, Any] = {}
        if self.exit_code is not None:
            container["exitCode"] = self.exit_code
        if self.container_reason is not None:
            container["reason"] = self.container_reason
        if container:
            view["container"] = container
        if self.is_parent:
            view["arrayProperties"] = {"size": self.array_size}
        elif self.index is not None:
            view["arrayProperties"] = {"index": self.index}
        decorate_summary(self, view)
        return view


def retry_decision(job: Job, exit_code: int | None, reason: str | None, status_reason: str) -> bool:
    """Whether a failed attempt is retried, by the job's ``retryStrategy`` (AWS's rules).

    The first ``evaluateOnExit`` rule whose conditions all match decides (``RETRY`` or ``EXIT``); when
    no rule matches the attempt is retried, while attempts remain.
    """
    if job.is_cancelled or job.is_terminated:
        return False
    strategy = job.spec.get("retryStrategy") or {}
    allowed = int(strategy.get("attempts") or 1)
    if len(job.attempts) >= allowed:
        return False
    for rule in strategy.get("evaluateOnExit") or []:
        conditions = (
            (rule.get("onExitCode"), "" if exit_code is None else str(exit_code)),
            (rule.get("onReason"), reason or ""),
            (rule.get("onStatusReason"), status_reason or ""),
        )
        if all(pattern is None or fnmatch.fnmatchcase(value, pattern) for pattern, value in conditions):
            return str(rule.get("action", "")).upper() == "RETRY"
    return True
