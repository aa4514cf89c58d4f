"""The ``batch-fanout`` console script.

Each area of the project adds its own subcommands through an ``add_parser(subparsers)`` function in
its ``cli`` module, so this file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that contribute subcommands; each has ``add_parser(subparsers) -> None`` and sets
# ``func=callable(args) -> int`` on the parsers it adds.
SUBCOMMAND_MODULES = (
    "batch_fanout.settings",
    "batch_fanout.demo",
    "batch_fanout.local.cli",
    "batch_fanout.specs.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-fanout",
        description="Leader -> fan-out -> aggregate pipelines on AWS Batch, from Airflow.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # A part that is not built yet must not break the parts that are.
            if error.name != module_name:
                raise
            continue
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
