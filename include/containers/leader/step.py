"""Step job: one node of a job dependency graph (the "master job" pattern: A → B, C, D; B → D; C → E;
D, E → F).

A step checks that every step it runs after has finished (its record is in the results store), does
its work (``--work-seconds`` of CPU, by default none), and writes ``steps/<name>.json`` with when it
started and stopped. When it finds an upstream record missing it fails: that would mean the scheduler
started it before its dependencies ended. The step given ``--summarize`` also writes
``steps/summary.json``, the order in which every step of the graph ran.

Run as AWS Batch runs it::

    RESULTS_URI=file:///tmp/results RUN_PREFIX=demo/run1 python -m step --name D --after A,B
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping, Sequence

from batch_fanout_job.errors import BadInputError, JobError
from batch_fanout_job.runtime import log_event, parse_optional, run_cli
from batch_fanout_job.store import RunStore

JOB = "step"
STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def parse_names(text: str | None, option: str) -> list[str]:
    """A comma list of step names (``none`` for no names).

    :raises BadInputError: naming the option and the bad name.
    """
    value = parse_optional(text)
    if value is None:
        return []
    names = [name.strip() for name in value.split(",")]
    for name in names:
        if not STEP_NAME.match(name):
            raise BadInputError(f"{option} {text!r}: {name!r} is not a step name (letters, digits, - and _)")
    return names


def burn_cpu(seconds: float) -> int:
    """Busy work for ``seconds``: a step that does nothing would hide scheduling gaps."""
    deadline = time.perf_counter() + seconds
    rounds = 0
    while time.perf_counter() < deadline:
        sum(i * i for i in range(10_000))
        rounds += 1
    return rounds


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    name = parse_names(args.name, "--name")
    if len(name) != 1:
        raise BadInputError(f"--name {args.name!r}: give exactly one step name")
    after = parse_names(args.after, "--after")
    summarize = parse_names(args.summarize, "--summarize")
    try:
        work_seconds = float(args.work_seconds)
    except ValueError:
        raise BadInputError(f"--work-seconds {args.work_seconds!r} is not a number") from None
    if not 0 <= work_seconds <= 3600:
        raise BadInputError(f"--work-seconds {work_seconds} is outside 0..3600")

    store = RunStore.from_environ(environ)
    started = time.time()
    missing = [upstream for upstream in after if not store.exists(f"steps/{upstream}.json")]
    if missing:
        raise JobError(
            f"step {name[0]} started before {', '.join(missing)} finished: no steps/<name>.json for them"
        )
    rounds = burn_cpu(work_seconds)
    record = {
        "name": name[0],
        "after": after,
        "job_id": environ.get("AWS_BATCH_JOB_ID"),
        "started_at": started,
        "stopped_at": time.time(),
        "work_rounds": rounds,
    }
    store.write_json(f"steps/{name[0]}.json", record)
    log_event(JOB, "done", name=name[0], after=",".join(after))
    if summarize:
        records = [store.read_json(f"steps/{step}.json") for step in summarize]
        order = [entry["name"] for entry in sorted(records, key=lambda entry: entry["stopped_at"])]
        store.write_json("steps/summary.json", {"steps": records, "order": order})
        print(store.uri("steps/summary.json"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m step", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="this step's name")
    parser.add_argument("--after", default="none", help="comma list of steps that must have finished")
    parser.add_argument("--work-seconds", default="0", help="seconds of CPU work (0..3600)")
    parser.add_argument(
        "--summarize", default="none", help="comma list of every step: write steps/summary.json"
    )
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return run_cli(JOB, build_parser(), run, argv, environ)


if __name__ == "__main__":
    sys.exit(main())
