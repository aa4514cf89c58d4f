"""A tiny test job for the provider's tests: records its run, prints lines, exits as told.

It resolves its logical index with the job helper (``AWS_BATCH_JOB_ARRAY_INDEX`` through
``BATCH_FANOUT_INDEX_MAP``), writes ``<record-dir>/<index>.<n>`` for each run of that index (so a test
counts runs per logical index), prints ``--lines`` lines, then exits with ``--exit-code`` unless its
index is in ``--fail-indices`` (fails at once, before any hold) or ``--fail-once`` (fails on the first run only).
``--hold-file`` makes it wait until that file exists (bounded by ``--hold-seconds``), so a test can
keep a job running while it acts and then release it. On success it writes its output,
``<record-dir>/outputs/<index>.out`` holding the id of the job that wrote it.

``--index-source array`` makes it a container that knows nothing of the provider: it takes
``AWS_BATCH_JOB_ARRAY_INDEX`` as its index, as most containers written for AWS Batch do.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from batch_fanout.job_contract import logical_index


def indices(text: str) -> set[int]:
    return {int(part) for part in text.split(",") if part.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record-dir", required=True)
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--fail-indices", default="")
    parser.add_argument("--fail-once", default="")
    parser.add_argument("--lines", type=int, default=3)
    parser.add_argument("--hold-file", default="")
    parser.add_argument("--hold-seconds", type=float, default=60)
    parser.add_argument("--index-source", choices=("contract", "array"), default="contract")
    args = parser.parse_args(argv)

    if args.index_source == "array":
        index = int(os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX", "0"))
    else:
        index = logical_index(os.environ)
    record_dir = Path(args.record_dir)
    record_dir.mkdir(parents=True, exist_ok=True)
    runs = len(list(record_dir.glob(f"{index}.*")))
    (record_dir / f"{index}.{runs + 1}").write_text(os.environ.get("AWS_BATCH_JOB_ID", ""))

    for number in range(args.lines):
        print(f"probe index {index} line {number}", flush=True)

    if index in indices(args.fail_indices):
        print(f"probe index {index} failing on purpose", file=sys.stderr, flush=True)
        return 7

    if args.hold_file:
        deadline = time.monotonic() + args.hold_seconds
        while not Path(args.hold_file).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    if index in indices(args.fail_once) and runs == 0:
        print(f"probe index {index} failing once", file=sys.stderr, flush=True)
        return 5
    if args.exit_code == 0:
        outputs = record_dir / "outputs"
        outputs.mkdir(exist_ok=True)
        (outputs / f"{index}.out").write_text(os.environ.get("AWS_BATCH_JOB_ID", ""))
    else:
        print(f"probe index {index} exits {args.exit_code}: bad input on line 3", flush=True)
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())
