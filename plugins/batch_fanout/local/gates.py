"""Resources besides vCPUs and memory that a job must get before it starts: GPUs and consumable resources.

Each is a ``Gate``: ``fits`` is asked when the job is at the head of its queue (with vCPUs and memory),
``take`` when it goes to STARTING (what it returns is recorded with the attempt, so that ``restore``
holds it again after a restart), ``release`` when the attempt ends. A job that does not fit waits
RUNNABLE and, as on AWS, holds up the jobs behind it in its queue.
"""

from __future__ import annotations

from typing import Any, Protocol


class Gate(Protocol):
    """One kind of resource a job may need (see the module docstring)."""

    name: str

    def fits(self, job_id: str, spec: dict[str, Any]) -> bool: ...

    def take(self, job_id: str, spec: dict[str, Any]) -> Any: ...

    def restore(self, job_id: str, held: Any) -> None: ...

    def release(self, job_id: str) -> None: ...


class Gates:
    """The gates of the endpoint, and what each job's running attempt holds of them (by gate name)."""

    def __init__(self, gates: list[Gate] | None = None) -> None:
        self.gates: list[Gate] = list(gates or [])
        self.held: dict[str, dict[str, Any]] = {}

    def add(self, *gates: Gate) -> None:
        self.gates.extend(gates)

    def fits(self, job_id: str, spec: dict[str, Any]) -> bool:
        return all(gate.fits(job_id, spec) for gate in self.gates)

    def take(self, job_id: str, spec: dict[str, Any]) -> None:
        held = {gate.name: taken for gate in self.gates if (taken := gate.take(job_id, spec))}
        if held:
            self.held[job_id] = held

    def restore(self, job_id: str, held: dict[str, Any] | None) -> None:
        """After a restart: what a running attempt held (recorded in its ``current``)."""
        if held:
            self.held[job_id] = dict(held)
            for gate in self.gates:
                gate.restore(job_id, held.get(gate.name))

    def release(self, job_id: str) -> None:
        if self.held.pop(job_id, None) is not None:
            for gate in self.gates:
                gate.release(job_id)
