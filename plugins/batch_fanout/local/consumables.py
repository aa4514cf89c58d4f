"""Consumable resources (AWS Batch's resource-aware scheduling): licences, tokens, quotas that jobs need.

A consumable resource has a ``totalQuantity`` and a type. A job names the resources it needs in
``consumableResourceProperties`` (its job definition's, merged by resource with SubmitJob's
``consumableResourcePropertiesOverride``) and waits RUNNABLE until every one is available. When it
goes to STARTING its quantities are taken (AWS: "locked"): a ``REPLENISHABLE`` resource's
``inUseQuantity`` grows and shrinks again when the attempt ends; a ``NON_REPLENISHABLE`` one's quantity is
subtracted from its total and from what is available at once and never comes back (the user guide,
"Check how many resources are in-use and available"). ``UpdateConsumableResource`` SETs, ADDs to or
REMOVEs from the total.

Resources persist in the store; what running attempts hold is recorded with each attempt, so that a
restarted endpoint holds it again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from batch_fanout.local import ACCOUNT_ID
from batch_fanout.local.errors import client_error
from batch_fanout.local.jobs import now_ms
from batch_fanout.local.store import Store
from batch_fanout.local.validation import check_name

STORE_KIND = "consumable-resource"
RESOURCE_TYPES = ("REPLENISHABLE", "NON_REPLENISHABLE")
UPDATE_OPERATIONS = ("SET", "ADD", "REMOVE")
MAX_PER_JOB = 5  # the user guide: "up to 5 resources for each job you define"
MAX_RESOURCES = 50_000  # per account
CLIENT_TOKEN_SECONDS = 8 * 3600

Document = dict[str, Any]


def name_of(reference: str) -> str:
    """A resource's name from its name or ARN."""
    return reference.split(":consumable-resource/", 1)[-1] if reference.startswith("arn:") else reference


def merged_requirements(definition: Document | None, override: Document | None) -> list[Document]:
    """The job's resources: the definition's list, with the override's quantities by resource name."""
    merged: dict[str, Document] = {}
    for source in (definition, override):
        for item in (source or {}).get("consumableResourceList") or []:
            merged[name_of(str(item.get("consumableResource", "")))] = dict(item)
    return list(merged.values())


class ConsumableResources:
    """The endpoint's consumable resources, and the quantities each running job holds.

    :param store: where the resources persist
    """

    name = "consumables"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.by_name: dict[str, Document] = {
            document["consumableResourceName"]: document for document in store.load_resources(STORE_KIND)
        }
        self.in_use: dict[str, int] = dict.fromkeys(self.by_name, 0)
        self.held: dict[str, dict[str, int]] = {}  # job id -> resource name -> quantity

    # ---- the resources ---------------------------------------------------------------------

    def find(self, reference: str) -> Document | None:
        document = self.by_name.get(name_of(reference))
        if (
            document is not None
            and reference.startswith("arn:")
            and reference != document["consumableResourceArn"]
        ):
            return None
        return document

    def get(self, reference: str) -> Document:
        document = self.find(reference)
        if document is None:
            raise client_error(f"Consumable resource {reference} not found")
        return document

    def tagged(self, resource_arn: str) -> tuple[dict[str, str], Callable[[], None]] | None:
        """The tags of a resource by ARN, and how to persist them (for TagResource and UntagResource)."""
        document = self.find(resource_arn) if ":consumable-resource/" in resource_arn else None
        if document is None:
            return None
        return document.setdefault("tags", {}), functools.partial(self._save, document)

    def _save(self, document: Document) -> None:
        self.store.save_resource(STORE_KIND, document["consumableResourceName"], document)

    def create(self, params: Document, region: str) -> Document:
        name = params["consumableResourceName"]
        check_name(name, "consumable resource name")
        resource_type = params.get("resourceType") or "REPLENISHABLE"
        if resource_type not in RESOURCE_TYPES:
            raise client_error(
                f"Invalid resourceType {resource_type!r} for consumable resource {name}: "
                f"use {' or '.join(RESOURCE_TYPES)}"
            )
        total = int(params.get("totalQuantity") or 0)
        if total < 0:
            raise client_error(
                f"totalQuantity of consumable resource {name} must not be negative, got {total}"
            )
        if name in self.by_name:
            raise client_error(f"Consumable resource {name} already exists")
        if len(self.by_name) >= MAX_RESOURCES:
            raise client_error(f"An account can have at most {MAX_RESOURCES} consumable resources")
        document: Document = {
            "consumableResourceName": name,
            "consumableResourceArn": f"arn:aws:batch:{region}:{ACCOUNT_ID}:consumable-resource/{name}",
            "totalQuantity": total,
            "resourceType": resource_type,
            "createdAt": now_ms(),
            "tags": params.get("tags") or {},
            "clientTokens": {},
        }
        self.by_name[name] = document
        self.in_use[name] = 0
        self._save(document)
        return document

    def available(self, document: Document) -> int:
        """What jobs can still take: a NON_REPLENISHABLE total has had what was taken subtracted already."""
        name = document["consumableResourceName"]
        if document["resourceType"] == "NON_REPLENISHABLE":
            return max(0, int(document["totalQuantity"]))
        return max(0, int(document["totalQuantity"]) - self.in_use.get(name, 0))

    def describe(self, document: Document) -> Document:
        """DescribeConsumableResource's answer."""
        return {
            "consumableResourceName": document["consumableResourceName"],
            "consumableResourceArn": document["consumableResourceArn"],
            "totalQuantity": document["totalQuantity"],
            "inUseQuantity": self.in_use.get(document["consumableResourceName"], 0),
            "availableQuantity": self.available(document),
            "resourceType": document["resourceType"],
            "createdAt": document["createdAt"],
            "tags": dict(document.get("tags") or {}),
        }

    def summary(self, document: Document) -> Document:
        """ListConsumableResources' entry (``ConsumableResourceSummary``)."""
        view = self.describe(document)
        return {
            key: view[key]
            for key in (
                "consumableResourceArn",
                "consumableResourceName",
                "totalQuantity",
                "inUseQuantity",
                "resourceType",
            )
        }

    def update(self, params: Document) -> Document:
        """SET, ADD or REMOVE ``quantity`` to the total; a repeated ``clientToken`` with the same request
        changes it once (tokens last 8 hours)."""
        document = self.get(params["consumableResource"])
        name = document["consumableResourceName"]
        operation = params.get("operation") or "SET"
        if operation not in UPDATE_OPERATIONS:
            raise client_error(
                f"Invalid operation {operation!r} for consumable resource {name}: use {', '.join(UPDATE_OPERATIONS)}"
            )
        if params.get("quantity") is None:
            raise client_error(f"UpdateConsumableResource of {name} needs a quantity")
        quantity = int(params["quantity"])
        if quantity < 0:
            raise client_error(
                f"quantity for consumable resource {name} must not be negative, got {quantity}"
            )
        tokens: dict[str, list[Any]] = document.setdefault("clientTokens", {})
        now = time.time()
        for old, (_, expires) in list(tokens.items()):
            if expires < now:
                del tokens[old]
        token = params.get("clientToken")
        fingerprint = hashlib.sha256(
            json.dumps([name, operation, quantity], separators=(",", ":")).encode()
        ).hexdigest()
        if token and token in tokens:
            if tokens[token][0] != fingerprint:
                raise client_error(
                    f"clientToken {token!r} was used with a different UpdateConsumableResource request"
                )
            return document  # the same request again: it changed the resource once
        total = int(document["totalQuantity"])
        if operation == "SET":
            total = quantity
        elif operation == "ADD":
            total += quantity
        else:
            if quantity > total:
                raise client_error(
                    f"Cannot REMOVE {quantity} from consumable resource {name}: its total quantity is {total}"
                )
            total -= quantity
        document["totalQuantity"] = total
        if token:
            tokens[token] = [fingerprint, now + CLIENT_TOKEN_SECONDS]
        self._save(document)
        return document

    def delete(self, reference: str, required_by: int) -> None:
        document = self.get(reference)
        name = document["consumableResourceName"]
        if required_by:
            raise client_error(
                f"Cannot delete consumable resource {name}: {required_by} unfinished jobs require it"
            )
        del self.by_name[name]
        self.in_use.pop(name, None)
        self.store.delete_resource(STORE_KIND, name)

    def check_requirements(self, requirements: list[Document], where: str) -> None:
        """AWS's checks of a job's consumable resources: at most 5, each known, quantities of 1 or more."""
        if len(requirements) > MAX_PER_JOB:
            raise client_error(
                f"{where} lists {len(requirements)} consumable resources; at most {MAX_PER_JOB} are allowed"
            )
        for position, item in enumerate(requirements):
            reference = item.get("consumableResource")
            if not reference:
                raise client_error(
                    f"{where}.consumableResourceList[{position}].consumableResource is required"
                )
            if self.find(str(reference)) is None:
                raise client_error(f"{where}: consumable resource {reference} not found")
            quantity = item.get("quantity")
            if quantity is None or int(quantity) < 1:
                raise client_error(
                    f"{where}.consumableResourceList[{position}].quantity for {reference} must be 1 or more, "
                    f"got {quantity}"
                )

    # ---- what jobs hold (the scheduler's gate) ---------------------------------------------

    @staticmethod
    def requirements(spec: Document) -> dict[str, int]:
        listed = (spec.get("consumableResourceProperties") or {}).get("consumableResourceList") or []
        return {name_of(str(item["consumableResource"])): int(item["quantity"]) for item in listed}

    def fits(self, job_id: str, spec: Document) -> bool:
        for name, quantity in self.requirements(spec).items():
            document = self.by_name.get(name)
            if document is None or self.available(document) < quantity:
                return False
        return True

    def take(self, job_id: str, spec: Document) -> dict[str, int] | None:
        """Lock the job's quantities (it goes to STARTING): REPLENISHABLE ones until the attempt ends,
        NON_REPLENISHABLE ones for good."""
        wanted = self.requirements(spec)
        if not wanted:
            return None
        for name, quantity in wanted.items():
            document = self.by_name[name]
            self.in_use[name] = self.in_use.get(name, 0) + quantity
            if document["resourceType"] == "NON_REPLENISHABLE":
                document["totalQuantity"] = int(document["totalQuantity"]) - quantity
                self._save(document)
        self.held[job_id] = wanted
        return wanted

    def restore(self, job_id: str, held: Any) -> None:
        """After a restart: what a running attempt holds (NON_REPLENISHABLE totals were stored reduced)."""
        if not held:
            return
        self.held[job_id] = {str(name): int(quantity) for name, quantity in dict(held).items()}
        for name, quantity in self.held[job_id].items():
            if name in self.by_name:
                self.in_use[name] = self.in_use.get(name, 0) + quantity

    def release(self, job_id: str) -> None:
        for name, quantity in self.held.pop(job_id, {}).items():
            if name in self.in_use:
                self.in_use[name] = max(0, self.in_use[name] - quantity)
