"""Collect the ``TARGET`` lines of a ``make bench`` log into issue 16's table: every row's figure next
to its target, met or not met, with the load average and the versions.

Each benchmark script prints, near the end of its output, one line per figure that has a target::

    TARGET <what>: <figure> (target <op> <value>[ + <value>...]) [anything, e.g. (load 1.20/1.50)]

``<op>`` is one of ``<``, ``<=``, ``>``, ``>=``; the target's value is the sum of the numbers of its
terms (``<= 3 s + poll 5 s`` is 8 s), in the unit of its first number (``ms``, ``s``, ``%``, ``x``,
``children/s``, or none). The figure's value is its first number in that unit (after its last ``=``
when it has one, so ``wall - critical path = 2.1 s`` reads 2.1); a figure with no number in the
target's unit is shown as "cannot judge" rather than guessed at. ``make bench`` writes a line
``== <script> (load <1> <5> <15>)`` before each script's output and ``== <script> exit <code>`` after
it, which give each row its script and, when the line itself states no load, its load average.

Every row of issue 16 is printed; one that no script measured says "not measured" and why (its
script did not run, failed, or printed no such line). ``TARGET`` lines that belong to no row of the issue are printed after it, never dropped.

    .venv/bin/python benchmarks/summary.py benchmarks/.work/bench.log
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

# Issue 16's rows, in its order: each with the script that measures it and the beginnings of the
# TARGET lines it prints for the row.
ROWS: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "job kernel per source ÷ Boost CSR Dijkstra (grid, rome99)",
        "benchmarks/shortest_path.py",
        ("kernel per source / Boost CSR Dijkstra, grid", "kernel per source / Boost CSR Dijkstra, rome99"),
    ),
    ("shortest-path child: start-up share of wall", "benchmarks/shortest_path.py", ("child start-up share",)),
    ("`N_TO_N` release gap", "benchmarks/local_endpoint.py", ("N_TO_N release gap",)),
    (
        "DescribeJobs / ListJobs latency while 64 children run",
        "benchmarks/local_endpoint.py",
        ("DescribeJobs of the array parent while 64", "ListJobs of the running children while 64"),
    ),
    ("throughput, 64 slots vs 2 slots", "benchmarks/local_endpoint.py", ("throughput",)),
    (
        "`airflow dags test`: wall - critical path",
        "benchmarks/pipeline.py",
        ("airflow dags test job_dependency_graph", "airflow dags test batch_fanout"),
    ),
]

TARGET_LINE = re.compile(r"^TARGET (?P<what>.+?): (?P<figure>.*?) \(target (?P<target>[^()]*)\)(?P<rest>.*)$")
SCRIPT_START = re.compile(r"^== (?P<script>\S+) \(load (?P<load>[\d.]+)[^)]*\)\s*$")
SCRIPT_EXIT = re.compile(r"^== (?P<script>\S+) exit (?P<code>-?\d+)\s*$")
LOAD = re.compile(r"\bload (?:average )?(?P<load>\d+(?:\.\d+)?)")
# A number (with or without thousands separators) and the unit written right after it.
NUMBER = re.compile(
    r"(?P<number>-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)(?:\s?(?P<unit>[%a-zA-Zµ/]+))?"
)
OPERATORS = {
    "<=": lambda figure, target: figure <= target,
    ">=": lambda figure, target: figure >= target,
    "<": lambda figure, target: figure < target,
    ">": lambda figure, target: figure > target,
}


@dataclass(frozen=True)
class Target:
    """One ``TARGET`` line: what it measures, its figure and target as printed, and the verdict."""

    what: str
    figure: str
    target: str
    verdict: str
    load: str
    script: str


def _numbers(text: str) -> list[tuple[float, str]]:
    return [(float(match["number"].replace(",", "")), match["unit"] or "") for match in NUMBER.finditer(text)]


def verdict(figure: str, target: str) -> str:
    """``met``, ``not met``, or ``cannot judge (why)`` for a figure against a target such as ``< 5 ms``."""
    found = re.match(r"\s*(<=|>=|<|>)\s*(.*)$", target)
    if not found:
        return "cannot judge (the target has no <, <=, > or >=)"
    operator, terms = found.groups()
    values = [_numbers(term) for term in terms.split("+")]
    if not values or any(not numbers for numbers in values):
        return "cannot judge (a term of the target has no number)"
    limit = sum(numbers[0][0] for numbers in values)
    unit = values[0][0][1]
    value_text = figure.rpartition("=")[2] if "=" in figure else figure
    candidates = [number for number, its_unit in _numbers(value_text) if its_unit == unit]
    if not candidates:
        return f"cannot judge (no figure in {unit or 'a plain number'})"
    return "met" if OPERATORS[operator](candidates[0], limit) else "not met"


def parse(log: str) -> tuple[list[Target], dict[str, int | None]]:
    """The TARGET lines of a ``make bench`` log, and each script's exit code (``None`` for a script
    that started and did not finish)."""
    targets: list[Target] = []
    exits: dict[str, int | None] = {}
    script, script_load = "?", ""
    for line in log.splitlines():
        if started := SCRIPT_START.match(line):
            script, script_load = started["script"], started["load"]
            exits[script] = None
            continue
        if ended := SCRIPT_EXIT.match(line):
            exits[ended["script"]] = int(ended["code"])
            continue
        if not (found := TARGET_LINE.match(line.strip())):
            continue
        own_load = LOAD.search(found["rest"])
        targets.append(
            Target(
                what=found["what"].strip(),
                figure=found["figure"].strip(),
                target=found["target"].strip(),
                verdict=verdict(found["figure"], found["target"]),
                load=own_load["load"] if own_load else script_load,
                script=script,
            )
        )
    return targets, exits


def unmeasured_prefixes(targets: list[Target]) -> list[str]:
    """The expected TARGET lines of issue 16's rows that no script printed."""
    return [
        prefix
        for _, _, prefixes in ROWS
        for prefix in prefixes
        if not any(target.what.startswith(prefix) for target in targets)
    ]


def _why_missing(script: str, exits: dict[str, int | None]) -> str:
    if script not in exits:
        return f"{script} did not run"
    if exits[script] is None:
        return f"{script} did not finish"
    if exits[script] != 0:
        return f"{script} failed, exit {exits[script]}"
    return f"{script} printed no such TARGET line"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(targets: list[Target], exits: dict[str, int | None]) -> str:
    """Issue 16's rows as a Markdown table, then the TARGET lines that belong to none of them."""
    lines = [
        "| issue 16 row | what | figure | target | verdict | load (1 min) | script |",
        "| --- | --- | --- | --- | --- | ---: | --- |",
    ]
    used: set[int] = set()
    for row, script, prefixes in ROWS:
        for prefix in prefixes:
            matched = [index for index, target in enumerate(targets) if target.what.startswith(prefix)]
            used.update(matched)
            for index in matched:
                target = targets[index]
                lines.append(
                    f"| {row} | {_cell(target.what)} | {_cell(target.figure)} | {_cell(target.target)} | "
                    f"{target.verdict} | {target.load} | {target.script} |"
                )
            if not matched:
                lines.append(
                    f"| {row} | {_cell(prefix)} | not measured ({_why_missing(script, exits)}) | | "
                    f"not measured | | {script} |"
                )
    others = [target for index, target in enumerate(targets) if index not in used]
    if others:
        lines += [
            "",
            "Other targets measured (not rows of issue 16):",
            "",
            "| what | figure | target | verdict | load (1 min) | script |",
            "| --- | --- | --- | --- | ---: | --- |",
        ]
        lines += [
            f"| {_cell(t.what)} | {_cell(t.figure)} | {_cell(t.target)} | {t.verdict} | {t.load} | {t.script} |"
            for t in others
        ]
    return "\n".join(lines)


def _tool_version(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0] if first else "?"


def versions() -> str:
    """The machine and the versions that the figures depend on."""
    packages = []
    for name in ("apache-airflow", "boto3", "botocore", "numpy", "numba", "scipy"):
        try:
            packages.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            packages.append(f"{name} not installed")
    boost_header = Path("/usr/include/boost/version.hpp")
    boost = "not installed"
    if boost_header.exists():
        found = re.search(r'define BOOST_LIB_VERSION "([0-9_]+)"', boost_header.read_text())
        boost = found.group(1).replace("_", ".") if found else "?"
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, {', '.join(packages)}; Boost {boost}; "
        f"{_tool_version(['stress-ng', '--version'])}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("log", type=Path, help="the output of the benchmark scripts (make bench tees it)")
    arguments = parser.parse_args(argv)
    if not arguments.log.is_file():
        parser.error(f"log {arguments.log} not found")
    targets, exits = parse(arguments.log.read_text(errors="replace"))
    print("\n## Issue 16: figures and targets\n")
    print(table(targets, exits))
    met = sum(target.verdict == "met" for target in targets)
    unmeasured = len(unmeasured_prefixes(targets))
    print(
        f"\n{met} of {len(targets)} measured figures meet their target; "
        f"{unmeasured} expected figure{'s' if unmeasured != 1 else ''} of issue 16 not measured."
    )
    for script, code in sorted(exits.items()):
        if code is None:
            print(f"{script} did not finish: the figures it had not printed are missing above.")
        elif code != 0:
            print(f"{script} failed (exit {code}): the figures it had not printed are missing above.")
    one, five, fifteen = os.getloadavg()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{now}; load average now: {one:.2f} {five:.2f} {fifteen:.2f}. Versions: {versions()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
