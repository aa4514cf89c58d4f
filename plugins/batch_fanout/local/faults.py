"""Faults on demand: make the endpoint misbehave the way AWS Batch does, to test what handles it.

The faults are one JSON document, read and replaced with ``GET`` / ``PUT /_local/faults`` (signed like
every call; ``batch-fanout local faults`` does it from the shell) and kept in the store, so they hold
across restarts until replaced::

    {
      "throttle": {"DescribeJobs": {"count": 3}, "SubmitJob": {"rate": 0.2}},
      "failures": [
        {"jobName": "stress", "indices": [2, 4], "attempts": [1], "exitCode": 3},
        {"jobName": "shortest*", "attempts": [1], "reclaim": true}
      ],
      "capacity": {"batch-fanout-ce": 1}
    }

- ``throttle``: the operation answers ``TooManyRequestsException`` (HTTP 429; CloudWatch Logs
  operations ``ThrottlingException``, HTTP 400, as that service does), for the next ``count`` calls
  (counted down and stored) or for a fraction ``rate`` of them, before its input is validated (the
  server asks first, as AWS refuses a throttled call before reading it);
- ``failures``: an attempt of a job whose name matches ``jobName`` (``*`` at the end for a prefix), of
  an index in ``indices`` (all when absent: an array child's ``AWS_BATCH_JOB_ARRAY_INDEX``, a multi-node
  job's node's ``AWS_BATCH_JOB_NODE_INDEX``; a job that is neither has no index, so ``indices`` never
  matches it) and an attempt number in ``attempts`` (all when absent) does not run: it fails at once with ``exitCode`` (``Essential container in task exited``), or
  with ``reclaim`` as a Spot reclaim does (no exit code, ``statusReason`` ``Host EC2 (instance
  i-...) terminated.``), so that ``evaluateOnExit`` rules on ``onStatusReason`` fire;
- ``capacity``: a compute environment offers at most that many vCPUs (capacity lost), whatever its
  ``maxvCpus``.

Attempts that already run are reclaimed on demand, at the moment the caller chooses:
``POST /_local/reclaim`` with ``{"jobs": [...]}`` and/or ``{"computeEnvironments": [...]}``
(``batch-fanout local faults --reclaim`` / ``--reclaim-environment``); the engine
stops them as a Spot interruption does (SIGTERM, SIGKILL after the grace) and records the same status
reason as a reclaim at the start.
"""

from __future__ import annotations

import difflib
import json
import logging
import random
import threading
from typing import Any

from batch_fanout.local.auth import LocalCredentials, call_local
from batch_fanout.local.errors import ApiError
from batch_fanout.local.jobs import Job
from batch_fanout.local.protocol import service_model
from batch_fanout.local.store import Store

FAULTS_PATH = "/_local/faults"
RECLAIM_PATH = "/_local/reclaim"

log = logging.getLogger(__name__)
THROTTLE_MESSAGE = "Too Many Requests"
LOGS_THROTTLE_MESSAGE = "Rate exceeded"
# The one line of an attempt that a fault failed before it ran, so whoever reads its log knows why.
INJECTED_LOG_LINE = (
    "[local endpoint: the faults document failed this attempt ({what}); its command did not run]"
)
KEYS = ("throttle", "failures", "capacity")
FAILURE_KEYS = ("jobName", "indices", "attempts", "exitCode", "reclaim")


def reclaim_reason(attempt_id: str) -> str:
    """AWS's status reason for a job whose Spot instance was reclaimed; the instance id is made of the
    attempt's id, so each attempt names an instance of its own, as on AWS."""
    return f"Host EC2 (instance i-{attempt_id[:17]}) terminated."


def _invalid(message: str) -> ApiError:
    return ApiError("ClientException", f"Invalid faults document: {message}")


def check(document: Any) -> dict[str, Any]:
    """The faults document, checked; ``ClientException`` naming what is wrong."""
    if not isinstance(document, dict):
        raise _invalid("it must be a JSON object")
    unknown = set(document) - set(KEYS)
    if unknown:
        raise _invalid(f"unknown keys {sorted(unknown)}; use {', '.join(KEYS)}")
    throttle = document.get("throttle", {})
    if not isinstance(throttle, dict):
        raise _invalid("throttle must map operation names to {count} or {rate}")
    for operation, rule in throttle.items():
        _check_operation(operation)
        if not isinstance(rule, dict) or not set(rule) <= {"count", "rate"} or not rule:
            raise _invalid(f"throttle.{operation} must be {{'count': N}} or {{'rate': R}}")
        if "count" in rule and (not isinstance(rule["count"], int) or rule["count"] < 0):
            raise _invalid(f"throttle.{operation}.count must be a whole number >= 0")
        if "rate" in rule and not (isinstance(rule["rate"], int | float) and 0 <= rule["rate"] <= 1):
            raise _invalid(f"throttle.{operation}.rate must be between 0 and 1")
    failures = document.get("failures", [])
    if not isinstance(failures, list):
        raise _invalid("failures must be a list")
    for position, rule in enumerate(failures):
        if not isinstance(rule, dict) or not isinstance(rule.get("jobName"), str):
            raise _invalid(f"failures[{position}] needs a jobName")
        unknown_keys = set(rule) - set(FAILURE_KEYS)
        if unknown_keys:
            raise _invalid(
                f"failures[{position}] has unknown keys {sorted(unknown_keys)}; use {', '.join(FAILURE_KEYS)}"
            )
        if "reclaim" in rule and not isinstance(rule["reclaim"], bool):
            raise _invalid(f"failures[{position}].reclaim must be true or false")
        if not rule.get("reclaim") and not isinstance(rule.get("exitCode"), int):
            raise _invalid(f"failures[{position}] needs an exitCode, or reclaim: true")
        for key in ("indices", "attempts"):
            if key in rule and not (
                isinstance(rule[key], list) and all(isinstance(item, int) for item in rule[key])
            ):
                raise _invalid(f"failures[{position}].{key} must be a list of whole numbers")
    capacity = document.get("capacity", {})
    if not isinstance(capacity, dict) or not all(
        isinstance(value, int | float) and value >= 0 for value in capacity.values()
    ):
        raise _invalid("capacity must map compute environment names to vCPUs >= 0")
    return {"throttle": throttle, "failures": failures, "capacity": capacity}


def _check_operation(operation: str) -> None:
    """A throttled operation must be one of botocore's: a misspelt name would silently throttle nothing."""
    known = set(service_model("batch").operation_names) | set(service_model("logs").operation_names)
    if operation not in known:
        close = difflib.get_close_matches(operation, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise _invalid(f"throttle.{operation} is not an AWS Batch or CloudWatch Logs operation{hint}")


def index_of(job: Job) -> int | None:
    """What a rule's ``indices`` match: an array child's index, or a multi-node job's node index (the
    one ``AWS_BATCH_JOB_*_INDEX`` variable the attempt gets); ``None`` for any other job."""
    return job.index if job.index is not None else job.node_index


def _name_matches(pattern: str, name: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


class Faults:
    """The faults in force, kept in ``store``; safe to call from any thread.

    :param store: where the document persists
    :param store_lock: the lock that serialises the store's use (the engine's)
    """

    def __init__(self, store: Store, store_lock: threading.RLock) -> None:
        self.store = store
        self.store_lock = store_lock
        self._lock = threading.Lock()
        stored = store.load_resources("faults")
        try:
            self.document = check(stored[0]) if stored else check({})
        except ApiError as error:
            # Stored by an endpoint with laxer checks: the endpoint starts without faults rather than not at all.
            log.warning("ignoring the stored faults document: %s", error.message)
            self.document = check({})

    def replace(self, document: Any) -> dict[str, Any]:
        checked = check(document)
        with self._lock:
            self.document = checked
            self._save()
        return checked

    def current(self) -> dict[str, Any]:
        """A copy of the document in force (throttle counts change as calls come)."""
        with self._lock:
            copied: dict[str, Any] = json.loads(json.dumps(self.document))
        return copied

    def _save(self) -> None:
        with self.store_lock:
            self.store.save_resource("faults", "faults", self.document)

    def throttle(self, operation: str, service: str = "batch") -> None:
        """Raise AWS's throttling error when ``operation`` is to be throttled now: Batch's
        ``TooManyRequestsException`` (HTTP 429), or CloudWatch Logs' ``ThrottlingException`` (HTTP 400)."""
        with self._lock:
            rule = self.document["throttle"].get(operation)
            if not rule:
                return
            if rule.get("count"):
                rule["count"] -= 1
                self._save()
            elif not ("rate" in rule and random.random() < rule["rate"]):
                return
        if service == "logs":
            raise ApiError("ThrottlingException", LOGS_THROTTLE_MESSAGE, 400)
        raise ApiError("TooManyRequestsException", THROTTLE_MESSAGE, 429)

    def failure(self, job: Job, attempt_number: int, attempt_id: str) -> tuple[int | None, str] | None:
        """How an attempt is to fail instead of running (exit code, status reason), or ``None``."""
        with self._lock:
            rules = list(self.document["failures"])
        for rule in rules:
            if not _name_matches(rule["jobName"], job.name):
                continue
            if "indices" in rule and index_of(job) not in rule["indices"]:
                continue
            if "attempts" in rule and attempt_number not in rule["attempts"]:
                continue
            if rule.get("reclaim"):
                return None, reclaim_reason(attempt_id)
            return int(rule["exitCode"]), "Essential container in task exited"
        return None

    def capacity_limit(self, environment_name: str) -> float | None:
        with self._lock:
            value = self.document["capacity"].get(environment_name)
        return None if value is None else float(value)


def reclaim_request(document: Any) -> tuple[list[str], list[str]]:
    """The job ids and compute environments of a ``POST /_local/reclaim`` body (``{"jobs": [...]}``,
    ``{"computeEnvironments": [...]}`` or both); ``ClientException`` when it is not of that shape."""
    usage = 'send {"jobs": ["<job id>", ...]} and/or {"computeEnvironments": ["<name or ARN>", ...]}'
    if not isinstance(document, dict) or not document or not set(document) <= {"jobs", "computeEnvironments"}:
        raise ApiError("ClientException", f"Invalid reclaim request: {usage}")
    lists = []
    for key in ("jobs", "computeEnvironments"):
        values = document.get(key, [])
        if not isinstance(values, list) or not all(isinstance(value, str) and value for value in values):
            raise ApiError("ClientException", f"Invalid reclaim request: {key} must be a list of strings")
        lists.append(list(values))
    if not any(lists):
        raise ApiError("ClientException", f"Invalid reclaim request: {usage}")
    return lists[0], lists[1]


def exchange_faults(
    url: str, credentials: LocalCredentials, document: dict[str, Any] | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """The endpoint's faults (``GET /_local/faults``), after replacing them with ``document`` if given.

    :raises RuntimeError: with the endpoint's message when it refuses the document
    """
    method = "GET" if document is None else "PUT"
    return call_local(url, credentials, method, FAULTS_PATH, document, timeout=timeout)


def reclaim_jobs(
    url: str,
    credentials: LocalCredentials,
    job_ids: list[str],
    compute_environments: list[str] | None = None,
    timeout: float = 10.0,
) -> list[str]:
    """Reclaim the running attempts of ``job_ids`` and of ``compute_environments`` now, as Spot does
    (``POST /_local/reclaim``); the ids of the jobs whose attempt was reclaimed (an array's running
    children for an array's id).

    :raises RuntimeError: with the endpoint's message when it refuses (an unknown job or compute
        environment, nothing running)
    """
    document = {"jobs": job_ids, "computeEnvironments": compute_environments or []}
    answer = call_local(url, credentials, "POST", RECLAIM_PATH, document, timeout=timeout)
    return list(answer["reclaimed"])
