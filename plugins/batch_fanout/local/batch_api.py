"""The AWS Batch operations: each handler translates a request into a call on the engine or registry.

Handlers take the validated request parameters (botocore's shapes) and the region the request was
signed for, and return the response body. AWS's checks live in ``validation`` and ``submission``; the
state lives in the engine (jobs) and the registry (environments, queues, definitions), which alone
change it. Compute environments and job queues share one describe / update / delete shape.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from batch_fanout.local import ACCOUNT_ID
from batch_fanout.local.engine import Engine
from batch_fanout.local.errors import client_error
from batch_fanout.local.jobs import Job
from batch_fanout.local.registry import NamedResources, arn
from batch_fanout.local.submission import check_dependencies, job_spec, new_jobs
from batch_fanout.local.validation import (
    MAX_DESCRIBE_JOBS,
    MAX_FILTERED_PAGE,
    MAX_LIST_JOBS_PAGE,
    MAX_SUBMIT_BYTES,
    check_compute_environment,
    check_job_definition,
    check_name,
    check_submit,
    paged,
)

Handler = Callable[[dict[str, Any], str], dict[str, Any]]
LIST_FILTERS = ("JOB_NAME", "JOB_DEFINITION", "BEFORE_CREATED_AT", "AFTER_CREATED_AT", "SHARE_IDENTIFIER")


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


class BatchApi:
    """The AWS Batch operations of the endpoint.

    :param engine: the engine whose state the operations read and change
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.registry = engine.registry
        environments, queues = self.registry.compute_environments, self.registry.job_queues
        self.handlers: dict[str, Handler] = {
            "RegisterJobDefinition": self.register_job_definition,
            "DescribeJobDefinitions": self.describe_job_definitions,
            "DeregisterJobDefinition": self.deregister_job_definition,
            "CreateComputeEnvironment": self.create_compute_environment,
            "DescribeComputeEnvironments": self._describe(environments, "computeEnvironments"),
            "UpdateComputeEnvironment": self._update(environments, "computeEnvironment", self._ce_changes),
            "DeleteComputeEnvironment": self._delete(
                environments, "computeEnvironment", self._before_ce_delete
            ),
            "CreateJobQueue": self.create_job_queue,
            "DescribeJobQueues": self._describe(queues, "jobQueues"),
            "UpdateJobQueue": self._update(queues, "jobQueue", self._queue_changes),
            "DeleteJobQueue": self._delete(queues, "jobQueue", self._before_queue_delete),
            "SubmitJob": self.submit_job,
            "DescribeJobs": self.describe_jobs,
            "ListJobs": self.list_jobs,
            "CancelJob": self.cancel_job,
            "TerminateJob": self.terminate_job,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }

    # ---- the shared shape of environments and queues ---------------------------------------

    def _describe(self, resources: NamedResources, references_key: str) -> Handler:
        def describe(params: dict[str, Any], region: str) -> dict[str, Any]:
            with self.engine.lock:
                references = params.get(references_key)
                if references:
                    found = [document for ref in references if (document := resources.find(ref))]
                else:
                    found = resources.all()
                return _copy(paged(references_key, found, params, 100))

        return describe

    def _update(
        self,
        resources: NamedResources,
        reference_key: str,
        changes: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Handler:
        def update(params: dict[str, Any], region: str) -> dict[str, Any]:
            with self.engine.lock:
                document = resources.get(params[reference_key], client_error)
                resources.update(document, changes(params))
                self.engine.wake()  # capacity or order may have changed
            kind = resources.kind
            return {kind.name_key: document[kind.name_key], kind.arn_key: document[kind.arn_key]}

        return update

    def _delete(
        self, resources: NamedResources, reference_key: str, before: Callable[[dict[str, Any]], None]
    ) -> Handler:
        def delete(params: dict[str, Any], region: str) -> dict[str, Any]:
            with self.engine.lock:
                document = resources.get(params[reference_key], client_error)
                name = document[resources.kind.name_key]
                if document.get("state") != "DISABLED":
                    operation = (
                        "UpdateComputeEnvironment"
                        if reference_key == "computeEnvironment"
                        else "UpdateJobQueue"
                    )
                    raise client_error(
                        f"Cannot delete {resources.kind.label.lower()} {name}: disable it first ({operation} state=DISABLED)"
                    )
                before(document)
                resources.delete(document)
            return {}

        return delete

    @staticmethod
    def _ce_changes(params: dict[str, Any]) -> dict[str, Any]:
        return {
            key: params[key]
            for key in ("state", "unmanagedvCpus", "computeResources", "serviceRole")
            if key in params
        }

    def _queue_changes(self, params: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {key: params[key] for key in ("state", "priority") if key in params}
        if params.get("computeEnvironmentOrder"):
            changes["computeEnvironmentOrder"] = self._check_order(params["computeEnvironmentOrder"])
        return changes

    def _before_ce_delete(self, document: dict[str, Any]) -> None:
        for queue in self.registry.queues_using(document):
            raise client_error(
                f"Cannot delete compute environment {document['computeEnvironmentName']}: "
                f"job queue {queue['jobQueueName']} uses it"
            )

    def _before_queue_delete(self, document: dict[str, Any]) -> None:
        for job in self.engine.scheduler.top_level_jobs:
            if job.queue_arn == document["jobQueueArn"] and not job.is_terminal:
                self.engine.terminate(job, "Job queue deleted")

    def _check_order(self, order: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not 1 <= len(order) <= 3:
            raise client_error("computeEnvironmentOrder must list 1 to 3 compute environments")
        environments = self.registry.compute_environments
        return [
            {
                "order": entry["order"],
                "computeEnvironment": environments.get(entry["computeEnvironment"], client_error)[
                    "computeEnvironmentArn"
                ],
            }
            for entry in order
        ]

    # ---- job definitions, environments and queues ------------------------------------------

    def register_job_definition(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        container = check_job_definition(params)
        name = params["jobDefinitionName"]
        definitions = self.registry.job_definitions
        with self.engine.lock:
            revision = definitions.next_revision(name)
            document: dict[str, Any] = {
                "jobDefinitionName": name,
                "jobDefinitionArn": arn(region, f"job-definition/{name}:{revision}"),
                "revision": revision,
                "status": "ACTIVE",
                "type": "container",
                "parameters": params.get("parameters", {}),
                "containerProperties": container,
                "tags": params.get("tags", {}),
                "propagateTags": params.get("propagateTags", False),
                "platformCapabilities": params.get("platformCapabilities", ["EC2"]),
                "containerOrchestrationType": "ECS",
            }
            document.update(
                {
                    key: params[key]
                    for key in ("retryStrategy", "timeout", "schedulingPriority")
                    if key in params
                }
            )
            definitions.add(document)
        return {
            "jobDefinitionName": name,
            "jobDefinitionArn": document["jobDefinitionArn"],
            "revision": revision,
        }

    def describe_job_definitions(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        definitions = self.registry.job_definitions
        with self.engine.lock:
            references = params.get("jobDefinitions")
            if references:
                if len(references) > 100:
                    raise client_error("jobDefinitions takes at most 100 entries")
                found = []
                for reference in references:
                    if ":" in reference.split("job-definition/", 1)[-1]:
                        document = definitions.find(reference)
                        found.extend([document] if document else [])
                    else:
                        found.extend(definitions.revisions.get(reference.split("/")[-1], []))
            else:
                found = definitions.all()
            if params.get("jobDefinitionName"):
                found = [item for item in found if item["jobDefinitionName"] == params["jobDefinitionName"]]
            if params.get("status"):
                found = [item for item in found if item["status"] == params["status"]]
            return _copy(paged("jobDefinitions", found, params, 100))

    def deregister_job_definition(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        reference = params["jobDefinition"]
        with self.engine.lock:
            document = self.registry.job_definitions.find(reference)
            if document is None or ":" not in reference.split("job-definition/", 1)[-1]:
                raise client_error(f"Job definition {reference} not found (give name:revision or the ARN)")
            self.registry.job_definitions.deactivate(document)
        return {}

    def create_compute_environment(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        check_compute_environment(params)
        name = params["computeEnvironmentName"]
        with self.engine.lock:
            if self.registry.compute_environments.find(name) is not None:
                raise client_error(f"Compute environment {name} already exists")
            document: dict[str, Any] = {
                "computeEnvironmentName": name,
                "computeEnvironmentArn": arn(region, f"compute-environment/{name}"),
                "ecsClusterArn": f"arn:aws:ecs:{region}:{ACCOUNT_ID}:cluster/local-{name}",
                "tags": params.get("tags", {}),
                "type": params["type"],
                "state": params.get("state", "ENABLED"),
                "status": "VALID",
                "statusReason": "ComputeEnvironment Healthy",
                "containerOrchestrationType": "ECS",
                "uuid": str(uuid.uuid4()),
            }
            document.update(
                {
                    key: params[key]
                    for key in ("computeResources", "unmanagedvCpus", "serviceRole")
                    if key in params
                }
            )
            self.registry.compute_environments.save(document)
            self.engine.wake()
        return {"computeEnvironmentName": name, "computeEnvironmentArn": document["computeEnvironmentArn"]}

    def create_job_queue(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        name = params["jobQueueName"]
        check_name(name, "job queue name")
        with self.engine.lock:
            if self.registry.job_queues.find(name) is not None:
                raise client_error(f"Job queue {name} already exists")
            document: dict[str, Any] = {
                "jobQueueName": name,
                "jobQueueArn": arn(region, f"job-queue/{name}"),
                "state": params.get("state", "ENABLED"),
                "status": "VALID",
                "statusReason": "JobQueue Healthy",
                "priority": params["priority"],
                "computeEnvironmentOrder": self._check_order(params.get("computeEnvironmentOrder") or []),
                "tags": params.get("tags", {}),
                "jobQueueType": "ECS",
            }
            if "schedulingPolicyArn" in params:
                document["schedulingPolicyArn"] = params["schedulingPolicyArn"]
            self.registry.job_queues.save(document)
        return {"jobQueueName": name, "jobQueueArn": document["jobQueueArn"]}

    # ---- jobs ------------------------------------------------------------------------------

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
            dependencies = check_dependencies(params.get("dependsOn") or [], array_size, engine.scheduler)
            spec = job_spec(params, definition, dependencies, region)
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
        which combines with it); filtered queue listings newest first by ``createdAt``; RUNNING by default."""
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
                raise client_error("multiNodeJobId: multi-node jobs are not supported by the local endpoint")
            elif params.get("jobQueue"):
                queue_arn = self.registry.job_queues.get(params["jobQueue"], client_error)["jobQueueArn"]
                # Jobs are kept in submission order, so newest first is that order reversed.
                candidates = [job for job in reversed(scheduler.top_level_jobs) if job.queue_arn == queue_arn]
            else:
                raise client_error("ListJobs needs jobQueue, arrayJobId or multiNodeJobId")
            if filters:
                matches = _job_filter(filters[0].get("name", ""), filters[0].get("values") or [])
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

    # ---- tags ------------------------------------------------------------------------------

    def tag_resource(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            self.engine.change_tags(params["resourceArn"], params["tags"], [])
        return {}

    def untag_resource(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            self.engine.change_tags(params["resourceArn"], {}, params["tagKeys"])
        return {}

    def list_tags_for_resource(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            return {"tags": self.engine.change_tags(params["resourceArn"], {}, [])}


__all__ = ["MAX_SUBMIT_BYTES", "BatchApi"]
