"""stress-ng follower: one array child runs one test of ``stress-tests.txt``.

Child *i* (its logical index, see ``batch_fanout_job.index``) takes line *i + 1*, checks it against an
allowlist of stress-ng options, runs stress-ng with its own ``--yaml`` output (and ``--metrics-brief`` unless the line asks for
metrics), and writes
``stress/<i>.log`` (stress-ng's console output) and then ``stress/<i>.json`` (the metrics). A stress-ng
failure fails the job with its reason.

Run as AWS Batch runs it::

    AWS_BATCH_JOB_ARRAY_INDEX=1 RESULTS_URI=file:///tmp/results RUN_PREFIX=demo/run1 python -m stress_follower
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

from batch_fanout_job.errors import JobError
from batch_fanout_job.index import logical_index
from batch_fanout_job.runtime import log_event, maybe_fail_once, run_cli
from batch_fanout_job.store import RunStore
from batch_fanout_job.stress_ng import (
    StressTest,
    check_test_line,
    find_stress_ng,
    load_yaml,
    metrics_from_yaml,
)

JOB = "stress_follower"
WORKLOAD = "stress"
TESTS_FILE = "stress-tests.txt"


def select_test(tests_text: str, environ: Mapping[str, str]) -> tuple[int, StressTest]:
    """Resolve the logical index and check its line of ``stress-tests.txt``."""
    lines = tests_text.splitlines()
    index = logical_index(environ, len(lines), f"{TESTS_FILE} work list")
    return index, check_test_line(lines[index], index + 1)


def describe_failure(exit_code: int, output: str) -> str:
    """The reason of a stress-ng failure: its exit code and its last error lines."""
    meaningful = [line for line in output.splitlines() if line.strip()]
    errors = [
        line
        for line in meaningful
        if "error" in line.lower()
        or "fail" in line.lower()
        or "invalid" in line.lower()
        or "must be" in line.lower()
    ]
    tail = (errors or meaningful)[-3:]
    return f"stress-ng exited with {exit_code}: " + (" | ".join(tail) if tail else "no output")


def build_result(
    index: int, test: StressTest, exit_code: int, document: Any, runtime: dict[str, Any]
) -> dict[str, Any]:
    """The ``stress/<index>.json`` document: stable results first, volatile run data under ``runtime``."""
    metrics, system_info = metrics_from_yaml(document)
    return {
        "index": index,
        "line": test.line,
        "method": test.method,
        "stressors": test.stressors,
        "stress_ng_version": system_info.get("stress-ng-version"),
        "exit_code": exit_code,
        "metrics": metrics,
        "runtime": runtime,
    }


def run(environ: Mapping[str, str]) -> int:
    store = RunStore.from_environ(environ)
    index, test = select_test(store.read_text(TESTS_FILE), environ)
    maybe_fail_once(environ, store, WORKLOAD, index)
    executable = find_stress_ng()
    log_event(JOB, "started", index=index, method=test.method, line=test.line)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="stress-ng-") as folder:
        yaml_path = os.path.join(folder, "metrics.yaml")
        arguments = list(test.arguments)
        if "--metrics" not in arguments and "--metrics-brief" not in arguments:
            arguments.append("--metrics-brief")  # without it the YAML holds no metrics
        command = [executable, *arguments, "--yaml", yaml_path]
        # stress-ng writes everything, metrics included, to stderr; keep both streams in one log.
        completed = subprocess.run(
            command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
        )
        output = completed.stdout
        yaml_text = ""
        if os.path.exists(yaml_path):
            with open(yaml_path, encoding="utf-8") as handle:
                yaml_text = handle.read()
    finished = time.time()
    sys.stderr.write(output)
    store.write_text(f"{WORKLOAD}/{index}.log", output)
    if completed.returncode != 0:
        raise JobError(f"test {index} ({test.line!r}): {describe_failure(completed.returncode, output)}")
    if not yaml_text:
        raise JobError(f"test {index} ({test.line!r}): stress-ng wrote no YAML metrics")
    runtime = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(finished - started, 3),
        "job_id": environ.get("AWS_BATCH_JOB_ID"),
        "attempt": environ.get("AWS_BATCH_JOB_ATTEMPT"),
    }
    result = build_result(index, test, completed.returncode, load_yaml(yaml_text), runtime)
    uri = store.write_json(f"{WORKLOAD}/{index}.json", result)
    print(
        f"test {index}: {test.method}: {result['metrics']['bogo_ops_per_second_real']:.2f} bogo-ops/s "
        f"(stress-ng {result['stress_ng_version']}) -> {uri}"
    )
    log_event(JOB, "finished", index=index, output=uri, seconds=runtime["seconds"])
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stress_follower", description=__doc__.splitlines()[0])
    return run_cli(JOB, parser, lambda _args, job_environ: run(job_environ), argv, environ)


if __name__ == "__main__":
    sys.exit(main())
