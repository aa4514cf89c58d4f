"""The container runtime's parts: the ``run`` argument vector, labels, mounts, the pull error, and
finding containers by label in the engines' listing formats. A real engine is used where it answers."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from batch_fanout.images.engine import ContainerEngine
from batch_fanout.local.runtimes.container import (
    ATTEMPT_LABEL,
    ENDPOINT_LABEL,
    JOB_LABEL,
    ContainerAttempt,
    ContainerRuntime,
    ImageNotFoundError,
    _json_entries,
    _summary,
    container_name,
    endpoint_id,
    file_mounts,
)

PODMAN = ContainerEngine(
    name="podman",
    binary="/usr/bin/podman",
    global_args=("--runtime", "/usr/sbin/runc"),
    limit_args=("--ulimit", "nofile=1024:1024"),
)


def attempt(**changes: object) -> ContainerAttempt:
    values: dict[str, object] = {
        "attempt_id": "a1b2",
        "job_id": "job-1:3",
        "job_definition": "batch-fanout-stress-ng",
        "image": "local/batch-fanout/stress_ng:latest",
        "command": ["python", "-m", "stress_follower"],
        "environment": {"AWS_BATCH_JOB_ARRAY_INDEX": "3", "NOTE": "a value with spaces = and ;"},
        "vcpus": 1.5,
        "memory_mib": 512,
    }
    values.update(changes)
    return ContainerAttempt(**values)  # type: ignore[arg-type]


def test_run_command_carries_the_job_definition(tmp_path: Path) -> None:
    runtime = ContainerRuntime(PODMAN, tmp_path)
    results = tmp_path / "results"
    command = runtime.run_command(attempt(environment={"RESULTS_URI": f"file://{results}", "A": "1"}))

    assert command[:5] == ["/usr/bin/podman", "--runtime", "/usr/sbin/runc", "run", "--name"]
    assert command[5] == container_name("a1b2")
    # The image, then the job definition's command unchanged: the image's CMD is replaced, not prefixed.
    image_at = command.index("local/batch-fanout/stress_ng:latest")
    assert command[image_at + 1 :] == ["python", "-m", "stress_follower"]
    options = command[:image_at]
    assert "--pull=never" in options
    assert options[options.index("--cpus") + 1] == "1.5"
    assert options[options.index("--memory") + 1] == "512m"
    assert options[options.index("--memory-swap") + 1] == "512m"
    assert "--init" not in options
    assert options[options.index("--ulimit") : options.index("--ulimit") + 2] == [
        "--ulimit",
        "nofile=1024:1024",
    ]
    assert f"{results}:{results}" in options  # mounted at the path the job was given
    assert results.is_dir()
    environment = [options[i + 1] for i, arg in enumerate(options) if arg == "--env"]
    assert environment == [f"RESULTS_URI=file://{results}", "A=1"]
    labels = dict(options[i + 1].split("=", 1) for i, arg in enumerate(options) if arg == "--label")
    assert labels[ENDPOINT_LABEL] == endpoint_id(tmp_path)
    assert labels[JOB_LABEL] == "job-1:3"
    assert labels[ATTEMPT_LABEL] == "a1b2"


def test_run_command_without_command_runs_the_image_cmd_and_init_on_request(tmp_path: Path) -> None:
    command = ContainerRuntime(PODMAN, tmp_path).run_command(
        attempt(command=[], init_process=True, memory_mib=0, vcpus=0)
    )
    assert command[-1] == "local/batch-fanout/stress_ng:latest"
    assert "--init" in command
    assert "--memory" not in command and "--cpus" not in command


def test_rootless_podman_maps_the_caller_to_the_image_user(tmp_path: Path) -> None:
    rootless = ContainerEngine(name="podman", binary="podman", rootless=True)
    command = ContainerRuntime(rootless, tmp_path).run_command(attempt(), uid=10001, gid=10001)
    assert "--userns=keep-id:uid=10001,gid=10001" in command
    assert not any(
        arg.startswith("--userns") for arg in ContainerRuntime(PODMAN, tmp_path).run_command(attempt())
    )


def test_file_mounts_are_outermost_and_inputs_must_exist(tmp_path: Path) -> None:
    graph = tmp_path / "data" / "rome99.gr"
    graph.parent.mkdir()
    graph.write_text("p sp 1 0\n")
    results = tmp_path / "results"
    environment = {
        "RESULTS_URI": f"file://{results}",
        "RUN_OUTPUT": f"file://{results}/run/1",
        "BUCKET": "s3://bucket/prefix",
    }
    command = ["--graph", f"file://{graph}", "--other", f"file://{tmp_path}/missing.gr"]
    assert file_mounts(environment, command) == sorted([graph, results])
    assert file_mounts({"RELATIVE": "file://relative/path"}) == []


def test_endpoint_ids_differ_by_data_directory(tmp_path: Path) -> None:
    assert endpoint_id(tmp_path / "a") != endpoint_id(tmp_path / "b")
    assert endpoint_id(tmp_path / "a") == endpoint_id(tmp_path / "x" / ".." / "a")


def test_listings_of_both_engines_are_read() -> None:
    podman = json.dumps(
        [{"Names": ["batch-job-a1"], "State": "running", "Labels": {ATTEMPT_LABEL: "a1", JOB_LABEL: "j:0"}}]
    )
    docker = json.dumps(
        {"Names": "batch-job-a2", "State": "exited", "Labels": f"{ATTEMPT_LABEL}=a2,{JOB_LABEL}=j"}
    )
    assert [_summary(entry) for entry in _json_entries(podman)] == [
        {"name": "batch-job-a1", "state": "running", "attempt": "a1", "job_id": "j:0"}
    ]
    assert [_summary(entry) for entry in _json_entries(docker + "\n")] == [
        {"name": "batch-job-a2", "state": "exited", "attempt": "a2", "job_id": "j"}
    ]
    assert _json_entries("") == []


needs_podman = pytest.mark.skipif(
    shutil.which("podman") is None, reason="podman is not installed (make images installs it)"
)


@needs_podman
def test_a_missing_image_is_a_pull_error_like_aws(tmp_path: Path) -> None:
    runtime = ContainerRuntime(ContainerEngine.detect("podman"), tmp_path)
    with pytest.raises(ImageNotFoundError) as raised:
        runtime.check_image("local/batch-fanout/never-built:0.0.0")
    message = str(raised.value)
    assert message.startswith("CannotPullContainerError: ")
    assert "local/batch-fanout/never-built:0.0.0" in message
    assert "batch-fanout images build" in message


@needs_podman
def test_find_and_signal_answer_for_containers_that_do_not_exist(tmp_path: Path) -> None:
    runtime = ContainerRuntime(ContainerEngine.detect("podman"), tmp_path)
    assert runtime.find(**{ATTEMPT_LABEL: "no-such-attempt"}) == []
    runtime.signal("no-such-attempt", signal.SIGTERM)  # nothing to stop is not an error
    assert runtime.stop_leftovers("no-such-attempt") is False
    assert runtime.oom_killed("no-such-attempt") is False
