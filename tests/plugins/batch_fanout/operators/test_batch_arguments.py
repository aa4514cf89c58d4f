"""BatchFanoutOperator's argument checks, before anything is submitted, and its SubmitJob request shape."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from batch_fanout.operators.batch import BatchFanoutOperator, normalize_depends_on, parse_array_size

BASE: dict[str, Any] = {"task_id": "t", "job_name": "n", "job_definition": "d", "job_queue": "q"}


class FakeTaskInstance:
    dag_id = "dag"
    task_id = "t"
    run_id = "manual__1"
    map_index = -1
    try_number = 1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def context(ti: FakeTaskInstance) -> Any:
    """A task context with only what the operator reads before it talks to Batch."""
    return {"ti": ti}


def test_depends_on_accepts_ids_and_typed_entries() -> None:
    assert normalize_depends_on(
        ["a", {"job_id": "b", "type": "n_to_n"}, {"jobId": "c"}, {"type": "SEQUENTIAL"}]
    ) == [
        {"job_id": "a", "type": None},
        {"job_id": "b", "type": "N_TO_N"},
        {"job_id": "c", "type": None},
        {"job_id": None, "type": "SEQUENTIAL"},
    ]


@pytest.mark.parametrize(
    ("depends_on", "message"),
    [
        ([f"job-{n}" for n in range(21)], "21 entries; AWS Batch allows at most 20"),
        ([{"job_id": "a", "type": "ONE_TO_MANY"}], r"depends_on\[0\].type is 'ONE_TO_MANY'"),
        (["a", {"job_id": None}], r"depends_on\[1\] has no job id"),
        ([{"job_id": "a", "kind": "N_TO_N"}], r"depends_on\[0\] has unknown keys \['kind'\]"),
        ("a-job-id", "must be a list"),
        ([42], r"depends_on\[0\].job_id must be a string job id, got int"),
    ],
)
def test_bad_depends_on_is_refused_naming_the_entry(*, depends_on: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_depends_on(depends_on)


def test_bad_static_arguments_fail_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="at most 20"):
        BatchFanoutOperator(**BASE, depends_on=[f"j{n}" for n in range(25)])
    with pytest.raises(ValueError, match="above the AWS Batch limit of 10,000 children"):
        BatchFanoutOperator(**BASE, array_size=10_001)
    with pytest.raises(ValueError, match="tolerated_failures"):
        BatchFanoutOperator(**BASE, tolerated_failures=-1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), (0, 0), ("1", 1), (" 7 ", 7), (10_000, 10_000), (3.0, 3)],
)
def test_array_size_renders_as_int(*, value: Any, expected: int | None) -> None:
    assert parse_array_size(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10001", "array_size 10001 is above the AWS Batch limit of 10,000 children"),
        ("-2", "0 or more"),
        ("three", "whole number, got 'three'"),
        (True, "boolean"),
        (2.5, "whole number"),
    ],
)
def test_bad_array_size_is_refused(*, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_array_size(value)


def test_rendered_array_size_above_the_limit_fails_before_submitting() -> None:
    operator = BatchFanoutOperator(**BASE, array_size="{{ params.n }}")
    operator.array_size = "10001"  # as rendered from the template
    with pytest.raises(ValueError, match="10,000"):
        operator.execute(context(FakeTaskInstance()))


def test_submit_request_shape_for_an_array_with_dependencies_and_tags() -> None:
    operator = BatchFanoutOperator(
        **BASE,
        array_size="4",
        depends_on=[{"job_id": "leader", "type": None}, {"type": "SEQUENTIAL"}],
        container_overrides={"environment": [{"name": "A", "value": "1"}]},
        tags={"team": "x"},
        aws_conn_id=None,
        region_name="us-east-1",
    )
    operator._validate_rendered()
    hook = operator.fanout_hook
    with Stubber(hook.batch) as stubber:
        stubber.add_response(
            "submit_job",
            {"jobId": "new", "jobName": "n"},
            {
                "jobName": "n",
                "jobQueue": "q",
                "jobDefinition": "d",
                "arrayProperties": {"size": 4},
                "dependsOn": [{"jobId": "leader"}, {"type": "SEQUENTIAL"}],
                "parameters": {},
                "containerOverrides": {"environment": [{"name": "A", "value": "1"}]},
                "tags": {
                    "team": "x",
                    "batch-fanout:dag-id": "dag",
                    "batch-fanout:task-id": "t",
                    "batch-fanout:run-id": "manual__1",
                    "batch-fanout:map-index": "-1",
                },
            },
        )
        ti = FakeTaskInstance()
        job_id = operator.submit_job(context(ti))
        stubber.assert_no_pending_responses()
    assert job_id == "new"
    assert ti.pushed["batch_job_id"] == "new"
    assert ti.pushed["batch_fanout_job"]["job_id"] == "new"


def test_retry_request_maps_failed_indices_and_realigns_n_to_n() -> None:
    operator = BatchFanoutOperator(
        **BASE, array_size=6, depends_on=[{"job_id": "upstream", "type": "N_TO_N"}], aws_conn_id=None
    )
    operator._validate_rendered()
    previous_env = [{"name": "BATCH_FANOUT_INDEX_MAP", "value": "0,2-5"}]
    definition = "arn:aws:batch:us-east-1:123456789012:job-definition/d:3"
    with Stubber(operator.fanout_hook.batch) as stubber:
        # The job definition declares the index-map contract.
        stubber.add_response(
            "describe_job_definitions",
            {
                "jobDefinitions": [
                    {
                        "jobDefinitionName": "d",
                        "jobDefinitionArn": definition,
                        "revision": 3,
                        "type": "container",
                        "tags": {"batch-fanout:index-map": "true"},
                    }
                ]
            },
            {"jobDefinitions": [definition]},
        )
        # The earlier job covered logical 0,2,3,4,5; its children 1 and 4 (logical 2 and 5) failed.
        stubber.add_response(
            "list_jobs",
            {"jobSummaryList": [{"jobId": "prev:4", "jobName": "n"}, {"jobId": "prev:1", "jobName": "n"}]},
            {"arrayJobId": "prev", "jobStatus": "FAILED"},
        )
        # The upstream array still runs over all six indices: N_TO_N cannot pair them any more.
        stubber.add_response(
            "describe_jobs",
            {
                "jobs": [
                    {
                        "jobId": "upstream",
                        "jobName": "u",
                        "jobQueue": "q",
                        "jobDefinition": "d",
                        "status": "RUNNING",
                        "startedAt": 1,
                        "arrayProperties": {"size": 6},
                    }
                ]
            },
            {"jobs": ["upstream"]},
        )
        stubber.add_response(
            "submit_job",
            {"jobId": "retry", "jobName": "n"},
            {
                "jobName": "n",
                "jobQueue": "q",
                "jobDefinition": "d",
                "arrayProperties": {"size": 2},
                "dependsOn": [{"jobId": "upstream"}],
                "parameters": {},
                "containerOverrides": {"environment": [{"name": "BATCH_FANOUT_INDEX_MAP", "value": "2,5"}]},
                "tags": ANY,
            },
        )
        previous = {
            "jobId": "prev",
            "status": "FAILED",
            "jobDefinition": definition,
            "arrayProperties": {"size": 5},
            "container": {"environment": previous_env},
        }
        indices = operator._indices_to_retry(previous)
        request = operator._submit_request(context(FakeTaskInstance()), indices)
        operator.fanout_hook.submit(request)
        stubber.assert_no_pending_responses()
    assert indices == [2, 5]


def test_tolerated_failures_is_templated_and_rendered_as_int() -> None:
    operator = BatchFanoutOperator(**BASE, tolerated_failures="{{ params.tolerated }}")
    assert "tolerated_failures" in BatchFanoutOperator.template_fields
    operator.tolerated_failures = " 2 "  # type: ignore[assignment]  # as rendered from the template
    operator._validate_rendered()
    assert operator.tolerated_failures == 2
    operator.tolerated_failures = "many"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="tolerated_failures must be a whole number, got 'many'"):
        operator._validate_rendered()


def test_a_kill_while_submit_job_is_under_way_terminates_the_job_it_created() -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    operator = BatchFanoutOperator(**BASE, array_size=3, aws_conn_id=None, region_name="us-east-1")
    operator._validate_rendered()
    hook = operator.fanout_hook
    # The worker is told to stop (SIGTERM runs on_kill) while the SubmitJob call is on the wire.
    hook.batch.meta.events.register("before-parameter-build.batch.SubmitJob", lambda **_: operator.on_kill())
    with Stubber(hook.batch) as stubber:
        stubber.add_response("submit_job", {"jobId": "late", "jobName": "n"})
        stubber.add_response("terminate_job", {}, {"jobId": "late", "reason": "Airflow task killed"})
        with pytest.raises(AirflowException, match="killed while submitting; AWS Batch job late terminated"):
            operator.submit_job(context(FakeTaskInstance()))
        stubber.assert_no_pending_responses()
