from __future__ import annotations

import pytest

from batch_fanout_job.errors import JobError
from batch_fanout_job.stress_ng import (
    check_test_line,
    find_stress_ng,
    format_test_line,
    list_cpu_methods,
    load_yaml,
    metrics_from_yaml,
    parse_method_list,
)

YAML = """---
system-info:
      stress-ng-version: 0.15.06
      date-yyyy-mm-dd: 2026:11:21
      time-hh-mm-ss: 05:25:31
      version: '#1 SMP PREEMPT_DYNAMIC @0'
metrics:
    - stressor: cpu
      bogo-ops: 3586
      bogo-ops-per-second-usr-sys-time: 3596.786764
      bogo-ops-per-second-real-time: 3585.472562
      wall-clock-time: 1.000147
      user-time: 0.997001
      system-time: 0.000000
      max-rss: 2948
...
"""


def test_yaml_dates_stay_text_not_base_60_numbers() -> None:
    document = load_yaml(YAML)
    assert document["system-info"]["date-yyyy-mm-dd"] == "2026:11:21"
    assert document["system-info"]["time-hh-mm-ss"] == "05:25:31"
    metrics, system_info = metrics_from_yaml(document)
    assert metrics["bogo_ops"] == 3586 and metrics["bogo_ops_per_second_real"] == pytest.approx(3585.472562)
    assert metrics["max_rss_kb"] == 2948 and system_info["stress-ng-version"] == "0.15.06"


def test_yaml_without_cpu_metrics_is_an_error() -> None:
    with pytest.raises(JobError, match="no metrics for stressor 'cpu'"):
        metrics_from_yaml(load_yaml("metrics:\n  - stressor: vm\n    bogo-ops: 3\n"))


def test_method_list_is_read_from_the_message_stress_ng_prints() -> None:
    output = "cpu-method must be one of: all ackermann apery bitops\n"
    assert parse_method_list(output) == ["ackermann", "apery", "bitops"]
    with pytest.raises(JobError, match="did not list the methods"):
        parse_method_list("stress-ng: error: something else\n")


def test_installed_stress_ng_lists_its_cpu_methods() -> None:
    methods = list_cpu_methods(find_stress_ng())
    assert len(methods) >= 12 and "fft" in methods and "all" not in methods


def test_the_leaders_line_passes_the_allowlist() -> None:
    test = check_test_line(format_test_line("fft", 2, "120s"), 1)
    assert (test.method, test.stressors) == ("fft", 2)
    assert test.arguments == ["--cpu", "2", "--timeout", "120s", "--cpu-method", "fft", "--metrics-brief"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("; rm -rf /", "argument ';' is not allowed"),
        ("--cpu 1 -t 1s --cpu-method fft; rm -rf /", "option --cpu-method has a bad value 'fft;'"),
        ("--cpu 1 -t 1s --cpu-method fft $(reboot)", r"argument '\$\(reboot\)' is not allowed"),
        ("--cpu 1 -t 1s --cpu-method fft --log-file /tmp/x", "option --log-file is refused: it writes files"),
        ("--cpu 1 -t 1s --cpu-method fft --yaml=/tmp/x", "option --yaml is refused"),
        ("--cpu 1 -t 1s --cpu-method fft --exec 1", "option --exec is refused: it runs commands"),
        ("--cpu 1 -t 1s --cpu-method fft --vm 2", "option '--vm' is not allowed"),
        ("--cpu 1 -t 1s --cpu-method fft --cpu 2", "option --cpu is given twice"),
        ("--cpu 1 -t 1s", "option --cpu-method is required"),
        ("--cpu 1 --cpu-method fft", "give -t/--timeout or --cpu-ops"),
        ("--cpu x -t 1s --cpu-method fft", "option --cpu has a bad value 'x'"),
        ("--cpu 1 -t 1s --cpu-method 'fft", "cannot be split"),
        ("   ", "is empty"),
    ],
)
def test_unsafe_or_unknown_lines_are_refused_naming_line_and_option(line: str, message: str) -> None:
    with pytest.raises(JobError, match="stress-tests.txt line 7 .*" + message):
        check_test_line(line, 7)
