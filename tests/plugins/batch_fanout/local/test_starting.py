"""Starting the endpoint's process: ``batch-fanout local start`` (detached) and ``start_endpoint`` (a
child of the test) share the serve options and the wait for the endpoint to answer."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batch_fanout.local import CONTAINERS_DIR_ENV
from batch_fanout.local.cli import ServeOptions, add_parser, running_state, spawn_endpoint, stop_endpoint
from batch_fanout.local.testing import start_endpoint

BATCH_FANOUT = [sys.executable, "-m", "batch_fanout.cli"]


def _parse(command: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["local", *command])


def test_the_serve_command_line_reads_back_as_the_same_options(tmp_path: Path) -> None:
    options = ServeOptions(
        containers_dir=tmp_path / "containers",
        vcpus=3,
        kill_grace_seconds=2.5,
        max_log_bytes=4096,
        credentials_file=tmp_path / "team.json",
        runtime="podman",
        gpus=0,
    )
    command = options.command(tmp_path / "data", 8123)
    assert command[:3] == [sys.executable, "-m", "batch_fanout.local"]
    args = _parse(command[3:])
    assert args.local_command == "serve"
    assert (args.port, args.data_dir) == (8123, str(tmp_path / "data"))
    assert ServeOptions.from_arguments(args) == options


def test_options_left_out_are_left_to_the_endpoint_and_a_credentials_file_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    command = ServeOptions(credentials_file=Path("team.json")).command(tmp_path / "data", 0)
    assert command[3:] == [
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        "--credentials-file",
        str(tmp_path / "team.json"),
    ]
    assert ServeOptions.from_arguments(_parse(["start"])) == ServeOptions()


def _unreadable_settings(tmp_path: Path) -> Path:
    """A data directory whose settings.json the endpoint refuses at start, naming the file."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "settings.json").write_text("{not json")
    return data_dir


def test_an_endpoint_that_exits_at_start_raises_with_the_end_of_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONTAINERS_DIR_ENV, raising=False)
    data_dir = _unreadable_settings(tmp_path)
    with pytest.raises(RuntimeError) as raised:
        start_endpoint(data_dir)
    message = str(raised.value)
    assert message.startswith(
        f"the local endpoint did not start: it exited with code 2 (data directory {data_dir.resolve()}):\n"
    )
    assert f"{data_dir / 'settings.json'} is not valid JSON" in message
    assert not (data_dir / "endpoint.json").exists()


def _processes_naming(data_dir: Path) -> list[int]:
    """The pids of the processes whose command line names ``data_dir``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or one that has just ended
            continue
        if os.fsencode(data_dir) in arguments:
            pids.append(int(entry.name))
    return pids


def test_an_endpoint_that_does_not_answer_in_time_is_stopped_and_the_error_names_the_timeout(
    tmp_path: Path, containers_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    with pytest.raises(RuntimeError) as raised:
        spawn_endpoint(data_dir, 0, ServeOptions(containers_dir=containers_dir), timeout=0)
    assert str(raised.value).startswith(
        f"the local endpoint did not start: it did not answer in 0 s (data directory {data_dir}):\n"
    )
    assert running_state(data_dir) is None
    assert _processes_naming(data_dir) == []


def test_local_start_that_fails_exits_1_with_the_end_of_the_server_log(tmp_path: Path) -> None:
    data_dir = _unreadable_settings(tmp_path)
    environment = {name: value for name, value in os.environ.items() if name != CONTAINERS_DIR_ENV}
    result = subprocess.run(
        [*BATCH_FANOUT, "local", "start", "--data-dir", str(data_dir), "--port", "0"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "the local endpoint did not start: it exited with code 2" in result.stderr
    assert f"{data_dir / 'settings.json'} is not valid JSON" in result.stderr


def test_local_start_detaches_the_endpoint_and_refuses_another_runtime_for_it(
    tmp_path: Path, containers_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    start = [*BATCH_FANOUT, "local", "start", "--data-dir", str(data_dir), "--port", "0"]
    start += ["--containers-dir", str(containers_dir)]
    started = subprocess.run(start, capture_output=True, text=True, timeout=90, check=False)
    try:
        assert started.returncode == 0, started.stderr
        pid = json.loads((data_dir / "endpoint.json").read_text())["pid"]
        # A session of its own: the terminal's hang-up and Ctrl-C do not reach it.
        assert os.getsid(pid) == pid != os.getsid(0)
        other = subprocess.run(
            [*start, "--runtime", "podman"], capture_output=True, text=True, timeout=90, check=False
        )
        assert other.returncode == 1
        assert other.stderr.strip() == (
            f"the local endpoint of {data_dir} runs jobs with the process runtime, not podman: "
            f"stop it first (batch-fanout local stop --data-dir {data_dir})"
        )
        assert json.loads((data_dir / "endpoint.json").read_text())["pid"] == pid
    finally:
        stopped = stop_endpoint(data_dir)
    assert stopped
