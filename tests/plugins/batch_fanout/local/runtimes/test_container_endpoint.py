"""The local endpoint with the podman runtime: each attempt runs in its job definition's image, as the
image's user, with the limits, environment and mounts AWS gives it; stops reach the container.

The test image is the endpoint tests' ``testjob`` in a Python image with a non-root user, built here
with the same builder as ``batch-fanout images build`` (an offline stand-in base where no registry
answers). Skipped only where no podman is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_fanout.local.testing import EndpointHandle, running_endpoint

pytestmark = [
    pytest.mark.slow,
    pytest.mark.containers,
    # Building the images a first time takes minutes on 2 cores (cold: about 5).
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        shutil.which("podman") is None, reason="podman is not installed (make images installs it)"
    ),
]

TESTJOB_DIR = Path(__file__).resolve().parents[1] / "containers" / "testjob"
# The image the local endpoint tests' job definition names (conftest.TEST_IMAGE).
TEST_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/batch-fanout/testjob:latest"
BASE_IMAGE = "python:3.11.11-slim-bookworm"
IMAGE_UID = 10001
DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN ["useradd", "--uid", "{IMAGE_UID}", "--create-home", "--shell", "/usr/sbin/nologin", "job"]
WORKDIR /opt/testjob
COPY testjob.py ./
USER job
CMD ["python", "testjob.py", "print:from-the-image-cmd"]
"""


@pytest.fixture(scope="module")
def podman() -> Any:
    from batch_fanout.images.engine import ContainerEngine

    return ContainerEngine.detect("podman")


@pytest.fixture(scope="module")
def test_image(podman: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    from batch_fanout.images.build import ImageTarget, build_images

    context = tmp_path_factory.mktemp("testjob-image")
    shutil.copy(TESTJOB_DIR / "testjob.py", context / "testjob.py")
    (context / "Dockerfile").write_text(DOCKERFILE)
    build_images(podman, [ImageTarget(TEST_IMAGE, context / "Dockerfile", context)], say=lambda line: None)
    return TEST_IMAGE


@pytest.fixture(scope="module")
def endpoint(test_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointHandle]:
    data_dir = tmp_path_factory.mktemp("local-batch-podman")
    with running_endpoint(data_dir, vcpus=4, kill_grace_seconds=2, runtime="podman") as handle:
        yield handle


def containers(podman: Any, label: str) -> list[dict[str, Any]]:
    listed = podman.call(["ps", "--all", "--filter", f"label={label}", "--format", "json"]).stdout
    return list(json.loads(listed or "[]"))


def inspect(podman: Any, name: str) -> dict[str, Any]:
    return dict(json.loads(podman.call(["inspect", name]).stdout)[0])


def test_an_array_child_runs_in_its_own_container_as_the_image_user(
    podman: Any,
    submit: Callable[..., str],
    wait_status: Callable[..., dict[str, Any]],
    read_log: Callable[[str], list[str]],
    describe: Callable[[str], dict[str, Any]],
) -> None:
    job_id = submit("env", "print:done", arrayProperties={"size": 2})
    assert wait_status(job_id, timeout=120)["status"] == "SUCCEEDED"
    for index in (0, 1):
        child = describe(f"{job_id}:{index}")
        assert child["status"] == "SUCCEEDED"
        lines = read_log(child["container"]["logStreamName"])
        variables = json.loads(lines[0])
        assert variables["AWS_BATCH_JOB_ID"] == f"{job_id}:{index}"
        assert variables["AWS_BATCH_JOB_ARRAY_INDEX"] == str(index)
        assert variables["AWS_BATCH_JOB_ARRAY_SIZE"] == "2"
        assert variables["AWS_BATCH_JOB_ATTEMPT"] == "1"
        assert variables["AWS_BATCH_JQ_NAME"] == "batch-fanout-queue"
        assert variables["PWD"] == "/opt/testjob"  # the image's WORKDIR, not a host folder
        assert variables["PATH0"] == "/usr/local/sbin"  # the image's PATH, not the project's Python
        assert lines[1] == "done"

        [container] = containers(podman, f"io.github.batch-fanout.local.job-id={job_id}:{index}")
        details = inspect(podman, container["Names"][0])
        assert details["Config"]["User"] == "job"
        assert details["Config"]["Image"].endswith("batch-fanout/testjob:latest")
        assert details["HostConfig"]["NanoCpus"] == 1_000_000_000
        assert details["HostConfig"]["Memory"] == 512 * 1024 * 1024
        assert details["State"]["ExitCode"] == 0


def test_the_results_store_is_mounted_where_the_job_was_told_and_writable(
    submit: Callable[..., str], wait_status: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    written = results / "run" / "out.txt"
    job_id = submit(
        f"touch:{results}/out.txt",
        containerOverrides={"environment": [{"name": "RESULTS_URI", "value": f"file://{results}"}]},
    )
    job = wait_status(job_id, timeout=120)
    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    assert (results / "out.txt").stat().st_uid == IMAGE_UID
    assert not written.exists()


def test_terminate_stops_the_container_with_sigterm_then_sigkill(  # noqa: PLR0917 - fixtures
    podman: Any,
    batch: Any,
    submit: Callable[..., str],
    wait_status: Callable[..., dict[str, Any]],
    read_log: Callable[[str], list[str]],
    until: Callable[..., Any],
) -> None:
    trapping = submit("trap-sigterm", "print:ready", "spin", name="trapping")
    ignoring = submit("ignore-sigterm", "print:ready", "spin", name="ignoring")
    for job_id in (trapping, ignoring):
        running = wait_status(job_id, ("RUNNING",), timeout=120)
        until(lambda stream=running["container"]["logStreamName"]: "ready" in read_log(stream), 60, "ready")
        batch.terminate_job(jobId=job_id, reason="stopped by the test")
    trapped = wait_status(trapping, timeout=60)
    assert trapped["status"] == "FAILED"
    assert trapped["statusReason"] == "stopped by the test"
    assert trapped["container"]["exitCode"] == 143  # its own handler ran
    assert "got SIGTERM" in read_log(trapped["container"]["logStreamName"])
    killed = wait_status(ignoring, timeout=60)
    assert killed["container"]["exitCode"] == 137  # SIGKILL after the grace period
    for job_id in (trapping, ignoring):
        [container] = containers(podman, f"io.github.batch-fanout.local.job-id={job_id}")
        assert container["State"] == "exited"


def test_an_image_that_is_not_there_fails_like_a_failed_pull(
    batch: Any, wait_status: Callable[..., dict[str, Any]]
) -> None:
    definition = batch.register_job_definition(
        jobDefinitionName="never-built",
        type="container",
        containerProperties={
            "image": "local/batch-fanout/never-built:latest",
            "command": ["python", "-c", "pass"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
        },
    )["jobDefinitionArn"]
    job_id = batch.submit_job(jobName="never", jobQueue="batch-fanout-queue", jobDefinition=definition)[
        "jobId"
    ]
    job = wait_status(job_id, timeout=60)
    assert job["status"] == "FAILED"
    assert job["statusReason"].startswith("CannotPullContainerError: ")
    assert "local/batch-fanout/never-built:latest" in job["statusReason"]


def test_memory_above_the_limit_is_an_out_of_memory_error(
    submit: Callable[..., str], wait_status: Callable[..., dict[str, Any]]
) -> None:
    job_id = submit(
        "allocate:400",
        containerOverrides={"resourceRequirements": [{"type": "MEMORY", "value": "128"}]},
    )
    job = wait_status(job_id, timeout=120)
    assert job["status"] == "FAILED"
    assert job["container"]["exitCode"] == 137
    assert job["statusReason"].startswith("OutOfMemoryError")


def test_a_restarted_endpoint_finds_the_containers_of_the_attempts_it_lost(
    podman: Any, test_image: str, tmp_path: Path
) -> None:
    from batch_fanout.local.runtimes.container import endpoint_id

    data_dir = tmp_path / "restarted"
    handle = running_endpoint(data_dir, vcpus=2, kill_grace_seconds=2, runtime="podman")
    with handle as first:
        batch = first.client("batch")
        definition = batch.register_job_definition(
            jobDefinitionName="spinner",
            type="container",
            containerProperties={
                "image": test_image,
                "command": ["python", "testjob.py", "spin"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
            },
        )["jobDefinitionArn"]
        job_id = batch.submit_job(jobName="spin", jobQueue="batch-fanout-queue", jobDefinition=definition)[
            "jobId"
        ]
        label = f"io.github.batch-fanout.local.endpoint={endpoint_id(data_dir)}"

        def running() -> bool:
            return any(entry["State"] == "running" for entry in containers(podman, label))

        deadline_check(running, "the container to run")
        first.kill()
        assert running(), "the container outlives a kill -9 of the endpoint"
    with running_endpoint(data_dir, vcpus=2, kill_grace_seconds=2, runtime="podman") as second:
        job = second.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]
        if job["status"] != "RUNNING":
            # Not re-adopted: the endpoint found the container by its label and stopped it.
            deadline_check(lambda: not running(), "the lost attempt's container to stop")
        second.client("batch").terminate_job(jobId=job_id, reason="end of test")


def deadline_check(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling another process's state; there is no event to wait on


def test_the_image_cmd_runs_when_the_definition_has_no_command(podman: Any, test_image: str) -> None:
    done = subprocess.run(
        podman.command("run", "--rm", *podman.limit_args, test_image),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "from-the-image-cmd"
