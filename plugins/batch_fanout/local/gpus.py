"""The machine's GPUs: how many there are, and which job holds which.

AWS Batch counts a job's ``GPU`` resource requirement against the GPUs of the instance it is placed on,
and the ECS agent gives the container distinct GPUs. Locally the machine is the one instance every
compute environment places jobs on, so the GPUs are one pool: a job gets distinct ids from it while its
attempt runs (in ``CUDA_VISIBLE_DEVICES`` and ``NVIDIA_VISIBLE_DEVICES``), and they are free again when
the attempt ends. A job that asks for more GPUs than are free waits RUNNABLE, as on AWS.

The count is ``--gpus N`` of ``batch-fanout local start``, else what the NVIDIA driver lists
(``/proc/driver/nvidia/gpus/``, else ``nvidia-smi -L``), else 0.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROC_GPUS = Path("/proc/driver/nvidia/gpus")
NVIDIA_SMI_TIMEOUT_SECONDS = 10.0
# ``nvidia-smi -L`` prints one line per GPU: "GPU 0: NVIDIA A10G (UUID: GPU-...)". MIG devices are
# indented lines of their own ("  MIG 1g.5gb Device 0: ..."), which are not GPUs of their own here.
_GPU_LINE = re.compile(r"^GPU (\d+):")


def parse_nvidia_smi_listing(text: str) -> int:
    """The number of GPUs in the output of ``nvidia-smi -L``."""
    return sum(1 for line in text.splitlines() if _GPU_LINE.match(line))


def detect_gpus(proc_gpus: Path = PROC_GPUS, nvidia_smi: str | None = "nvidia-smi") -> int:
    """The GPUs the NVIDIA driver knows: one folder per GPU (named by its PCI address) in
    ``proc_gpus``, else the lines of ``nvidia-smi -L``, else 0.

    :param proc_gpus: the driver's folder of GPUs
    :param nvidia_smi: the ``nvidia-smi`` program, or ``None`` not to run it
    """
    try:
        count = sum(1 for entry in proc_gpus.iterdir() if entry.is_dir())
    except OSError:
        count = 0
    if count:
        return count
    program = shutil.which(nvidia_smi) if nvidia_smi else None
    if program is None:
        return 0
    try:
        listing = subprocess.run(
            [program, "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("cannot list GPUs with %s: %s", program, error)
        return 0
    return parse_nvidia_smi_listing(listing.stdout) if listing.returncode == 0 else 0


def gpu_requirement(spec: dict[str, Any]) -> int:
    """The GPUs a job needs: its ``GPU`` resource requirement (an integer, checked at submission)."""
    for requirement in spec["container"].get("resourceRequirements") or []:
        if requirement.get("type") == "GPU":
            return int(requirement["value"])
    return 0


class GpuPool:
    """The machine's GPUs, ids ``0`` to ``count - 1``, and the ids each running job holds.

    :param count: how many GPUs the machine has
    """

    name = "gpus"

    def __init__(self, count: int) -> None:
        if count < 0:
            raise ValueError(f"the number of GPUs must be 0 or more, got {count}")
        self.count = count
        self.held: dict[str, list[int]] = {}

    def in_use(self) -> set[int]:
        return {gpu for ids in self.held.values() for gpu in ids}

    def free(self) -> list[int]:
        taken = self.in_use()
        return [gpu for gpu in range(self.count) if gpu not in taken]

    def fits(self, job_id: str, spec: dict[str, Any]) -> bool:
        needed = gpu_requirement(spec)
        return needed == 0 or needed <= len(self.free())

    def take(self, job_id: str, spec: dict[str, Any]) -> list[int] | None:
        """Give the job the lowest free ids it needs; ``None`` when it needs none."""
        needed = gpu_requirement(spec)
        if not needed:
            return None
        ids = self.free()[:needed]
        self.held[job_id] = ids
        return ids

    def restore(self, job_id: str, held: Any) -> None:
        """After a restart: the ids a running attempt was given (ids beyond ``count`` stay held)."""
        if held:
            self.held[job_id] = [int(gpu) for gpu in held]

    def release(self, job_id: str) -> None:
        self.held.pop(job_id, None)


def gpu_environment(ids: list[int]) -> dict[str, str]:
    """The variables that tell CUDA and the NVIDIA container toolkit which GPUs are the job's."""
    devices = ",".join(str(gpu) for gpu in ids)
    return {"CUDA_VISIBLE_DEVICES": devices, "NVIDIA_VISIBLE_DEVICES": devices}
