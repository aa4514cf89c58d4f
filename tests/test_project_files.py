"""The project's own files: the deployment image, the installed provider, the pinned versions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, with continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def pinned_airflow_version() -> str:
    match = re.search(r"^apache-airflow==(\S+)$", (REPO_ROOT / "requirements.txt").read_text(), re.M)
    assert match, "requirements.txt must pin apache-airflow"
    return match.group(1)


def test_deployment_image_base_is_pinned_to_the_tested_airflow() -> None:
    instructions = dockerfile_instructions(REPO_ROOT / "Dockerfile")
    bases = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    assert len(bases) == 1
    image, _, tag = bases[0].partition(":")
    assert image in {"apache/airflow", "astrocrpublic.azurecr.io/runtime", "quay.io/astronomer/astro-runtime"}
    assert tag.startswith(pinned_airflow_version()), (
        f"base {bases[0]} is not Airflow {pinned_airflow_version()}"
    )


def test_deployment_image_uses_exec_form_and_installs_the_provider() -> None:
    instructions = dockerfile_instructions(REPO_ROOT / "Dockerfile")
    for keyword, arguments in instructions:
        if keyword in {"RUN", "CMD", "ENTRYPOINT"}:
            parsed = json.loads(arguments)  # exec form is a JSON array
            assert isinstance(parsed, list) and all(isinstance(part, str) for part in parsed)
    runs = [json.loads(arguments) for keyword, arguments in instructions if keyword == "RUN"]
    assert any("-r" in run and any(p.endswith("requirements.txt") for p in run) for run in runs)
    copies = " ".join(arguments for keyword, arguments in instructions if keyword == "COPY")
    assert "plugins/batch_fanout" in copies and "dags" in copies
    provider_dir = next(
        arguments.split()[-1]
        for keyword, arguments in instructions
        if keyword == "COPY" and "pyproject.toml" in arguments
    )
    assert any(run[:2] == ["pip", "install"] and run[-1] == provider_dir.rstrip("/") for run in runs)
    assert (REPO_ROOT / ".dockerignore").is_file()


def test_requirements_and_pyproject_agree_on_airflow() -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert '"apache-airflow>=3.1"' in pyproject
    assert f"FROM apache/airflow:{pinned_airflow_version()}" in (REPO_ROOT / "Dockerfile").read_text()


def test_provider_entry_point_is_registered() -> None:
    (provider,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("batch_fanout")
    ]
    info = provider.load()()
    assert info["package-name"] == "airflow-provider-batch-fanout"
    assert info["versions"]


@pytest.mark.slow
def test_airflow_lists_the_provider(airflow_db: Path) -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    packages = {provider["package_name"] for provider in json.loads(listing.stdout)}
    assert "airflow-provider-batch-fanout" in packages


def test_what_the_deployment_image_copies_builds_the_provider_and_places_the_project(
    tmp_path: Path,
) -> None:
    """No Docker engine here: replay the Dockerfile's COPYs into the provider's build folder, build the
    wheel as its ``pip install`` does, and look inside; the project (DAGs and job definitions) is
    copied beside the DAG folder, where its DAG library reads the specs."""
    import shutil
    import zipfile

    instructions = dockerfile_instructions(REPO_ROOT / "Dockerfile")
    build_root = "/opt/batch-fanout"
    staged = tmp_path / "batch-fanout"
    for keyword, arguments in instructions:
        parts = [part for part in arguments.split() if not part.startswith("--")]
        if keyword != "COPY" or not parts[-1].startswith(build_root):
            continue
        *sources, target = parts
        destination = staged / target.removeprefix(build_root).strip("/")
        for source in sources:
            origin = REPO_ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, destination, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                destination.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, destination / origin.name)
    built = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel"],
        cwd=staged,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (staged / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "batch_fanout/provider_info.py" in names
    assert "batch_fanout/job_contract.py" in names
    # One package: the project's job helpers are not part of the provider's wheel.
    assert not any(name.startswith("batch_fanout_job/") for name in names)
    # The provider ships no project job definitions; the image puts them where the project looks.
    assert not any("_specs/" in name or name.endswith(".yaml") for name in names)
    copies = {
        parts[-1]: parts[-2]
        for keyword, arguments in instructions
        if keyword == "COPY"
        for parts in [[part for part in arguments.split() if not part.startswith("--")]]
    }
    assert copies["/opt/airflow/dags"] == "dags"
    assert copies["/opt/airflow/include/specs"] == "include/specs"
    # The project's preflight imports the jobs' shared package: on the image's path too.
    assert copies["/opt/airflow/include/containers/shared"] == "include/containers/shared"
    assert ("ENV", "PYTHONPATH=/opt/airflow/include/containers/shared") in instructions
    from batch_fanout_project import pipeline

    relative = pipeline.SPECS_DIR.relative_to(Path(pipeline.__file__).resolve().parents[2])
    assert Path("/opt/airflow/dags/batch_fanout_project").parent.parent / relative == Path(
        "/opt/airflow/include/specs"
    )


def test_the_deployment_pins_every_optional_provider_the_project_offers() -> None:
    """A deployment built from requirements.txt can turn on every optional feature by connection
    alone: each extra of the provider other than the jobs' and the tests' own is pinned there."""
    import tomllib

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pinned = {
        line.split("==")[0].split("[")[0]
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    offered = {
        re.split(r"[\[<>=!~ ]", requirement)[0]
        for extra, requirements in extras.items()
        if extra not in {"jobs", "test"}
        for requirement in requirements
    }
    assert offered, "the provider offers no optional extra: this test has nothing to check"
    assert offered <= pinned, f"not pinned in requirements.txt: {sorted(offered - pinned)}"
