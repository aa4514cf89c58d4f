"""Benchmarks of the local AWS Batch endpoint; prints its figures (recorded in benchmarks/RESULTS.md).

- dependency gap: a dependency's ``stoppedAt`` to its dependent's ``startedAt``, plain and N_TO_N;
- throughput of a 1,000-child array of a trivial command, and its ratio to starting the same 1,000
  processes back to back with no endpoint;
- median latency of DescribeJobs of 100 ids, and of ListJobs of a 10,000-child array.

Run: ``.venv/bin/python benchmarks/local_endpoint.py``
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from batch_fanout.local.testing import running_endpoint

QUEUE = "batch-fanout-queue"
TRIVIAL_COMMAND = ["true"]


def _wait_done(batch: Any, job_id: str, timeout: float = 600.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return dict(job)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id} did not finish")
        time.sleep(0.02)


def _register(batch: Any, name: str, command: list[str]) -> str:
    return str(
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={
                "image": "local/batch-fanout/bench:1",
                "command": command,
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}],
            },
        )["jobDefinitionArn"]
    )


def dependency_gaps(batch: Any, definition: str, chain: int) -> dict[str, float]:
    """Median gaps (ms) over a chain of plain dependencies and an N_TO_N pair of arrays."""
    previous = None
    ids = []
    for _ in range(chain):
        kwargs: dict[str, Any] = {"dependsOn": [{"jobId": previous}]} if previous else {}
        previous = batch.submit_job(jobName="chain", jobQueue=QUEUE, jobDefinition=definition, **kwargs)[
            "jobId"
        ]
        ids.append(previous)
    _wait_done(batch, ids[-1])
    jobs = {job["jobId"]: job for job in batch.describe_jobs(jobs=ids)["jobs"]}
    plain = [
        jobs[after]["startedAt"] - jobs[before]["stoppedAt"] for before, after in itertools.pairwise(ids)
    ]

    # Arrays as wide as the machine, so that the gap measures the engine, not a queue for free vCPUs.
    size = os.cpu_count() or 1
    n_to_n: list[int] = []
    for _ in range(max(1, chain // size)):
        first = batch.submit_job(
            jobName="n1", jobQueue=QUEUE, jobDefinition=definition, arrayProperties={"size": size}
        )
        second = batch.submit_job(
            jobName="n2",
            jobQueue=QUEUE,
            jobDefinition=definition,
            arrayProperties={"size": size},
            dependsOn=[{"jobId": first["jobId"], "type": "N_TO_N"}],
        )
        _wait_done(batch, second["jobId"])
        upstream = batch.describe_jobs(jobs=[f"{first['jobId']}:{i}" for i in range(size)])["jobs"]
        up = {job["arrayProperties"]["index"]: job for job in upstream}
        down = batch.describe_jobs(jobs=[f"{second['jobId']}:{i}" for i in range(size)])["jobs"]
        n_to_n += [job["startedAt"] - up[job["arrayProperties"]["index"]]["stoppedAt"] for job in down]
    return {
        "plain": statistics.median(plain),
        "plain_max": max(plain),
        "n_to_n": statistics.median(n_to_n),
        "n_to_n_max": max(n_to_n),
    }


def array_throughput(batch: Any, definition: str, size: int) -> tuple[float, float]:
    """Children per second of an array of ``size``, from submission to the parent's end; and wall time."""
    started = time.monotonic()
    job_id = batch.submit_job(
        jobName="throughput", jobQueue=QUEUE, jobDefinition=definition, arrayProperties={"size": size}
    )["jobId"]
    job = _wait_done(batch, job_id)
    elapsed = time.monotonic() - started
    assert job["arrayProperties"]["statusSummary"]["SUCCEEDED"] == size, job["arrayProperties"]
    return size / elapsed, elapsed


def back_to_back(count: int, parallel: int) -> float:
    """Seconds to start ``count`` trivial processes, ``parallel`` at a time, with no endpoint."""
    started = time.monotonic()
    running: list[subprocess.Popen[bytes]] = []
    for _ in range(count):
        if len(running) >= parallel:
            running.pop(0).wait()
        running.append(subprocess.Popen(TRIVIAL_COMMAND, stdout=subprocess.DEVNULL, start_new_session=True))
    for process in running:
        process.wait()
    return time.monotonic() - started


def latency(call: Any, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--children", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=30)
    arguments = parser.parse_args()
    vcpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as folder, running_endpoint(Path(folder) / "data") as endpoint:
        containers = Path(folder) / "containers" / "bench"
        containers.mkdir(parents=True)
        (Path(folder) / "data" / "images.json").write_text(
            f'{{"local/batch-fanout/bench:1": "{containers}"}}'
        )
        batch = endpoint.client("batch")
        definition = _register(batch, "bench-true", TRIVIAL_COMMAND)
        print(f"machine: {vcpus} CPUs; compute environment vCPUs: {vcpus}")

        gaps = dependency_gaps(batch, definition, arguments.chain)
        print(
            f"dependency gap, plain, median over a chain of {arguments.chain}: {gaps['plain']:.1f} ms (max {gaps['plain_max']} ms; times have ms resolution)"
        )
        print(
            f"dependency gap, N_TO_N, median over {arguments.chain} children (arrays as wide as the machine): {gaps['n_to_n']:.1f} ms"
        )

        rate, elapsed = array_throughput(batch, definition, arguments.children)
        floor = back_to_back(arguments.children, vcpus)
        print(
            f"throughput: {arguments.children}-child array of {' '.join(TRIVIAL_COMMAND)!r} in {elapsed:.2f} s = "
            f"{rate:.0f} children/s"
        )
        print(
            f"floor: the same {arguments.children} processes back to back ({vcpus} at a time, no endpoint) in "
            f"{floor:.2f} s = {arguments.children / floor:.0f} processes/s; endpoint / floor time ratio "
            f"{elapsed / floor:.2f}"
        )

        # The big array waits for a gate job, so that listing measures the store, not the runner.
        gate = batch.submit_job(
            jobName="gate", jobQueue=QUEUE, jobDefinition=_register(batch, "bench-sleep", ["sleep", "600"])
        )
        array_id = batch.submit_job(
            jobName="big",
            jobQueue=QUEUE,
            jobDefinition=definition,
            arrayProperties={"size": 10_000},
            dependsOn=[{"jobId": gate["jobId"]}],
        )["jobId"]
        children = [f"{array_id}:{index}" for index in range(100)]
        describe = latency(lambda: batch.describe_jobs(jobs=children), arguments.repeats)
        print(f"DescribeJobs of 100 ids: median {describe:.1f} ms")
        list_page = latency(
            lambda: batch.list_jobs(arrayJobId=array_id, jobStatus="PENDING"), arguments.repeats
        )
        print(f"ListJobs of a 10,000-child array, first page (100): median {list_page:.1f} ms")

        def list_all() -> None:
            token = None
            while True:
                kwargs: dict[str, Any] = {"arrayJobId": array_id, "jobStatus": "PENDING", "maxResults": 1000}
                if token:
                    kwargs["nextToken"] = token
                token = batch.list_jobs(**kwargs).get("nextToken")
                if not token:
                    return

        list_everything = latency(list_all, max(3, arguments.repeats // 5))
        print(f"ListJobs of a 10,000-child array, all 10 pages of 1,000: median {list_everything:.1f} ms")
        parent = batch.describe_jobs(jobs=[array_id])["jobs"][0]
        summary_call = latency(lambda: batch.describe_jobs(jobs=[array_id]), arguments.repeats)
        print(
            f"DescribeJobs of the 10,000-child parent (statusSummary {parent['arrayProperties']['statusSummary']['PENDING']}"
            f" PENDING): median {summary_call:.1f} ms"
        )
        batch.terminate_job(jobId=gate["jobId"], reason="benchmark over")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
