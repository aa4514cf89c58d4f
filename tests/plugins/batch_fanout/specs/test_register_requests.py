"""The request shapes of registration, checked with botocore's Stubber (which also checks every
request against the AWS Batch model): lookup by name and ACTIVE status, reuse on a matching hash tag,
register the rendered request otherwise, nothing at all on a dry run or a bad spec."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from batch_fanout.specs import (
    HASH_TAG,
    SpecError,
    SpecSettings,
    load_specs,
    pinned_map,
    register_job_definitions,
    register_rendered,
    render_job_definitions,
)
from batch_fanout.specs.register import REGISTERED, UNCHANGED, WOULD_REGISTER

LOCAL = SpecSettings(image_registry="local", image_tag="latest")
ARN = "arn:aws:batch:us-east-1:123456789012:job-definition/{}:{}"


@pytest.fixture
def batch() -> Any:
    return boto3.client("batch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def described(name: str, revision: int, sha: str, **extra: Any) -> dict[str, Any]:
    return {
        "jobDefinitionName": name,
        "jobDefinitionArn": ARN.format(name, revision),
        "revision": revision,
        "status": "ACTIVE",
        "type": "container",
        "tags": {HASH_TAG: sha},
    } | extra


def expect_lookup(stubber: Stubber, name: str, found: list[dict[str, Any]]) -> None:
    stubber.add_response(
        "describe_job_definitions",
        {"jobDefinitions": found},
        {"jobDefinitionName": name, "status": "ACTIVE"},
    )


def test_unchanged_spec_reuses_the_matching_revision(specs_dir: Path, batch: Any) -> None:
    (definition,) = [
        d for d in render_job_definitions(load_specs(specs_dir), LOCAL) if d.name.endswith("leader")
    ]
    with Stubber(batch) as stubber:
        # The matching revision is older than the newest one; it is still the one with this content.
        expect_lookup(
            stubber,
            definition.name,
            [described(definition.name, 7, "0" * 64), described(definition.name, 5, definition.sha256)],
        )
        (outcome,) = register_rendered(batch, [definition])
        stubber.assert_no_pending_responses()
    assert (outcome.action, outcome.pinned, outcome.previous_revision) == (
        UNCHANGED,
        "batch-fanout-leader:5",
        7,
    )


def test_changed_spec_registers_the_rendered_request(specs_dir: Path, batch: Any) -> None:
    definitions = render_job_definitions(load_specs(specs_dir), LOCAL)
    with Stubber(batch) as stubber:
        for definition in definitions:
            expect_lookup(stubber, definition.name, [described(definition.name, 2, "f" * 64)])
            stubber.add_response(
                "register_job_definition",
                {
                    "jobDefinitionName": definition.name,
                    "jobDefinitionArn": ARN.format(definition.name, 3),
                    "revision": 3,
                },
                copy.deepcopy(definition.request),
            )
        outcomes = register_rendered(batch, definitions)
        stubber.assert_no_pending_responses()
    assert {o.action for o in outcomes} == {REGISTERED}
    assert pinned_map(outcomes) == {
        "batch-fanout-aggregator": "batch-fanout-aggregator:3",
        "batch-fanout-leader": "batch-fanout-leader:3",
        "batch-fanout-shortest-path": "batch-fanout-shortest-path:3",
        "batch-fanout-step": "batch-fanout-step:3",
        "batch-fanout-stress-ng": "batch-fanout-stress-ng:3",
    }
    request = definitions[0].request
    assert request["tags"][HASH_TAG] == definitions[0].sha256
    assert request["containerProperties"]["image"] == "local/batch-fanout/aggregator:latest"


def test_dry_run_looks_up_and_reports_the_difference(specs_dir: Path, batch: Any, edit_spec: Any) -> None:
    edit_spec("stress_ng.yaml", lambda body: body["timeout"].update(attemptDurationSeconds=1200))
    (definition,) = [
        d for d in render_job_definitions(load_specs(specs_dir), LOCAL) if d.name == "batch-fanout-stress-ng"
    ]
    previous = copy.deepcopy(definition.request)
    previous["timeout"]["attemptDurationSeconds"] = 900
    previous["tags"][HASH_TAG] = "a" * 64
    with Stubber(batch) as stubber:
        # No register_job_definition response is queued: a call would fail the test.
        expect_lookup(stubber, definition.name, [described(definition.name, 4, "unused", **previous)])
        (outcome,) = register_rendered(batch, [definition], dry_run=True)
        stubber.assert_no_pending_responses()
    assert outcome.action == WOULD_REGISTER
    assert outcome.pinned is None
    assert outcome.changes == ["timeout.attemptDurationSeconds: 900 -> 1200"]
    assert outcome.describe() == (
        "would register  batch-fanout-stress-ng (now revision 4)\n    timeout.attemptDurationSeconds: 900 -> 1200"
    )


def test_pagination_of_revisions_is_followed(specs_dir: Path, batch: Any) -> None:
    (definition,) = [
        d for d in render_job_definitions(load_specs(specs_dir), LOCAL) if d.name == "batch-fanout-aggregator"
    ]
    with Stubber(batch) as stubber:
        stubber.add_response(
            "describe_job_definitions",
            {"jobDefinitions": [described(definition.name, 9, "b" * 64)], "nextToken": "page-2"},
            {"jobDefinitionName": definition.name, "status": "ACTIVE"},
        )
        stubber.add_response(
            "describe_job_definitions",
            {"jobDefinitions": [described(definition.name, 4, definition.sha256)]},
            {"jobDefinitionName": definition.name, "status": "ACTIVE", "nextToken": "page-2"},
        )
        (outcome,) = register_rendered(batch, [definition])
        stubber.assert_no_pending_responses()
    assert outcome.pinned == "batch-fanout-aggregator:4"


def test_a_bad_spec_means_no_call_at_all(specs_dir: Path, batch: Any, edit_spec: Any) -> None:
    edit_spec("shortest_path.yaml", lambda body: body.update(propagateTag=True))
    with Stubber(batch) as stubber:
        # Any call would raise: nothing is queued.
        with pytest.raises(SpecError) as caught:
            register_job_definitions(batch, LOCAL, specs_dir)
        stubber.assert_no_pending_responses()
    assert str(caught.value.problems[0]) == (
        "specs/job-definitions/shortest_path.yaml: propagateTag: unknown member 'propagateTag'; "
        "did you mean 'propagateTags'?"
    )
