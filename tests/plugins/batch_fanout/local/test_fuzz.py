"""Thousands of malformed requests get 400s (never a 500, never a crash); the endpoint still serves."""

from __future__ import annotations

import http.client
import json
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.local.protocol import batch_routes, service_model
from batch_fanout.local.testing import EndpointHandle, running_endpoint

REQUESTS = 3000
VALID_SUBMIT = {
    "jobName": "fuzz",
    "jobQueue": "batch-fanout-queue",
    "jobDefinition": "fuzz",
    "arrayProperties": {"size": 3},
    "dependsOn": [{"jobId": "x", "type": "N_TO_N"}],
    "retryStrategy": {"attempts": 2, "evaluateOnExit": [{"onExitCode": "1", "action": "RETRY"}]},
    "containerOverrides": {"command": ["a"], "environment": [{"name": "A", "value": "b"}]},
    "timeout": {"attemptDurationSeconds": 60},
}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory, containers_dir: Path) -> Iterator[EndpointHandle]:
    with running_endpoint(tmp_path_factory.mktemp("fuzz"), containers_dir=containers_dir, vcpus=2) as handle:
        yield handle


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 1, 2, 10_001, 2**63, -(2**70), rng.randint(-1000, 1000)])
    if choice == 3:
        return rng.choice([0.5, -1e308, 1e308, float(rng.random())])
    if choice in (4, 5):
        return rng.choice(["", "x" * rng.randint(1, 300), "\u0000\ud7ff\u00e9", "Ref::step", "*", "../.."])
    if choice in (6, 7):
        return {
            rng.choice(["jobs", "jobName", "size", "k", ""]): _random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 3))
        }
    return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def _mutated(rng: random.Random, document: Any) -> Any:
    if isinstance(document, dict) and document:
        copy = dict(document)
        key = rng.choice(list(copy))
        copy[key] = _mutated(rng, copy[key]) if rng.random() < 0.5 else _random_json(rng)
        return copy
    if isinstance(document, list) and document:
        return [_mutated(rng, item) for item in document]
    return _random_json(rng)


def _body(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 400))
    if kind == 1:
        return json.dumps(_random_json(rng)).encode()
    if kind == 2:
        return json.dumps(_mutated(rng, VALID_SUBMIT)).encode()
    if kind == 3:
        text = json.dumps(VALID_SUBMIT)
        return text[: rng.randint(0, len(text))].encode()
    return b"{" * rng.randint(1, 5000)


def test_bad_requests_get_client_errors_and_the_endpoint_keeps_serving(endpoint: EndpointHandle) -> None:
    rng = random.Random(20240521)
    paths = [
        route.pattern.pattern.strip("^$").replace("(?P<resourceArn>[^/]+)", "arn%3Ax")
        for route in batch_routes()
    ]
    paths = [path.replace("\\", "") for path in paths] + ["/", "/v1/", "/v1/submitjob/extra", "/%ff%fe"]
    targets = [f"Logs_20140328.{name}" for name in service_model("logs").operation_names[:20]] + [
        "",
        "Nope.Nope",
    ]
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    statuses: dict[int, int] = {}
    # Bounded by the request count, each request's 10 s socket timeout and the suite's test timeout;
    # how fast the endpoint answers is measured in benchmarks/, not here.
    for _ in range(REQUESTS):
        body = _body(rng)
        headers = {"Content-Type": "application/json"}
        if rng.random() < 0.3:
            headers["X-Amz-Target"] = rng.choice(targets)
            path = "/"
        else:
            path = rng.choice(paths)
        method = rng.choice(["POST", "POST", "POST", "GET", "DELETE", "PUT"])
        # Signed, so that the content is what gets fuzzed (unsigned requests are test_security's).
        headers = endpoint.signed_headers(method, path, body, headers)
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
        assert response.status < 500, (method, path, body[:200], payload[:300])
        if response.status >= 400:
            error = json.loads(payload)
            assert error["__type"] and error["message"]
            assert response.getheader("x-amzn-ErrorType") == error["__type"]
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    connection.close()
    assert statuses.get(400, 0) > REQUESTS // 2

    # Not HTTP at all, a lying Content-Length, and an oversized body.
    host = f"Host: 127.0.0.1:{endpoint.port}\r\n".encode()
    for raw in (
        rng.randbytes(2000),
        b"POST /v1/describejobs HTTP/1.1\r\n" + host + b"Content-Length: abc\r\n\r\n{}",
    ):
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as raw_socket:
            raw_socket.sendall(raw)
            answer = raw_socket.recv(100)  # an error page, or the connection closed; no hang
            assert b"400" in answer or b"Error" in answer or answer == b""
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as raw_socket:
        raw_socket.sendall(b"POST /v1/describejobs HTTP/1.1\r\n" + host + b"Content-Length: 2097152\r\n\r\n")
        answer = raw_socket.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"larger than" in answer

    batch = endpoint.client("batch")
    queues = batch.describe_job_queues()["jobQueues"]
    assert "batch-fanout-queue" in [queue["jobQueueName"] for queue in queues]
    definition = batch.register_job_definition(
        jobDefinitionName="after-fuzz",
        type="container",
        containerProperties={"image": "r/n/testjob:1", "command": ["python", "testjob.py", "print:alive"]},
    )["jobDefinitionArn"]
    job_id = batch.submit_job(jobName="alive", jobQueue="batch-fanout-queue", jobDefinition=definition)[
        "jobId"
    ]
    deadline = time.monotonic() + 30
    while batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, "the job after the fuzzing did not finish"
        time.sleep(0.05)
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "SUCCEEDED"
