"""``benchmarks/summary.py``: the TARGET lines of a ``make bench`` log read into issue 16's table.

``bench-sample.log`` beside this file is real output of the local endpoint's benchmark (in full, on a
loaded machine, so some targets are not met) and of the shortest-path benchmark (cut short), between
the ``== <script>`` lines that ``make bench`` writes; the other scripts' sections are left out. So the
parsing is tested on what the scripts print. Nothing here times anything: the figures are only read.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import load_benchmark

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "summary.py"
SAMPLE = Path(__file__).with_name("bench-sample.log")


summary = load_benchmark("summary")


@pytest.mark.parametrize(
    ("figure", "target", "expected"),
    [
        ("1.5 ms over 600 calls", "< 5 ms", "met"),
        ("18.6 ms over 600 calls", "< 20 ms", "met"),
        ("21.0 ms over 600 calls", "< 20 ms", "not met"),
        ("5 ms", "< 5 ms", "not met"),
        ("5 ms", "<= 5 ms", "met"),
        # The start-up helper's format: a share in percent, seconds beside it.
        ("27% (0.67 s of 2.5 s)", "<= 10%", "not met"),
        ("0.67 s = 9% of 7.4 s", "<= 10%", "met"),
        # The Airflow helper's format: the value after the last "=", the target a sum of terms.
        ("wall - critical path = 2.1 s", "<= 3 s + poll 5 s", "met"),
        ("wall - critical path = 14.3 s", "<= 3 s + poll 5 s", "not met"),
        ("wall - critical path = 8.0 s", "<= 3 s + poll 5 s", "met"),
        ("1.75 (median of 3 interleaved rounds' ratios, lowest 1.72)", ">= 1", "met"),
        ("0.98 (median of 3 rounds)", ">= 1", "not met"),
        ("1,150 children/s", ">= 200 children/s", "met"),
        ("0.12x (quartiles 0.11-0.14x, 4.55 vs 36.46 ms per source)", "<= 0.5x", "met"),
        ("1.04x", "<= 0.5x", "not met"),
    ],
)
def test_verdict_compares_the_figure_in_the_targets_unit(figure: str, target: str, expected: str) -> None:
    assert summary.verdict(figure, target) == expected


@pytest.mark.parametrize(
    ("figure", "target", "why"),
    [
        ("0.27", "<= 10%", "no figure in %"),
        ("about two seconds", "<= 3 s + poll 5 s", "no figure in s"),
        ("1 ms", "about 5 ms", "the target has no <, <=, > or >="),
        ("1 ms", "< some ms", "a term of the target has no number"),
    ],
)
def test_a_figure_that_cannot_be_compared_says_so(figure: str, target: str, why: str) -> None:
    assert summary.verdict(figure, target) == f"cannot judge ({why})"


def test_the_sample_log_gives_every_row_it_measured_with_its_script_and_load() -> None:
    targets, exits = summary.parse(SAMPLE.read_text())
    assert exits == {"benchmarks/local_endpoint.py": 0, "benchmarks/shortest_path.py": 0}
    by_what = {target.what: target for target in targets}
    describe = by_what["DescribeJobs of the array parent while 64 children run, p99"]
    assert (describe.figure, describe.target) == (
        "31.5 ms over 600 calls; nothing running: 26.3 ms",
        "< 20 ms",
    )
    assert describe.verdict == "not met"
    assert describe.script == "benchmarks/local_endpoint.py"
    assert describe.load == "15.18"  # the line's own load average, not its script's
    gap = by_what["N_TO_N release gap, slowest band of 1000 indices (its median)"]
    assert (gap.figure, gap.verdict) == ("3 ms, in band 5 of 10", "met")
    ratio = by_what["throughput, 1000 children, 64 slots / 2 slots"]
    assert ratio.figure.startswith("2.09 ") and ratio.verdict == "met"
    grid = by_what["kernel per source / Boost CSR Dijkstra, grid 512x512"]
    assert (grid.verdict, grid.load, grid.script) == ("met", "6.5", "benchmarks/shortest_path.py")
    assert [target.what for target in targets if target.verdict == "not met"] == [
        "DescribeJobs of the array parent while 64 children run, median",
        "DescribeJobs of the array parent while 64 children run, p99",
        "ListJobs of the running children while 64 children run, median",
        "ListJobs of the running children while 64 children run, p99",
    ]
    assert {target.script for target in targets} == set(exits)
    assert all(target.verdict in ("met", "not met") for target in targets)


def test_the_table_shows_rows_no_script_printed_as_not_measured() -> None:
    targets, exits = summary.parse(SAMPLE.read_text())
    rows = summary.table(targets, exits).splitlines()
    # The Airflow and start-up rows come from scripts whose sections the sample leaves out.
    unmeasured = [row for row in rows if "| not measured |" in row]
    assert any(row.startswith("| `airflow dags test`: wall - critical path |") for row in unmeasured)
    assert any(row.startswith("| shortest-path child: start-up share of wall |") for row in unmeasured)
    for row, _, _ in summary.ROWS:
        assert any(line.startswith(f"| {row} |") for line in rows), row
    # A TARGET line of no issue-16 row is listed after the table, not dropped.
    others = rows[rows.index("Other targets measured (not rows of issue 16):") :]
    assert any(line.startswith("| plain dependency gap, median over a chain of 30 |") for line in others)


def test_a_failed_script_is_named_in_its_missing_rows() -> None:
    log = SAMPLE.read_text().replace(
        "== benchmarks/shortest_path.py exit 0", "== benchmarks/shortest_path.py exit 1"
    )
    log = "\n".join(line for line in log.splitlines() if "Boost CSR Dijkstra, rome99" not in line)
    targets, exits = summary.parse(log)
    rows = summary.table(targets, exits).splitlines()
    rome = [row for row in rows if "kernel per source / Boost CSR Dijkstra, rome99" in row]
    assert rome == [
        "| job kernel per source ÷ Boost CSR Dijkstra (grid, rome99) | kernel per source / Boost CSR "
        "Dijkstra, rome99 | not measured (benchmarks/shortest_path.py failed, exit 1) | | not measured | | "
        "benchmarks/shortest_path.py |"
    ]
    # The Airflow rows' script has no section in the log at all.
    airflow = [row for row in rows if "| airflow dags test job_dependency_graph |" in row]
    assert "not measured (benchmarks/pipeline.py did not run)" in airflow[0]


def test_a_row_its_script_did_not_print_says_so() -> None:
    targets, exits = summary.parse(SAMPLE.read_text())
    rows = summary.table(targets, exits).splitlines()
    start_up = [row for row in rows if row.startswith("| shortest-path child: start-up share of wall |")]
    assert start_up == [
        "| shortest-path child: start-up share of wall | child start-up share | not measured "
        "(benchmarks/shortest_path.py printed no such TARGET line) | | not measured | | "
        "benchmarks/shortest_path.py |"
    ]


def test_the_script_prints_the_table_load_and_versions(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(SAMPLE)], capture_output=True, text=True, check=True
    )
    assert "| issue 16 row | what | figure | target | verdict | load (1 min) | script |" in result.stdout
    assert (
        "| `N_TO_N` release gap | N_TO_N release gap, median over indices 0 to 9999 | 1 ms |" in result.stdout
    )
    # The start-up row and the two Airflow rows: their scripts are not in the sample.
    assert "9 of 13 measured figures meet their target; 3 expected figures of issue 16 not measured." in (
        result.stdout
    )
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC; load average now: [\d.]+ [\d.]+ [\d.]+\. ", result.stdout, re.M
    )
    assert "botocore " in result.stdout


def test_a_missing_log_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.log"
    result = subprocess.run([sys.executable, str(SCRIPT), str(missing)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"log {missing} not found" in result.stderr


def test_a_script_that_did_not_finish_is_told_from_one_that_failed() -> None:
    log = SAMPLE.read_text().replace("== benchmarks/shortest_path.py exit 0\n", "")
    log = "\n".join(line for line in log.splitlines() if not line.startswith("TARGET kernel"))
    targets, exits = summary.parse(log)
    assert exits["benchmarks/shortest_path.py"] is None
    rows = summary.table(targets, exits).splitlines()
    grid = [row for row in rows if "| kernel per source / Boost CSR Dijkstra, grid |" in row]
    assert "not measured (benchmarks/shortest_path.py did not finish)" in grid[0]
