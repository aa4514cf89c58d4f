"""Offline stand-ins for base images, built from Debian packages where no registry can be reached.

Air-gapped machines (and VMs whose only way out is a Debian mirror and PyPI) cannot pull
``python:<version>-slim-<suite>`` or ``apache/airflow:<version>-python<x.y>``. A stand-in is built
instead: the suite's own root file system from ``mmdebstrap --variant=minbase`` with Debian's python3,
pip, venv and CA certificates, laid out like the official image (``python`` and ``pip`` in
``/usr/local/bin``, no PEP 668 marker) and trusting the host's CA bundle, so that pip works behind a
TLS-inspecting proxy; the Airflow stand-in adds the ``airflow`` user and Airflow from PyPI on top.
docs/local-endpoint.md lists every difference from the real images.

Stand-ins are named ``localhost/offline/<base>`` and labelled with the base they replace; a build
uses one in place of its ``FROM`` image, the Dockerfile itself is never changed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batch_fanout.images.engine import ContainerEngine, EngineError, last_line

STANDIN_PREFIX = "localhost/offline/"
STANDIN_LABEL = "io.github.batch-fanout.offline-standin-for"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# The Python each Debian suite ships: a stand-in for python:X.Y-slim-<suite> needs X.Y to match.
SUITE_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
# The official Airflow image's user: uid 50000, group root (gid 0).
AIRFLOW_UID = 50000
MMDEBSTRAP_TIMEOUT_SECONDS = 900
BUILD_TIMEOUT_SECONDS = 1800

_PYTHON = re.compile(
    r"^(?:docker\.io/)?(?:library/)?python:(?P<version>3\.\d+)(?:\.\d+)?-slim-(?P<suite>[a-z]+)(?:@sha256:[0-9a-f]{64})?$"
)
_AIRFLOW = re.compile(
    r"^(?:docker\.io/)?apache/airflow:(?P<airflow>\d+\.\d+\.\d+)-python(?P<python>3\.\d+)(?:@sha256:[0-9a-f]{64})?$"
)


@dataclass(frozen=True)
class StandIn:
    """How to build a stand-in for one base image.

    :param base: the base image it replaces, as the Dockerfile names it
    :param image: the stand-in's own name
    :param suite: the Debian suite of its root file system
    :param airflow: the Airflow version it installs (an Airflow base), else ``None``
    """

    base: str
    image: str
    suite: str
    airflow: str | None = None


def standin_name(base: str) -> str:
    return STANDIN_PREFIX + base.split("@", 1)[0].removeprefix("docker.io/").removeprefix("library/")


def standin_for(base: str) -> StandIn:
    """The recipe for ``base``.

    :raises EngineError: when no stand-in can be built for it, saying which bases can
    """
    supported = "python:3.X[.Y]-slim-<Debian suite> and apache/airflow:<version>-python3.X"
    match = _PYTHON.match(base)
    if match:
        suite, python = match.group("suite"), match.group("version")
        if SUITE_PYTHON.get(suite) != python:
            raise EngineError(
                f"no offline stand-in for {base}: Debian {suite} ships Python "
                f"{SUITE_PYTHON.get(suite, '(unknown suite)')}, not {python}"
            )
        return StandIn(base=base, image=standin_name(base), suite=suite)
    match = _AIRFLOW.match(base)
    if match:
        python = match.group("python")
        suites = [suite for suite, version in SUITE_PYTHON.items() if version == python]
        if not suites:
            raise EngineError(f"no offline stand-in for {base}: no Debian suite ships Python {python}")
        return StandIn(base=base, image=standin_name(base), suite=suites[0], airflow=match.group("airflow"))
    raise EngineError(f"no offline stand-in for {base}: stand-ins exist for {supported}")


def _python_containerfile(rootfs: str, base: str, with_host_ca: bool) -> str:
    lines = [
        f"FROM {rootfs}",
        f'LABEL {STANDIN_LABEL}="{base}"',
    ]
    if with_host_ca:
        # The host's bundle joins Debian's, so pip trusts what the host trusts (a TLS-inspecting proxy).
        lines.append(
            "COPY host-ca-certificates.crt /usr/local/share/ca-certificates/host-ca-certificates.crt"
        )
    lines += [
        'RUN ["/bin/sh", "-c", "update-ca-certificates >/dev/null'
        " && ln -s /usr/bin/python3 /usr/local/bin/python && ln -s /usr/bin/pip3 /usr/local/bin/pip"
        ' && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED && rm -rf /var/lib/apt/lists/*"]',
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
    ]
    return "\n".join(lines) + "\n"


def _airflow_containerfile(python_standin: str, base: str, airflow: str) -> str:
    # Like the official image: user airflow (uid 50000, gid 0), packages in the user's site (PIP_USER),
    # AIRFLOW_HOME /opt/airflow, the airflow command as entry point.
    return (
        "\n".join(
            [
                f"FROM {python_standin}",
                f'LABEL {STANDIN_LABEL}="{base}"',
                f'RUN ["useradd", "--uid", "{AIRFLOW_UID}", "--gid", "0", "--create-home", '
                '"--home-dir", "/home/airflow", "--shell", "/bin/bash", "airflow"]',
                'RUN ["install", "-d", "-o", "airflow", "-g", "0", "-m", "0775", "/opt/airflow"]',
                "ENV AIRFLOW_HOME=/opt/airflow PIP_USER=true PATH=/home/airflow/.local/bin:/usr/local/bin:/usr/bin:/bin",
                "USER airflow",
                "WORKDIR /opt/airflow",
                f'RUN ["pip", "install", "--no-cache-dir", "apache-airflow=={airflow}"]',
                'ENTRYPOINT ["airflow"]',
                "CMD []",
            ]
        )
        + "\n"
    )


def _mmdebstrap_command(suite: str, output: Path) -> list[str]:
    packages = "python3,python3-pip,python3-venv,ca-certificates"
    return [
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        f"--include={packages}",
        suite,
        str(output),
        # The same sources as the official Debian images: the suite, its updates, its security fixes.
        f"deb {DEBIAN_MIRROR} {suite} main",
        f"deb {DEBIAN_MIRROR} {suite}-updates main",
        f"deb {DEBIAN_SECURITY_MIRROR} {suite}-security main",
    ]


def build_standin(engine: ContainerEngine, standin: StandIn, say: Callable[[str], None] = print) -> str:
    """Build ``standin`` (and the Python stand-in under an Airflow one) unless it exists; its name.

    :raises EngineError: when mmdebstrap is missing or a step fails, naming the step
    """
    if engine.image_exists(standin.image):
        return standin.image
    if standin.airflow is not None:
        python_base = f"python:{SUITE_PYTHON[standin.suite]}-slim-{standin.suite}"
        python_standin = build_standin(engine, standin_for(python_base), say)
        say(f"building offline stand-in {standin.image} (Airflow {standin.airflow} from PyPI)")
        with tempfile.TemporaryDirectory(prefix="offline-base-") as folder:
            (Path(folder) / "Containerfile").write_text(
                _airflow_containerfile(python_standin, standin.base, standin.airflow)
            )
            _build(engine, Path(folder), standin.image)
        return standin.image
    rootfs = f"{STANDIN_PREFIX}rootfs:{standin.suite}"
    say(f"building offline stand-in {standin.image} from Debian {standin.suite} packages")
    with tempfile.TemporaryDirectory(prefix="offline-base-") as folder:
        if not engine.image_exists(rootfs):
            _import_rootfs(engine, standin, rootfs, Path(folder))
        with_host_ca = HOST_CA_BUNDLE.is_file()
        if with_host_ca:
            shutil.copyfile(HOST_CA_BUNDLE, Path(folder) / "host-ca-certificates.crt")
        (Path(folder) / "Containerfile").write_text(_python_containerfile(rootfs, standin.base, with_host_ca))
        _build(engine, Path(folder), standin.image)
    return standin.image


def _import_rootfs(engine: ContainerEngine, standin: StandIn, rootfs: str, folder: Path) -> None:
    """The suite's minimal root file system (mmdebstrap), imported as ``rootfs``: shared by every
    stand-in of that suite."""
    if shutil.which("mmdebstrap") is None:
        raise EngineError(
            f"building an offline stand-in for {standin.base} needs mmdebstrap: "
            "install it with: apt-get install -y mmdebstrap (`make images` does)"
        )
    tarball = folder / "rootfs.tar"
    try:
        done = subprocess.run(
            _mmdebstrap_command(standin.suite, tarball),
            capture_output=True,
            text=True,
            timeout=MMDEBSTRAP_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as error:
        raise EngineError(
            f"mmdebstrap {standin.suite} did not finish in {MMDEBSTRAP_TIMEOUT_SECONDS} s"
        ) from error
    if done.returncode != 0:
        raise EngineError(f"mmdebstrap {standin.suite} failed: {last_line(done.stderr)}")
    engine.call(["import", str(tarball), rootfs], timeout=600)
    tarball.unlink()


def _build(engine: ContainerEngine, context: Path, image: str) -> None:
    engine.call(
        ["build", *engine.limit_args, "-f", str(context / "Containerfile"), "-t", image, str(context)],
        timeout=BUILD_TIMEOUT_SECONDS,
    )
