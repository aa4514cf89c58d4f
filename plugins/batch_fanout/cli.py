"""The ``batch-fanout`` console script.

Each area of the provider adds its own subcommands through an ``add_parser(subparsers)`` function in
its ``cli`` module, so this file only wires them together. A project adds its own commands (a
``demo``, say) the same way, from its DAG folder: every package there with a ``cli`` module that
defines ``add_parser`` contributes its subcommands. The DAG folder is ``$AIRFLOW__CORE__DAGS_FOLDER``,
else ``dags/`` in ``$BATCH_FANOUT_HOME`` or the current directory; the provider itself knows no
project.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

# Modules that contribute subcommands; each has ``add_parser(subparsers) -> None`` and sets
# ``func=callable(args) -> int`` on the parsers it adds.
SUBCOMMAND_MODULES = (
    "batch_fanout.settings",
    "batch_fanout.local.cli",
    "batch_fanout.specs.cli",
    "batch_fanout.images.cli",
)


def dags_folder() -> Path:
    """Where the project's DAGs (and its command packages) are."""
    configured = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("BATCH_FANOUT_HOME") or Path.cwd()) / "dags"


def project_command_modules(folder: Path) -> Iterator[ModuleType]:
    """The ``<package>.cli`` modules of the packages in the DAG folder ``folder``.

    The folder goes on ``sys.path`` (last, as Airflow adds it), so the modules import the project's
    packages as the DAGs do.
    """
    if not folder.is_dir():
        return
    packages = sorted(
        path.name for path in folder.iterdir() if (path / "cli.py").is_file() and path.name.isidentifier()
    )
    if not packages:
        return
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    for package in packages:
        module = importlib.import_module(f"{package}.cli")
        if callable(getattr(module, "add_parser", None)):
            yield module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-fanout",
        description="Leader -> fan-out -> aggregate pipelines on AWS Batch, from Airflow.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    for module in project_command_modules(dags_folder()):
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
