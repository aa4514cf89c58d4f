"""A tiny job for the local endpoint's tests: each argument is one step, run in order.

Steps: ``print:TEXT``, ``env`` (prints the AWS_BATCH_* variables as JSON), ``print-env:NAME`` (prints
``NAME=<value>``, empty when unset), ``touch:PATH`` (creates a
file), ``pidfile:DIR`` (writes its pid to ``DIR/<index>-<attempt>.pid``), ``wait:PATH`` (waits, at most 60 s, until a file exists), ``append:PATH`` (appends
``<index> <start-ns>`` to a file), ``fail-until-attempt:N`` (exits 3 while the attempt number is below
N), ``exit:CODE``, ``exit-index:I:CODE`` (exits CODE in array child I), ``ignore-sigterm``, ``trap-sigterm`` (prints and exits 143 on SIGTERM),
``allocate:MIB`` (holds that much memory), ``lines:N:BYTES`` (prints N lines of BYTES characters),
``spin`` (waits forever).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

WAIT_LIMIT_SECONDS = 60.0


def _on_sigterm(signum: int, frame: object) -> None:
    print("got SIGTERM", flush=True)
    sys.exit(143)


def main(steps: list[str]) -> int:
    start = time.time_ns()
    held: list[bytearray] = []
    for step in steps:
        name, _, value = step.partition(":")
        if name == "print":
            print(value, flush=True)
        elif name == "print-env":
            print(f"{value}={os.environ.get(value, '')}", flush=True)
        elif name == "env":
            variables = {key: val for key, val in os.environ.items() if key.startswith("AWS_BATCH_")}
            variables["PWD"] = os.getcwd()
            variables["PATH0"] = os.environ["PATH"].split(os.pathsep)[0]
            variables["CUSTOM"] = os.environ.get("CUSTOM", "")
            print(json.dumps(variables, sort_keys=True), flush=True)
        elif name == "pidfile":
            index = os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX", "-")
            attempt = os.environ.get("AWS_BATCH_JOB_ATTEMPT", "-")
            Path(value, f"{index}-{attempt}.pid").write_text(str(os.getpid()))
        elif name == "touch":
            Path(value).touch()
        elif name == "wait":
            deadline = time.monotonic() + WAIT_LIMIT_SECONDS
            while not Path(value).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        elif name == "append":
            with open(value, "a") as record:
                record.write(f"{os.environ.get('AWS_BATCH_JOB_ARRAY_INDEX', '-')} {start} {time.time_ns()}\n")
        elif name == "fail-until-attempt":
            if int(os.environ["AWS_BATCH_JOB_ATTEMPT"]) < int(value):
                print(f"failing attempt {os.environ['AWS_BATCH_JOB_ATTEMPT']}", flush=True)
                return 3
        elif name == "exit":
            return int(value)
        elif name == "exit-index":
            index, _, code = value.partition(":")
            if os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX") == index:
                return int(code)
        elif name == "ignore-sigterm":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif name == "trap-sigterm":
            signal.signal(signal.SIGTERM, _on_sigterm)
        elif name == "allocate":
            block = bytearray(int(value) * 1024 * 1024)
            for offset in range(0, len(block), 4096):
                block[offset] = 1
            held.append(block)
            print(f"holding {value} MiB", flush=True)
        elif name == "lines":
            count, _, size = value.partition(":")
            line = "x" * int(size)
            for _ in range(int(count)):
                print(line)
            sys.stdout.flush()
        elif name == "spin":
            while True:  # until a signal stops the process; pause returns after handled signals
                signal.pause()
        else:
            print(f"unknown step {step!r}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
