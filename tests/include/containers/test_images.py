"""The built job images: what their Dockerfiles promise holds inside them. Built first with
``batch-fanout images build`` (quick when nothing changed); skipped only where no podman is installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
IMAGES = {
    name: f"local/batch-fanout/{name}:latest"
    for name in ("leader", "stress_ng", "shortest_path", "aggregator")
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.containers,
    # Building the images a first time takes minutes on 2 cores (cold: about 5).
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        shutil.which("podman") is None,
        reason="no container engine: podman is not installed here (make images installs it with apt-get)",
    ),
]


@pytest.fixture(scope="module")
def podman() -> Any:
    from batch_fanout.images.engine import ContainerEngine

    engine = ContainerEngine.detect("podman")
    # Always: the layer cache makes it quick when nothing changed, and the images match the checkout.
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch_fanout.cli",
            "images",
            "build",
            "--engine",
            "podman",
            "--project-dir",
            str(REPO),
        ],
        env={**os.environ, "BATCH_FANOUT_HOME": str(REPO)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return engine


def run(podman: Any, image: str, *command: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    options = ["--user", user] if user else []
    return subprocess.run(
        podman.command("run", "--rm", "--pull=never", *podman.limit_args, *options, image, *command),
        capture_output=True,
        text=True,
        timeout=300,
    )


CACHE_CHECK = """
import importlib, json, sys, numba
stats = {}
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    if hasattr(module, "warm_up"):
        module.warm_up()
    stats.update({f"{name}.{attr}": (len(value.stats.cache_hits), len(value.stats.cache_misses))
                  for attr, value in vars(module).items() if isinstance(value, numba.core.registry.CPUDispatcher)})
print(json.dumps({"stats": stats, "cpu": numba.config.CPU_NAME}))
"""
# The numba modules each image warms at build time.
WARMED = {
    "shortest_path": ["sssp_kernel", "batch_fanout_job.hierarchy", "batch_fanout_job.hierarchy_kernels"],
    "leader": ["batch_fanout_job.hierarchy", "batch_fanout_job.hierarchy_kernels"],
}


@pytest.mark.parametrize("name", sorted(WARMED))
def test_the_numba_cache_of_the_build_is_a_hit_in_the_job(podman: Any, name: str) -> None:
    """Compiled at build time for the generic CPU, so a child never compiles, on any host."""
    done = run(podman, IMAGES[name], "python", "-c", CACHE_CHECK, *WARMED[name])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cpu"] == "generic"
    assert result["stats"], "the kernel modules have numba dispatchers"
    for function, (_hits, misses) in result["stats"].items():
        assert misses == 0, f"{function} recompiled in the job: its cache was keyed to another CPU"


def started_event(stderr: str) -> dict[str, Any]:
    """The child's ``started`` log line (JSON on stderr)."""
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    [started] = [event for event in events if event.get("event") == "started"]
    return started


@pytest.fixture
def planned_grid_run(run_job: Any, run_store: Any, leader_command: Any, batch_env: Any) -> Any:
    """A run planned by the process runtime's leader, with a contraction hierarchy to sweep."""
    uri, prefix, folder = run_store
    command = leader_command(workloads="shortest_path", grid="40x40", seed="3", shards="1", origins="all")
    leader = run_job("leader", command, batch_env(uri, prefix), timeout=120)
    assert leader.returncode == 0, leader.stderr
    assert json.loads((folder / "manifest.json").read_text())["graph"]["hierarchy"], "a hierarchy to sweep"
    return uri, prefix, folder


def test_a_shortest_path_child_in_the_image_runs_the_compiled_sweep_and_answers_as_the_process_does(
    podman: Any, planned_grid_run: Any, run_job: Any, batch_env: Any, tmp_path: Path
) -> None:
    """The PHAST sweep built in the image's build stage loads in the job's interpreter (its ABI, its
    import path) without numba, and gives the process runtime's answer on a graph with a hierarchy."""
    uri, prefix, folder = planned_grid_run
    # The image's child gets its own copy of the planned run, writable by the image's user.
    mounted = tmp_path / "image-results"
    shutil.copytree(folder, mounted / prefix)
    for path in [mounted, *mounted.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)

    process = run_job("shortest_path", ["--paths-for", "none"], batch_env(uri, prefix, array_index=0))
    assert process.returncode == 0, process.stderr
    environment = batch_env("file:///results", prefix, array_index=0, path="")
    options = [f"--env={name}={value}" for name, value in environment.items() if name not in ("PATH", "HOME")]
    # The image's CMD is the job definition's command (test_dockerfiles checks that they agree).
    image = subprocess.run(
        podman.command(
            "run",
            "--rm",
            "--pull=never",
            *podman.limit_args,
            *options,
            "-v",
            f"{mounted}:/results",
            IMAGES["shortest_path"],
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert image.returncode == 0, image.stderr
    assert started_event(image.stderr)["kernels"] == "phast compiled"

    def answer(root: Path) -> dict[str, Any]:
        output = json.loads((root / "shortest_paths" / "0.json").read_text())
        output.pop("runtime")  # when, how long, which job: not the answer
        return output

    in_image = answer(mounted / prefix)
    nodes = json.loads((folder / "manifest.json").read_text())["graph"]["nodes"]
    assert in_image["engine"] == "phast" and len(in_image["origins"]) == nodes  # every origin, one shard
    assert in_image == answer(folder)


def test_leader_and_follower_images_run_the_stress_ng_their_dockerfiles_check(podman: Any) -> None:
    dockerfile = (REPO / "include" / "containers" / "leader" / "Dockerfile").read_text()
    [expected] = [
        line.split("=", 1)[1]
        for line in dockerfile.splitlines()
        if line.startswith("ARG STRESS_NG_UPSTREAM=")
    ]
    versions = set()
    for name in ("leader", "stress_ng"):
        done = run(podman, IMAGES[name], "stress-ng", "--version")
        assert done.returncode == 0, done.stderr
        versions.add(done.stdout.split()[2])
    assert versions == {expected}


def test_every_job_image_runs_as_a_non_root_user_in_its_folder(podman: Any) -> None:
    for name, image in IMAGES.items():
        done = run(
            podman, image, "python", "-c", "import os, pathlib; print(os.getuid(), pathlib.Path.cwd())"
        )
        assert done.returncode == 0, done.stderr
        uid, cwd = done.stdout.split()
        assert uid != "0" and cwd == f"/opt/batch-fanout/{name}"


def test_an_offline_base_is_laid_out_like_the_official_one(podman: Any) -> None:
    from batch_fanout.images.offline import standin_name

    standin = standin_name("python:3.11.11-slim-bookworm")
    if not podman.image_exists(standin):
        pytest.skip("the images were built on the real base image, not on an offline stand-in")
    script = (
        "import glob, shutil, sys; print(shutil.which('python'), shutil.which('pip'), "
        "len(glob.glob('/usr/lib/python3*/EXTERNALLY-MANAGED')), sys.version_info[:2])"
    )
    done = run(podman, standin, "python", "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "/usr/local/bin/python /usr/local/bin/pip 0 (3, 11)"


DEPLOYMENT_IMAGE = "local/batch-fanout/airflow:latest"
DAGBAG_CHECK = """
import json
from airflow.dag_processing.dagbag import DagBag
import importlib.resources as resources
bag = DagBag("/opt/airflow/dags")
specs = resources.files("batch_fanout") / "_specs" / "job-definitions"
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "specs": sorted(p.name for p in specs.iterdir())}))
"""


def test_the_deployment_image_parses_every_dag_with_its_provider(podman: Any) -> None:
    if not podman.image_exists(DEPLOYMENT_IMAGE):
        pytest.skip(f"{DEPLOYMENT_IMAGE} is not built: make images IMAGES_FLAGS=--deployment builds it")
    done = subprocess.run(
        podman.command(
            "run",
            "--rm",
            "--pull=never",
            *podman.limit_args,
            "-e",
            "AIRFLOW__CORE__LOAD_EXAMPLES=False",
            "--entrypoint",
            "python",
            DEPLOYMENT_IMAGE,
            "-c",
            DAGBAG_CHECK,
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["dags"], "the image's DAG folder holds DAGs"
    assert result["specs"] == sorted(
        p.name for p in (REPO / "include" / "specs" / "job-definitions").iterdir()
    )
