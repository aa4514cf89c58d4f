"""The AWS Batch operations: AWS's own checks, then changes to the engine's state.

Each handler takes the validated request parameters (botocore's shapes) and the region the request was
signed for, and returns the response body.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import botocore.model

from batch_fanout.local import ACCOUNT_ID
from batch_fanout.local.engine import Engine, arn
from batch_fanout.local.errors import client_error
from batch_fanout.local.jobs import STATES, Job, now_ms
from batch_fanout.local.protocol import service_model

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
MAX_ARRAY_SIZE = 10_000
MAX_DEPENDENCIES = 20
MAX_JOB_DEFINITION_BYTES = 24 * 1024
MAX_SUBMIT_BYTES = 30 * 1024
MAX_DESCRIBE_JOBS = 100
MIN_TIMEOUT_SECONDS = 60
MAX_EVALUATE_ON_EXIT = 5
DEFAULT_PAGE = 100
MAX_LIST_JOBS_PAGE = 1000

Handler = Callable[[dict[str, Any], str], dict[str, Any]]


def _container_detail_members() -> frozenset[str]:
    shape = service_model("batch").shape_for("ContainerDetail")
    assert isinstance(shape, botocore.model.StructureShape)
    return frozenset(shape.members)


def _check_name(value: str, what: str) -> None:
    if not NAME_PATTERN.match(value):
        raise client_error(
            f"Invalid {what} {value!r}: it must be 1 to 128 characters, start with a letter or digit, "
            "and contain only letters, digits, hyphens (-) and underscores (_)"
        )


def _check_environment(environment: list[dict[str, Any]] | None, where: str) -> None:
    for variable in environment or []:
        name = variable.get("name", "")
        if name.startswith("AWS_BATCH_"):
            raise client_error(
                f"Invalid environment variable {name!r} in {where}: names starting with AWS_BATCH_ "
                "are reserved for the variables AWS Batch sets"
            )


def _check_retry_strategy(strategy: dict[str, Any] | None) -> None:
    if not strategy:
        return
    attempts = strategy.get("attempts")
    if attempts is not None and not 1 <= attempts <= 10:
        raise client_error(f"retryStrategy.attempts must be between 1 and 10, got {attempts}")
    rules = strategy.get("evaluateOnExit") or []
    if len(rules) > MAX_EVALUATE_ON_EXIT:
        raise client_error(
            f"retryStrategy.evaluateOnExit has {len(rules)} rules; at most {MAX_EVALUATE_ON_EXIT} are allowed"
        )
    for position, rule in enumerate(rules):
        action = str(rule.get("action", "")).upper()
        if action not in ("RETRY", "EXIT"):
            raise client_error(f"retryStrategy.evaluateOnExit[{position}].action must be RETRY or EXIT")
        exit_code = rule.get("onExitCode")
        if exit_code is not None and not re.fullmatch(r"[0-9]*\*?", exit_code):
            raise client_error(
                f"retryStrategy.evaluateOnExit[{position}].onExitCode {exit_code!r} must be digits, "
                "optionally ending with *"
            )
        if not any(rule.get(key) is not None for key in ("onExitCode", "onReason", "onStatusReason")):
            raise client_error(
                f"retryStrategy.evaluateOnExit[{position}] needs onExitCode, onReason or onStatusReason"
            )


def _check_timeout(timeout: dict[str, Any] | None) -> None:
    if timeout and timeout.get("attemptDurationSeconds") is not None:
        seconds = timeout["attemptDurationSeconds"]
        if seconds < MIN_TIMEOUT_SECONDS:
            raise client_error(
                f"timeout.attemptDurationSeconds must be at least {MIN_TIMEOUT_SECONDS} seconds, got {seconds}"
            )


def _check_resource_requirements(requirements: list[dict[str, Any]] | None, where: str) -> None:
    for requirement in requirements or []:
        kind, value = requirement.get("type"), requirement.get("value", "")
        if kind in ("VCPU", "MEMORY"):
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if number <= 0 or (kind == "MEMORY" and not number.is_integer()):
                raise client_error(f"Invalid {kind} value {value!r} in {where}.resourceRequirements")


def _merge_by(base: list[dict[str, Any]], overrides: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    merged = {item[key]: item for item in base}
    for item in overrides:
        merged[item[key]] = item
    return list(merged.values())


def _substitute(command: list[str], parameters: dict[str, str]) -> list[str]:
    """``Ref::name`` placeholders in the command, replaced by parameter values (AWS's rule)."""
    result = []
    for argument in command:
        if argument.startswith("Ref::") and argument[5:] in parameters:
            result.append(parameters[argument[5:]])
        else:
            result.append(argument)
    return result


def _page(
    items: list[Any], next_token: str | None, max_results: int | None, limit: int
) -> tuple[list[Any], str | None]:
    start = 0
    if next_token:
        try:
            start = int(next_token)
        except ValueError:
            raise client_error(f"Invalid nextToken {next_token!r}") from None
        if start < 0 or start > len(items):
            raise client_error(f"Invalid nextToken {next_token!r}")
    size = max_results or DEFAULT_PAGE
    if size < 1 or size > limit:
        raise client_error(f"maxResults must be between 1 and {limit}, got {size}")
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


class BatchApi:
    """The AWS Batch operations of the endpoint.

    :param engine: the engine whose state the operations read and change
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.handlers: dict[str, Handler] = {
            "RegisterJobDefinition": self.register_job_definition,
            "DescribeJobDefinitions": self.describe_job_definitions,
            "DeregisterJobDefinition": self.deregister_job_definition,
            "CreateComputeEnvironment": self.create_compute_environment,
            "DescribeComputeEnvironments": self.describe_compute_environments,
            "UpdateComputeEnvironment": self.update_compute_environment,
            "DeleteComputeEnvironment": self.delete_compute_environment,
            "CreateJobQueue": self.create_job_queue,
            "DescribeJobQueues": self.describe_job_queues,
            "UpdateJobQueue": self.update_job_queue,
            "DeleteJobQueue": self.delete_job_queue,
            "SubmitJob": self.submit_job,
            "DescribeJobs": self.describe_jobs,
            "ListJobs": self.list_jobs,
            "CancelJob": self.cancel_job,
            "TerminateJob": self.terminate_job,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }

    # ---- job definitions -------------------------------------------------------------------

    def register_job_definition(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        name = params["jobDefinitionName"]
        _check_name(name, "job definition name")
        size = len(json.dumps(params, separators=(",", ":")).encode())
        if size > MAX_JOB_DEFINITION_BYTES:
            raise client_error(
                f"Job definition {name} is {size} bytes; the limit is 24 KiB ({MAX_JOB_DEFINITION_BYTES} bytes)"
            )
        if params["type"] != "container":
            raise client_error(
                f"Job definition type {params['type']!r} is not supported by the local endpoint; use 'container'"
            )
        container = params.get("containerProperties")
        if not container:
            raise client_error(f"Job definition {name}: containerProperties is required for type container")
        if not container.get("image"):
            raise client_error(f"Job definition {name}: containerProperties.image is required")
        _check_environment(container.get("environment"), "containerProperties.environment")
        _check_resource_requirements(container.get("resourceRequirements"), "containerProperties")
        _check_retry_strategy(params.get("retryStrategy"))
        _check_timeout(params.get("timeout"))
        with self.engine.lock:
            revisions = self.engine.job_definitions.get(name, [])
            revision = (revisions[-1]["revision"] + 1) if revisions else 1
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
            for key in ("retryStrategy", "timeout", "schedulingPriority"):
                if key in params:
                    document[key] = params[key]
            self.engine.save_job_definition(document)
        return {
            "jobDefinitionName": name,
            "jobDefinitionArn": document["jobDefinitionArn"],
            "revision": revision,
        }

    def _find_job_definition(self, reference: str) -> dict[str, Any] | None:
        """A revision by ``name`` (latest ACTIVE), ``name:revision`` or ARN."""
        if reference.startswith("arn:"):
            reference = reference.split("job-definition/", 1)[-1]
        name, _, revision = reference.partition(":")
        revisions = self.engine.job_definitions.get(name, [])
        if revision:
            try:
                wanted = int(revision)
            except ValueError:
                return None
            return next((item for item in revisions if item["revision"] == wanted), None)
        active = [item for item in revisions if item["status"] == "ACTIVE"]
        return active[-1] if active else None

    def describe_job_definitions(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            if params.get("jobDefinitions"):
                if len(params["jobDefinitions"]) > 100:
                    raise client_error("jobDefinitions takes at most 100 entries")
                found = []
                for reference in params["jobDefinitions"]:
                    if ":" in reference.split("job-definition/", 1)[-1]:
                        document = self._find_job_definition(reference)
                        if document:
                            found.append(document)
                    else:
                        found.extend(self.engine.job_definitions.get(reference.split("/")[-1], []))
            else:
                found = [item for revisions in self.engine.job_definitions.values() for item in revisions]
            if params.get("jobDefinitionName"):
                found = [item for item in found if item["jobDefinitionName"] == params["jobDefinitionName"]]
            if params.get("status"):
                found = [item for item in found if item["status"] == params["status"]]
            page, token = _page(found, params.get("nextToken"), params.get("maxResults"), 100)
        response: dict[str, Any] = {"jobDefinitions": page}
        if token:
            response["nextToken"] = token
        return response

    def deregister_job_definition(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        reference = params["jobDefinition"]
        with self.engine.lock:
            document = self._find_job_definition(reference)
            if document is None or ":" not in reference.split("job-definition/", 1)[-1]:
                raise client_error(f"Job definition {reference} not found (give name:revision or the ARN)")
            document["status"] = "INACTIVE"
            self.engine.save_job_definition(document)
        return {}

    # ---- compute environments --------------------------------------------------------------

    def create_compute_environment(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        name = params["computeEnvironmentName"]
        _check_name(name, "compute environment name")
        kind = params["type"]
        resources = params.get("computeResources")
        if kind == "MANAGED" and not resources:
            raise client_error(
                f"Compute environment {name}: computeResources is required for a MANAGED environment"
            )
        if resources is not None and resources.get("maxvCpus") is None:
            raise client_error(f"Compute environment {name}: computeResources.maxvCpus is required")
        with self.engine.lock:
            if name in self.engine.compute_environments:
                raise client_error(f"Compute environment {name} already exists")
            document: dict[str, Any] = {
                "computeEnvironmentName": name,
                "computeEnvironmentArn": arn(region, f"compute-environment/{name}"),
                "ecsClusterArn": f"arn:aws:ecs:{region}:{ACCOUNT_ID}:cluster/local-{name}",
                "tags": params.get("tags", {}),
                "type": kind,
                "state": params.get("state", "ENABLED"),
                "status": "VALID",
                "statusReason": "ComputeEnvironment Healthy",
                "containerOrchestrationType": "ECS",
                "uuid": str(uuid.uuid4()),
            }
            for key in ("computeResources", "unmanagedvCpus", "serviceRole"):
                if key in params:
                    document[key] = params[key]
            self.engine.save_compute_environment(document)
            self.engine.wake()
        return {"computeEnvironmentName": name, "computeEnvironmentArn": document["computeEnvironmentArn"]}

    def _compute_environment(self, reference: str) -> dict[str, Any]:
        document = self.engine.compute_environment_by_arn(reference)
        if document is None:
            raise client_error(f"Compute environment {reference} not found")
        return document

    def describe_compute_environments(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            references = params.get("computeEnvironments")
            if references:
                found = [doc for ref in references if (doc := self.engine.compute_environment_by_arn(ref))]
            else:
                found = list(self.engine.compute_environments.values())
            page, token = _page(found, params.get("nextToken"), params.get("maxResults"), 100)
        response: dict[str, Any] = {"computeEnvironments": page}
        if token:
            response["nextToken"] = token
        return response

    def update_compute_environment(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            document = self._compute_environment(params["computeEnvironment"])
            if "state" in params:
                document["state"] = params["state"]
            if "unmanagedvCpus" in params:
                document["unmanagedvCpus"] = params["unmanagedvCpus"]
            if "computeResources" in params:
                document.setdefault("computeResources", {}).update(params["computeResources"])
            if "serviceRole" in params:
                document["serviceRole"] = params["serviceRole"]
            self.engine.save_compute_environment(document)
            self.engine.wake()
        return {
            "computeEnvironmentName": document["computeEnvironmentName"],
            "computeEnvironmentArn": document["computeEnvironmentArn"],
        }

    def delete_compute_environment(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            document = self._compute_environment(params["computeEnvironment"])
            name = document["computeEnvironmentName"]
            if document.get("state") != "DISABLED":
                raise client_error(
                    f"Cannot delete compute environment {name}: disable it first (UpdateComputeEnvironment state=DISABLED)"
                )
            for queue in self.engine.job_queues.values():
                for entry in queue.get("computeEnvironmentOrder", []):
                    if self.engine.compute_environment_by_arn(entry["computeEnvironment"]) is document:
                        raise client_error(
                            f"Cannot delete compute environment {name}: job queue {queue['jobQueueName']} uses it"
                        )
            del self.engine.compute_environments[name]
            self.engine.store.delete_resource("compute-environment", name)
        return {}

    # ---- job queues ------------------------------------------------------------------------

    def _check_order(self, order: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not 1 <= len(order) <= 3:
            raise client_error("computeEnvironmentOrder must list 1 to 3 compute environments")
        resolved = []
        for entry in order:
            document = self._compute_environment(entry["computeEnvironment"])
            resolved.append(
                {"order": entry["order"], "computeEnvironment": document["computeEnvironmentArn"]}
            )
        return resolved

    def create_job_queue(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        name = params["jobQueueName"]
        _check_name(name, "job queue name")
        with self.engine.lock:
            if name in self.engine.job_queues:
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
            self.engine.save_job_queue(document)
        return {"jobQueueName": name, "jobQueueArn": document["jobQueueArn"]}

    def _job_queue(self, reference: str) -> dict[str, Any]:
        document = self.engine.job_queues.get(reference) or self.engine.queue_by_arn(reference)
        if document is None:
            raise client_error(f"Job queue {reference} not found")
        return document

    def describe_job_queues(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            references = params.get("jobQueues")
            if references:
                found = [
                    doc
                    for ref in references
                    if (doc := self.engine.job_queues.get(ref) or self.engine.queue_by_arn(ref))
                ]
            else:
                found = list(self.engine.job_queues.values())
            page, token = _page(found, params.get("nextToken"), params.get("maxResults"), 100)
        response: dict[str, Any] = {"jobQueues": page}
        if token:
            response["nextToken"] = token
        return response

    def update_job_queue(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            document = self._job_queue(params["jobQueue"])
            if "state" in params:
                document["state"] = params["state"]
            if "priority" in params:
                document["priority"] = params["priority"]
            if params.get("computeEnvironmentOrder"):
                document["computeEnvironmentOrder"] = self._check_order(params["computeEnvironmentOrder"])
            self.engine.save_job_queue(document)
            self.engine.wake()
        return {"jobQueueName": document["jobQueueName"], "jobQueueArn": document["jobQueueArn"]}

    def delete_job_queue(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            document = self._job_queue(params["jobQueue"])
            if document.get("state") != "DISABLED":
                raise client_error(
                    f"Cannot delete job queue {document['jobQueueName']}: disable it first (UpdateJobQueue state=DISABLED)"
                )
            for job in self.engine.top_level_jobs:
                if job.queue_arn == document["jobQueueArn"] and not job.is_terminal:
                    self.engine.terminate(job, "Job queue deleted")
            del self.engine.job_queues[document["jobQueueName"]]
            self.engine.store.delete_resource("job-queue", document["jobQueueName"])
        return {}

    # ---- jobs ------------------------------------------------------------------------------

    def submit_job(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        name = params["jobName"]
        _check_name(name, "job name")
        array_size = (params.get("arrayProperties") or {}).get("size")
        if array_size is not None and not 2 <= array_size <= MAX_ARRAY_SIZE:
            raise client_error(f"Array job size must be between 2 and {MAX_ARRAY_SIZE}, got {array_size}")
        depends_on = params.get("dependsOn") or []
        if len(depends_on) > MAX_DEPENDENCIES:
            raise client_error(f"A job can depend on at most {MAX_DEPENDENCIES} jobs, got {len(depends_on)}")
        overrides = params.get("containerOverrides") or {}
        _check_environment(overrides.get("environment"), "containerOverrides.environment")
        _check_resource_requirements(overrides.get("resourceRequirements"), "containerOverrides")
        _check_retry_strategy(params.get("retryStrategy"))
        _check_timeout(params.get("timeout"))
        for unsupported in ("nodeOverrides", "eksPropertiesOverride", "ecsPropertiesOverride"):
            if params.get(unsupported):
                raise client_error(f"{unsupported} is not supported by the local endpoint")
        engine = self.engine
        with engine.lock:
            queue = engine.job_queues.get(params["jobQueue"]) or engine.queue_by_arn(params["jobQueue"])
            if queue is None:
                raise client_error(f"Job queue {params['jobQueue']} not found")
            if queue.get("state") != "ENABLED":
                raise client_error(f"Job queue {queue['jobQueueName']} is DISABLED and accepts no jobs")
            definition = self._find_job_definition(params["jobDefinition"])
            if definition is None:
                raise client_error(f"Job definition {params['jobDefinition']} not found")
            if definition["status"] != "ACTIVE":
                raise client_error(f"Job definition {definition['jobDefinitionArn']} is INACTIVE")
            dependencies = []
            for position, dependency in enumerate(depends_on):
                kind = dependency.get("type")
                target_id = dependency.get("jobId")
                if kind == "SEQUENTIAL" and array_size is None:
                    raise client_error(f"dependsOn[{position}]: a SEQUENTIAL dependency needs an array job")
                if not target_id:
                    if kind != "SEQUENTIAL":
                        raise client_error(f"dependsOn[{position}]: jobId is required")
                else:
                    target = engine.jobs.get(target_id)
                    if target is None:
                        raise client_error(f"dependsOn[{position}]: job {target_id} not found")
                    if (
                        kind == "N_TO_N"
                        and array_size is not None
                        and target.is_parent
                        and target.array_size != array_size
                    ):
                        raise client_error(
                            f"dependsOn[{position}]: N_TO_N dependency {target_id} is an array job of size "
                            f"{target.array_size}, but this array job has size {array_size}; N_TO_N needs "
                            "arrays of the same size"
                        )
                dependencies.append({key: value for key, value in dependency.items() if value is not None})
            spec = self._job_spec(params, definition, dependencies, region)
            job_id = str(uuid.uuid4())
            first_seq = engine.allocate_seq(1 + (array_size or 0))
            created = now_ms()
            job = Job(
                job_id, first_seq, name, queue["jobQueueArn"], region, spec, created, array_size=array_size
            )
            children = [
                Job(
                    f"{job_id}:{index}",
                    first_seq + 1 + index,
                    name,
                    job.queue_arn,
                    region,
                    spec,
                    created,
                    parent=job,
                    index=index,
                )
                for index in range(array_size or 0)
            ]
            engine.add_jobs(job, children)
        return {"jobArn": job.job_arn, "jobName": name, "jobId": job_id}

    def _job_spec(
        self,
        params: dict[str, Any],
        definition: dict[str, Any],
        dependencies: list[dict[str, Any]],
        region: str,
    ) -> dict[str, Any]:
        properties = definition["containerProperties"]
        overrides = params.get("containerOverrides") or {}
        parameters = {**definition.get("parameters", {}), **(params.get("parameters") or {})}
        members = _container_detail_members()
        container: dict[str, Any] = {key: value for key, value in properties.items() if key in members}
        command = overrides.get("command") or properties.get("command") or []
        container["command"] = _substitute(list(command), parameters)
        container["environment"] = _merge_by(
            properties.get("environment", []), overrides.get("environment", []), "name"
        )
        requirements = _merge_by(
            properties.get("resourceRequirements", []), overrides.get("resourceRequirements", []), "type"
        )
        container["resourceRequirements"] = requirements
        for key in ("vcpus", "memory", "instanceType"):
            if overrides.get(key) is not None:
                container[key] = overrides[key]
        by_type = {item["type"]: item["value"] for item in requirements}
        vcpus = float(by_type.get("VCPU") or container.get("vcpus") or 1)
        memory = int(float(by_type.get("MEMORY") or container.get("memory") or 0))
        retry_strategy = params.get("retryStrategy") or definition.get("retryStrategy")
        timeout = params.get("timeout") or definition.get("timeout")
        spec: dict[str, Any] = {
            "jobArnPrefix": arn(region, "job/"),
            "jobDefinition": definition["jobDefinitionArn"],
            "jobDefinitionName": definition["jobDefinitionName"],
            "container": container,
            "parameters": parameters,
            "dependsOn": dependencies,
            "tags": params.get("tags") or {},
            "propagateTags": params.get("propagateTags", definition.get("propagateTags", False)),
            "platformCapabilities": definition.get("platformCapabilities", ["EC2"]),
            "vcpus": vcpus,
            "memory": memory,
        }
        if retry_strategy:
            spec["retryStrategy"] = retry_strategy
        if timeout:
            spec["timeout"] = timeout
        priority = params.get("schedulingPriorityOverride", definition.get("schedulingPriority"))
        if priority is not None:
            spec["schedulingPriority"] = priority
        if params.get("shareIdentifier"):
            spec["shareIdentifier"] = params["shareIdentifier"]
        return spec

    def describe_jobs(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        ids = params["jobs"]
        if len(ids) > MAX_DESCRIBE_JOBS:
            raise client_error(f"DescribeJobs takes at most {MAX_DESCRIBE_JOBS} job ids, got {len(ids)}")
        with self.engine.lock:
            details = []
            for reference in ids:
                job = self.engine.jobs.get(reference.rsplit("/", 1)[-1])
                if job is not None:
                    details.append(job.detail())
            return {"jobs": json.loads(json.dumps(details))}

    def list_jobs(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        engine = self.engine
        filters = params.get("filters") or []
        status = params.get("jobStatus")
        with engine.lock:
            if params.get("arrayJobId"):
                parent = engine.jobs.get(params["arrayJobId"])
                if parent is None or not parent.is_parent:
                    raise client_error(f"Array job {params['arrayJobId']} not found")
                candidates: list[Job] = parent.children
            elif params.get("multiNodeJobId"):
                raise client_error("multiNodeJobId: multi-node jobs are not supported by the local endpoint")
            elif params.get("jobQueue"):
                queue = engine.job_queues.get(params["jobQueue"]) or engine.queue_by_arn(params["jobQueue"])
                if queue is None:
                    raise client_error(f"Job queue {params['jobQueue']} not found")
                candidates = [job for job in engine.top_level_jobs if job.queue_arn == queue["jobQueueArn"]]
            else:
                raise client_error("ListJobs needs jobQueue, arrayJobId or multiNodeJobId")
            if filters:
                # With filters AWS ignores jobStatus and lists every state.
                selected = [job for job in candidates if self._matches(job, filters)]
            else:
                wanted = status or "RUNNING"
                selected = [job for job in candidates if job.status == wanted]
            page, token = _page(
                selected, params.get("nextToken"), params.get("maxResults"), MAX_LIST_JOBS_PAGE
            )
            response: dict[str, Any] = {"jobSummaryList": [job.summary_view() for job in page]}
        if token:
            response["nextToken"] = token
        return response

    @staticmethod
    def _matches(job: Job, filters: list[dict[str, Any]]) -> bool:
        for entry in filters:
            name, values = entry.get("name"), entry.get("values") or []
            if not values:
                raise client_error(f"ListJobs filter {name} needs a value")
            value = values[0]
            if name == "JOB_NAME":
                matched = job.name.startswith(value[:-1]) if value.endswith("*") else job.name == value
            elif name == "JOB_DEFINITION":
                definition = job.spec["jobDefinition"]
                short = definition.split("job-definition/", 1)[-1]
                if value.endswith("*"):
                    matched = short.startswith(value[:-1])
                else:
                    matched = value in (definition, short, short.split(":")[0])
            elif name in ("BEFORE_CREATED_AT", "AFTER_CREATED_AT"):
                try:
                    moment = int(value)
                except ValueError:
                    raise client_error(
                        f"ListJobs filter {name}: {value!r} is not epoch milliseconds"
                    ) from None
                matched = job.created_at < moment if name == "BEFORE_CREATED_AT" else job.created_at > moment
            else:
                raise client_error(
                    f"Invalid ListJobs filter name {name!r}: use JOB_NAME, JOB_DEFINITION, BEFORE_CREATED_AT or AFTER_CREATED_AT"
                )
            if not matched:
                return False
        return True

    def _job(self, job_id: str) -> Job:
        job = self.engine.jobs.get(job_id)
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

    def _tags_of(self, resource_arn: str) -> tuple[dict[str, str], Callable[[], None]]:
        engine = self.engine
        if ":job/" in resource_arn:
            job = engine.jobs.get(resource_arn.rsplit("/", 1)[-1])
            if job is not None:
                owner = job.parent or job
                return job.spec["tags"], lambda: engine.store.save_jobs(
                    [(owner.job_id, owner.seq, owner.document())]
                )
        for revisions in engine.job_definitions.values():
            for document in revisions:
                if document["jobDefinitionArn"] == resource_arn:
                    return document.setdefault("tags", {}), lambda d=document: engine.save_job_definition(d)
        queue = engine.queue_by_arn(resource_arn)
        if queue is not None:
            return queue.setdefault("tags", {}), lambda: engine.save_job_queue(queue)
        environment = engine.compute_environment_by_arn(resource_arn)
        if environment is not None and resource_arn.startswith("arn:"):
            return environment.setdefault("tags", {}), lambda: engine.save_compute_environment(environment)
        raise client_error(f"Resource {resource_arn} not found")

    def tag_resource(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            tags, save = self._tags_of(params["resourceArn"])
            tags.update(params["tags"])
            save()
        return {}

    def untag_resource(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            tags, save = self._tags_of(params["resourceArn"])
            for key in params["tagKeys"]:
                tags.pop(key, None)
            save()
        return {}

    def list_tags_for_resource(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            tags, _ = self._tags_of(params["resourceArn"])
            return {"tags": dict(tags)}


__all__ = ["MAX_SUBMIT_BYTES", "STATES", "BatchApi"]
