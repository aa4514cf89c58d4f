"""A tiny job for the local endpoint's tests: each argument is one step, run in order.

Steps: ``print:TEXT``, ``env`` (prints the AWS_BATCH_* variables as JSON), ``print-env:NAME`` (prints
``NAME=<value>``, empty when unset), ``touch:PATH`` (creates a
file), ``pidfile:DIR`` (writes its pid to ``DIR/<index>-<attempt>.pid``), ``wait:PATH`` (waits, at most 60 s, until a file exists), ``append:PATH`` (appends
``<index> <start-ns>`` to a file), ``fail-until-attempt:N`` (exits 3 while the attempt number is below
N), ``exit:CODE``, ``exit-index:I:CODE`` (exits CODE in array child I), ``ignore-sigterm``, ``trap-sigterm`` (prints and exits 143 on SIGTERM),
``allocate:MIB`` (holds that much memory), ``lines:N:BYTES`` (prints N lines of BYTES characters),
``spin`` (waits forever), ``serve:PORT:PATH`` (a multi-node job's main node: listens on 127.0.0.1:PORT
until each other node has said hello, then writes their messages to PATH), ``hello:PORT`` (another
node: connects to the main node's address and port and says hello; the connection is retried while
the main node is not listening yet).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

WAIT_LIMIT_SECONDS = 60.0


def _on_sigterm(signum: int, frame: object) -> None:
    print("got SIGTERM", flush=True)
    sys.exit(143)


def serve(port: int, path: str) -> None:
    """Accept one hello from every other node of the job, answer each, and record them."""
    expected = int(os.environ["AWS_BATCH_JOB_NUM_NODES"]) - 1
    messages: list[str] = []
    with socket.create_server(("127.0.0.1", port)) as server:
        server.settimeout(WAIT_LIMIT_SECONDS)
        print(f"main node listening on port {port}", flush=True)
        while len(messages) < expected:
            connection, _ = server.accept()
            with connection:
                messages.append(connection.makefile().readline().strip())
                connection.sendall(b"welcome\n")
    Path(path).write_text("\n".join(sorted(messages)) + "\n")


def hello(port: int) -> None:
    """Say hello to the main node at the address AWS Batch gives the other nodes."""
    address = os.environ["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"]
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while True:
        try:
            connection = socket.create_connection((address, port), timeout=WAIT_LIMIT_SECONDS)
            break
        except ConnectionRefusedError:  # the main node runs but does not listen yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with connection:
        connection.sendall(f"hello from node {os.environ['AWS_BATCH_JOB_NODE_INDEX']}\n".encode())
        print(f"main node answered: {connection.makefile().readline().strip()}", flush=True)


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
        elif name == "serve":
            port, _, path = value.partition(":")
            serve(int(port), path)
        elif name == "hello":
            hello(int(value))
        elif name == "spin":
            while True:  # until a signal stops the process; pause returns after handled signals
                signal.pause()
        else:
            print(f"unknown step {step!r}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
