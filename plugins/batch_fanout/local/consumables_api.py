"""The consumable resource operations: Create, Describe, Update, Delete, List, and ListJobsByConsumableResource.

Each handler translates a request into a call on the engine's ``ConsumableResources`` (which holds AWS's
checks and the quantities), under the engine's lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from batch_fanout.local.consumables import ConsumableResources
from batch_fanout.local.engine import Engine
from batch_fanout.local.errors import client_error
from batch_fanout.local.jobs import STATES, Job
from batch_fanout.local.validation import paged

Handler = Callable[[dict[str, Any], str], dict[str, Any]]
MAX_PAGE = 100
RESOURCE_FILTERS = ("CONSUMABLE_RESOURCE_NAME",)
JOB_FILTERS = ("JOB_STATUS", "JOB_NAME")


def _matches_name(value: str, name: str) -> bool:
    """AWS's name filters: case-insensitive, a trailing ``*`` for a prefix."""
    wanted, actual = value.lower(), name.lower()
    return actual.startswith(wanted[:-1]) if wanted.endswith("*") else actual == wanted


def _filter_values(
    filters: list[dict[str, Any]], allowed: tuple[str, ...], operation: str
) -> dict[str, list[str]]:
    chosen: dict[str, list[str]] = {}
    for item in filters:
        name = item.get("name", "")
        if name not in allowed:
            raise client_error(f"Invalid {operation} filter name {name!r}: use {', '.join(allowed)}")
        values = item.get("values") or []
        if not values:
            raise client_error(f"{operation} filter {name} needs a value")
        chosen[name] = values
    return chosen


class ConsumablesApi:
    """The consumable resource operations of the endpoint.

    :param engine: the engine whose consumable resources and jobs the operations read and change
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.resources: ConsumableResources = engine.consumables
        self.handlers: dict[str, Handler] = {
            "CreateConsumableResource": self.create,
            "DescribeConsumableResource": self.describe,
            "UpdateConsumableResource": self.update,
            "DeleteConsumableResource": self.delete,
            "ListConsumableResources": self.list_resources,
            "ListJobsByConsumableResource": self.list_jobs,
        }

    def create(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            document = self.resources.create(params, region)
        return {
            "consumableResourceName": document["consumableResourceName"],
            "consumableResourceArn": document["consumableResourceArn"],
        }

    def describe(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            return self.resources.describe(self.resources.get(params["consumableResource"]))

    def update(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            document = self.resources.update(params)
            self.engine.wake()  # more may be available: waiting jobs may start
            return {
                "consumableResourceName": document["consumableResourceName"],
                "consumableResourceArn": document["consumableResourceArn"],
                "totalQuantity": document["totalQuantity"],
            }

    def delete(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.engine.lock:
            document = self.resources.get(params["consumableResource"])
            name = document["consumableResourceName"]
            unfinished = sum(1 for job in self._requiring(name) if not job.is_terminal)
            self.resources.delete(params["consumableResource"], unfinished)
        return {}

    def list_resources(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        chosen = _filter_values(params.get("filters") or [], RESOURCE_FILTERS, "ListConsumableResources")
        with self.engine.lock:
            found = [
                document
                for name, document in self.resources.by_name.items()
                if all(_matches_name(value, name) for value in chosen.get("CONSUMABLE_RESOURCE_NAME", []))
            ]
            response = paged("consumableResources", found, params, MAX_PAGE)
            response["consumableResources"] = [
                self.resources.summary(document) for document in response["consumableResources"]
            ]
            return response

    def _requiring(self, name: str) -> Iterator[Job]:
        """The jobs that need resource ``name``, newest first; an array's children in index order (each
        child takes the quantity; the parent never runs)."""
        for job in reversed(self.engine.scheduler.top_level_jobs):
            if name not in ConsumableResources.requirements(job.spec):
                continue
            if job.is_parent:
                yield from job.children
            else:
                yield job

    def list_jobs(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        chosen = _filter_values(params.get("filters") or [], JOB_FILTERS, "ListJobsByConsumableResource")
        statuses = chosen.get("JOB_STATUS", [])
        for status in statuses:
            if status not in STATES:
                raise client_error(
                    f"Invalid JOB_STATUS filter value {status!r}: use one of {', '.join(STATES)}"
                )
        with self.engine.lock:
            document = self.resources.get(params["consumableResource"])
            name = document["consumableResourceName"]
            selected = [
                job
                for job in self._requiring(name)
                if (not statuses or job.status in statuses)
                and all(_matches_name(value, job.name) for value in chosen.get("JOB_NAME", []))
            ]
            response = paged("jobs", selected, params, MAX_PAGE)
            response["jobs"] = [self._summary(job, name) for job in response["jobs"]]
            return response

    @staticmethod
    def _summary(job: Job, name: str) -> dict[str, Any]:
        """``ListJobsByConsumableResourceSummary``: the job, and the quantity of ``name`` it needs."""
        spec = job.spec
        summary: dict[str, Any] = {
            "jobArn": job.job_arn,
            "jobQueueArn": job.queue_arn,
            "jobName": job.name,
            "jobDefinitionArn": spec["jobDefinition"],
            "jobStatus": job.status,
            "quantity": ConsumableResources.requirements(spec)[name],
            "createdAt": job.created_at,
            "consumableResourceProperties": {
                "consumableResourceList": [
                    dict(item) for item in spec["consumableResourceProperties"]["consumableResourceList"]
                ]
            },
        }
        for key, value in (
            ("shareIdentifier", spec.get("shareIdentifier")),
            ("statusReason", job.status_reason),
            ("startedAt", job.started_at),
        ):
            if value is not None:
                summary[key] = value
        return summary


__all__ = ["ConsumablesApi"]
