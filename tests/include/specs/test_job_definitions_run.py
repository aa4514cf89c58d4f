"""The registered job definitions run the real jobs: on the local endpoint, their commands, ``Ref::``
parameters and defaults drive the project's leader, stress-ng follower, shortest-path job and
aggregator to a complete report, with the results location given only at submit time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.local.testing import wait_for
from batch_fanout.specs import SpecSettings, pinned_map, register_job_definitions

PROJECT_SPECS = Path(__file__).resolve().parents[3] / "include" / "specs"
QUEUE = "batch-fanout-queue"


def wait_until_finished(batch_client: Any, job_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    def finished() -> dict[str, dict[str, Any]] | None:
        jobs = {job["jobName"]: job for job in batch_client.describe_jobs(jobs=job_ids)["jobs"]}
        return jobs if all(job["status"] in ("SUCCEEDED", "FAILED") for job in jobs.values()) else None

    jobs: dict[str, dict[str, Any]] = wait_for(
        finished, timeout, f"jobs {', '.join(job_ids)} to finish", interval=0.1
    )
    return jobs


@pytest.mark.slow
def test_registered_definitions_run_the_whole_pipeline(
    batch_client: Any, tmp_path: Path, own_specs: Path
) -> None:
    outcomes = register_job_definitions(
        batch_client, SpecSettings(image_registry="local", image_tag="latest"), own_specs
    )
    pinned = {name.rsplit("-", 1)[0]: revision for name, revision in pinned_map(outcomes).items()}
    results = tmp_path / "results"
    results.mkdir()
    environment = [
        {"name": "RESULTS_URI", "value": results.as_uri()},
        {"name": "RUN_PREFIX", "value": "batch_fanout/specs-test"},
    ]

    def submit(name: str, definition: str, **kwargs: Any) -> str:
        response = batch_client.submit_job(
            jobName=name,
            jobQueue=QUEUE,
            jobDefinition=pinned[definition],
            containerOverrides={"environment": environment},
            **kwargs,
        )
        return str(response["jobId"])

    # Only what differs from the job definitions' defaults is passed; workloads stay both.
    leader = submit(
        "leader",
        "batch-fanout-leader",
        parameters={
            "tests": "2",
            "stress_duration": "1",
            "methods": "ackermann,bitops",
            "grid": "8x8",
            "shards": "2",
        },
    )
    stress = submit(
        "stress", "batch-fanout-stress-ng", arrayProperties={"size": 2}, dependsOn=[{"jobId": leader}]
    )
    paths = submit(
        "paths", "batch-fanout-shortest-path", arrayProperties={"size": 2}, dependsOn=[{"jobId": leader}]
    )
    aggregator = submit(
        "aggregator", "batch-fanout-aggregator", dependsOn=[{"jobId": stress}, {"jobId": paths}]
    )

    jobs = wait_until_finished(batch_client, [leader, stress, paths, aggregator], timeout=120)

    assert {name: job["status"] for name, job in jobs.items()} == {
        "leader": "SUCCEEDED",
        "stress": "SUCCEEDED",
        "paths": "SUCCEEDED",
        "aggregator": "SUCCEEDED",
    }, {name: job.get("statusReason") for name, job in jobs.items()}
    run = results / "batch_fanout" / "specs-test"
    written = {str(path.relative_to(run)) for path in run.rglob("*") if path.is_file()}
    assert {"stress/0.json", "stress/1.json", "shortest_paths/0.json", "shortest_paths/1.json"} <= written
    assert "report/report.json" in written
    assert len((run / "stress-tests.txt").read_text().splitlines()) == 2
    assert json.loads((run / "report" / "report.json").read_text())["summary"]["complete"] is True
    assert jobs["leader"]["container"]["logStreamName"].startswith(
        pinned["batch-fanout-leader"].split(":")[0]
    )
