"""``batch-fanout images build``'s parts: which images the job definitions name and where each is
built from, the base images of a Dockerfile, the offline stand-ins, and the engine's command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_fanout.cli import main
from batch_fanout.images.build import (
    ImageTarget,
    base_images,
    build_command,
    deployment_image,
    image_name,
    job_images,
    qualified,
)
from batch_fanout.images.engine import ContainerEngine, EngineError, human_size
from batch_fanout.images.offline import standin_for

REPO = Path(__file__).resolve().parents[4]
CONTAINERS = REPO / "include" / "containers"
SPECS = REPO / "include" / "specs"
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def test_the_job_definitions_name_the_images_and_their_folders() -> None:
    targets = {target.image: target for target in job_images(SPECS, CONTAINERS, ECR, "0.1.0")}
    assert set(targets) == {
        f"{ECR}/batch-fanout/{name}:0.1.0" for name in ("leader", "stress_ng", "shortest_path", "aggregator")
    }
    for image, target in targets.items():
        assert target.dockerfile == CONTAINERS / image_name(image) / "Dockerfile"
        assert target.context == CONTAINERS  # the shared code beside every image folder is in reach
    # The leader image also runs the job dependency graph's steps.
    assert set(targets[f"{ECR}/batch-fanout/leader:0.1.0"].used_by) == {
        "batch-fanout-leader",
        "batch-fanout-step",
    }
    deployment = deployment_image(REPO, targets.values(), ECR, "0.1.0")
    assert deployment.image == f"{ECR}/batch-fanout/airflow:0.1.0"
    assert deployment.dockerfile == REPO / "Dockerfile" and deployment.context == REPO


def test_an_image_without_a_folder_names_its_job_definition(tmp_path: Path) -> None:
    (tmp_path / "leader").mkdir()
    (tmp_path / "leader" / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(EngineError) as raised:
        job_images(SPECS, tmp_path, "local", "latest")
    message = str(raised.value)
    assert "local/batch-fanout/aggregator:latest of job definition batch-fanout-aggregator has no" in message
    assert "leader:latest" not in message


def test_base_images_of_a_dockerfile(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "# syntax=docker/dockerfile:1\n"
        "ARG PYTHON=3.11.11\n"
        "FROM --platform=linux/amd64 python:${PYTHON}-slim-bookworm AS build\n"
        "RUN echo\n"
        "FROM build AS test\n"
        "FROM scratch\n"
        "FROM debian:bookworm-slim\n"
    )
    assert base_images(dockerfile) == ["python:3.11.11-slim-bookworm", "debian:bookworm-slim"]
    assert base_images(CONTAINERS / "leader" / "Dockerfile") == ["python:3.11.11-slim-bookworm"]
    assert base_images(REPO / "Dockerfile") == ["apache/airflow:3.3.2-python3.11"]


def test_short_names_are_read_as_docker_reads_them() -> None:
    assert qualified("python:3.11-slim") == "docker.io/library/python:3.11-slim"
    assert qualified("apache/airflow:3.3.2") == "docker.io/apache/airflow:3.3.2"
    assert qualified(f"{ECR}/batch-fanout/leader:1") == f"{ECR}/batch-fanout/leader:1"
    assert qualified("localhost/offline/python:3") == "localhost/offline/python:3"


def test_offline_stand_ins_exist_for_python_and_airflow_bases_of_a_matching_suite() -> None:
    python = standin_for("python:3.11.11-slim-bookworm")
    assert (python.suite, python.image, python.airflow) == (
        "bookworm",
        "localhost/offline/python:3.11.11-slim-bookworm",
        None,
    )
    airflow = standin_for("apache/airflow:3.3.2-python3.11")
    assert (airflow.suite, airflow.airflow) == ("bookworm", "3.3.2")
    with pytest.raises(EngineError, match=r"Debian bookworm ships Python 3\.11, not 3\.12"):
        standin_for("python:3.12.1-slim-bookworm")
    with pytest.raises(EngineError, match=r"no offline stand-in for nginx:1"):
        standin_for("nginx:1")


def test_build_commands_replace_the_base_per_engine(tmp_path: Path) -> None:
    target = ImageTarget("local/batch-fanout/leader:latest", CONTAINERS / "leader" / "Dockerfile", CONTAINERS)
    podman = ContainerEngine("podman", "podman", ("--runtime", "runc"), ("--ulimit", "nproc=32768:32768"))
    base = "python:3.11.11-slim-bookworm"
    standin = "localhost/offline/python:3.11.11-slim-bookworm"
    assert build_command(podman, target, {base: standin}) == [
        "podman",
        "--runtime",
        "runc",
        "build",
        "--ulimit",
        "nproc=32768:32768",
        "-f",
        str(target.dockerfile),
        "-t",
        target.image,
        "--from",
        standin,
        str(CONTAINERS),
    ]
    docker = ContainerEngine("docker", "docker")
    command = build_command(docker, target, {base: standin})
    assert command[command.index("--build-context") + 1] == f"{base}=docker-image://{standin}"
    assert "--from" not in build_command(podman, target, {base: base})


def test_sizes_read_as_the_engines_print_them() -> None:
    assert human_size(415_234_567) == "415.2 MB"
    assert human_size(999) == "999 B"
    assert human_size(2_500_000_000) == "2.5 GB"


def test_the_command_refuses_an_image_no_job_definition_uses(capsys: pytest.CaptureFixture[str]) -> None:
    if not any(Path(directory, "podman").exists() for directory in ("/usr/bin", "/usr/local/bin")):
        pytest.skip("podman is not installed (make images installs it)")
    code = main(["images", "build", "--engine", "podman", "--project-dir", str(REPO), "--only", "nosuch"])
    assert code == 1
    assert "error: --only nosuch: no job definition uses such an image" in capsys.readouterr().err


def test_an_unknown_engine_is_named() -> None:
    with pytest.raises(EngineError, match="unknown container engine 'rkt'"):
        ContainerEngine.detect("rkt")


def test_the_engine_gets_what_this_machine_needs_per_invocation() -> None:
    import resource
    import shutil

    from batch_fanout.images import engine as engine_module

    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (make images installs it)")
    podman = ContainerEngine.detect("podman")
    assert podman.command("ps")[0] == podman.binary
    if engine_module._cgroup_is_unified():
        assert "--runtime" not in podman.global_args
    else:  # crun refuses a hybrid hierarchy
        assert podman.global_args[0] == "--runtime" and podman.global_args[1].endswith("runc")
    capabilities = engine_module._effective_capabilities()
    if capabilities is not None and not capabilities & (1 << engine_module.CAP_SYS_RESOURCE):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        assert f"nofile={hard}:{hard}" in podman.limit_args
        assert any(arg.startswith("nproc=") for arg in podman.limit_args)
    else:
        assert podman.limit_args == ()
