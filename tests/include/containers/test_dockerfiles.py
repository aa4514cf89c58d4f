"""Each job image's Dockerfile, parsed and checked against the project's rules (no Docker engine here):
pinned base image, pinned requirements, shared code copied in, non-root user, and an exec-form command
that runs the same module, from the same folder layout, as the job definition in docs/internals.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CONTAINERS = REPO / "include" / "containers"
# Image folder -> (module, packages its code imports, needs stress-ng)
IMAGES = {
    "leader": ("leader", {"fsspec", "s3fs", "numpy", "scipy"}, True),
    "stress_ng": ("stress_follower", {"fsspec", "s3fs", "pyyaml"}, True),
    "shortest_path": ("shortest_path", {"fsspec", "s3fs", "numpy", "numba"}, False),
    "aggregator": ("aggregator", {"fsspec", "s3fs", "numpy", "matplotlib"}, False),
}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return result


def documented_commands() -> dict[str, list[str]]:
    """Module -> option names of its job command, from the code block in docs/internals.md."""
    text = (REPO / "docs" / "internals.md").read_text()
    block = text.split("## Job commands", 1)[1].split("```", 2)[1]
    commands: dict[str, list[str]] = {}
    current = ""
    for line in block.splitlines():
        match = re.match(r"^python -m (\w+)(.*)$", line.strip())
        if match:
            current = match.group(1)
            commands[current] = re.findall(r"(--[a-z-]+)", match.group(2))
        elif current and line.strip():
            commands[current] += re.findall(r"(--[a-z-]+)", line)
    return commands


def documented_images() -> dict[str, str]:
    """Image folder -> module, from the table in docs/internals.md."""
    text = (REPO / "docs" / "internals.md").read_text()
    return dict(re.findall(r"^\| `(\w+)` \| `(\w+)` \| `batch-fanout-[\w-]+` \|$", text, flags=re.MULTILINE))


def test_every_documented_image_has_a_folder_and_module() -> None:
    images = documented_images()
    assert images == {folder: module for folder, (module, _, _) in IMAGES.items()}
    for folder, module in images.items():
        assert (CONTAINERS / folder / f"{module}.py").is_file()
        assert (CONTAINERS / folder / "Dockerfile").is_file()


@pytest.mark.parametrize("folder", sorted(IMAGES))
def test_dockerfile_follows_the_rules(folder: str) -> None:
    module, packages, needs_stress_ng = IMAGES[folder]
    dockerfile = CONTAINERS / folder / "Dockerfile"
    steps = instructions(dockerfile)
    kinds = [kind for kind, _ in steps]

    froms = [arguments.split() for kind, arguments in steps if kind == "FROM"]
    base = froms[0][0]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    # Build stages start from earlier stages only: one base image, which an offline stand-in replaces.
    stages = [words[2] for words in froms if len(words) == 3 and words[1].upper() == "AS"]
    for position, words in enumerate(froms[1:], start=1):
        assert words[0] in stages[:position], (
            f"stage {position} is built FROM {words[0]}, not an earlier stage"
        )
    # The job's own stage (the last) installs no compiler: a build stage builds, the job gets the result.
    last_from = max(index for index, (kind, _) in enumerate(steps) if kind == "FROM")
    job_runs = " ".join(arguments for kind, arguments in steps[last_from:] if kind == "RUN")
    assert not re.search(r"\b(gcc|g\+\+|clang|build-essential|python3-dev)\b", job_runs), job_runs

    users = [arguments for kind, arguments in steps if kind == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), "the job runs as a non-root user"
    assert kinds.index("USER") < kinds.index("CMD")

    commands = [arguments for kind, arguments in steps if kind in ("CMD", "ENTRYPOINT")]
    assert [kind for kind in kinds if kind in ("CMD", "ENTRYPOINT")] == ["CMD"], (
        "CMD only: a Batch job definition's command replaces CMD, and an ENTRYPOINT would be prepended to it"
    )
    command = json.loads(commands[0])  # exec form is a JSON array
    assert command[:3] == ["python", "-m", module]

    copies = [arguments for kind, arguments in steps if kind == "COPY"]
    assert any(copy.startswith("shared/batch_fanout_job ") for copy in copies), "shared code copied in"
    # The job contract comes from the provider package, given as the named build context batch_fanout.
    assert "--from=batch_fanout __init__.py job_contract.py ./batch_fanout/" in copies
    assert f"{folder}/requirements.txt /tmp/requirements.txt" in copies
    assert any(f"{folder}/{module}.py" in copy for copy in copies)
    workdir = [arguments for kind, arguments in steps if kind == "WORKDIR"]
    assert workdir and workdir[-1].endswith(f"/{folder}"), "the job folder is the working directory"
    runs = " ".join(arguments for kind, arguments in steps if kind == "RUN")
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in runs
    if needs_stress_ng:
        # From the base's suite, unpinned (a point release replaces a Debian revision on the mirror),
        # with the upstream version checked by the build.
        assert "apt-get install -y --no-install-recommends stress-ng " in runs
        assert 'case "$version" in "$STRESS_NG_UPSTREAM"-*)' in runs and "exit 1" in runs
    else:
        assert "stress-ng" not in runs

    pins = [
        line.strip()
        for line in (CONTAINERS / folder / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][\w.]*", pin) for pin in pins), pins
    assert packages <= {pin.split("==")[0].lower() for pin in pins}


@pytest.mark.parametrize("folder", sorted(IMAGES))
def test_image_command_and_job_definition_options_are_accepted(folder: str) -> None:
    module = IMAGES[folder][0]
    options = documented_commands()[module]
    steps = instructions(CONTAINERS / folder / "Dockerfile")
    command = json.loads(next(arguments for kind, arguments in steps if kind == "CMD"))
    help_text = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=CONTAINERS / folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for option in options + [token for token in command[3:] if token.startswith("--")]:
        assert option in help_text, f"{module} does not accept {option}"


def test_shared_code_never_imports_airflow() -> None:
    for path in CONTAINERS.rglob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+airflow", path.read_text(), flags=re.MULTILINE), path


def stress_ng_upstream(folder: str) -> str:
    arguments = [
        arguments for kind, arguments in instructions(CONTAINERS / folder / "Dockerfile") if kind == "ARG"
    ]
    [version] = [
        argument.split("=", 1)[1] for argument in arguments if argument.startswith("STRESS_NG_UPSTREAM=")
    ]
    return version


def test_leader_and_follower_install_the_same_stress_ng() -> None:
    """The leader lists the methods the follower runs: one stress-ng version for both."""
    versions = {folder: stress_ng_upstream(folder) for folder, (_, _, needs) in IMAGES.items() if needs}
    assert set(versions) == {"leader", "stress_ng"}
    assert len(set(versions.values())) == 1, versions
    assert re.fullmatch(r"\d+\.\d+\.\d+", versions["leader"])


@pytest.mark.parametrize("folder", sorted(IMAGES))
def test_numba_compiles_for_a_cpu_every_host_has(folder: str) -> None:
    """A numba cache warmed at build time is keyed by the CPU it was compiled for: generic, for build
    and job alike, so that it is a hit on every Batch host (test_images.py checks it in the images)."""
    steps = instructions(CONTAINERS / folder / "Dockerfile")
    warms = [i for i, (kind, arguments) in enumerate(steps) if kind == "RUN" and "warm_up" in arguments]
    if not warms:
        return
    generic = [
        i
        for i, (kind, arguments) in enumerate(steps)
        if kind == "ENV" and "NUMBA_CPU_NAME=generic" in arguments
    ]
    assert generic and generic[0] < warms[0], f"{folder} warms numba's cache for the build host's CPU"


def test_every_image_that_uses_numba_warms_its_cache() -> None:
    warming = {
        folder
        for folder in IMAGES
        if any(
            kind == "RUN" and "warm_up" in arguments
            for kind, arguments in instructions(CONTAINERS / folder / "Dockerfile")
        )
    }
    assert {"shortest_path", "leader"} <= warming


JOB_DEFINITIONS = REPO / "include" / "specs" / "job-definitions"


@pytest.mark.parametrize("folder", sorted(IMAGES))
def test_job_definition_runs_the_image_module(folder: str) -> None:
    import yaml

    spec = yaml.safe_load((JOB_DEFINITIONS / f"{folder}.yaml").read_text())
    container = spec["containerProperties"]
    assert re.search(rf"/{folder}:", container["image"]), container["image"]
    assert container["command"][:3] == ["python", "-m", IMAGES[folder][0]]


def test_leader_runs_with_the_job_definitions_default_parameters(tmp_path: Path) -> None:
    import yaml

    spec = yaml.safe_load((JOB_DEFINITIONS / "leader.yaml").read_text())
    parameters = spec["parameters"]
    command = [
        str(parameters[token[5:]]) if token.startswith("Ref::") else token
        for token in spec["containerProperties"]["command"]
    ]
    environ = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "RESULTS_URI": tmp_path.as_uri(),
        "RUN_PREFIX": "defaults",
    }
    completed = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=CONTAINERS / "leader",
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    manifest = json.loads((tmp_path / "defaults" / "manifest.json").read_text())
    assert manifest["array_sizes"]["stress"] == int(parameters["tests"])
    assert manifest["array_sizes"]["shortest_path"] == int(parameters["shards"])
