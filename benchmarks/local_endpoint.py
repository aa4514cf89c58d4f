"""Benchmarks of the local AWS Batch endpoint; each figure is printed next to its target.

- ``N_TO_N`` release: child *i* of a dependent array starts when child *i* of its dependency ends; the
  gap (``startedAt`` of the dependent minus ``stoppedAt`` of the dependency) per index band, from index
  0 to the last (target: median under 5 ms in every band, so flat in *i*). The dependent array is in a
  higher-priority queue, so that the slot its dependency frees is its own and the gap measures the
  engine, not a queue for capacity;
- plain dependency gap over a chain (target: median under 50 ms);
- API latency (DescribeJobs of the parent, ListJobs of its running children) while 64 children run and
  new ones keep starting as others end (target: median under 5 ms, p99 under 20 ms);
- throughput of a 1,000-child array of ``true`` with 2 slots and with 64 slots (target: 64 slots at
  least as fast as 2, and at least 200 children a second).

Throughput and latency are measured in interleaved rounds (2 slots, 64 slots, latency, again); the
throughput ratio is taken within each round, so that its two runs are moments apart under the same
load, and its median over the rounds is the figure. The load average is printed with every figure, and
the output ends with one ``TARGET`` line per figure that has a target (``benchmarks/summary.py`` collects
them into issue 16's table). Run: ``.venv/bin/python benchmarks/local_endpoint.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from batch_fanout.local.testing import running_endpoint

QUEUE = "batch-fanout-queue"
IMAGE = "local/batch-fanout/bench:1"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def _wait_done(batch: Any, job_id: str, timeout: float = 1800.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return dict(job)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id} did not finish")
        time.sleep(0.05)


def _register(batch: Any, name: str, command: list[str]) -> str:
    return str(
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={
                "image": IMAGE,
                "command": command,
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}],
            },
        )["jobDefinitionArn"]
    )


def _environment_and_queue(batch: Any, name: str, vcpus: int, priority: int) -> str:
    """A compute environment of ``vcpus`` and a queue of ``priority`` on it; returns the queue name."""
    environment = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce",
        type="MANAGED",
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": vcpus,
            "subnets": [],
            "instanceRole": "x",
        },
    )["computeEnvironmentArn"]
    batch.create_job_queue(
        jobQueueName=name,
        priority=priority,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
    )
    return name


def _describe_all(batch: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 100):
        for job in batch.describe_jobs(jobs=ids[start : start + 100])["jobs"]:
            found[job["jobId"]] = job
    return found


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def n_to_n_release(batch: Any, definition: str, size: int) -> list[str]:
    low = _environment_and_queue(batch, "n2n-low", 2, 1)
    high = "n2n-high"
    environment = batch.describe_job_queues(jobQueues=[low])["jobQueues"][0]["computeEnvironmentOrder"]
    batch.create_job_queue(jobQueueName=high, priority=10, computeEnvironmentOrder=environment)
    upstream = batch.submit_job(
        jobName="n2n-up", jobQueue=low, jobDefinition=definition, arrayProperties={"size": size}
    )["jobId"]
    downstream = batch.submit_job(
        jobName="n2n-down",
        jobQueue=high,
        jobDefinition=definition,
        arrayProperties={"size": size},
        dependsOn=[{"jobId": upstream, "type": "N_TO_N"}],
    )["jobId"]
    started = time.monotonic()
    _wait_done(batch, downstream)
    elapsed = time.monotonic() - started
    ups = _describe_all(batch, [f"{upstream}:{index}" for index in range(size)])
    downs = _describe_all(batch, [f"{downstream}:{index}" for index in range(size)])
    gaps = [
        downs[f"{downstream}:{index}"]["startedAt"] - ups[f"{upstream}:{index}"]["stoppedAt"]
        for index in range(size)
    ]
    band = max(1, size // 10)
    medians = [statistics.median(gaps[start : start + band]) for start in range(0, size, band)]
    print(
        f"N_TO_N release, two {size}-child arrays of 'true' on 2 slots ({2 * size / elapsed:.0f} children/s): "
        f"median gap per band of {band} indices {', '.join(f'{m:.0f}' for m in medians)} ms; overall median "
        f"{statistics.median(gaps):.0f} ms, p99 {_percentile(gaps, 0.99):.0f} ms "
        f"[target: every band under 5 ms, flat from index 0 to {size - 1}] ({_load()})"
    )
    return [
        f"N_TO_N release gap, median over indices 0 to {size - 1}: {statistics.median(gaps):.0f} ms "
        f"(target < 5 ms) ({_load()})",
        f"N_TO_N release gap, slowest band of {band} indices (its median): {max(medians):.0f} ms, in band "
        f"{medians.index(max(medians)) + 1} of {len(medians)} (target < 5 ms) ({_load()})",
    ]


def plain_gap(batch: Any, definition: str, chain: int) -> str:
    previous = None
    ids = []
    for _ in range(chain):
        extra: dict[str, Any] = {"dependsOn": [{"jobId": previous}]} if previous else {}
        previous = batch.submit_job(jobName="chain", jobQueue=QUEUE, jobDefinition=definition, **extra)[
            "jobId"
        ]
        ids.append(previous)
    _wait_done(batch, ids[-1])
    jobs = _describe_all(batch, ids)
    gaps = [jobs[after]["startedAt"] - jobs[before]["stoppedAt"] for before, after in itertools.pairwise(ids)]
    print(
        f"plain dependency gap over a chain of {chain}: median {statistics.median(gaps):.0f} ms, max {max(gaps)} ms "
        f"[target: median under 50 ms] ({_load()})"
    )
    return (
        f"plain dependency gap, median over a chain of {chain}: {statistics.median(gaps):.0f} ms "
        f"(target < 50 ms) ({_load()})"
    )


def throughput(batch: Any, definition: str, queue: str, size: int) -> float:
    started = time.monotonic()
    job_id = batch.submit_job(
        jobName="throughput", jobQueue=queue, jobDefinition=definition, arrayProperties={"size": size}
    )["jobId"]
    job = _wait_done(batch, job_id)
    elapsed = time.monotonic() - started
    assert job["arrayProperties"]["statusSummary"]["SUCCEEDED"] == size, job["arrayProperties"]
    return size / elapsed


def latency_under_load(batch: Any, sleeper: str, queue: str, calls: int) -> tuple[list[float], list[float]]:
    """DescribeJobs of the parent and ListJobs of running children while 64 children of ``sleep 1`` run
    and new ones start as they end."""
    parent = batch.submit_job(
        jobName="loaded", jobQueue=queue, jobDefinition=sleeper, arrayProperties={"size": 64 * 30}
    )["jobId"]
    while batch.describe_jobs(jobs=[parent])["jobs"][0]["arrayProperties"]["statusSummary"]["RUNNING"] < 64:
        time.sleep(0.05)
    describe: list[float] = []
    listing: list[float] = []
    for _ in range(calls):
        for samples, call in (
            (describe, lambda: batch.describe_jobs(jobs=[parent])),
            (listing, lambda: batch.list_jobs(arrayJobId=parent, jobStatus="RUNNING")),
        ):
            began = time.perf_counter()
            call()
            samples.append((time.perf_counter() - began) * 1000)
    running = batch.describe_jobs(jobs=[parent])["jobs"][0]["arrayProperties"]["statusSummary"]["RUNNING"]
    batch.terminate_job(jobId=parent, reason="benchmark over")
    _wait_done(batch, parent)
    print(f"  (children running at the end of the latency round: {running})")
    return describe, listing


def idle_latency(batch: Any, definition: str, calls: int) -> tuple[list[float], list[float]]:
    """The same calls with nothing running: what the machine and the client cost."""
    parent = batch.submit_job(
        jobName="idle", jobQueue=QUEUE, jobDefinition=definition, arrayProperties={"size": 64}
    )["jobId"]
    _wait_done(batch, parent)
    describe: list[float] = []
    listing: list[float] = []
    for _ in range(calls):
        for samples, call in (
            (describe, lambda: batch.describe_jobs(jobs=[parent])),
            (listing, lambda: batch.list_jobs(arrayJobId=parent, jobStatus="SUCCEEDED")),
        ):
            began = time.perf_counter()
            call()
            samples.append((time.perf_counter() - began) * 1000)
    return describe, listing


def _report_latency(name: str, samples: list[float], idle: list[float]) -> list[str]:
    print(
        f"{name} while 64 children run: median {statistics.median(samples):.1f} ms, p99 "
        f"{_percentile(samples, 0.99):.1f} ms over {len(samples)} calls "
        f"[target: median under 5 ms, p99 under 20 ms]; the same call with nothing running: median "
        f"{statistics.median(idle):.1f} ms, p99 {_percentile(idle, 0.99):.1f} ms ({_load()})"
    )
    # The same call with nothing running beside it, in the figure: on a loaded machine it tells the
    # endpoint's share of a missed target from the machine's.
    return [
        f"{name} while 64 children run, median: {statistics.median(samples):.1f} ms over {len(samples)} "
        f"calls; nothing running: {statistics.median(idle):.1f} ms (target < 5 ms) ({_load()})",
        f"{name} while 64 children run, p99: {_percentile(samples, 0.99):.1f} ms over {len(samples)} "
        f"calls; nothing running: {_percentile(idle, 0.99):.1f} ms (target < 20 ms) ({_load()})",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--children", type=int, default=1000, help="size of the throughput array")
    parser.add_argument("--n-to-n-size", type=int, default=10_000, help="size of the N_TO_N arrays")
    parser.add_argument("--chain", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of throughput and latency")
    parser.add_argument("--calls", type=int, default=200, help="API calls of each kind per latency round")
    arguments = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, boto3 {version('boto3')}, botocore {version('botocore')}, "
        f"batch-fanout {version('airflow-provider-batch-fanout')}; {_load()}"
    )
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        image_folder = Path(folder) / "containers" / "bench"
        image_folder.mkdir(parents=True)
        data_dir.mkdir()
        (data_dir / "images.json").write_text(json.dumps({IMAGE: str(image_folder)}))
        with running_endpoint(data_dir, vcpus=2) as endpoint:
            batch = endpoint.client("batch")
            trivial = _register(batch, "bench-true", ["true"])
            sleeper = _register(batch, "bench-sleep", ["sleep", "1"])
            two = QUEUE
            wide = _environment_and_queue(batch, "wide", 64, 1)
            targets = [plain_gap(batch, trivial, arguments.chain)]
            rates: dict[int, list[float]] = {2: [], 64: []}
            describe: list[float] = []
            listing: list[float] = []
            idle_describe: list[float] = []
            idle_listing: list[float] = []
            for round_number in range(arguments.rounds):
                for slots, queue in ((2, two), (64, wide)):
                    rate = throughput(batch, trivial, queue, arguments.children)
                    rates[slots].append(rate)
                    print(
                        f"round {round_number + 1}: {arguments.children} 'true' children with {slots} slots: "
                        f"{rate:.0f} children/s ({_load()})"
                    )
                more_describe, more_listing = latency_under_load(batch, sleeper, wide, arguments.calls)
                describe += more_describe
                listing += more_listing
                more_describe, more_listing = idle_latency(batch, trivial, arguments.calls)
                idle_describe += more_describe
                idle_listing += more_listing
            two_rate, wide_rate = statistics.median(rates[2]), statistics.median(rates[64])
            # The ratio of each round's two runs, moments apart under the same load; their median.
            ratios = [wide / two for two, wide in zip(rates[2], rates[64], strict=True)]
            ratio = statistics.median(ratios)
            print(
                f"throughput, {arguments.children}-child array of 'true': {two_rate:.0f}/s with 2 slots, "
                f"{wide_rate:.0f}/s with 64 slots (medians); ratio 64 / 2 slots per round "
                f"{', '.join(f'{r:.2f}' for r in ratios)}, median {ratio:.2f} "
                f"[target: ratio at least 1, each at least 200/s] ({_load()})"
            )
            targets += [
                f"throughput, {arguments.children} children, 64 slots / 2 slots: {ratio:.2f} (median of "
                f"{arguments.rounds} interleaved rounds' ratios, lowest {min(ratios):.2f}) (target >= 1) "
                f"({_load()})",
                f"throughput, {arguments.children} children, 2 slots: {two_rate:.0f} children/s "
                f"(target >= 200 children/s) ({_load()})",
                f"throughput, {arguments.children} children, 64 slots: {wide_rate:.0f} children/s "
                f"(target >= 200 children/s) ({_load()})",
            ]
            targets += _report_latency("DescribeJobs of the array parent", describe, idle_describe)
            targets += _report_latency("ListJobs of the running children", listing, idle_listing)
            targets += n_to_n_release(batch, trivial, arguments.n_to_n_size)
    # One line per figure with a target, collected by benchmarks/summary.py into issue 16's table.
    for line in targets:
        print(f"TARGET {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
