"""A container engine (podman or docker) and the flags this machine needs on every invocation.

Two things about some VMs are handled here, per invocation, never by editing ``/etc``:

- a root without ``CAP_SYS_RESOURCE`` cannot raise a container's rlimits above its own hard limits,
  while podman's default ``nofile`` is above them: containers get ``nofile`` at the caller's hard
  limit and ``nproc`` at most 32768;
- crun refuses a hybrid (cgroup v1 + v2) hierarchy: podman is told to use runc there.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

ENGINES = ("podman", "docker")
CAP_SYS_RESOURCE = 24
NPROC_CEILING = 32768


class EngineError(RuntimeError):
    """A container engine is missing or a call to it failed; the message says which and why."""


def _effective_capabilities() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def _cgroup_is_unified() -> bool:
    """``True`` when ``/sys/fs/cgroup`` is a cgroup v2 mount (not v1, not hybrid)."""
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "/sys/fs/cgroup":
                    return fields[2] == "cgroup2"
    except OSError:
        pass
    return True


def ulimit_flags() -> tuple[str, ...]:
    """``--ulimit`` flags that fit under this process's hard limits, when it cannot raise them."""
    capabilities = _effective_capabilities()
    if capabilities is None or capabilities & (1 << CAP_SYS_RESOURCE):
        return ()
    flags: list[str] = []
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if nofile != resource.RLIM_INFINITY:
        flags += ["--ulimit", f"nofile={nofile}:{nofile}"]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = NPROC_CEILING if nproc == resource.RLIM_INFINITY else min(nproc, NPROC_CEILING)
    flags += ["--ulimit", f"nproc={nproc}:{nproc}"]
    return tuple(flags)


@dataclass(frozen=True)
class ContainerEngine:
    """How to call one container engine on this machine.

    :param name: ``podman`` or ``docker``
    :param binary: the engine's executable
    :param global_args: flags given before every subcommand (podman's ``--runtime``)
    :param limit_args: flags of ``run`` and ``build`` that keep containers under this machine's limits
    :param rootless: the engine runs containers in the caller's user namespace (podman as non-root)
    """

    name: str
    binary: str
    global_args: tuple[str, ...] = ()
    limit_args: tuple[str, ...] = ()
    rootless: bool = False

    @classmethod
    def detect(cls, name: str | None = None) -> ContainerEngine:
        """The engine ``name``, or the first of podman, docker that is installed.

        :raises EngineError: naming what is missing and how to install it
        """
        if name is not None and name not in ENGINES:
            raise EngineError(f"unknown container engine {name!r}: choose one of {', '.join(ENGINES)}")
        for candidate in (name,) if name else ENGINES:
            binary = shutil.which(candidate)
            if binary is None:
                continue
            global_args: tuple[str, ...] = ()
            if candidate == "podman" and not _cgroup_is_unified():
                runc = shutil.which("runc")
                if runc is None:
                    raise EngineError(
                        "podman on a hybrid cgroup hierarchy needs runc (crun refuses it): "
                        "install it with: apt-get install -y runc"
                    )
                global_args = ("--runtime", runc)
            return cls(
                name=candidate,
                binary=binary,
                global_args=global_args,
                limit_args=ulimit_flags(),
                rootless=candidate == "podman" and os.geteuid() != 0,
            )
        wanted = name or " or ".join(ENGINES)
        raise EngineError(
            f"no container engine found ({wanted} is not on PATH): install podman with "
            "`make images` (apt-get install -y podman runc) or docker"
        )

    def command(self, *args: str) -> list[str]:
        """The argument vector of ``<engine> <global flags> args...``."""
        return [self.binary, *self.global_args, *args]

    def call(
        self, args: Sequence[str], *, timeout: float | None = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<engine> args`` and capture its output, never through a shell.

        :raises EngineError: when ``check`` and it exits non-zero, with its last error line
        """
        command = self.command(*args)
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as error:
            raise EngineError(f"{self.name} {' '.join(args[:2])} did not finish in {timeout:g} s") from error
        if check and completed.returncode != 0:
            raise EngineError(f"{self.name} {' '.join(args[:2])} failed: {last_line(completed.stderr)}")
        return completed

    def image_exists(self, image: str) -> bool:
        if self.name == "podman":
            return self.call(["image", "exists", image], check=False).returncode == 0
        return self.call(["image", "inspect", "--format", "{{.Id}}", image], check=False).returncode == 0

    def image_size(self, image: str) -> int:
        """The image's size in bytes, as ``<engine> images`` counts it."""
        output = self.call(["image", "inspect", "--format", "{{.Size}}", image]).stdout.strip()
        try:
            return int(output.split()[0])
        except (IndexError, ValueError) as error:
            raise EngineError(f"{self.name} image inspect {image}: no size in {output!r}") from error


def last_line(text: str) -> str:
    """The last non-empty line of an engine's error output (where it says what went wrong)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
