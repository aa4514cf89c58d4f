"""The ``batch-fanout`` command knows no project: a project's commands come from its DAG folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_fanout import cli

REPO_DAGS = Path(__file__).resolve().parents[3] / "dags"


def subcommands(parser: object) -> set[str]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices)


def test_without_a_project_only_the_providers_commands_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "no-dags-here"))
    assert subcommands(cli.build_parser()) == {"images", "local", "settings", "specs"}


def test_a_package_in_the_dag_folder_adds_its_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "someone_elses_project"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text(
        "def add_parser(subparsers):\n    subparsers.add_parser('hello').set_defaults(func=lambda args: 7)\n"
    )
    (tmp_path / "not_a_package").mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    assert "hello" in subcommands(cli.build_parser())
    assert cli.main(["hello"]) == 7


def test_this_projects_demo_command_comes_from_its_dag_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_DAGS))
    assert "demo" in subcommands(cli.build_parser())
    provider_sources = (Path(cli.__file__).parent).rglob("*.py")
    assert not [path for path in provider_sources if "batch_fanout_project" in path.read_text()]


def test_finding_the_projects_commands_imports_no_airflow(tmp_path: Path) -> None:
    import subprocess
    import sys

    probe = (
        "import sys; from batch_fanout import cli; cli.build_parser(); "
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'airflow'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_DAGS), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    # Airflow configures its logging on import: the commands' output would no longer be theirs.
    assert result.stdout.strip() == "[]"
