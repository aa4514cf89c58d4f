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
from batch_fanout.local.consumables_api import ConsumablesApi
from batch_fanout.local.engine import Engine
from batch_fanout.local.errors import client_error
from batch_fanout.local.fair_share import (
    SchedulingPoliciesApi,
    check_queue_policy,
    check_scheduling_priority,
)
from batch_fanout.local.jobs_api import JobsApi
from batch_fanout.local.multinode import check_node_properties
from batch_fanout.local.registry import NamedResources, arn
from batch_fanout.local.time_limits import check_time_limit_actions
from batch_fanout.local.validation import (
    MAX_SUBMIT_BYTES,
    check_compute_environment,
    check_job_definition,
    check_name,
    paged,
)

Handler = Callable[[dict[str, Any], str], dict[str, Any]]


def _copy(response: dict[str, Any]) -> dict[str, Any]:
    """A deep copy taken under the lock: the documents change as soon as it is released."""
    copied: dict[str, Any] = json.loads(json.dumps(response))
    return copied


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
            **JobsApi(engine).handlers,
            **ConsumablesApi(engine).handlers,
            **SchedulingPoliciesApi(self.registry, engine.lock, _copy).handlers,
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
        if "schedulingPolicyArn" in params:
            queue = self.registry.job_queues.get(params["jobQueue"], client_error)
            changes["schedulingPolicyArn"] = check_queue_policy(self.registry, queue, params)
        if "jobStateTimeLimitActions" in params:
            changes["jobStateTimeLimitActions"] = check_time_limit_actions(params["jobStateTimeLimitActions"])
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
        check_scheduling_priority(params.get("schedulingPriority"), "schedulingPriority")
        name = params["jobDefinitionName"]
        properties = {"containerProperties": container}
        if container is None:
            properties = {"nodeProperties": check_node_properties(name, params)}
        definitions = self.registry.job_definitions
        with self.engine.lock:
            self.engine.consumables.check_requirements(
                (params.get("consumableResourceProperties") or {}).get("consumableResourceList") or [],
                "consumableResourceProperties",
            )
            revision = definitions.next_revision(name)
            document: dict[str, Any] = {
                "jobDefinitionName": name,
                "jobDefinitionArn": arn(region, f"job-definition/{name}:{revision}"),
                "revision": revision,
                "status": "ACTIVE",
                "type": params["type"],
                "parameters": params.get("parameters", {}),
                **properties,
                "tags": params.get("tags", {}),
                "propagateTags": params.get("propagateTags", False),
                "platformCapabilities": params.get("platformCapabilities", ["EC2"]),
                "containerOrchestrationType": "ECS",
            }
            document.update(
                {
                    key: params[key]
                    for key in (
                        "retryStrategy",
                        "timeout",
                        "schedulingPriority",
                        "consumableResourceProperties",
                    )
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
            policy_arn = check_queue_policy(self.registry, None, params)
            if policy_arn:
                document["schedulingPolicyArn"] = policy_arn
            if params.get("jobStateTimeLimitActions"):
                document["jobStateTimeLimitActions"] = check_time_limit_actions(
                    params["jobStateTimeLimitActions"]
                )
            self.registry.job_queues.save(document)
        return {"jobQueueName": name, "jobQueueArn": document["jobQueueArn"]}

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
