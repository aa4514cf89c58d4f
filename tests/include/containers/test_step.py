"""The step job of the job dependency graph: it refuses to run before its upstream steps finished."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batch_fanout_job.errors import EXIT_BAD_INPUT


@pytest.fixture
def step(run_job: Any, run_store: tuple[str, str, Path], batch_env: Any) -> Any:
    """Run the step job with these arguments, as AWS Batch runs it, in the test's run folder."""
    results_uri, prefix, _ = run_store
    return lambda *args: run_job("step", list(args), batch_env(results_uri, prefix))


def test_steps_record_their_order_and_the_last_one_summarizes(
    step: Any, run_store: tuple[str, str, Path]
) -> None:
    folder = run_store[2]
    assert step("--name", "A", "--work-seconds", "0").returncode == 0
    assert step("--name", "B", "--after", "A").returncode == 0
    last = step("--name", "F", "--after", "A,B", "--summarize", "A,B,F")
    assert last.returncode == 0, last.stderr
    summary = json.loads((folder / "steps" / "summary.json").read_text())
    assert summary["order"] == ["A", "B", "F"]
    assert [record["after"] for record in summary["steps"]] == [[], ["A"], ["A", "B"]]
    assert last.stdout.strip().endswith("steps/summary.json")


def test_a_step_started_before_its_upstream_finished_fails_naming_it(
    step: Any, run_store: tuple[str, str, Path]
) -> None:
    assert step("--name", "A").returncode == 0
    early = step("--name", "D", "--after", "A,B,C")
    assert early.returncode == 1
    assert "step D started before B, C finished" in early.stderr
    assert not (run_store[2] / "steps" / "D.json").exists()


def test_bad_step_arguments_are_named(step: Any, run_store: tuple[str, str, Path]) -> None:
    bad_name = step("--name", "A;rm", "--after", "none")
    assert bad_name.returncode == EXIT_BAD_INPUT
    assert "--name 'A;rm'" in bad_name.stderr
    bad_work = step("--name", "A", "--work-seconds", "lots")
    assert bad_work.returncode == EXIT_BAD_INPUT
    assert "--work-seconds 'lots' is not a number" in bad_work.stderr
