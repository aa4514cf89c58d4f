"""What every job does around its work: structured log lines, failure injection, exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from batch_fanout_job.errors import EXIT_ERROR, EXIT_INJECTED_FAILURE, EXIT_OK, EXIT_USAGE, JobError
from batch_fanout_job.store import RunStore

FAIL_ONCE_VARIABLE = "BATCH_FANOUT_FAIL_ONCE"
FAIL_ONCE_FOLDER = "_fail-once"


def log_event(job: str, event: str, **fields: Any) -> None:
    """Write one structured log line (JSON) to stderr, where CloudWatch collects it.

    :param job: the job's name, e.g. ``stress_follower``.
    :param event: what happened, e.g. ``started``.
    :param fields: values that describe it.
    """
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "job": job, "event": event}
    record.update(fields)
    print(json.dumps(record, sort_keys=False, default=str), file=sys.stderr, flush=True)


def fail_once_indices(environ: Mapping[str, str]) -> set[int]:
    """The logical indices listed in ``BATCH_FANOUT_FAIL_ONCE`` (empty when unset).

    :raises JobError: on a malformed list.
    """
    raw = environ.get(FAIL_ONCE_VARIABLE, "").strip()
    if not raw or raw.lower() == "none":
        return set()
    indices: set[int] = set()
    for raw_entry in raw.split(","):
        entry = raw_entry.strip()
        if not entry.isdigit():
            raise JobError(f"{FAIL_ONCE_VARIABLE}={raw!r}: {entry!r} is not a non-negative integer")
        indices.add(int(entry))
    return indices


def maybe_fail_once(environ: Mapping[str, str], store: RunStore, workload: str, index: int) -> None:
    """Fail on purpose on the first try of a listed index; let every later try through.

    The marker ``<run>/_fail-once/<workload>-<index>`` records the first try, so the retry succeeds.

    :param environ: the job's environment.
    :param store: the run's store.
    :param workload: the array job's workload name (``stress`` or ``shortest_path``).
    :param index: the logical index of this try.
    :raises JobError: with exit code 3, when this is the injected failure.
    """
    if index not in fail_once_indices(environ):
        return
    marker = f"{FAIL_ONCE_FOLDER}/{workload}-{index}"
    if store.exists(marker):
        return
    store.write_text(marker, f"first try of {workload} index {index} failed on purpose\n")
    raise JobError(
        f"injected failure: {FAIL_ONCE_VARIABLE} lists logical index {index} of {workload}; this first try "
        "fails on purpose and the retry will succeed",
        exit_code=EXIT_INJECTED_FAILURE,
    )


def run_job(job: str, work: Callable[[], int | None]) -> int:
    """Run a job's work, turning a :class:`JobError` into one clear line and its exit code.

    :param job: the job's name for log lines.
    :param work: the job's body; returns an exit code or None for success.
    """
    try:
        result = work()
    except JobError as error:
        print(f"{job}: error: {error}", file=sys.stderr, flush=True)
        log_event(job, "failed", reason=str(error), exit_code=error.exit_code)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"{job}: interrupted", file=sys.stderr, flush=True)
        return EXIT_ERROR
    return EXIT_OK if result is None else result


def run_cli(
    job: str,
    parser: argparse.ArgumentParser,
    work: Callable[[argparse.Namespace, Mapping[str, str]], int | None],
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """A job's ``main``: parse its command line (a usage error exits with argparse's code, 2) and run
    ``work(args, environ)`` through :func:`run_job`."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code) if isinstance(exit_.code, int) else EXIT_USAGE
    return run_job(job, lambda: work(args, os.environ if environ is None else environ))


def parse_optional(value: str | None) -> str | None:
    """Map the literal ``none`` (a Batch ``Ref::`` parameter must have a value) and '' to None."""
    if value is None:
        return None
    stripped = value.strip()
    return None if stripped == "" or stripped.lower() == "none" else stripped
