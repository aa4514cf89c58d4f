"""The registry: compute environments, job queues, job definitions and scheduling policies, kept in
memory and in the store.

Resources are AWS's own documents (the shapes DescribeComputeEnvironments, DescribeJobQueues and
DescribeJobDefinitions return). The registry owns them: the API layer asks it to create, change or
remove one and never edits a document itself. Lookups by name and by ARN are dictionary lookups.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batch_fanout.local import (
    ACCOUNT_ID,
    DEFAULT_COMPUTE_ENVIRONMENT_NAME,
    DEFAULT_QUEUE_NAME,
    DEFAULT_REGION,
)
from batch_fanout.local.store import Store

Document = dict[str, Any]


def arn(region: str, resource: str) -> str:
    return f"arn:aws:batch:{region}:{ACCOUNT_ID}:{resource}"


def machine_memory_mib() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


@dataclass(frozen=True)
class Kind:
    """One kind of named resource: its store kind, and the keys of its name and ARN."""

    store_kind: str
    name_key: str
    arn_key: str
    label: str


COMPUTE_ENVIRONMENT = Kind(
    "compute-environment", "computeEnvironmentName", "computeEnvironmentArn", "Compute environment"
)
JOB_QUEUE = Kind("job-queue", "jobQueueName", "jobQueueArn", "Job queue")
SCHEDULING_POLICY = Kind("scheduling-policy", "name", "arn", "Scheduling policy")


class NamedResources:
    """The compute environments or the job queues: by name, with an index by ARN.

    :param kind: which resources
    :param store: where they persist
    """

    def __init__(self, kind: Kind, store: Store) -> None:
        self.kind = kind
        self.store = store
        self.by_name: dict[str, Document] = {}
        self._by_arn: dict[str, Document] = {}
        for document in store.load_resources(kind.store_kind):
            self._index(document)

    def _index(self, document: Document) -> None:
        self.by_name[document[self.kind.name_key]] = document
        self._by_arn[document[self.kind.arn_key]] = document

    def find(self, reference: str) -> Document | None:
        """By name or ARN."""
        return self.by_name.get(reference) or self._by_arn.get(reference)

    def get(self, reference: str, not_found: Callable[[str], Exception]) -> Document:
        document = self.find(reference)
        if document is None:
            raise not_found(f"{self.kind.label} {reference} not found")
        return document

    def save(self, document: Document) -> None:
        self._index(document)
        self.store.save_resource(self.kind.store_kind, document[self.kind.name_key], document)

    def update(self, document: Document, changes: Document) -> None:
        """Apply ``changes`` (top-level keys; nested dicts merge one level) and persist."""
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(document.get(key), dict):
                document[key] = {**document[key], **value}
            else:
                document[key] = value
        self.save(document)

    def delete(self, document: Document) -> None:
        self.by_name.pop(document[self.kind.name_key], None)
        self._by_arn.pop(document[self.kind.arn_key], None)
        self.store.delete_resource(self.kind.store_kind, document[self.kind.name_key])

    def all(self) -> list[Document]:
        return list(self.by_name.values())


class JobDefinitions:
    """Job definitions: revisions per name, found by name (latest ACTIVE), ``name:revision`` or ARN.

    :param store: where they persist
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.revisions: dict[str, list[Document]] = {}
        for document in store.load_resources("job-definition"):
            self.revisions.setdefault(document["jobDefinitionName"], []).append(document)
        for revisions in self.revisions.values():
            revisions.sort(key=lambda item: item["revision"])

    def next_revision(self, name: str) -> int:
        revisions = self.revisions.get(name)
        return revisions[-1]["revision"] + 1 if revisions else 1

    def add(self, document: Document) -> None:
        self.revisions.setdefault(document["jobDefinitionName"], []).append(document)
        self.save(document)

    def save(self, document: Document) -> None:
        self.store.save_resource("job-definition", document["jobDefinitionArn"], document)

    def deactivate(self, document: Document) -> None:
        document["status"] = "INACTIVE"
        self.save(document)

    def find(self, reference: str) -> Document | None:
        if reference.startswith("arn:"):
            reference = reference.split("job-definition/", 1)[-1]
        name, _, revision = reference.partition(":")
        revisions = self.revisions.get(name, [])
        if revision:
            try:
                wanted = int(revision)
            except ValueError:
                return None
            return next((item for item in revisions if item["revision"] == wanted), None)
        active = [item for item in revisions if item["status"] == "ACTIVE"]
        return active[-1] if active else None

    def by_arn(self, definition_arn: str) -> Document | None:
        document = self.find(definition_arn)
        return document if document is not None and document["jobDefinitionArn"] == definition_arn else None

    def all(self) -> list[Document]:
        return [item for revisions in self.revisions.values() for item in revisions]


class Registry:
    """Compute environments, job queues and job definitions, with the defaults created on first start.

    :param store: where they persist
    :param vcpus: the default compute environment's vCPUs (its stored value, else the CPU count, when
        ``None``)
    """

    def __init__(self, store: Store, vcpus: int | None = None) -> None:
        self.compute_environments = NamedResources(COMPUTE_ENVIRONMENT, store)
        self.job_queues = NamedResources(JOB_QUEUE, store)
        self.job_definitions = JobDefinitions(store)
        self.scheduling_policies = NamedResources(SCHEDULING_POLICY, store)
        self.machine_memory_mib = machine_memory_mib()
        # Faults on demand can take capacity away (see ``faults``): name -> vCPUs at most, or None.
        self.capacity_limit: Callable[[str], float | None] = lambda name: None
        self._create_defaults(vcpus)

    def _create_defaults(self, vcpus: int | None) -> None:
        default = self.compute_environments.find(DEFAULT_COMPUTE_ENVIRONMENT_NAME)
        if default is None:
            default = {
                "computeEnvironmentName": DEFAULT_COMPUTE_ENVIRONMENT_NAME,
                "computeEnvironmentArn": arn(
                    DEFAULT_REGION, f"compute-environment/{DEFAULT_COMPUTE_ENVIRONMENT_NAME}"
                ),
                "ecsClusterArn": f"arn:aws:ecs:{DEFAULT_REGION}:{ACCOUNT_ID}:cluster/local",
                "tags": {},
                "type": "MANAGED",
                "state": "ENABLED",
                "status": "VALID",
                "statusReason": "ComputeEnvironment Healthy",
                "computeResources": {
                    "type": "EC2",
                    "minvCpus": 0,
                    "maxvCpus": vcpus or os.cpu_count() or 1,
                    "desiredvCpus": 0,
                    "instanceTypes": ["optimal"],
                    "subnets": [],
                },
                "containerOrchestrationType": "ECS",
                "uuid": str(uuid.uuid4()),
            }
            self.compute_environments.save(default)
        elif vcpus is not None:
            self.compute_environments.update(default, {"computeResources": {"maxvCpus": vcpus}})
        if self.job_queues.find(DEFAULT_QUEUE_NAME) is None:
            self.job_queues.save(
                {
                    "jobQueueName": DEFAULT_QUEUE_NAME,
                    "jobQueueArn": arn(DEFAULT_REGION, f"job-queue/{DEFAULT_QUEUE_NAME}"),
                    "state": "ENABLED",
                    "status": "VALID",
                    "statusReason": "JobQueue Healthy",
                    "priority": 1,
                    "computeEnvironmentOrder": [
                        {"order": 1, "computeEnvironment": default["computeEnvironmentArn"]}
                    ],
                    "tags": {},
                    "jobQueueType": "ECS",
                }
            )

    def capacity(self, environment: Document) -> tuple[float, float]:
        """vCPUs and memory (MiB) a compute environment offers."""
        if environment.get("type") == "UNMANAGED":
            vcpus = float(environment.get("unmanagedvCpus") or os.cpu_count() or 1)
        else:
            vcpus = float((environment.get("computeResources") or {}).get("maxvCpus") or 0)
        memory = float(self.machine_memory_mib) if self.machine_memory_mib else float("inf")
        limit = self.capacity_limit(environment["computeEnvironmentName"])
        return (vcpus if limit is None else min(vcpus, limit)), memory

    def queue_environments(self, queue: Document) -> list[Document]:
        """The ENABLED compute environments of ``queue``, in its order."""
        environments = []
        for entry in sorted(queue.get("computeEnvironmentOrder", []), key=lambda item: item["order"]):
            environment = self.compute_environments.find(entry["computeEnvironment"])
            if environment is not None and environment.get("state") == "ENABLED":
                environments.append(environment)
        return environments

    def queues_using(self, environment: Document) -> list[Document]:
        return [
            queue
            for queue in self.job_queues.all()
            for entry in queue.get("computeEnvironmentOrder", [])
            if self.compute_environments.find(entry["computeEnvironment"]) is environment
        ]

    def tagged(self, resource_arn: str) -> tuple[dict[str, str], Callable[[], None]] | None:
        """The tags of a definition, queue or compute environment by ARN, and how to persist them."""
        definition = self.job_definitions.by_arn(resource_arn)
        if definition is not None:
            return definition.setdefault("tags", {}), lambda: self.job_definitions.save(definition)
        for resources in (self.job_queues, self.compute_environments, self.scheduling_policies):
            document = resources.find(resource_arn)
            if document is not None and resource_arn.startswith("arn:"):
                return document.setdefault("tags", {}), functools.partial(resources.save, document)
        return None
