"""One attempt of a job, as the engine tracks it, and the records of how it ended.

Pure functions of an attempt and what its supervisor recorded: the request for a runtime (with the
``AWS_BATCH_*`` variables) and the ``attempts[]`` entry with AWS's reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batch_fanout.local.gpus import gpu_environment
from batch_fanout.local.jobs import (
    EXITED_REASON,
    OOM_REASON,
    STOP_REASON,
    TIMEOUT_REASON,
    Job,
    now_ms,
)
from batch_fanout.local.multinode import node_variables
from batch_fanout.local.runtime import AttemptRequest, SupervisorHandle, exit_code_of


@dataclass
class Attempt:
    """An attempt placed on a compute environment: starting, or running under its supervisor."""

    job: Job
    attempt_id: str
    stream: str
    environment: str
    vcpus: float
    memory_mib: int
    started_at: int
    handle: SupervisorHandle | None = None
    pidfd: int | None = None
    # "terminate" (TerminateJob), "reclaim" (a Spot reclaim on demand) or "stop" (the endpoint stops)
    stop_cause: str | None = None
    stop_reason: str | None = None


def attempt_request(attempt: Attempt, queue_name: str) -> AttemptRequest:
    """What a runtime runs: the job's command and environment, with the ``AWS_BATCH_*`` variables."""
    job, spec = attempt.job, attempt.job.spec
    variables = {item["name"]: item["value"] for item in spec["container"].get("environment", [])}
    variables.update(
        AWS_BATCH_JOB_ID=job.job_id,
        AWS_BATCH_JOB_ATTEMPT=str(len(job.attempts) + 1),
        AWS_BATCH_CE_NAME=attempt.environment,
        AWS_BATCH_JQ_NAME=queue_name,
        AWS_REGION=job.region,
        AWS_DEFAULT_REGION=job.region,
    )
    if job.index is not None and job.parent is not None:
        variables["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.index)
        variables["AWS_BATCH_JOB_ARRAY_SIZE"] = str(job.parent.array_size)
    gpus = [int(gpu) for gpu in ((job.current or {}).get("resources") or {}).get("gpus") or []]
    if gpus:
        variables.update(gpu_environment(gpus))
    if job.node_index is not None:
        variables.update(node_variables(job))
    timeout = (spec.get("timeout") or {}).get("attemptDurationSeconds")
    return AttemptRequest(
        attempt.attempt_id,
        spec["container"].get("image", ""),
        list(spec["container"].get("command", [])),
        variables,
        attempt.vcpus,
        attempt.memory_mib,
        int(timeout) if timeout else None,
        job_definition=str(spec.get("jobDefinitionName", "")),
        init_process=bool((spec["container"].get("linuxParameters") or {}).get("initProcessEnabled")),
        gpus=tuple(gpus),
    )


def not_started_record(attempt: Attempt, reason: str) -> dict[str, Any]:
    """The record of an attempt that could not start (no image folder, no such command)."""
    return {
        "container": {"reason": reason, "logStreamName": attempt.stream},
        "startedAt": attempt.started_at,
        "stoppedAt": now_ms(),
        "statusReason": reason,
    }


def interrupted_record(job: Job, reason: str) -> dict[str, Any]:
    """The record of an attempt whose end nobody saw (its supervisor is gone)."""
    current = job.current or {}
    container = {"logStreamName": current.get("logStreamName"), "reason": reason}
    return {
        "container": {key: value for key, value in container.items() if value},
        "startedAt": current.get("startedAt", now_ms()),
        "stoppedAt": now_ms(),
        "statusReason": reason,
    }


def outcome(
    attempt: Attempt, status: dict[str, Any]
) -> tuple[dict[str, Any], int | None, str | None, str, bool]:
    """From a supervisor's status: the record, exit code, container reason, status reason, success."""
    exit_code = exit_code_of(int(status["returncode"]))
    cause = status.get("cause")
    if attempt.stop_cause == "reclaim" and cause is None:
        # The host went away under the container: AWS records no exit code, only the host's end.
        reason = attempt.stop_reason or "Host EC2 terminated."
        reclaimed = {
            "container": {"logStreamName": attempt.stream},
            "startedAt": attempt.started_at,
            "stoppedAt": int(status.get("exitedAt") or now_ms()),
            "statusReason": reason,
        }
        return reclaimed, None, None, reason, False
    container_reason: str | None = None
    if cause == "oom":
        container_reason = status_reason = OOM_REASON
    elif cause == "timeout":
        status_reason = TIMEOUT_REASON
    elif attempt.stop_cause == "terminate":
        status_reason = attempt.stop_reason or "Terminated"
    elif attempt.stop_cause == "stop":
        container_reason = status_reason = STOP_REASON
    else:
        status_reason = EXITED_REASON
    record: dict[str, Any] = {
        "container": {"exitCode": exit_code, "logStreamName": attempt.stream},
        "startedAt": attempt.started_at,
        "stoppedAt": int(status.get("exitedAt") or now_ms()),
        "statusReason": status_reason,
    }
    if container_reason:
        record["container"]["reason"] = container_reason
    succeeded = exit_code == 0 and cause is None and attempt.stop_cause is None
    return record, exit_code, container_reason, status_reason, succeeded
