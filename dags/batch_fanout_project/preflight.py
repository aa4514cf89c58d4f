"""Preflight: what the Airflow worker can check about a run's parameters before the first Batch job of
the run is submitted.

A doomed run costs a leader attempt at best; in ``all_at_once`` mode it puts a whole graph of jobs into
Batch first. :func:`check_run_params` refuses it up front, through the same AWS connection the run
uses, and names every parameter at fault:

- ``graph``: the URI exists and is readable (``s3://`` through the Amazon provider's S3 hook and the
  run's connection, ``http(s)://`` by HEAD and a ranged GET, ``file://`` or a path on the worker); its
  first bytes are a DIMACS problem line ``p sp NODES ARCS`` (plain or gzip); its text fits the leader's
  memory (:mod:`batch_fanout_job.limits`; a gzip file's size is read from its trailer);
- ``grid`` (with ``graph`` ``generate``): the leader can generate it within its memory;
- ``shards``, ``origins``, ``paths_for``: at most 10,000 shards (AWS's largest array), no more shards
  than origins, origins and path ends within the graph's nodes (the problem line's count, or
  ``rows x columns`` for a grid, which the leader's largest connected part can only shrink);
- ``tests``, ``methods``, ``exclude_methods``: the filters select at least ``tests`` CPU methods. With
  stress-ng on the worker, the check uses its method list, as the leader does (the images and the
  local endpoint run the same Debian package); without it, only what the filters decide alone: a list
  of plain method names that the exclusions empty or that holds fewer than ``tests`` names;
- ``stress_duration``, ``stressors``, ``seed``, ``tolerated_failures``, ``work_seconds``,
  ``fail_once_indices``: integers in range, failure injection within the array.

Only the keys a DAG's params hold are checked. The module imports nothing heavy at import time (DAG
files import it at parse time); the S3 hook is imported when an ``s3://`` graph is checked.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batch_fanout_job.errors import JobError
from batch_fanout_job.limits import MAX_ARRAY_SIZE, check_graph_text_fits, check_grid_fits

#: How much of a graph file is read to find its problem line.
HEAD_BYTES = 64 * 1024
#: Seconds an ``http(s)://`` check may take.
HTTP_TIMEOUT = 30
_GZIP_MAGIC = b"\x1f\x8b"
_GRID = re.compile(r"([1-9][0-9]*)x([1-9][0-9]*)")
_PROBLEM_LINE = re.compile(r"p\s+sp\s+([0-9]+)\s+([0-9]+)")
_METHOD_PATTERN = re.compile(r"[A-Za-z0-9_*?\[\]!-]+")
_INT32_MAX = 2**31 - 1
_NOT_SET = ("", "none")


class PreflightError(ValueError):
    """Parameters of a run that cannot succeed; nothing of the run was submitted.

    :param problems: ``(parameter, what is wrong)`` pairs, each message naming its parameter.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        self.parameters = [parameter for parameter, _ in self.problems]
        lines = [f"{parameter}: {message}" for parameter, message in self.problems]
        super().__init__("the run's parameters cannot succeed, nothing was submitted: " + "; ".join(lines))


@dataclass
class _Graph:
    """What the check learned about the graph: an upper bound of its node count, when known."""

    nodes: int | None = None


def check_run_params(params: Mapping[str, Any], *, aws_conn_id: str) -> None:
    """Check the parameters of a run before its first Batch job is submitted.

    :param params: the run's params (the DAG's trigger form); only the keys present are checked.
    :param aws_conn_id: the Airflow AWS connection the run uses, for reading an ``s3://`` graph.
    :raises PreflightError: naming each parameter at fault, with the bound or the evidence.
    """
    problems: list[tuple[str, str]] = []

    def problem(parameter: str, message: str) -> None:
        problems.append((parameter, message))

    tests = _integer(params, "tests", 1, MAX_ARRAY_SIZE, problem)
    shards = _integer(params, "shards", 1, MAX_ARRAY_SIZE, problem)
    _integer(params, "stress_duration", 1, 3600, problem)
    _integer(params, "stressors", 0, None, problem)
    _integer(params, "seed", 0, None, problem)
    _integer(params, "tolerated_failures", 0, None, problem)
    _integer(params, "work_seconds", 0, 3600, problem)

    if "tests" in params and ("methods" in params or "exclude_methods" in params):
        _check_methods(params, tests, problem)

    graph = _Graph()
    if "graph" in params:
        graph = _check_graph(params, aws_conn_id, problem)
    origins = _check_origins(params, graph, problem) if "origins" in params else None
    if origins is None and "origins" not in params and "graph" in params:
        origins = _all_origins(graph.nodes)
    if shards is not None and origins is not None and origins.count is not None and shards > origins.count:
        problem(
            "shards",
            f"{shards} shards but only {origins.count} origins ({origins.described}): every shard needs "
            "at least one origin",
        )
    if "paths_for" in params:
        _check_paths_for(str(params["paths_for"]), graph, origins, problem)
    if "fail_once_indices" in params:
        size = shards if "shards" in params else tests
        _check_fail_once(str(params["fail_once_indices"]), size, problem)
    if problems:
        raise PreflightError(problems)


# --- integers ------------------------------------------------------------------------------------------


def _integer(
    params: Mapping[str, Any], name: str, minimum: int, maximum: int | None, problem: Any
) -> int | None:
    if name not in params:
        return None
    raw = params[name]
    if isinstance(raw, bool) or not (
        isinstance(raw, int) or (isinstance(raw, str) and raw.strip().isdigit())
    ):
        problem(name, f"{raw!r} is not an integer")
        return None
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f"at least {minimum}"
        problem(name, f"{value} is out of range ({bound})")
        return None
    return value


# --- stress-ng methods ----------------------------------------------------------------------------------


def _patterns(text: str) -> list[str] | None:
    value = text.strip()
    if value.lower() in (*_NOT_SET, "all"):
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _check_methods(params: Mapping[str, Any], tests: int | None, problem: Any) -> None:
    include_text = str(params.get("methods", "all"))
    exclude_text = str(params.get("exclude_methods", "none"))
    include, exclude = _patterns(include_text), _patterns(exclude_text)
    for name, patterns in (("methods", include), ("exclude_methods", exclude)):
        for pattern in patterns or []:
            if not _METHOD_PATTERN.fullmatch(pattern):
                problem(name, f"{pattern!r} is not a CPU method name or glob")
                return
    available = _worker_methods()
    if available is not None:
        from batch_fanout_job.errors import BadInputError
        from batch_fanout_job.stress_ng import select_methods

        try:
            selected = select_methods(available, include_text, None if exclude is None else exclude_text)
        except BadInputError as error:
            problem("methods", f"{error} (the worker's stress-ng lists {len(available)} methods)")
            return
        source = f"of the {len(available)} CPU methods of stress-ng"
    elif include is not None and not any(set(pattern) & set("*?[") for pattern in include):
        # Plain names only: what they leave after the exclusions is known without stress-ng.
        import fnmatch

        selected = [name for name in include if not any(fnmatch.fnmatchcase(name, p) for p in exclude or [])]
        source = "of the methods listed"
    else:
        if exclude is not None and "*" in exclude:
            problem("exclude_methods", f"{exclude_text!r} excludes every CPU method")
        return
    if not selected:
        problem("exclude_methods", f"methods {include_text!r} minus {exclude_text!r} selects no CPU method")
    elif tests is not None and tests > len(selected):
        problem(
            "tests",
            f"{tests} tests but only {len(selected)} {source} match methods {include_text!r} and "
            f"exclude_methods {exclude_text!r}",
        )


def _worker_methods() -> list[str] | None:
    """The CPU methods of the worker's stress-ng, or None when it has none (or it cannot list them)."""
    executable = shutil.which("stress-ng")
    if executable is None:
        return None
    from batch_fanout_job.stress_ng import list_cpu_methods

    try:
        return list_cpu_methods(executable)
    except JobError:
        return None


# --- the graph ----------------------------------------------------------------------------------------


def _check_graph(params: Mapping[str, Any], aws_conn_id: str, problem: Any) -> _Graph:
    spec = str(params["graph"]).strip()
    if spec.lower() in (*_NOT_SET, "generate"):
        grid = str(params.get("grid", "64x64")).strip()
        match = _GRID.fullmatch(grid)
        if not match:
            problem("grid", f"{grid!r} is not ROWSxCOLUMNS, e.g. 512x512")
            return _Graph()
        rows, columns = int(match.group(1)), int(match.group(2))
        if rows * columns < 2:
            problem("grid", f"{grid}: a graph needs at least 2 nodes")
            return _Graph()
        try:
            check_grid_fits(rows, columns, option="grid")
        except JobError as error:
            problem("grid", str(error).removeprefix("grid "))
            return _Graph()
        return _Graph(nodes=rows * columns)
    try:
        head, size, trailer = _read_graph_head(spec, aws_conn_id)
    except _GraphUnreadable as error:
        problem("graph", str(error))
        return _Graph()
    gzipped = head.startswith(_GZIP_MAGIC)
    if gzipped:
        try:
            text = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head)
        except zlib.error as error:
            problem("graph", f"{spec} is corrupt gzip data: {error}")
            return _Graph()
    else:
        text = head
    whole = not gzipped and size <= len(head)
    nodes = _problem_line_nodes(text, whole, spec, problem)
    text_bytes = size
    if gzipped and trailer is not None:
        # ISIZE, the uncompressed size modulo 2^32; never below the compressed size for text.
        text_bytes = max(size, int.from_bytes(trailer, "little"))
    try:
        check_graph_text_fits(text_bytes, spec)
    except JobError as error:
        problem("graph", str(error))
    return _Graph(nodes=nodes)


def _problem_line_nodes(text: bytes, whole: bool, uri: str, problem: Any) -> int | None:
    """The node count of the problem line among the first lines of the file, checking that it is one."""
    if not whole:
        text = text[: text.rfind(b"\n") + 1]  # complete lines only
    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            problem("graph", f"{uri} line {number}: not ASCII text, so not a DIMACS .gr file")
            return None
        if not line or line.split()[0] == "c":
            continue
        match = _PROBLEM_LINE.fullmatch(line)
        if not match:
            problem(
                "graph",
                f"{uri} line {number}: expected the problem line 'p sp NODES ARCS', got {line[:80]!r}",
            )
            return None
        nodes = int(match.group(1))
        if nodes < 1 or int(match.group(2)) < 1:
            problem("graph", f"{uri} line {number}: empty graph ({line!r})")
            return None
        if nodes > _INT32_MAX:
            problem(
                "graph",
                f"{uri} line {number}: {nodes} nodes is more than {_INT32_MAX} (node indices are int32)",
            )
            return None
        return nodes
    if whole:
        problem("graph", f"{uri} has no problem line 'p sp NODES ARCS': empty or not a DIMACS .gr file")
    return None


class _GraphUnreadable(Exception):
    """The graph URI does not exist or cannot be read; the message says which and why."""


def _read_graph_head(uri: str, aws_conn_id: str) -> tuple[bytes, int, bytes | None]:
    """The first :data:`HEAD_BYTES` of the graph, its size in bytes and its last 4 bytes (or None)."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme == "s3":
        return _read_s3_head(uri, aws_conn_id)
    if scheme in ("http", "https"):
        return _read_http_head(uri)
    if scheme in ("", "file"):
        return _read_local_head(uri)
    raise _GraphUnreadable(
        f"{uri}: scheme {scheme}:// is not supported (s3://, https://, http://, file:// or a path)"
    )


def _read_local_head(uri: str) -> tuple[bytes, int, bytes | None]:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme and parts.netloc not in ("", "localhost"):
        raise _GraphUnreadable(
            f"{uri} names the host {parts.netloc!r}; a file:// graph is on the worker itself"
        )
    path = urllib.request.url2pathname(parts.path) if parts.scheme else uri
    if not os.path.isabs(path):
        raise _GraphUnreadable(f"{uri} is a relative path: give file:///absolute/path or an absolute path")
    if not os.path.exists(path):
        raise _GraphUnreadable(f"{uri} does not exist")
    if not os.path.isfile(path):
        raise _GraphUnreadable(f"{uri} is not a file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
            size = os.fstat(handle.fileno()).st_size
            trailer = None
            if size >= 4:
                handle.seek(size - 4)
                trailer = handle.read(4)
    except OSError as error:
        raise _GraphUnreadable(f"{uri} cannot be read: {error.strerror or error}") from error
    return head, size, trailer


def _read_s3_head(uri: str, aws_conn_id: str) -> tuple[bytes, int, bytes | None]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.exceptions import BotoCoreError, ClientError

    parts = urllib.parse.urlsplit(uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise _GraphUnreadable(f"{uri} is not s3://bucket/key")
    where = f"{uri} (connection {aws_conn_id!r})"
    try:
        client: Any = S3Hook(aws_conn_id=aws_conn_id).get_conn()
        size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        head = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEAD_BYTES - 1}")["Body"].read()
        trailer = None
        if size >= 4:
            trailer = client.get_object(Bucket=bucket, Key=key, Range="bytes=-4")["Body"].read()
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchKey", "NotFound") and _bucket_exists(client, bucket):
            raise _GraphUnreadable(f"{where} does not exist") from error
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise _GraphUnreadable(f"{where}: the bucket {bucket!r} does not exist") from error
        if status == 403 or code in ("403", "AccessDenied", "Forbidden"):
            raise _GraphUnreadable(
                f"{where} cannot be read: access denied (s3:GetObject, or s3:ListBucket to tell a missing "
                "key from a forbidden one)"
            ) from error
        raise _GraphUnreadable(f"{where} cannot be read: {error}") from error
    except BotoCoreError as error:
        raise _GraphUnreadable(f"{where} cannot be read: {error}") from error
    except Exception as error:  # the hook raises Airflow's own errors for a missing connection
        raise _GraphUnreadable(f"{where} cannot be read: {type(error).__name__}: {error}") from error
    return bytes(head), size, None if trailer is None else bytes(trailer)


def _bucket_exists(client: Any, bucket: str) -> bool:
    """Whether the bucket exists (a HEAD of a missing key and of a missing bucket both answer 404)."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as error:
        return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404
    return True


def _read_http_head(uri: str) -> tuple[bytes, int, bytes | None]:
    def request(method: str, byte_range: str | None = None) -> Any:
        headers = {"Range": f"bytes={byte_range}"} if byte_range else {}
        return urllib.request.urlopen(
            urllib.request.Request(uri, method=method, headers=headers), timeout=HTTP_TIMEOUT
        )

    try:
        with request("HEAD") as response:
            length = response.headers.get("Content-Length")
        with request("GET", f"0-{HEAD_BYTES - 1}") as response:
            head = response.read(HEAD_BYTES)
            ranged = response.status == 206
            total = response.headers.get("Content-Range", "").rpartition("/")[2]
        size = int(total) if total.isdigit() else int(length) if length and length.isdigit() else len(head)
        trailer = None
        if ranged and size >= 4:
            with request("GET", "-4") as response:
                trailer = response.read(4)
    except urllib.error.HTTPError as error:
        if error.code in (404, 410):
            raise _GraphUnreadable(f"{uri} does not exist (HTTP {error.code})") from error
        raise _GraphUnreadable(f"{uri} cannot be read: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise _GraphUnreadable(f"{uri} cannot be read: {reason}") from error
    return head, size, trailer


# --- origins, paths, failure injection ---------------------------------------------------------------------


@dataclass
class _Origins:
    count: int | None
    described: str
    listed: list[int] | None = None


def _all_origins(nodes: int | None) -> _Origins:
    return _Origins(nodes, f"origins all: the graph has {nodes if nodes is not None else 'unknown'} nodes")


def _check_origins(params: Mapping[str, Any], graph: _Graph, problem: Any) -> _Origins | None:
    spec = str(params["origins"]).strip().lower()
    nodes = graph.nodes
    bound = f"the graph has at most {nodes} nodes" if nodes is not None else ""
    if spec in (*_NOT_SET, "all"):
        return _all_origins(nodes)
    if spec.isdigit():
        count = int(spec)
        if count < 1:
            problem("origins", "0 origins: give at least 1")
            return None
        if nodes is not None and count > nodes:
            problem("origins", f"{count} origins but {bound}")
            return None
        return _Origins(count, f"origins {count}")
    listed: list[int] = []
    for entry in (part.strip() for part in spec.removeprefix("ids:").split(",")):
        if not entry:
            continue
        if not entry.isdigit() or int(entry) < 1:
            problem("origins", f"{entry!r} is not a node id")
            return None
        node = int(entry)
        if nodes is not None and node > nodes:
            problem("origins", f"origin {node} is not a node of the graph ({bound})")
            return None
        if node in listed:
            problem("origins", f"origin {node} is listed twice")
            return None
        listed.append(node)
    if not listed:
        problem("origins", f"{spec!r}: no origin given")
        return None
    return _Origins(len(listed), f"{len(listed)} listed origins", listed)


def _check_paths_for(text: str, graph: _Graph, origins: _Origins | None, problem: Any) -> None:
    if text.strip().lower() in _NOT_SET:
        return
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        pieces = entry.split(":")
        if len(pieces) > 2 or not all(piece.isdigit() and int(piece) >= 1 for piece in pieces):
            problem("paths_for", f"{entry!r} is not ORIGIN or ORIGIN:TARGET (node ids)")
            return
        for node in pieces:
            if graph.nodes is not None and int(node) > graph.nodes:
                problem("paths_for", f"{node} is not a node of the graph (at most {graph.nodes} nodes)")
                return
        if origins is not None and origins.listed is not None and int(pieces[0]) not in origins.listed:
            problem("paths_for", f"origin {pieces[0]} is not among the run's origins {origins.listed}")
            return


def _check_fail_once(text: str, size: int | None, problem: Any) -> None:
    if text.strip().lower() in _NOT_SET:
        return
    for entry in (part.strip() for part in text.split(",")):
        if not entry.isdigit():
            problem("fail_once_indices", f"{entry!r} is not a logical index")
            return
        if size is not None and int(entry) >= size:
            problem("fail_once_indices", f"index {entry} is past the end of the array (size {size})")
            return
