"""The stress-ng follower, run as an AWS Batch array child."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_fanout_job.errors import EXIT_BAD_INPUT


def write_tests(folder: Path, *lines: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stress-tests.txt").write_text("".join(f"{line}\n" for line in lines))


GOOD = "--cpu 1 -t 1s --cpu-method {} --metrics-brief"


def test_child_runs_its_line_and_writes_metrics(run_job, run_store, batch_env) -> None:
    uri, prefix, folder = run_store
    write_tests(folder, GOOD.format("fft"), GOOD.format("pi"))
    result = run_job("stress_follower", [], batch_env(uri, prefix, array_index=1))
    assert result.returncode == 0, result.stderr
    output = json.loads((folder / "stress" / "1.json").read_text())
    assert output["index"] == 1 and output["method"] == "pi" and output["exit_code"] == 0
    assert output["line"] == GOOD.format("pi") and output["stress_ng_version"]
    metrics = output["metrics"]
    assert metrics["bogo_ops"] > 0 and metrics["bogo_ops_per_second_real"] > 0
    assert metrics["bogo_ops_per_second_usr_sys"] > 0 and metrics["wall_clock_seconds"] > 0.5
    assert metrics["max_rss_kb"] > 0 and "user_seconds" in metrics
    assert output["runtime"]["job_id"].endswith(":1")
    assert "successful run completed" in (folder / "stress" / "1.log").read_text()
    assert not (folder / "stress" / "0.json").exists()


def test_retry_child_works_on_the_mapped_index(run_job, run_store, batch_env) -> None:
    uri, prefix, folder = run_store
    write_tests(folder, GOOD.format("fft"), GOOD.format("pi"), "--cpu 1 --cpu-ops 50 --cpu-method sqrt")
    environ = batch_env(uri, prefix, array_index=1, extra={"BATCH_FANOUT_INDEX_MAP": "0,2"})
    result = run_job("stress_follower", [], environ)
    assert result.returncode == 0, result.stderr
    assert json.loads((folder / "stress" / "2.json").read_text())["method"] == "sqrt"
    assert sorted(p.name for p in (folder / "stress").iterdir()) == ["2.json", "2.log"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("; rm -rf /", "stress-tests.txt line 1 ('; rm -rf /'): argument ';' is not allowed"),
        ("--cpu 1 -t 1s --cpu-method fft --log-file /tmp/x", "option --log-file is refused: it writes files"),
        ("--cpu 1 -t 1s --cpu-method fft --exec 1", "option --exec is refused: it runs commands"),
        ("--cpu 1 -t 1s --cpu-method fft --hdd 1", "option '--hdd' is not allowed"),
        ("", "stress-tests.txt line 1 is empty"),
    ],
)
def test_bad_line_fails_the_child_naming_line_and_option(
    run_job, run_store, batch_env, line, message
) -> None:
    uri, prefix, folder = run_store
    write_tests(folder, line)
    result = run_job("stress_follower", [], batch_env(uri, prefix, array_index=0))
    assert result.returncode == EXIT_BAD_INPUT
    assert message in result.stderr
    assert not (folder / "stress").exists()


def test_index_past_the_end_of_the_test_list(run_job, run_store, batch_env) -> None:
    uri, prefix, folder = run_store
    write_tests(folder, GOOD.format("fft"), GOOD.format("pi"))
    result = run_job("stress_follower", [], batch_env(uri, prefix, array_index=2))
    assert result.returncode == 1
    assert "logical index 2 is past the end of the stress-tests.txt work list (2 items)" in result.stderr


def test_missing_test_list_is_named(run_job, run_store, batch_env) -> None:
    uri, prefix, _ = run_store
    result = run_job("stress_follower", [], batch_env(uri, prefix, array_index=0))
    assert result.returncode == 1 and "stress-tests.txt does not exist" in result.stderr


def test_stress_ng_failure_fails_the_child_with_its_reason(run_job, run_store, batch_env) -> None:
    uri, prefix, folder = run_store
    write_tests(folder, GOOD.format("nosuchmethod"))
    result = run_job("stress_follower", [], batch_env(uri, prefix, array_index=0))
    assert result.returncode == 1
    assert "stress-ng exited with" in result.stderr and "cpu-method must be one of" in result.stderr
    assert not (folder / "stress" / "0.json").exists()
    assert (folder / "stress" / "0.log").exists()  # its output kept for the post-mortem


def test_missing_stress_ng_fails_the_child(run_job, run_store, batch_env, tmp_path) -> None:
    uri, prefix, folder = run_store
    write_tests(folder, GOOD.format("fft"))
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    result = run_job("stress_follower", [], batch_env(uri, prefix, array_index=0, path=str(empty_bin)))
    assert result.returncode == 1 and "stress-ng not found on PATH" in result.stderr


def test_injected_failure_fails_the_first_try_only(run_job, run_store, batch_env) -> None:
    uri, prefix, folder = run_store
    write_tests(folder, GOOD.format("fft"), "--cpu 1 --cpu-ops 20 --cpu-method sqrt")
    environ = batch_env(uri, prefix, array_index=1, extra={"BATCH_FANOUT_FAIL_ONCE": "1"})
    first = run_job("stress_follower", [], environ)
    assert first.returncode == 3
    assert "injected failure" in first.stderr and "logical index 1" in first.stderr
    assert not (folder / "stress" / "1.json").exists()
    second = run_job("stress_follower", [], environ)
    assert second.returncode == 0, second.stderr
    assert json.loads((folder / "stress" / "1.json").read_text())["method"] == "sqrt"
