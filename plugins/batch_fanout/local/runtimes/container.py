"""The container runtime: each attempt runs in its job definition's image under podman or docker.

An attempt becomes ``<engine> run`` in the foreground (``process_spec``, the endpoint's runtime
interface), so its supervisor watches it as it watches a process: the client's output (the
container's stdout and stderr) is the attempt's log stream and its exit status is the container's;
SIGTERM reaches the container through the client (``run`` proxies signals), and a supervisor kills
it with ``<engine> kill`` (never by killing what runs below the supervisor, the engine's monitor
among them, whose death would leave the engine's record of the container stale).
What differs from the process runtime:

- the image is the job definition's, as on AWS, and never pulled: an image that is not present fails
  the attempt with ``CannotPullContainerError``, like a registry that does not have it;
- the job definition's command (after ``Ref::`` substitution) replaces the image's ``CMD`` and runs in
  the image's ``WORKDIR`` as the image's ``USER``, with ``--cpus`` and ``--memory`` (swap off) from the
  resource requirements, and ``--init`` only when the definition asks for it
  (``linuxParameters.initProcessEnabled``): without it the command is PID 1, as on AWS;
- every ``file://`` URI in the job's environment (the results store) is mounted at the same path, so the
  job sees the path it was given. The image's user must be able to write there, as on a shared file
  system on AWS: with a rootful engine the folder gets an ACL entry for that user (``setfacl``), with
  rootless podman the caller's user is mapped to it (``--userns=keep-id``);
- the memory limit is the container's cgroup's (the supervisor does not count it); a kernel OOM kill
  is reported as AWS reports it;
- containers are labelled with the endpoint, job and attempt, so a restarted endpoint finds (and
  stops) what an earlier one left running, and ``podman ps -a --filter label=...`` shows every
  attempt's container; they are kept after they exit, as ECS keeps stopped tasks for a while.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from batch_fanout.images.engine import ContainerEngine, EngineError, last_line

if TYPE_CHECKING:
    from batch_fanout.local.runtime import AttemptRequest, ProcessSpec

log = logging.getLogger(__name__)

LABEL_PREFIX = "io.github.batch-fanout.local"
ENDPOINT_LABEL = f"{LABEL_PREFIX}.endpoint"
JOB_LABEL = f"{LABEL_PREFIX}.job-id"
ATTEMPT_LABEL = f"{LABEL_PREFIX}.attempt"
DEFINITION_LABEL = f"{LABEL_PREFIX}.job-definition"
NAME_PREFIX = "batch-job-"
ENGINE_CALL_TIMEOUT = 60.0
# The exit status a killed container reports for SIGKILL (128 + 9), which an OOM kill also gives.
KILLED_EXIT_CODE = 137


class ImageNotFoundError(LookupError):
    """The image is not present locally (the local endpoint never pulls)."""


class ContainerStartError(RuntimeError):
    """What a container needs cannot be set up (its user cannot write its mount, the engine fails)."""


@dataclass(frozen=True)
class ContainerAttempt:
    """One attempt to run in a container.

    :param attempt_id: the attempt's id (names and labels the container)
    :param job_id: the job's id (``<parent>:<index>`` for an array child)
    :param job_definition: the job definition's name, for the labels
    :param image: the image, as the job definition names it
    :param command: the command after ``Ref::`` substitution; empty runs the image's ``CMD``
    :param environment: the definition's and the overrides' variables and the ``AWS_BATCH_*`` ones
    :param vcpus: the vCPUs of the resource requirements (``--cpus``)
    :param memory_mib: the memory of the resource requirements (``--memory``), 0 for none
    :param init_process: run an init process as PID 1 (``linuxParameters.initProcessEnabled``)
    """

    attempt_id: str
    job_id: str
    job_definition: str
    image: str
    command: Sequence[str]
    environment: Mapping[str, str]
    vcpus: float
    memory_mib: int
    init_process: bool = False
    extra_labels: Mapping[str, str] = field(default_factory=dict)


def endpoint_id(data_dir: Path) -> str:
    """A short id of the endpoint's data directory: the label its containers share."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]


def container_name(attempt_id: str) -> str:
    return f"{NAME_PREFIX}{attempt_id}"


def _file_uri_path(value: str) -> Path | None:
    if not value.startswith("file://"):
        return None
    parsed = urlparse(value)
    if parsed.netloc not in ("", "localhost"):  # file://host/path names another machine's file
        return None
    path = Path(unquote(parsed.path))
    return Path(os.path.normpath(path)) if path.is_absolute() else None


def file_mounts(environment: Mapping[str, str], command: Sequence[str] = ()) -> list[Path]:
    """The local paths the job is given as ``file://`` URIs, to mount at the same paths: every one in
    its environment (a results store: created when missing, as the job would create it) and every
    existing one in its command (an input); outermost only, sorted."""
    paths: set[Path] = set()
    for value in environment.values():
        path = _file_uri_path(value)
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            paths.add(path)
    for argument in command:
        path = _file_uri_path(argument)
        if path is not None and path.exists():
            paths.add(path)
    return sorted(path for path in paths if not any(other in path.parents for other in paths))


_ID_OUTPUT = re.compile(r"uid=(\d+)\S*\s+gid=(\d+)")


class ContainerRuntime:
    """Runs attempts in containers of ``engine``, labelled as the endpoint of ``data_dir``'s.

    :param engine: podman or docker, with this machine's flags
    :param data_dir: the endpoint's data directory (its containers carry its id)
    """

    def __init__(self, engine: ContainerEngine, data_dir: Path) -> None:
        self.engine = engine
        self.name = engine.name
        self.endpoint = endpoint_id(data_dir)
        self._users: dict[str, tuple[int, int]] = {}
        self._granted: set[tuple[Path, int]] = set()
        self._present: set[str] = set()
        self._lock = threading.Lock()

    # ---- what a container needs ------------------------------------------------------------

    def labels(self, attempt: ContainerAttempt) -> dict[str, str]:
        return {
            ENDPOINT_LABEL: self.endpoint,
            JOB_LABEL: attempt.job_id,
            ATTEMPT_LABEL: attempt.attempt_id,
            DEFINITION_LABEL: attempt.job_definition,
            **attempt.extra_labels,
        }

    def check_image(self, image: str) -> None:
        """:raises ImageNotFoundError: with AWS's ``CannotPullContainerError`` wording"""
        if image in self._present:
            return
        if not image or not self.engine.image_exists(image):
            raise ImageNotFoundError(
                f"CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to "
                f"resolve ref {image}: {image}: not found (the local endpoint runs only images present "
                f"in {self.engine.name}: build them with `batch-fanout images build`)"
            )
        self._present.add(image)

    def image_user(self, image: str) -> tuple[int, int]:
        """The uid and gid the image's ``USER`` runs as (asked of the image itself once)."""
        cached = self._users.get(image)
        if cached is not None:
            return cached
        user = self.engine.call(
            ["image", "inspect", "--format", "{{.Config.User}}", image], timeout=ENGINE_CALL_TIMEOUT
        ).stdout.strip()
        if user in ("", "root", "0", "0:0"):
            ids = (0, 0)
        else:
            done = self.engine.call(
                ["run", "--rm", "--pull=never", *self.engine.limit_args, "--entrypoint", "id", image],
                timeout=ENGINE_CALL_TIMEOUT,
            )
            match = _ID_OUTPUT.search(done.stdout)
            if not match:
                raise ContainerStartError(f"cannot tell the uid of user {user!r} of {image}: {done.stdout!r}")
            ids = (int(match.group(1)), int(match.group(2)))
        self._users[image] = ids
        return ids

    def grant_write(self, folder: Path, uid: int) -> None:
        """Let ``uid`` write in ``folder`` and what is created below it (ACL entries, once)."""
        if uid == os.geteuid() or (folder, uid) in self._granted:
            return
        folder.mkdir(parents=True, exist_ok=True)
        setfacl = shutil.which("setfacl")
        if setfacl is None:
            raise ContainerStartError(
                f"the image's user (uid {uid}) cannot write {folder} and setfacl is missing to let it: "
                "install it with: apt-get install -y acl"
            )
        entries = f"u:{uid}:rwX,d:u:{uid}:rwX,m::rwx,d:m::rwx"
        done = subprocess.run(
            [setfacl, "-R", "-m", entries, str(folder)],
            capture_output=True,
            text=True,
            timeout=ENGINE_CALL_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise ContainerStartError(f"cannot let uid {uid} write {folder}: {last_line(done.stderr)}")
        log.info("granted uid %s write access to %s (ACL) for its containers", uid, folder)
        self._granted.add((folder, uid))

    def run_command(self, attempt: ContainerAttempt, uid: int = 0, gid: int = 0) -> list[str]:
        """The ``<engine> run`` argument vector of ``attempt`` (the image's user being uid:gid)."""
        args = ["run", "--name", container_name(attempt.attempt_id), "--pull=never"]
        for key, value in self.labels(attempt).items():
            args += ["--label", f"{key}={value}"]
        args += self.engine.limit_args
        if attempt.vcpus:
            args += ["--cpus", f"{attempt.vcpus:g}"]
        if attempt.memory_mib:
            # AWS's MEMORY is a hard limit; swap only where linuxParameters asks for it.
            args += ["--memory", f"{attempt.memory_mib}m", "--memory-swap", f"{attempt.memory_mib}m"]
        if attempt.init_process:
            args.append("--init")
        if self.engine.rootless and uid:
            args.append(f"--userns=keep-id:uid={uid},gid={gid}")
        for name, value in attempt.environment.items():
            args += ["--env", f"{name}={value}"]
        for path in file_mounts(attempt.environment, attempt.command):
            args += ["--volume", f"{path}:{path}"]
        args.append(attempt.image)
        args += list(attempt.command)
        return self.engine.command(*args)

    # ---- running and stopping --------------------------------------------------------------

    def prepare(self, attempt: ContainerAttempt) -> tuple[list[str], dict[str, str]]:
        """What runs ``attempt``: the ``<engine> run`` argument vector and the client's environment
        (the job's own environment is in the vector). Checks the image and readies the mounts.

        :raises ImageNotFoundError: the image is not present
        :raises ContainerStartError: the container cannot be set up
        """
        with self._lock:
            self.check_image(attempt.image)
            try:
                uid, gid = self.image_user(attempt.image)
                if not self.engine.rootless:
                    # Only what the environment names is written to (a results store); inputs in the
                    # command are read, which their usual modes allow.
                    for folder in file_mounts(attempt.environment):
                        self.grant_write(folder, uid)
            except EngineError as error:
                raise ContainerStartError(str(error)) from error
        environment = {
            name: os.environ[name] for name in ("PATH", "HOME", "XDG_RUNTIME_DIR") if name in os.environ
        }
        return self.run_command(attempt, uid, gid), environment

    # ---- the endpoint's runtime interface ----------------------------------------------------

    # The container's cgroup enforces the memory requirement (the supervisor does not count it).
    enforces_memory = True

    def process_spec(self, request: AttemptRequest) -> ProcessSpec:
        """The process a supervisor runs for ``request``: ``<engine> run`` in the foreground, whose
        output is the container's and whose exit status is the container's.

        :raises LookupError: the image is not present (``CannotPullContainerError``)
        :raises ValueError: the container cannot be set up (``CannotStartContainerError``)
        """
        from batch_fanout.local.runtime import ProcessSpec

        attempt = ContainerAttempt(
            attempt_id=request.attempt_id,
            job_id=request.environment.get("AWS_BATCH_JOB_ID", ""),
            job_definition=request.job_definition,
            image=request.image,
            command=request.command,
            environment=request.environment,
            vcpus=request.vcpus,
            memory_mib=request.memory_mib,
            init_process=request.init_process,
        )
        try:
            argv, environment = self.prepare(attempt)
        except ImageNotFoundError as error:
            # The engine names the error class itself.
            raise LookupError(str(error).removeprefix("CannotPullContainerError: ")) from error
        except ContainerStartError as error:
            raise ValueError(str(error)) from error
        kill = self.engine.command("kill", "--signal", "KILL", container_name(request.attempt_id))
        return ProcessSpec(argv, Path("/"), environment, kill_argv=kill)

    def signal(self, attempt_id: str, sig: int) -> None:
        """Send ``sig`` to the attempt's container (not to its client, which would leave it running)."""
        name = signal.Signals(sig).name.removeprefix("SIG")
        done = self.engine.call(
            ["kill", "--signal", name, container_name(attempt_id)], timeout=ENGINE_CALL_TIMEOUT, check=False
        )
        if done.returncode != 0:
            log.debug("%s kill %s: %s", self.engine.name, attempt_id, last_line(done.stderr))

    def oom_killed(self, attempt_id: str) -> bool:
        """Whether the attempt's container, which exited on a SIGKILL nobody asked for, was killed for
        exceeding its memory: the engine's OOM flag, or (podman with runc on a cgroup v1 or hybrid
        host never sets that flag) a memory limit, since nothing else in a container sends SIGKILL."""
        done = self.engine.call(
            [
                "inspect",
                "--format",
                "{{.State.OOMKilled}} {{.HostConfig.Memory}}",
                container_name(attempt_id),
            ],
            timeout=ENGINE_CALL_TIMEOUT,
            check=False,
        )
        flag, _, memory = done.stdout.strip().partition(" ")
        if done.returncode != 0:
            return False
        return flag.lower() == "true" or (memory.isdigit() and int(memory) > 0)

    def find(self, **labels: str) -> list[dict[str, str]]:
        """This endpoint's containers (running or not) with these labels: ``name``, ``state``,
        ``attempt``, ``job_id``."""
        args = ["ps", "--all", "--no-trunc", "--filter", f"label={ENDPOINT_LABEL}={self.endpoint}"]
        for key, value in labels.items():
            args += ["--filter", f"label={key}={value}"]
        args += ["--format", "{{json .}}"] if self.engine.name == "docker" else ["--format", "json"]
        done = self.engine.call(args, timeout=ENGINE_CALL_TIMEOUT)
        return [_summary(entry) for entry in _json_entries(done.stdout)]

    def stop_leftovers(self, attempt_id: str) -> bool:
        """Kill the container an earlier endpoint started for ``attempt_id``; whether one ran."""
        running = [entry for entry in self.find(**{ATTEMPT_LABEL: attempt_id}) if entry["state"] == "running"]
        for _entry in running:
            self.signal(attempt_id, signal.SIGKILL)
        return bool(running)


def _json_entries(output: str) -> list[dict[str, object]]:
    output = output.strip()
    if not output:
        return []
    if output.startswith("["):  # podman: one JSON array
        loaded = json.loads(output)
        return [entry for entry in loaded if isinstance(entry, dict)]
    entries = []
    for line in output.splitlines():  # docker: one JSON object a line
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def _labels_of(entry: Mapping[str, object]) -> dict[str, str]:
    labels = entry.get("Labels")
    if isinstance(labels, dict):
        return {str(key): str(value) for key, value in labels.items()}
    if isinstance(labels, str):  # docker: "k=v,k=v"
        return dict(item.split("=", 1) for item in labels.split(",") if "=" in item)
    return {}


def _summary(entry: Mapping[str, object]) -> dict[str, str]:
    labels = _labels_of(entry)
    names = entry.get("Names")
    name = names[0] if isinstance(names, list) and names else str(names or "")
    return {
        "name": name,
        "state": str(entry.get("State", "")).lower(),
        "attempt": labels.get(ATTEMPT_LABEL, ""),
        "job_id": labels.get(JOB_LABEL, ""),
    }


__all__ = [
    "ATTEMPT_LABEL",
    "ENDPOINT_LABEL",
    "JOB_LABEL",
    "KILLED_EXIT_CODE",
    "ContainerAttempt",
    "ContainerRuntime",
    "ContainerStartError",
    "ImageNotFoundError",
    "container_name",
    "endpoint_id",
    "file_mounts",
]
