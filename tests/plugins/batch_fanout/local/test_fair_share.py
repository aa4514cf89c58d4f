"""Scheduling policies, fair-share dispatch, jobStateTimeLimitActions and the fair-share queue snapshot,
over HTTP with boto3 against a real endpoint."""

from __future__ import annotations

import functools
import itertools
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batch_fanout.local.testing import EndpointHandle, running_endpoint

from .conftest import CONTAINERS_DIR, create_queue, register_test_definition

Submit = Callable[..., str]
WaitStatus = Callable[..., dict[str, Any]]
Until = Callable[..., Any]


def _error(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    assert raised.value.response["Error"]["Code"] == "ClientException"
    return str(raised.value.response["Error"]["Message"])


def _policy(batch: Any, name: str, **fairshare: Any) -> str:
    return str(batch.create_scheduling_policy(name=name, fairsharePolicy=fairshare)["arn"])


def _vcpus(count: int) -> dict[str, Any]:
    return {"resourceRequirements": [{"type": "VCPU", "value": str(count)}]}


def _ids(snapshot: dict[str, Any]) -> list[str]:
    return [item["jobArn"].rsplit("/", 1)[-1] for item in snapshot["frontOfQueue"]["jobs"]]


# ---- the policy operations -------------------------------------------------------------------


def test_scheduling_policies_are_created_described_listed_updated_tagged_and_deleted(batch: Any) -> None:
    created = batch.create_scheduling_policy(
        name="crud",
        fairsharePolicy={
            "shareDecaySeconds": 3600,
            "computeReservation": 10,
            "shareDistribution": [{"shareIdentifier": "team*", "weightFactor": 0.5}],
        },
        tags={"owner": "tests"},
    )
    assert created["arn"] == "arn:aws:batch:us-east-1:123456789012:scheduling-policy/crud"
    assert created["name"] == "crud"
    described = batch.describe_scheduling_policies(arns=[created["arn"], created["arn"] + "-missing"])
    assert described["schedulingPolicies"] == [
        {
            "name": "crud",
            "arn": created["arn"],
            "fairsharePolicy": {
                "shareDecaySeconds": 3600,
                "computeReservation": 10,
                "shareDistribution": [{"shareIdentifier": "team*", "weightFactor": 0.5}],
            },
            "tags": {"owner": "tests"},
        }
    ]
    listed = batch.list_scheduling_policies()["schedulingPolicies"]
    assert {"arn": created["arn"]} in listed

    batch.update_scheduling_policy(arn=created["arn"], fairsharePolicy={"shareDecaySeconds": 0})
    policy = batch.describe_scheduling_policies(arns=[created["arn"]])["schedulingPolicies"][0]
    assert policy["fairsharePolicy"] == {"shareDecaySeconds": 0}  # replaced whole, as AWS does

    batch.tag_resource(resourceArn=created["arn"], tags={"stage": "dev"})
    assert batch.list_tags_for_resource(resourceArn=created["arn"])["tags"] == {
        "owner": "tests",
        "stage": "dev",
    }

    assert "already exists" in _error(lambda: batch.create_scheduling_policy(name="crud"))
    batch.delete_scheduling_policy(arn=created["arn"])
    assert batch.describe_scheduling_policies(arns=[created["arn"]])["schedulingPolicies"] == []
    assert "not found" in _error(lambda: batch.delete_scheduling_policy(arn=created["arn"]))


@pytest.mark.parametrize(
    ("fairshare", "message"),
    [
        ({"shareDecaySeconds": 604_801}, "shareDecaySeconds must be between 0 and 604800"),
        ({"computeReservation": 100}, "computeReservation must be between 0 and 99"),
        (
            {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 1000}]},
            "weightFactor must be between",
        ),
        (
            {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 0.00001}]},
            "weightFactor must be between",
        ),
        (
            {"shareDistribution": [{"shareIdentifier": "UserA*"}, {"shareIdentifier": "UserA1"}]},
            "'UserA1' overlaps 'UserA*'",
        ),
        ({"shareDistribution": [{"shareIdentifier": "a"}, {"shareIdentifier": "a"}]}, "overlaps"),
        ({"shareDistribution": [{"shareIdentifier": "bad id"}]}, "shareIdentifier 'bad id' must be"),
        ({"shareDistribution": [{"shareIdentifier": f"s{index}"} for index in range(501)]}, "at most 500"),
    ],
)
def test_a_fairshare_policy_outside_aws_rules_is_refused_naming_the_field(
    batch: Any, fairshare: dict[str, Any], message: str
) -> None:
    assert message in _error(
        lambda: batch.create_scheduling_policy(name="refused", fairsharePolicy=fairshare)
    )
    assert "Invalid scheduling policy name" in _error(lambda: batch.create_scheduling_policy(name="-bad"))


def test_queues_keep_their_kind_and_a_policy_in_use_cannot_be_deleted(batch: Any, submit: Submit) -> None:
    first = _policy(batch, "kind-first")
    second = _policy(batch, "kind-second")
    missing = first.replace("kind-first", "kind-missing")
    assert "not found" in _error(lambda: create_queue(batch, "kind-bad", 1, schedulingPolicyArn=missing))
    create_queue(batch, "kind-fair", 1, schedulingPolicyArn=first)
    create_queue(batch, "kind-fifo", 1)
    queue = batch.describe_job_queues(jobQueues=["kind-fair"])["jobQueues"][0]
    assert queue["schedulingPolicyArn"] == first

    assert "cannot get one later" in _error(
        lambda: batch.update_job_queue(jobQueue="kind-fifo", schedulingPolicyArn=first)
    )
    assert "replaced but not removed" in _error(
        lambda: batch.update_job_queue(jobQueue="kind-fair", schedulingPolicyArn="")
    )
    batch.update_job_queue(jobQueue="kind-fair", schedulingPolicyArn=second)
    assert batch.describe_job_queues(jobQueues=["kind-fair"])["jobQueues"][0]["schedulingPolicyArn"] == second
    assert "job queue(s) kind-fair use it" in _error(lambda: batch.delete_scheduling_policy(arn=second))
    batch.delete_scheduling_policy(arn=first)  # no queue uses it any more

    assert "shareIdentifier is required" in _error(lambda: submit(jobQueue="kind-fair"))
    assert "shareIdentifier must not be given" in _error(
        lambda: submit(jobQueue="kind-fifo", shareIdentifier="a")
    )
    assert "schedulingPriorityOverride must be between 0 and 9999" in _error(
        lambda: submit(jobQueue="kind-fair", shareIdentifier="a", schedulingPriorityOverride=10_000)
    )
    assert "Invalid shareIdentifier 'a*'" in _error(
        lambda: submit(jobQueue="kind-fair", shareIdentifier="a*")
    )
    prioritized = register_test_definition(batch, "prioritized", schedulingPriority=5)
    job_id = submit(jobQueue="kind-fair", shareIdentifier="a", jobDefinition=prioritized)
    assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["schedulingPriority"] == 5
    assert "schedulingPriority must be between 0 and 9999" in _error(
        lambda: register_test_definition(batch, "too-high", schedulingPriority=10_000)
    )
    assert "quotaSharePolicy is not supported" in _error(
        lambda: batch.create_scheduling_policy(
            name="quota", quotaSharePolicy={"idleResourceAssignmentStrategy": "FIFO"}
        )
    )


# ---- dispatch --------------------------------------------------------------------------------


def test_a_lower_weight_factor_gets_more_of_the_queue(
    batch: Any,
    submit: Submit,
    wait_status: WaitStatus,
    until: Until,
    tmp_path: Path,
) -> None:
    policy = _policy(
        batch,
        "weights",
        shareDecaySeconds=0,
        shareDistribution=[
            {"shareIdentifier": "heavy", "weightFactor": 1.0},
            {"shareIdentifier": "li*", "weightFactor": 0.25},
        ],
    )
    queue = create_queue(batch, "weights", 4, schedulingPolicyArn=policy)
    release = tmp_path / "release"
    # A 4-vCPU gate holds the queue while the arrays queue up, so that dispatch happens in one round.
    gate = submit(f"wait:{release}", jobQueue=queue, shareIdentifier="gate", containerOverrides=_vcpus(4))
    wait_status(gate, ("RUNNING",))
    heavy = submit(f"wait:{release}-2", jobQueue=queue, shareIdentifier="heavy", arrayProperties={"size": 4})
    light = submit(f"wait:{release}-2", jobQueue=queue, shareIdentifier="light", arrayProperties={"size": 4})
    until(lambda: len(_ids(batch.get_job_queue_snapshot(jobQueue=queue))) == 8, what="8 RUNNABLE children")

    # usage x weight: heavy 0 (older), then light four times for heavy's one.
    expected = [f"{heavy}:0", f"{light}:0", f"{light}:1", f"{light}:2", f"{light}:3", f"{heavy}:1"]
    snapshot = batch.get_job_queue_snapshot(jobQueue=queue)
    assert _ids(snapshot)[:6] == expected
    fairshare = snapshot["queueUtilization"]["fairshareUtilization"]
    assert fairshare == {
        "activeShareCount": 1,
        "topCapacityUtilization": [
            {"shareIdentifier": "gate", "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 4.0}]}
        ],
    }
    # An updated policy applies at once: swapped weights give "heavy" four jobs for light's one.
    swapped = [
        {"shareIdentifier": "heavy", "weightFactor": 0.25},
        {"shareIdentifier": "li*", "weightFactor": 1.0},
    ]
    batch.update_scheduling_policy(arn=policy, fairsharePolicy={"shareDistribution": swapped})
    assert _ids(batch.get_job_queue_snapshot(jobQueue=queue))[:6] == [
        f"{heavy}:0",
        f"{light}:0",
        f"{heavy}:1",
        f"{heavy}:2",
        f"{heavy}:3",
        f"{light}:1",
    ]
    batch.update_scheduling_policy(
        arn=policy,
        fairsharePolicy={
            "shareDecaySeconds": 0,
            "shareDistribution": [
                {"shareIdentifier": "heavy", "weightFactor": 1.0},
                {"shareIdentifier": "li*", "weightFactor": 0.25},
            ],
        },
    )
    assert _ids(batch.get_job_queue_snapshot(jobQueue=queue))[:6] == expected

    release.touch()
    assert wait_status(gate)["status"] == "SUCCEEDED"
    running = {f"{heavy}:0", f"{light}:0", f"{light}:1", f"{light}:2"}
    for job_id in running:
        wait_status(job_id, ("RUNNING",))
    others = batch.describe_jobs(jobs=[f"{heavy}:1", f"{heavy}:2", f"{light}:3"])["jobs"]
    assert {job["status"] for job in others} == {"RUNNABLE"}
    utilization = batch.get_job_queue_snapshot(jobQueue=queue)["queueUtilization"]["fairshareUtilization"]
    assert utilization["activeShareCount"] == 2
    assert utilization["topCapacityUtilization"][0] == {
        "shareIdentifier": "light",
        "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 3.0}],
    }
    listed = batch.list_jobs(
        jobQueue=queue, jobStatus="RUNNING", filters=[{"name": "SHARE_IDENTIFIER", "values": ["light"]}]
    )["jobSummaryList"]
    assert [job["jobId"] for job in listed] == [light]
    described = batch.describe_jobs(jobs=[f"{light}:0"])["jobs"][0]
    assert described["shareIdentifier"] == "light"
    batch.terminate_job(jobId=heavy, reason="done")
    batch.terminate_job(jobId=light, reason="done")
    wait_status(heavy)
    wait_status(light)


def test_within_a_share_higher_priority_goes_first_then_submission_order(
    batch: Any, submit: Submit, wait_status: WaitStatus, until: Until, tmp_path: Path
) -> None:
    policy = _policy(batch, "priorities")
    queue = create_queue(batch, "priorities", 1, schedulingPolicyArn=policy)
    release = tmp_path / "release"
    gate = submit(f"wait:{release}", jobQueue=queue, shareIdentifier="gate")
    wait_status(gate, ("RUNNING",))
    order = [("low", 1), ("high", 9), ("default", None), ("high-later", 9)]
    jobs = {}
    for name, priority in order:
        extra = {} if priority is None else {"schedulingPriorityOverride": priority}
        jobs[name] = submit("print:hi", name=name, jobQueue=queue, shareIdentifier="team", **extra)
    until(lambda: len(_ids(batch.get_job_queue_snapshot(jobQueue=queue))) == 4, what="4 RUNNABLE jobs")
    expected = [jobs["high"], jobs["high-later"], jobs["low"], jobs["default"]]
    assert _ids(batch.get_job_queue_snapshot(jobQueue=queue)) == expected
    assert batch.describe_jobs(jobs=[jobs["high"]])["jobs"][0]["schedulingPriority"] == 9

    release.touch()
    finished = [wait_status(job_id) for job_id in expected]
    assert all(job["status"] == "SUCCEEDED" for job in finished)
    # One vCPU: each started after the one before it stopped.
    for before, after in itertools.pairwise(finished):
        assert before["stoppedAt"] <= after["startedAt"]


def test_compute_reservation_holds_vcpus_back_for_shares_that_run_nothing_yet(
    batch: Any, submit: Submit, wait_status: WaitStatus, until: Until, tmp_path: Path
) -> None:
    policy = _policy(batch, "reserve", computeReservation=50)
    queue = create_queue(batch, "reserve", 4, schedulingPolicyArn=policy)
    release = tmp_path / "release"
    first = submit(f"wait:{release}", jobQueue=queue, shareIdentifier="first", arrayProperties={"size": 4})
    # One active share: (50/100)^1 of the 4 vCPUs is held back, so "first" gets 2 of them.
    wait_status(f"{first}:0", ("RUNNING",))
    wait_status(f"{first}:1", ("RUNNING",))
    second = submit(f"wait:{release}", jobQueue=queue, shareIdentifier="second", arrayProperties={"size": 2})
    # A new share may use the reserve; then two are active and (50/100)^2 = 1 vCPU is held back.
    wait_status(f"{second}:0", ("RUNNING",))
    third = submit(f"wait:{release}", jobQueue=queue, shareIdentifier="third")
    wait_status(third, ("RUNNING",))  # a third share takes the last vCPU
    waiting = batch.describe_jobs(jobs=[f"{first}:2", f"{first}:3", f"{second}:1"])["jobs"]
    assert {job["status"] for job in waiting} == {"RUNNABLE"}
    snapshot = batch.get_job_queue_snapshot(jobQueue=queue)
    assert snapshot["queueUtilization"]["fairshareUtilization"]["activeShareCount"] == 3
    release.touch()
    for job_id in (first, second, third):
        assert wait_status(job_id)["status"] == "SUCCEEDED"


@pytest.mark.parametrize("share_decay_seconds", [600, 0], ids=["600 s", "0 is the default 600 s"])
def test_share_decay_counts_recent_work_and_forgets_it_after_the_window(
    *,
    endpoint: EndpointHandle,
    batch: Any,
    submit: Submit,
    wait_status: WaitStatus,
    until: Until,
    share_decay_seconds: int,
) -> None:
    name = f"decay-{share_decay_seconds}"
    policy = _policy(batch, name, shareDecaySeconds=share_decay_seconds)
    queue = create_queue(batch, name, 1, schedulingPolicyArn=policy)
    assert (
        wait_status(submit("print:earlier", jobQueue=queue, shareIdentifier="past"))["status"] == "SUCCEEDED"
    )
    release = endpoint.data_dir / f"{name}-release"
    gate = submit(f"wait:{release}", jobQueue=queue, shareIdentifier="gate")
    wait_status(gate, ("RUNNING",))
    past = submit("print:past", jobQueue=queue, shareIdentifier="past")
    fresh = submit("print:fresh", jobQueue=queue, shareIdentifier="fresh")
    until(lambda: len(_ids(batch.get_job_queue_snapshot(jobQueue=queue))) == 2, what="2 RUNNABLE jobs")
    # "past" used the queue within the last 600 s: the share that did not goes first.
    assert _ids(batch.get_job_queue_snapshot(jobQueue=queue)) == [fresh, past]
    endpoint.advance_clock(600)
    # Its work has faded out of the window: equal usage, so the older job goes first.
    assert _ids(batch.get_job_queue_snapshot(jobQueue=queue)) == [past, fresh]
    release.touch()
    for job_id in (gate, past, fresh):
        assert wait_status(job_id)["status"] == "SUCCEEDED"


# ---- jobStateTimeLimitActions ----------------------------------------------------------------


def test_a_job_at_the_head_of_the_queue_in_runnable_too_long_is_cancelled_with_the_reason(
    endpoint: EndpointHandle, batch: Any, submit: Submit, wait_status: WaitStatus, tmp_path: Path
) -> None:
    limits = [
        {
            "reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
            "state": "RUNNABLE",
            "maxTimeSeconds": 600,
            "action": "CANCEL",
        }
    ]
    for bad, message in (
        ({"maxTimeSeconds": 599}, "maxTimeSeconds must be between 600 and 86400, got 599"),
        ({"maxTimeSeconds": 86_401}, "got 86401"),
        ({"action": "TERMINATE"}, "action must be CANCEL"),
    ):
        assert message in _error(
            functools.partial(
                batch.create_job_queue,
                jobQueueName="limits-bad",
                priority=1,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "batch-fanout-ce"}],
                jobStateTimeLimitActions=[{**limits[0], **bad}],
            )
        )
    queue = create_queue(batch, "limits", 1, jobStateTimeLimitActions=limits)
    assert batch.describe_job_queues(jobQueues=[queue])["jobQueues"][0]["jobStateTimeLimitActions"] == limits
    release = tmp_path / "release"
    gate = submit(f"wait:{release}", jobQueue=queue)
    wait_status(gate, ("RUNNING",))
    head = submit("print:never", name="head", jobQueue=queue)
    behind = submit("print:never", name="behind", jobQueue=queue)
    wait_status(behind, ("RUNNABLE",))

    # 590 s, not 599: the real seconds this test takes run on the same clock.
    endpoint.advance_clock(590)
    # A later submission reaching RUNNABLE means a scheduling round ran with the clock advanced.
    marker = submit("print:never", name="marker", jobQueue=queue)
    wait_status(marker, ("RUNNABLE",))
    assert wait_status(head, ("RUNNABLE",))["status"] == "RUNNABLE"

    endpoint.advance_clock(10)
    cancelled = wait_status(head)
    assert cancelled["status"] == "FAILED"
    assert cancelled["statusReason"] == "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    assert cancelled["isCancelled"] is True
    assert cancelled["attempts"] == []
    # The job behind it waited 600 s too, but only now is it at the head: its time starts now.
    second_marker = submit("print:never", name="marker2", jobQueue=queue)
    wait_status(second_marker, ("RUNNABLE",))
    assert wait_status(behind, ("RUNNABLE",))["status"] == "RUNNABLE"
    # 597 s on the clock, and the last seconds pass for real: nothing but the engine's own timer, set
    # for the limit, can cancel it then (DescribeJobs does not wake the engine).
    endpoint.advance_clock(597)
    assert wait_status(behind)["statusReason"] == "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    assert wait_status(gate, ("RUNNING",))["status"] == "RUNNING"  # a running job is never cancelled

    batch.update_job_queue(jobQueue=queue, jobStateTimeLimitActions=[])
    endpoint.advance_clock(3600)
    third_marker = submit("print:never", name="marker3", jobQueue=queue)
    wait_status(third_marker, ("RUNNABLE",))
    assert wait_status(marker, ("RUNNABLE",))["status"] == "RUNNABLE"
    release.touch()
    assert wait_status(gate)["status"] == "SUCCEEDED"
    for job_id in (marker, second_marker, third_marker):
        assert wait_status(job_id)["status"] == "SUCCEEDED"
    with pytest.raises(RuntimeError, match="advanceSeconds must be a number"):
        endpoint.advance_clock(-1)


def test_policies_queues_the_clock_and_running_shares_survive_a_restart(
    tmp_path: Path, statuses: Callable[..., dict[str, str]], until: Until
) -> None:
    data_dir = tmp_path / "data"
    release = tmp_path / "release"
    with running_endpoint(data_dir, containers_dir=CONTAINERS_DIR, vcpus=2) as handle:
        batch = handle.client("batch")
        definition = register_test_definition(batch, "kept")
        policy = _policy(batch, "kept", shareDistribution=[{"shareIdentifier": "a", "weightFactor": 2.0}])
        batch.create_job_queue(
            jobQueueName="kept",
            priority=1,
            schedulingPolicyArn=policy,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "batch-fanout-ce"}],
        )
        job_id = batch.submit_job(
            jobName="kept",
            jobQueue="kept",
            jobDefinition=definition,
            shareIdentifier="a",
            containerOverrides={"command": ["python", "testjob.py", f"wait:{release}"]},
        )["jobId"]
        until(lambda: statuses(batch, job_id) == {job_id: "RUNNING"}, what="RUNNING")
        offset = handle.advance_clock(1000)["offsetMs"]
        handle.kill()  # its job runs on under its supervisor
    with running_endpoint(data_dir, containers_dir=CONTAINERS_DIR, vcpus=2) as handle:
        batch = handle.client("batch")
        described = batch.describe_scheduling_policies(arns=[policy])["schedulingPolicies"]
        assert described[0]["fairsharePolicy"]["shareDistribution"] == [
            {"shareIdentifier": "a", "weightFactor": 2.0}
        ]
        assert batch.describe_job_queues(jobQueues=["kept"])["jobQueues"][0]["schedulingPolicyArn"] == policy
        assert handle.advance_clock()["offsetMs"] == offset == 1_000_000
        assert "use it" in _error(lambda: batch.delete_scheduling_policy(arn=policy))
        # The adopted attempt still counts for its share.
        utilization = batch.get_job_queue_snapshot(jobQueue="kept")["queueUtilization"]
        assert utilization["fairshareUtilization"] == {
            "activeShareCount": 1,
            "topCapacityUtilization": [
                {"shareIdentifier": "a", "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 1.0}]}
            ],
        }
        release.touch()
        until(lambda: statuses(batch, job_id) == {job_id: "SUCCEEDED"}, what="SUCCEEDED")
        snapshot = batch.get_job_queue_snapshot(jobQueue="kept")
        assert snapshot["queueUtilization"]["fairshareUtilization"]["activeShareCount"] == 0


def test_the_clock_answers_only_signed_requests(endpoint: EndpointHandle) -> None:
    before = endpoint.advance_clock()["offsetMs"]
    request = urllib.request.Request(
        f"{endpoint.url}/_local/clock",
        data=json.dumps({"advanceSeconds": 600}).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 403
    assert json.loads(raised.value.read())["__type"] == "MissingAuthenticationTokenException"
    assert endpoint.advance_clock()["offsetMs"] == before
    # Signed, but not of the clock's shape: a ClientException naming the shape.
    body = json.dumps({"seconds": 1}).encode()
    headers = endpoint.signed_headers("PUT", "/_local/clock", body, {"Content-Type": "application/json"})
    signed = urllib.request.Request(f"{endpoint.url}/_local/clock", data=body, headers=headers, method="PUT")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(signed, timeout=10)
    assert refused.value.code == 400
    assert 'takes {"advanceSeconds": N}' in json.loads(refused.value.read())["message"]
    assert endpoint.advance_clock()["offsetMs"] == before


def test_the_local_clock_command_reads_and_advances_the_clock(endpoint: EndpointHandle) -> None:
    before = endpoint.advance_clock()["offsetMs"]
    command = [
        sys.executable,
        "-m",
        "batch_fanout.cli",
        "local",
        "clock",
        "--data-dir",
        str(endpoint.data_dir),
    ]
    advanced = subprocess.run(
        [*command, "--advance", "5"], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(advanced.stdout)["offsetMs"] == before + 5000
    assert (
        json.loads(subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout)[
            "offsetMs"
        ]
        == before + 5000
    )
    refused = subprocess.run([*command, "--advance", "-1"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "advanceSeconds must be a number from 0" in refused.stderr
