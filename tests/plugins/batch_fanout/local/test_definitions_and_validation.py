"""Job definitions, parameters, overrides, tags, and AWS's own rejections, on the local endpoint."""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_fanout.local.testing import EndpointHandle

Submit = Callable[..., str]
WaitStatus = Callable[..., dict[str, Any]]
ReadLog = Callable[[str], list[str]]
QUEUE = "batch-fanout-queue"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-fanout/testjob:latest"


def _register(batch: Any, name: str, **extra: Any) -> dict[str, Any]:
    properties = {"image": IMAGE, "command": ["python", "testjob.py", "Ref::step"]}
    properties.update(extra.pop("containerProperties", {}))
    return dict(
        batch.register_job_definition(
            jobDefinitionName=name, type="container", containerProperties=properties, **extra
        )
    )


def test_revisions_resolve_by_name_revision_and_arn(
    batch: Any, submit: Submit, wait_status: WaitStatus, read_log: ReadLog
) -> None:
    first = _register(batch, "revised", parameters={"step": "print:revision-1"})
    second = _register(batch, "revised", parameters={"step": "print:revision-2"})
    assert (first["revision"], second["revision"]) == (1, 2)
    assert second["jobDefinitionArn"].endswith(":job-definition/revised:2")

    def output_of(reference: str) -> list[str]:
        job = wait_status(submit(jobDefinition=reference))
        assert "logStreamName" in job["container"], job
        return read_log(job["container"]["logStreamName"])

    assert output_of("revised") == ["revision-2"]
    assert output_of("revised:1") == ["revision-1"]
    assert output_of(first["jobDefinitionArn"]) == ["revision-1"]

    batch.deregister_job_definition(jobDefinition="revised:2")
    assert output_of("revised") == ["revision-1"]
    described = batch.describe_job_definitions(jobDefinitionName="revised")["jobDefinitions"]
    assert {(item["revision"], item["status"]) for item in described} == {(1, "ACTIVE"), (2, "INACTIVE")}
    active = batch.describe_job_definitions(jobDefinitions=["revised"], status="ACTIVE")["jobDefinitions"]
    assert [item["revision"] for item in active] == [1]
    with pytest.raises(ClientError, match="INACTIVE"):
        submit(jobDefinition="revised:2")


def test_parameters_substitute_into_the_command(
    batch: Any, submit: Submit, wait_status: WaitStatus, read_log: ReadLog
) -> None:
    arn = _register(
        batch,
        "parameterised",
        parameters={"first": "print:default-first", "second": "print:default-second"},
        containerProperties={"command": ["python", "testjob.py", "Ref::first", "Ref::second", "Ref::unset"]},
    )["jobDefinitionArn"]
    job = wait_status(
        batch.submit_job(
            jobName="params", jobQueue=QUEUE, jobDefinition=arn, parameters={"second": "print:from-submit"}
        )["jobId"]
    )
    assert job["container"]["command"] == [
        "python",
        "testjob.py",
        "print:default-first",
        "print:from-submit",
        "Ref::unset",
    ]
    assert job["parameters"] == {"first": "print:default-first", "second": "print:from-submit"}
    # "Ref::unset" has no value, so it reaches the job literally (as on AWS) and the job rejects it.
    assert job["status"] == "FAILED"
    assert read_log(job["container"]["logStreamName"])[:2] == ["default-first", "from-submit"]


def test_container_overrides_replace_command_environment_and_resources(
    batch: Any, wait_status: WaitStatus, read_log: ReadLog
) -> None:
    arn = _register(
        batch,
        "overridden",
        containerProperties={
            "command": ["python", "testjob.py", "print:definition"],
            "environment": [{"name": "CUSTOM", "value": "definition"}, {"name": "KEPT", "value": "yes"}],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "256"}],
        },
    )["jobDefinitionArn"]
    job = wait_status(
        batch.submit_job(
            jobName="overrides",
            jobQueue=QUEUE,
            jobDefinition=arn,
            containerOverrides={
                "command": ["python", "testjob.py", "env"],
                "environment": [{"name": "CUSTOM", "value": "override"}],
                "resourceRequirements": [{"type": "MEMORY", "value": "1024"}],
            },
        )["jobId"]
    )
    assert job["status"] == "SUCCEEDED"
    environment = {item["name"]: item["value"] for item in job["container"]["environment"]}
    assert environment == {"CUSTOM": "override", "KEPT": "yes"}
    requirements = {item["type"]: item["value"] for item in job["container"]["resourceRequirements"]}
    assert requirements == {"VCPU": "1", "MEMORY": "1024"}
    [line] = read_log(job["container"]["logStreamName"])
    assert json.loads(line)["CUSTOM"] == "override"


def test_tags_are_kept_listed_and_changed(batch: Any, definition: str, wait_status: WaitStatus) -> None:
    tagged = _register(batch, "tagged", tags={"team": "data"}, propagateTags=True)
    job = batch.submit_job(
        jobName="tagged", jobQueue=QUEUE, jobDefinition=tagged["jobDefinitionArn"], tags={"run": "42"}
    )
    detail = wait_status(job["jobId"])
    assert detail["tags"] == {"run": "42"}
    assert detail["propagateTags"] is True
    assert batch.list_tags_for_resource(resourceArn=job["jobArn"])["tags"] == {"run": "42"}
    batch.tag_resource(resourceArn=job["jobArn"], tags={"extra": "1"})
    batch.untag_resource(resourceArn=job["jobArn"], tagKeys=["run"])
    assert batch.list_tags_for_resource(resourceArn=job["jobArn"])["tags"] == {"extra": "1"}
    assert batch.list_tags_for_resource(resourceArn=tagged["jobDefinitionArn"])["tags"] == {"team": "data"}
    no_propagation = batch.submit_job(
        jobName="untagged", jobQueue=QUEUE, jobDefinition=tagged["jobDefinitionArn"], propagateTags=False
    )
    assert wait_status(no_propagation["jobId"])["propagateTags"] is False
    with pytest.raises(ClientError, match="not found"):
        batch.list_tags_for_resource(resourceArn="arn:aws:batch:us-east-1:123456789012:job/nope")


def _rejected(call: Callable[[], Any], *fragments: str) -> None:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response
    assert error["Error"]["Code"] == "ClientException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    for fragment in fragments:
        assert fragment in error["Error"]["Message"]


def test_aws_rejections_of_submit_job(batch: Any, definition: str, submit: Submit) -> None:
    job_id = submit("print:x")
    _rejected(lambda: submit(arrayProperties={"size": 1}), "between 2 and 10000", "1")
    _rejected(lambda: submit(arrayProperties={"size": 10_001}), "between 2 and 10000", "10001")
    _rejected(lambda: submit(dependsOn=[{"jobId": job_id}] * 21), "at most 20", "21")
    _rejected(lambda: submit(jobDefinition="no-such-definition"), "no-such-definition", "not found")
    _rejected(lambda: submit(jobQueue="no-such-queue"), "no-such-queue", "not found")
    for bad_name in ("", "-starts-with-dash", "has space", "x" * 129, "dot.ted"):
        _rejected(functools.partial(submit, name=bad_name), "job name")
    _rejected(lambda: submit(retryStrategy={"attempts": 0}), "retryStrategy.attempts", "0")
    _rejected(lambda: submit(retryStrategy={"attempts": 11}), "retryStrategy.attempts", "11")
    _rejected(
        lambda: submit(
            retryStrategy={"attempts": 2, "evaluateOnExit": [{"onExitCode": "1", "action": "EXIT"}] * 6}
        ),
        "evaluateOnExit",
    )
    _rejected(lambda: submit(timeout={"attemptDurationSeconds": 59}), "attemptDurationSeconds", "60")
    _rejected(
        lambda: submit(containerOverrides={"environment": [{"name": "AWS_BATCH_JOB_ID", "value": "x"}]}),
        "AWS_BATCH_JOB_ID",
    )
    _rejected(lambda: submit(dependsOn=[{"jobId": "no-such-job"}]), "no-such-job")
    big = {f"p{index}": "v" * 100 for index in range(320)}
    _rejected(lambda: submit(parameters=big), "30 KiB")
    _rejected(lambda: batch.describe_jobs(jobs=[job_id] * 101), "at most 100")
    _rejected(
        lambda: submit(
            arrayProperties={"size": 3},
            dependsOn=[{"jobId": submit(arrayProperties={"size": 2}), "type": "N_TO_N"}],
        ),
        "N_TO_N",
        "size 2",
        "size 3",
    )
    _rejected(lambda: submit(dependsOn=[{"type": "SEQUENTIAL"}]), "SEQUENTIAL")
    _rejected(lambda: submit(dependsOn=[{"jobId": job_id, "type": "ALL"}]), "dependsOn[0].type", "ALL")


def test_aws_rejections_of_job_definitions(batch: Any) -> None:
    _rejected(lambda: _register(batch, "bad name"), "job definition name")
    _rejected(lambda: _register(batch, "huge", containerProperties={"command": ["x" * 1000] * 25}), "24 KiB")
    _rejected(lambda: _register(batch, "retry", retryStrategy={"attempts": 11}), "retryStrategy.attempts")
    _rejected(
        lambda: _register(batch, "timeout", timeout={"attemptDurationSeconds": 30}), "attemptDurationSeconds"
    )
    _rejected(
        lambda: _register(
            batch,
            "reserved",
            containerProperties={"environment": [{"name": "AWS_BATCH_CE_NAME", "value": "x"}]},
        ),
        "AWS_BATCH_CE_NAME",
    )
    _rejected(
        lambda: batch.register_job_definition(
            jobDefinitionName="noimage", type="container", containerProperties={}
        ),
        "image",
    )
    _rejected(
        lambda: _register(
            batch, "both", ecsProperties={"taskProperties": [{"containers": [{"image": "x", "name": "x"}]}]}
        ),
        "only one of containerProperties, ecsProperties and eksProperties may be given, got "
        "containerProperties and ecsProperties",
    )
    _rejected(lambda: batch.deregister_job_definition(jobDefinition="never-registered:1"), "never-registered")


def test_wrong_types_and_unknown_members_are_client_errors(endpoint: EndpointHandle) -> None:
    def post(
        path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        # Signed, so that what is checked is the request's content, not its authentication.
        signed = endpoint.signed_headers("POST", path, body, headers)
        request = urllib.request.Request(endpoint.url + path, data=body, method="POST", headers=signed)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read())

    status, headers, body = post("/v1/submitjob", b'{"jobName": 5, "jobQueue": "q", "jobDefinition": "d"}')
    assert status == 400
    assert headers["x-amzn-ErrorType"] == "ClientException"
    assert body["__type"] == "ClientException"
    assert "jobName" in body["message"]
    status, _, body = post("/v1/describejobs", b'{"jobs": ["a"], "surprise": 1}')
    assert (status, body["__type"]) == (400, "ClientException")
    assert "surprise" in body["message"]
    status, _, body = post("/v1/describejobs", b"{not json")
    assert (status, body["__type"]) == (400, "ClientException")
    status, headers, body = post("/v1/nosuchoperation", b"{}")
    assert (status, body["__type"]) == (404, "UnknownOperationException")
    status, _, body = post("/", b"{}", {"X-Amz-Target": "Logs_20140328.NoSuchCall"})
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, _, body = post("/", b"{}", {"X-Amz-Target": "Logs_20140328.GetLogEvents"})
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    assert "logStreamName" in body["message"]
