"""The AWS Batch job operations: SubmitJob, DescribeJobs, ListJobs, cancel and terminate (one job or up
to 50), and GetJobQueueSnapshot. Each handler translates a request into a call on the engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from batch_fanout.local.engine import Engine
from batch_fanout.local.errors import client_error
from batch_fanout.local.fair_share import TOP_SHARES, ActiveShares, check_submit_share
from batch_fanout.local.jobs import Job, now_ms
from batch_fanout.local.multinode import is_multinode_parent, new_multinode_jobs
from batch_fanout.local.submission import check_dependencies, job_spec, new_jobs
from batch_fanout.local.validation import (
    MAX_DESCRIBE_JOBS,
    MAX_FILTERED_PAGE,
    MAX_LIST_JOBS_PAGE,
    check_gpu_platform,
    check_submit,
    paged,
)

Handler = Callable[[dict[str, Any], str], dict[str, Any]]
LIST_FILTERS = ("JOB_NAME", "JOB_DEFINITION", "BEFORE_CREATED_AT", "AFTER_CREATED_AT", "SHARE_IDENTIFIER")
MAX_BULK_JOBS = 50
SNAPSHOT_JOBS = 100


def _copy(response: dict[str, Any]) -> dict[str, Any]:
    """A deep copy taken under the lock: the documents change as soon as it is released."""
    copied: dict[str, Any] = json.loads(json.dumps(response))
    return copied


def _job_filter(name: str, values: list[str]) -> Callable[[Job], bool]:
    """The test of one ListJobs filter (AWS's rules, from the API reference)."""
    if not values:
        raise client_error(f"ListJobs filter {name} needs a value")
    value = values[0]
    if name == "JOB_NAME":
        wanted = value.lower()  # AWS: case-insensitive; a trailing * matches a prefix
        if wanted.endswith("*"):
            return lambda job: job.name.lower().startswith(wanted[:-1])
        return lambda job: job.name.lower() == wanted
    if name == "JOB_DEFINITION":  # case-sensitive; a name matches every revision, an ARN one revision
        if value.startswith("arn:"):
            if "*" in value:
                raise client_error("ListJobs filter JOB_DEFINITION: * is not supported with an ARN")
            return lambda job: bool(job.spec["jobDefinition"] == value)
        if value.endswith("*"):
            return lambda job: str(job.spec["jobDefinitionName"]).startswith(value[:-1])
        return lambda job: (
            value
            in (
                job.spec["jobDefinitionName"],
                job.spec["jobDefinition"].split("job-definition/", 1)[-1],
            )
        )
    if name in ("BEFORE_CREATED_AT", "AFTER_CREATED_AT"):
        try:
            moment = int(value)
        except ValueError:
            raise client_error(f"ListJobs filter {name}: {value!r} is not epoch milliseconds") from None
        if name == "BEFORE_CREATED_AT":
            return lambda job: job.created_at < moment
        return lambda job: job.created_at > moment
    if name == "SHARE_IDENTIFIER":
        return lambda job: job.spec.get("shareIdentifier") == value
    raise client_error(f"Invalid ListJobs filter name {name!r}: use one of {', '.join(LIST_FILTERS)}")


class JobsApi:
    """The job operations of the endpoint.

    :param engine: the engine whose jobs the operations read and change
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.registry = engine.registry
        self.active_shares = ActiveShares(lambda: engine.scheduler.top_level_jobs)
        self.handlers: dict[str, Handler] = {
            "SubmitJob": self.submit_job,
            "DescribeJobs": self.describe_jobs,
            "ListJobs": self.list_jobs,
            "CancelJob": self.cancel_job,
            "TerminateJob": self.terminate_job,
            "CancelJobs": self._bulk(engine.cancel),
            "TerminateJobs": self._bulk(engine.terminate),
            "GetJobQueueSnapshot": self.get_job_queue_snapshot,
        }

    def submit_job(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        array_size = check_submit(params)
        engine = self.engine
        with engine.lock:
            queue = self.registry.job_queues.get(params["jobQueue"], client_error)
            if queue.get("state") != "ENABLED":
                raise client_error(f"Job queue {queue['jobQueueName']} is DISABLED and accepts no jobs")
            definition = self.registry.job_definitions.find(params["jobDefinition"])
            if definition is None:
                raise client_error(f"Job definition {params['jobDefinition']} not found")
            if definition["status"] != "ACTIVE":
                raise client_error(f"Job definition {definition['jobDefinitionArn']} is INACTIVE")
            check_submit_share(params, queue, self.active_shares)
            dependencies = check_dependencies(params.get("dependsOn") or [], array_size, engine.scheduler)
            if definition.get("type") == "multinode" or params.get("nodeOverrides"):
                job, children = new_multinode_jobs(
                    engine.scheduler, params, definition, queue["jobQueueArn"], region, dependencies
                )
            else:
                spec = job_spec(params, definition, dependencies, region)
                check_gpu_platform(
                    spec["container"]["resourceRequirements"],
                    spec["platformCapabilities"],
                    "containerOverrides",
                )
                override = params.get("consumableResourcePropertiesOverride") or {}
                engine.consumables.check_requirements(
                    override.get("consumableResourceList") or [], "consumableResourcePropertiesOverride"
                )
                # The merged list: a resource of the definition may have been deleted since.
                engine.consumables.check_requirements(
                    (spec.get("consumableResourceProperties") or {}).get("consumableResourceList") or [],
                    "consumableResourceProperties",
                )
                job, children = new_jobs(
                    engine.scheduler, params["jobName"], queue["jobQueueArn"], region, spec, array_size
                )
            engine.submit(job, children)
        return {"jobArn": job.job_arn, "jobName": job.name, "jobId": job.job_id}

    def describe_jobs(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        ids = params["jobs"]
        if len(ids) > MAX_DESCRIBE_JOBS:
            raise client_error(f"DescribeJobs takes at most {MAX_DESCRIBE_JOBS} job ids, got {len(ids)}")
        jobs = self.engine.scheduler.jobs
        with self.engine.lock:
            details = [job.detail() for reference in ids if (job := jobs.get(reference.rsplit("/", 1)[-1]))]
            return _copy({"jobs": details})

    def list_jobs(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        """ListJobs as AWS: one filter at a time, which overrides ``jobStatus`` (except SHARE_IDENTIFIER,
        which combines with it); filtered queue listings newest first by ``createdAt``; RUNNING by default.
        Filters do not apply to the children of an array (the API reference's rule): those are listed by
        ``jobStatus`` alone."""
        filters = params.get("filters") or []
        if len(filters) > 1:
            raise client_error(f"ListJobs takes one filter at a time, got {len(filters)}")
        status = params.get("jobStatus")
        scheduler = self.engine.scheduler
        with self.engine.lock:
            if params.get("arrayJobId"):
                parent = scheduler.jobs.get(params["arrayJobId"])
                if parent is None or not parent.is_parent:
                    raise client_error(f"Array job {params['arrayJobId']} not found")
                candidates: list[Job] = parent.children
            elif params.get("multiNodeJobId"):
                parent = scheduler.jobs.get(params["multiNodeJobId"])
                if parent is None or not is_multinode_parent(parent):
                    raise client_error(f"Multi-node job {params['multiNodeJobId']} not found")
                candidates = parent.children
            elif params.get("jobQueue"):
                queue_arn = self.registry.job_queues.get(params["jobQueue"], client_error)["jobQueueArn"]
                # Jobs are kept in submission order, so newest first is that order reversed.
                candidates = [job for job in reversed(scheduler.top_level_jobs) if job.queue_arn == queue_arn]
            else:
                raise client_error("ListJobs needs jobQueue, arrayJobId or multiNodeJobId")
            if filters:
                # A filter is checked even where it does not apply, so a typo is never silent.
                matches = _job_filter(filters[0].get("name", ""), filters[0].get("values") or [])
            if filters and not params.get("arrayJobId"):
                with_status = filters[0].get("name") == "SHARE_IDENTIFIER" and status
                selected = [
                    job for job in candidates if matches(job) and (not with_status or job.status == status)
                ]
                limit = MAX_FILTERED_PAGE
            else:
                wanted = status or "RUNNING"
                selected = [job for job in candidates if job.status == wanted]
                limit = MAX_LIST_JOBS_PAGE
            response = paged("jobSummaryList", selected, params, limit)
            response["jobSummaryList"] = [job.summary_view() for job in response["jobSummaryList"]]
            return response

    def _job(self, job_id: str) -> Job:
        job = self.engine.scheduler.jobs.get(job_id)
        if job is None:
            raise client_error(f"Job {job_id} not found")
        return job

    def cancel_job(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            self.engine.cancel(self._job(params["jobId"]), params["reason"])
        return {}

    def terminate_job(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            self.engine.terminate(self._job(params["jobId"]), params["reason"])
        return {}

    def _bulk(self, change: Callable[[Job, str], None]) -> Handler:
        """CancelJobs / TerminateJobs: up to 50 ids; unknown ids count as done (AWS's rule)."""

        def bulk(params: dict[str, Any], region: str) -> dict[str, Any]:
            ids = params["jobs"]
            if len(ids) > MAX_BULK_JOBS:
                raise client_error(f"jobs takes at most {MAX_BULK_JOBS} job ids, got {len(ids)}")
            with self.engine.lock:
                for job_id in ids:
                    job = self.engine.scheduler.jobs.get(job_id)
                    if job is not None:
                        change(job, params["reason"])
            return {"successful": list(ids), "errors": []}

        return bulk

    def get_job_queue_snapshot(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        """The first 100 RUNNABLE jobs in dispatch order, and the vCPUs the queue's jobs use."""
        with self.engine.lock:
            queue = self.registry.job_queues.get(params["jobQueue"], client_error)
            front = self.engine.scheduler.front_of_queue(queue["jobQueueArn"], SNAPSHOT_JOBS)
            used = self.engine.queue_vcpus(queue["jobQueueArn"])
            shares = self.engine.scheduler.shares.shares_in_use(queue["jobQueueArn"])
        stamp = now_ms()
        utilization: dict[str, Any] = {
            "totalCapacityUsage": [{"capacityUnit": "VCPU", "quantity": used}],
            "lastUpdatedAt": stamp,
        }
        if queue.get("schedulingPolicyArn"):
            utilization["fairshareUtilization"] = {
                "activeShareCount": len(shares),
                "topCapacityUtilization": [
                    {"shareIdentifier": share, "capacityUsage": [{"capacityUnit": "VCPU", "quantity": vcpus}]}
                    for share, vcpus in shares[:TOP_SHARES]
                ],
            }
        return {
            "frontOfQueue": {
                "jobs": [{"jobArn": job.job_arn, "earliestTimeAtPosition": since} for job, since in front],
                "lastUpdatedAt": stamp,
            },
            "queueUtilization": utilization,
        }
