"""stress-ng: finding it, listing its CPU methods, checking a test line, reading its YAML metrics.

Pitfalls handled here: ``stress-ng --cpu-method which`` prints the list on stderr and exits 1; all
console output, metrics included, goes to stderr; the ``--yaml`` file says ``stressor: cpu`` but not
which method; and PyYAML's ``safe_load`` reads ``date-yyyy-mm-dd: 2026:11:21`` as a base-60 integer.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from batch_fanout_job.errors import BadInputError, JobError

METHOD_LIST_MARKER = "cpu-method must be one of:"
_METHOD = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION = re.compile(r"^[1-9][0-9]*[smhd]?$")
_COUNT = re.compile(r"^(0|[1-9][0-9]*)$")


def find_stress_ng() -> str:
    """The path of the ``stress-ng`` executable.

    :raises JobError: when it is not on ``PATH``.
    """
    path = shutil.which("stress-ng")
    if path is None:
        raise JobError("stress-ng not found on PATH: install it (Debian package stress-ng)")
    return path


def stress_ng_version(executable: str) -> str:
    """The version of stress-ng, e.g. ``0.15.06``."""
    completed = subprocess.run(
        [executable, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    match = re.search(r"version\s+([0-9][0-9A-Za-z.\-]*)", completed.stdout + completed.stderr)
    if completed.returncode != 0 or not match:
        raise JobError(
            f"{executable} --version failed (exit {completed.returncode}): {completed.stderr.strip()}"
        )
    return match.group(1)


def parse_method_list(output: str) -> list[str]:
    """Extract the CPU methods from the output of ``stress-ng --cpu-method which`` (without ``all``).

    :raises JobError: when the output does not hold the list.
    """
    position = output.find(METHOD_LIST_MARKER)
    if position < 0:
        raise JobError(
            f"stress-ng --cpu-method which did not list the methods; it said: {output.strip()[:500]!r}"
        )
    methods = [word for word in output[position + len(METHOD_LIST_MARKER) :].split() if word != "all"]
    if not methods or not all(_METHOD.match(method) for method in methods):
        raise JobError(f"stress-ng --cpu-method which gave an unexpected method list: {methods[:10]!r}")
    return methods


def list_cpu_methods(executable: str) -> list[str]:
    """The CPU methods of the installed stress-ng, in its order (it exits 1 after listing them)."""
    completed = subprocess.run(
        [executable, "--cpu-method", "which"], capture_output=True, text=True, timeout=60, check=False
    )
    return parse_method_list(completed.stderr + "\n" + completed.stdout)


def _check_count(value: str) -> bool:
    return bool(_COUNT.match(value))


def _check_percent(value: str) -> bool:
    return bool(_COUNT.match(value)) and int(value) <= 100


#: Options a test line may hold, with a check of their value (None: a flag without value).
ALLOWED_OPTIONS: dict[str, Callable[[str], bool] | None] = {
    "--cpu": _check_count,
    "--cpu-method": lambda value: bool(_METHOD.match(value)),
    "--cpu-ops": _check_count,
    "--cpu-load": _check_percent,
    "--cpu-load-slice": lambda value: bool(re.match(r"^-?[0-9]+$", value)),
    "--timeout": lambda value: bool(_DURATION.match(value)),
    "--metrics-brief": None,
    "--metrics": None,
    "--verify": None,
    "--times": None,
}
_ALIASES = {"-t": "--timeout"}
#: Options refused with the reason why (the follower writes its own --yaml).
REFUSED_OPTIONS = {
    "--log-file": "writes files",
    "--yaml": "writes files (the follower sets its own)",
    "-Y": "writes files (the follower sets its own)",
    "--temp-path": "writes files",
    "--exec": "runs commands",
    "--exec-method": "runs commands",
    "--job": "runs a job file",
    "-j": "runs a job file",
}


@dataclass(frozen=True)
class StressTest:
    """One checked test line: its arguments, and the method and stressor count it names."""

    line: str
    arguments: list[str]
    method: str
    stressors: int


def check_test_line(line: str, line_number: int) -> StressTest:
    """Split a test line with shlex and check it against the allowlist.

    :param line: one line of ``stress-tests.txt``.
    :param line_number: its 1-based line number, for messages.
    :raises BadInputError: naming the line and the option at fault.
    """
    where = f"stress-tests.txt line {line_number} ({line.strip()!r})"
    if not line.strip():
        raise BadInputError(f"stress-tests.txt line {line_number} is empty")
    try:
        tokens = shlex.split(line, comments=False, posix=True)
    except ValueError as error:
        raise BadInputError(f"{where}: cannot be split: {error}") from error
    arguments: list[str] = []
    values: dict[str, str] = {}
    position = 0
    while position < len(tokens):
        token = tokens[position]
        inline_value: str | None = None
        option = token
        if token.startswith("--") and "=" in token:
            option, inline_value = token.split("=", 1)
        option = _ALIASES.get(option, option)
        if option in REFUSED_OPTIONS or token in REFUSED_OPTIONS:
            reason = REFUSED_OPTIONS.get(option) or REFUSED_OPTIONS[token]
            raise BadInputError(f"{where}: option {option} is refused: it {reason}")
        if option not in ALLOWED_OPTIONS:
            kind = "option" if token.startswith("-") else "argument"
            raise BadInputError(
                f"{where}: {kind} {token!r} is not allowed (allowed: {', '.join(ALLOWED_OPTIONS)})"
            )
        if option in values:
            raise BadInputError(f"{where}: option {option} is given twice")
        check = ALLOWED_OPTIONS[option]
        if check is None:
            if inline_value is not None:
                raise BadInputError(f"{where}: option {option} takes no value")
            arguments.append(option)
            values[option] = ""
            position += 1
            continue
        if inline_value is None:
            if position + 1 >= len(tokens):
                raise BadInputError(f"{where}: option {option} needs a value")
            inline_value = tokens[position + 1]
            position += 1
        if not check(inline_value):
            raise BadInputError(f"{where}: option {option} has a bad value {inline_value!r}")
        arguments.extend([option, inline_value])
        values[option] = inline_value
        position += 1
    for required in ("--cpu", "--cpu-method"):
        if required not in values:
            raise BadInputError(f"{where}: option {required} is required")
    if "--timeout" not in values and "--cpu-ops" not in values:
        raise BadInputError(f"{where}: give -t/--timeout or --cpu-ops so that the test ends")
    return StressTest(
        line=line.strip(), arguments=arguments, method=values["--cpu-method"], stressors=int(values["--cpu"])
    )


def format_test_line(method: str, stressors: int, duration: str) -> str:
    """The argument line of one test, as the leader writes it."""
    return f"--cpu {stressors} -t {duration} --cpu-method {method} --metrics-brief"


def _yaml_loader() -> Any:
    """A safe YAML loader without YAML 1.1's base-60 numbers (``2026:11:21`` stays a string)."""
    import yaml

    class StressNgLoader(yaml.SafeLoader):
        pass

    resolvers = {
        key: [
            (tag, regexp)
            for tag, regexp in entries
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
        ]
        for key, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    StressNgLoader.yaml_implicit_resolvers = resolvers
    StressNgLoader.add_implicit_resolver(
        "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
    )
    StressNgLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)$"),
        list("-+0123456789."),
    )
    return StressNgLoader


def load_yaml(text: str) -> Any:
    """Parse stress-ng's YAML output safely (no base-60 integers)."""
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
    except yaml.YAMLError as error:
        raise JobError(f"stress-ng YAML output cannot be parsed: {error}") from error


#: YAML metric key -> output field.
METRIC_FIELDS = {
    "bogo-ops": "bogo_ops",
    "bogo-ops-per-second-real-time": "bogo_ops_per_second_real",
    "bogo-ops-per-second-usr-sys-time": "bogo_ops_per_second_usr_sys",
    "wall-clock-time": "wall_clock_seconds",
    "user-time": "user_seconds",
    "system-time": "system_seconds",
    "cpu-usage-per-instance": "cpu_usage_percent_per_instance",
    "max-rss": "max_rss_kb",
}


def metrics_from_yaml(document: Any, stressor: str = "cpu") -> tuple[dict[str, float], dict[str, Any]]:
    """The metrics of ``stressor`` and the system info from a parsed stress-ng YAML document.

    :raises JobError: when the document has no metrics for the stressor.
    """
    if not isinstance(document, dict):
        raise JobError("stress-ng YAML output is not a mapping")
    entries = document.get("metrics") or []
    entry = next(
        (item for item in entries if isinstance(item, dict) and item.get("stressor") == stressor), None
    )
    if entry is None:
        raise JobError(f"stress-ng YAML output has no metrics for stressor {stressor!r}")
    metrics: dict[str, float] = {}
    for key, field in METRIC_FIELDS.items():
        value = entry.get(key)
        if value is not None:
            try:
                metrics[field] = float(value)
            except (TypeError, ValueError) as error:
                raise JobError(f"stress-ng YAML metric {key} is not a number: {value!r}") from error
    if "bogo_ops" not in metrics:
        raise JobError("stress-ng YAML output has no bogo-ops")
    system_info = document.get("system-info") or {}
    return metrics, {str(key): str(value) for key, value in system_info.items()}


def select_methods(available: Sequence[str], include: str | None, exclude: str | None) -> list[str]:
    """Filter the methods by include and exclude lists of names or globs, keeping stress-ng's order.

    The leader plans its tests with it, and a DAG's preflight check with the same list when the
    Airflow worker has stress-ng.

    :param available: the CPU methods of stress-ng, in its order.
    :param include: comma-separated names or globs (None or ``all``: every method).
    :param exclude: comma-separated names or globs to leave out (None: none).
    :raises BadInputError: when an include entry matches no method.
    """
    selected = list(available)
    if include is not None and include.lower() == "all":
        include = None
    if include is not None:
        patterns = [pattern.strip() for pattern in include.split(",") if pattern.strip()]
        for pattern in patterns:
            if not fnmatch.filter(available, pattern):
                raise BadInputError(f"--methods: {pattern!r} matches no CPU method of this stress-ng")
        selected = [method for method in selected if any(fnmatch.fnmatchcase(method, p) for p in patterns)]
    if exclude is not None:
        patterns = [pattern.strip() for pattern in exclude.split(",") if pattern.strip()]
        selected = [
            method for method in selected if not any(fnmatch.fnmatchcase(method, p) for p in patterns)
        ]
    return selected
