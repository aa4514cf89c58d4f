"""Watching a large array job to its end: API calls and how late the end is noticed.

Submits one array job of ``--size`` children (``sleep --child-seconds``) to a fresh local endpoint and
watches it, at the same time and each with its own boto3 client, with:

- ``BatchFanoutOperator`` (this project): its synchronous poll loop, at most ``poll_interval`` apart
  (sooner in its first seconds, :func:`batch_fanout.polling.next_poll_delay`);
- ``BatchFanoutSensor`` (this project): ``poke`` mode, as the fan-out DAGs' watchers run;
- ``BatchFanoutTrigger`` (this project): the deferred watch, with the same schedule;
- the Amazon provider's ``BatchSensor``: its ``poke`` every ``poke_interval`` seconds;
- the Amazon provider's ``BatchOperator.monitor_job`` (synchronous ``wait_for_job`` with its
  exponential back-off), the path a non-deferrable ``BatchOperator`` takes;
- one poll of "per-child progress by describing every child" (DescribeJobs of all children, 100 ids
  a call), the naive way to get per-child states, for scale.

API calls are counted per operation with botocore's event hooks (``before-call.batch.*``), and
polls by counting the watcher's own state reads, so DescribeJobs per poll is calls / polls (target:
1 for a 10,000-child array). The delay is the time between the parent's ``stoppedAt`` and the
watcher seeing it terminal. The load average and the versions are printed beside the figures.

Usage::

    python benchmarks/provider_array_watch.py [--size 10000] [--poll-interval 5] [--child-seconds 2] [--vcpus 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

CONN_ID = "batch_fanout_aws"


class FakeTaskInstance:
    """Just enough of a task instance for the operators' XCom pushes (links, job id)."""

    dag_id = "benchmark"
    task_id = "watch"
    run_id = "benchmark"
    map_index = -1
    try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def count_calls(client: Any, counter: Counter[str]) -> None:
    client.meta.events.register("before-call.batch.*", lambda model, **_: counter.update([model.name]))


def count_polls(target: Any, method: str) -> Counter[str]:
    """Count the calls of ``target.<method>`` (a watcher's state read: one per poll)."""
    polls: Counter[str] = Counter()
    original = getattr(target, method)

    def counted(*args: Any, **kwargs: Any) -> Any:
        polls.update(["poll"])
        return original(*args, **kwargs)

    setattr(target, method, counted)
    return polls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="children in the array (2..10,000)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="seconds between polls")
    parser.add_argument("--child-seconds", type=float, default=2.0, help="how long each child runs (sleep)")
    parser.add_argument("--vcpus", type=int, default=64, help="vCPUs of the local compute environment")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="provider-watch-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    (work / "containers" / "noop").mkdir(parents=True)

    from batch_fanout.local.testing import running_endpoint

    with running_endpoint(work / "data", containers_dir=work / "containers", vcpus=args.vcpus) as endpoint:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(endpoint.connection())
        return run(endpoint, args.size, args.poll_interval, args.child_seconds)


def run(endpoint: Any, size: int, poll_interval: float, child_seconds: float) -> int:
    from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
    from airflow.providers.amazon.aws.operators.batch import BatchOperator
    from airflow.providers.amazon.aws.sensors.batch import BatchSensor

    from batch_fanout.hooks.batch_client import BatchFanoutClientHook
    from batch_fanout.operators.batch import BatchFanoutOperator
    from batch_fanout.sensors.batch import BatchFanoutSensor
    from batch_fanout.triggers.batch import BatchFanoutTrigger

    batch = endpoint.client("batch")
    batch.register_job_definition(
        jobDefinitionName="noop",
        type="container",
        containerProperties={
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench/noop:1",
            "command": ["sleep", str(child_seconds)],
            "resourceRequirements": [{"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "16"}],
        },
    )
    submitted_at = time.time()
    job_id = batch.submit_job(
        jobName="watch-benchmark",
        jobQueue="batch-fanout-queue",
        jobDefinition="noop",
        arrayProperties={"size": size},
    )["jobId"]
    context: Any = {"ti": FakeTaskInstance()}
    results: dict[str, dict[str, Any]] = {}

    def project_operator() -> None:
        calls: Counter[str] = Counter()
        operator = BatchFanoutOperator(
            task_id="watch",
            job_name="x",
            job_definition="noop",
            job_queue="q",
            poll_interval=poll_interval,
            aws_conn_id=CONN_ID,
        )
        count_calls(operator.fanout_hook.batch, calls)
        polls = count_polls(operator.fanout_hook, "get_job_description")
        operator.poll_until_complete(job_id, context)
        results["BatchFanoutOperator (sync poll)"] = {"noticed": time.time(), "calls": calls, "polls": polls}

    def project_sensor() -> None:
        calls: Counter[str] = Counter()
        sensor = BatchFanoutSensor(
            task_id="watch", job_id=job_id, poke_interval=poll_interval, aws_conn_id=CONN_ID
        )
        count_calls(sensor.hook.batch, calls)
        polls = count_polls(sensor, "poke")
        sensor.execute(context)
        results["BatchFanoutSensor (poke mode)"] = {"noticed": time.time(), "calls": calls, "polls": polls}

    def project_trigger() -> None:
        calls: Counter[str] = Counter()
        trigger = BatchFanoutTrigger(job_id=job_id, poll_interval=poll_interval)
        hook = BatchFanoutClientHook(aws_conn_id=CONN_ID)
        count_calls(hook.batch, calls)
        polls = count_polls(hook, "a_job_state")
        trigger.hook = lambda: hook  # type: ignore[method-assign]

        async def watch() -> None:
            async for _ in trigger.run():
                return

        asyncio.run(watch())
        results["BatchFanoutTrigger (deferred)"] = {"noticed": time.time(), "calls": calls, "polls": polls}

    def amazon_sensor() -> None:
        calls: Counter[str] = Counter()
        sensor = BatchSensor(task_id="watch", job_id=job_id, aws_conn_id=CONN_ID, poke_interval=poll_interval)
        count_calls(sensor.hook.conn, calls)
        polls: Counter[str] = Counter()
        while not sensor.poke(context):
            polls.update(["poll"])
            time.sleep(poll_interval)
        polls.update(["poll"])
        results["Amazon BatchSensor (poke)"] = {"noticed": time.time(), "calls": calls, "polls": polls}

    def amazon_operator() -> None:
        calls: Counter[str] = Counter()
        operator = BatchOperator(
            task_id="watch", job_name="x", job_definition="noop", job_queue="q", aws_conn_id=CONN_ID
        )
        operator.job_id = job_id
        count_calls(operator.hook.conn, calls)
        operator.monitor_job(context)
        results["Amazon BatchOperator (monitor_job)"] = {"noticed": time.time(), "calls": calls}

    watchers = [project_operator, project_sensor, project_trigger, amazon_sensor, amazon_operator]
    threads = [threading.Thread(target=watcher, name=watcher.__name__) for watcher in watchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=3600)

    parent = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    ended_at = parent["stoppedAt"] / 1000.0

    # One poll of per-child progress the naive way, for scale: every child described, 100 a call.
    naive: Counter[str] = Counter()
    naive_hook = BatchClientHook(aws_conn_id=CONN_ID)
    naive_client: Any = naive_hook.conn
    count_calls(naive_client, naive)
    child_ids = [f"{job_id}:{index}" for index in range(size)]
    for start in range(0, size, 100):
        naive_client.describe_jobs(jobs=child_ids[start : start + 100])

    print(
        f"# provider array watch: {size} children of `sleep {child_seconds}`, poll interval {poll_interval} s"
    )
    import airflow
    import botocore
    from airflow.providers.amazon import __version__ as amazon_version

    print(
        f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, Airflow "
        f"{airflow.__version__}, Amazon provider {amazon_version}, botocore {botocore.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}; load average (1, 5, 15 min) at the end: "
        + " ".join(f"{load:.1f}" for load in os.getloadavg())
    )
    print(
        f"# array ran {ended_at - submitted_at:.1f} s (submit to parent stoppedAt), status {parent['status']}"
    )
    print("| watcher | polls | DescribeJobs | DescribeJobs per poll | other calls | noticed the end after |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, result in results.items():
        calls = result["calls"]
        other = sum(count for operation, count in calls.items() if operation != "DescribeJobs")
        polls = sum(result["polls"].values()) if "polls" in result else None
        per_poll = f"{calls['DescribeJobs'] / polls:.2f}" if polls else "n/a"
        print(
            f"| {name} | {polls if polls else 'n/a'} | {calls['DescribeJobs']} | {per_poll} | {other} "
            f"| {result['noticed'] - ended_at:.2f} s |"
        )
    print(
        f"| per-child progress by describing every child, ONE poll | 1 | {naive['DescribeJobs']} "
        f"| {naive['DescribeJobs']} | 0 | n/a |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
