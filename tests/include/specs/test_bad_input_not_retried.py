"""Bad input is not retried: every job definition exits on the jobs' bad-input code (65) before any
other rule, and on the local endpoint a leader given a malformed graph fails after its first attempt
while its retryStrategy allows three."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from batch_fanout.local.testing import wait_for
from batch_fanout.specs import SpecSettings, pinned_map, register_job_definitions
from batch_fanout_job.errors import EXIT_BAD_INPUT
from batch_fanout_job.limits import LEADER_MEMORY_MIB

PROJECT_SPECS = Path(__file__).resolve().parents[3] / "include" / "specs"
DEFINITIONS = sorted((PROJECT_SPECS / "job-definitions").glob("*.yaml"))
QUEUE = "batch-fanout-queue"


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda path: path.stem)
def test_the_first_rule_of_every_job_definition_exits_on_bad_input(path: Path) -> None:
    strategy = yaml.safe_load(path.read_text())["retryStrategy"]
    assert strategy["attempts"] > 1  # so that the rule, not the attempt count, is what stops a retry
    assert strategy["evaluateOnExit"][0] == {"onExitCode": str(EXIT_BAD_INPUT), "action": "EXIT"}
    assert len(strategy["evaluateOnExit"]) <= 5  # AWS's limit


def test_the_stated_leader_memory_is_the_leader_job_definitions() -> None:
    leader = yaml.safe_load((PROJECT_SPECS / "job-definitions" / "leader.yaml").read_text())
    memory = {item["type"]: item["value"] for item in leader["containerProperties"]["resourceRequirements"]}
    assert int(memory["MEMORY"]) == LEADER_MEMORY_MIB


def wait_until_finished(batch_client: Any, job_id: str, timeout: float) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job = batch_client.describe_jobs(jobs=[job_id])["jobs"][0]
        return dict(job) if job["status"] in ("SUCCEEDED", "FAILED") else None

    return dict(wait_for(finished, timeout, f"job {job_id} to finish", interval=0.1))


def test_a_leader_given_a_malformed_graph_fails_once_with_the_bad_input_code(
    batch_client: Any, tmp_path: Path, own_specs: Path
) -> None:
    outcomes = register_job_definitions(
        batch_client, SpecSettings(image_registry="local", image_tag="latest"), own_specs
    )
    pinned = {name.rsplit("-", 1)[0]: revision for name, revision in pinned_map(outcomes).items()}
    graph = tmp_path / "bad.gr"
    graph.write_text("p sp 3 2\na 1 2 4\na 2 3 --5\n")
    results = tmp_path / "results"
    results.mkdir()
    response = batch_client.submit_job(
        jobName="leader-bad-graph",
        jobQueue=QUEUE,
        jobDefinition=pinned["batch-fanout-leader"],
        parameters={"workloads": "shortest_path", "graph": graph.as_uri()},
        containerOverrides={
            "environment": [
                {"name": "RESULTS_URI", "value": results.as_uri()},
                {"name": "RUN_PREFIX", "value": "shortest_path_all_pairs/bad"},
            ]
        },
    )
    job = wait_until_finished(batch_client, response["jobId"], timeout=60)
    assert job["status"] == "FAILED"
    assert job["retryStrategy"]["attempts"] == 3
    assert len(job["attempts"]) == 1
    assert job["attempts"][0]["container"]["exitCode"] == EXIT_BAD_INPUT
    assert job["container"]["exitCode"] == EXIT_BAD_INPUT
    assert not (results / "shortest_path_all_pairs" / "bad" / "manifest.json").exists()
