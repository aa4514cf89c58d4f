"""The engine: the registry, the scheduler and the supervised attempts, advanced by one loop thread.

The loop waits on a selector holding a wake-up pipe, the supervisors' notification pipe and a pidfd per
attempt's supervisor. API threads change the state under ``lock`` and write a byte to the wake-up
pipe; a supervisor writes a byte to the notification pipe once it has recorded its attempt's status
(so the attempt completes without waiting for that process to exit), and its pidfd becomes readable
when it exits (which catches a supervisor that died without a record). The loop reads the recorded
statuses, lets the scheduler evaluate and place what changed, and then, **outside the lock**, asks the
fork server for the supervisors of every attempt placed in one round trip, so that an API call never
waits for a process to start.

Jobs outlive the endpoint: supervisors run in their own sessions and write their attempt's log and
status to files (``supervisor.py``). After a restart, attempts whose supervisor still runs are adopted
again, those that ended meanwhile are completed from their recorded status, and only those whose
supervisor is gone are failed (and retried by their ``retryStrategy``).

The module is over 500 lines because the loop, the attempts' lifecycle, recovery and stopping
(terminate, reclaim, a multi-node job's other nodes) share one table of live attempts under one lock;
split, that discipline would span modules. What is not about that table lives beside it (``gates``,
``multinode_runs``, ``fair_share``, ``time_limits``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from batch_fanout.local.attempts import (
    Attempt,
    attempt_request,
    interrupted_record,
    not_started_record,
    outcome,
)
from batch_fanout.local.consumables import ConsumableResources
from batch_fanout.local.errors import client_error
from batch_fanout.local.faults import INJECTED_LOG_LINE, Faults, reclaim_reason
from batch_fanout.local.gpus import GpuPool, detect_gpus
from batch_fanout.local.images import ImageResolver
from batch_fanout.local.jobs import (
    GONE_REASON,
    RESTART_REASON,
    Job,
    now_ms,
)
from batch_fanout.local.logfile import LogWriter
from batch_fanout.local.multinode import is_multinode_parent
from batch_fanout.local.multinode_runs import MultiNodeRuns
from batch_fanout.local.processes import process_start_time
from batch_fanout.local.registry import Registry
from batch_fanout.local.runtime import (
    AttemptRequest,
    ProcessRuntime,
    ProcessSpec,
    Runtime,
    Supervision,
    SupervisorHandle,
    exit_code_of,
)
from batch_fanout.local.scheduler import Scheduler
from batch_fanout.local.store import Store

log = logging.getLogger(__name__)

# The exit status of a process killed by SIGKILL (128 + 9): a container the kernel killed at its
# memory limit exits with it too.
KILLED_EXIT_CODE = 137

DEFAULT_MAX_LOG_BYTES = 4 * 1024 * 1024
DEFAULT_KILL_GRACE_SECONDS = 30.0
STOP_GRACE_SECONDS = 5.0
STOP_WAIT_SECONDS = 30.0


Launch = tuple[Attempt, AttemptRequest, ProcessSpec]
_RECORDED = "recorded"  # the selector key of the supervisors' notification pipe


class Engine:
    """All state of the endpoint and the loop that advances it.

    :param data_dir: where the database, the logs and the image map live
    :param containers_dir: the folder of image folders (``None``: only ``images.json`` resolves)
    :param vcpus: the default compute environment's vCPUs (its current value when ``None``)
    :param kill_grace_seconds: time between SIGTERM and SIGKILL when stopping an attempt
    :param max_log_bytes: the size at which a log stream is cut
    :param runtime: how attempts become processes (default: the ``process`` runtime)
    :param gpus: the machine's GPUs (``None``: as many as the NVIDIA driver lists)
    """

    def __init__(  # noqa: PLR0917 - the endpoint's settings, each with a default
        self,
        data_dir: Path,
        containers_dir: Path | None,
        vcpus: int | None = None,
        kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
        runtime: Runtime | None = None,
        gpus: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.logs_dir = data_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.store = Store(data_dir / "state.sqlite3")
        self.registry = Registry(self.store, vcpus)
        self.faults = Faults(self.store, self.lock)
        self.registry.capacity_limit = self.faults.capacity_limit
        self.scheduler = Scheduler(self.registry, self.store)
        self.gpus = GpuPool(detect_gpus() if gpus is None else gpus)
        log.info("%d GPUs (%s)", self.gpus.count, "detected" if gpus is None else "given with --gpus")
        self.consumables = ConsumableResources(self.store)
        self.scheduler.gates.add(self.gpus, self.consumables)
        self.runtime: Runtime = runtime or ProcessRuntime(ImageResolver(containers_dir, data_dir))
        self.supervision = Supervision(self.logs_dir, kill_grace_seconds, max_log_bytes)
        self._attempts: dict[str, Attempt] = {}
        self.multinode = MultiNodeRuns(self)
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._selector.register(self.supervision.notify, selectors.EVENT_READ, _RECORDED)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._recover(self.scheduler.load())
        self.multinode.recover()
        self.scheduler.flush()
        self.supervision.prune({attempt.attempt_id for attempt in self._attempts.values()})

    # ---- recovery --------------------------------------------------------------------------

    def _recover(self, active: list[Job]) -> None:
        for job in sorted(active, key=self.multinode.recovery_order):
            current = job.current or {}
            attempt_id = current.get("attemptId")
            if not attempt_id:
                self._interrupted(job, RESTART_REASON)
                continue
            vcpus, memory = self.scheduler.requirements(job)
            attempt = Attempt(
                job,
                attempt_id,
                current["logStreamName"],
                current.get("computeEnvironment", ""),
                vcpus,
                memory,
                current.get("startedAt") or now_ms(),
                stop_cause=current.get("stopCause"),
                stop_reason=current.get("stopReason"),
            )
            supervisor = current.get("supervisor")
            handle = SupervisorHandle(attempt_id, int(supervisor[0]), supervisor[1]) if supervisor else None
            if handle is None and current.get("pid"):
                self._kill_unsupervised(int(current["pid"]), current.get("startTime"))
            found = self.supervision.find(attempt_id, handle)
            self._attempts[job.job_id] = attempt
            self.scheduler.reserve(attempt.environment, vcpus, memory)
            self.scheduler.gates.restore(job.job_id, current.get("resources"))
            if found.status is not None:
                self._complete(attempt, found.status)
            elif found.running is not None:
                self._adopt(attempt, found.running)
            else:
                self._drop(attempt)
                self._interrupted(job, RESTART_REASON)

    @staticmethod
    def _kill_unsupervised(pid: int, start_time: int | None) -> None:
        """An attempt started by an endpoint without supervisors: its process group goes."""
        if start_time is not None and process_start_time(pid) == start_time:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def _interrupted(self, job: Job, reason: str) -> None:
        stop_leftovers = getattr(self.runtime, "stop_leftovers", None)
        attempt_id = (job.current or {}).get("attemptId")
        if stop_leftovers is not None and attempt_id:
            # Its supervisor is gone, but a container outlives it: found by its label, stopped.
            with contextlib.suppress(OSError, RuntimeError, subprocess.SubprocessError):
                stop_leftovers(attempt_id)
        self.scheduler.finish_attempt(job, interrupted_record(job, reason), None, reason, reason)

    def _adopt(self, attempt: Attempt, handle: SupervisorHandle) -> None:
        attempt.handle = handle
        assert attempt.job.current is not None
        attempt.job.current["supervisor"] = [handle.pid, handle.start_time]
        if not self._watch(attempt):
            self._on_exit(attempt)
            return
        if attempt.job.status == "STARTING":
            self.scheduler.set_status(attempt.job, "RUNNING")
        if attempt.job.node_index is not None:
            self.multinode.adopted(attempt.job)
        if attempt.stop_cause is not None:
            self.supervision.stop(handle)

    # ---- the loop --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="batch-engine", daemon=True)
        self._thread.start()
        self.wake()  # schedule what was runnable when the endpoint last stopped

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_write, b"x")

    def _loop(self) -> None:
        while True:
            with self.lock:
                # A queue's time limit falling due is the one thing the loop waits for by time.
                timeout = 0.0 if self.scheduler.has_work else self.scheduler.next_deadline_seconds()
            events = self._selector.select(timeout)
            launches: list[Launch] = []
            with self.lock:
                if self._stopping:
                    return
                try:
                    for key, _ in events:
                        if key.data is None:
                            with contextlib.suppress(BlockingIOError, OSError):
                                while os.read(self._wake_read, 4096):
                                    pass
                        elif key.data is _RECORDED:
                            self._on_recorded()
                        else:
                            self._on_exit(key.data)
                    for job, environment in self.scheduler.schedule():
                        launch = self._prepare(job, environment)
                        if launch is not None:
                            launches.append(launch)
                    launches.extend(self.multinode.ready())  # nodes whose main node runs
                except Exception:  # never let one bad job stop the engine
                    log.exception("engine round failed")
                self.scheduler.flush()
            if launches:
                self._launch(launches)

    def _launch(self, launches: list[Launch]) -> None:
        """Start the supervisors of ``launches`` (one fork server round trip for all), off the lock."""
        if getattr(self.runtime, "enforces_memory", False):
            # The container's cgroup holds the limit; the supervisor would count the engine's client
            # and monitor against the job too.
            supervised = [(dataclasses.replace(request, memory_mib=0), spec) for _, request, spec in launches]
        else:
            supervised = [(request, spec) for _, request, spec in launches]
        results = self.supervision.launch_many(supervised)
        with self.lock:
            for (attempt, _, _), result in zip(launches, results, strict=True):
                if isinstance(result, OSError):
                    command = " ".join(attempt.job.spec["container"].get("command", []))
                    self._fail_to_start(
                        attempt, f"CannotStartContainerError: cannot run {command!r}: {result}"
                    )
                else:
                    self._adopt(attempt, result)
            self.scheduler.flush()
        self.wake()  # what the round changed (a failed start, a retry) is scheduled next

    def _watch(self, attempt: Attempt) -> bool:
        """Register the supervisor's pidfd; ``False`` when it has already exited."""
        assert attempt.handle is not None
        try:
            pidfd = os.pidfd_open(attempt.handle.pid)
        except ProcessLookupError:
            return False
        if process_start_time(attempt.handle.pid) != attempt.handle.start_time:
            os.close(pidfd)  # the pid is another process's now
            return False
        attempt.pidfd = pidfd
        self._selector.register(pidfd, selectors.EVENT_READ, attempt)
        return True

    def _prepare(self, job: Job, environment: str) -> Launch | None:
        if is_multinode_parent(job):
            return self.multinode.place(job, environment)  # its main node's launch
        spec = job.spec
        vcpus, memory = self.scheduler.requirements(job)
        attempt_id = uuid.uuid4().hex
        stream = f"{spec['jobDefinitionName']}/default/{attempt_id}"
        started = now_ms()
        attempt = Attempt(job, attempt_id, stream, environment, vcpus, memory, started)
        self._attempts[job.job_id] = attempt
        self.scheduler.streams[stream] = (attempt_id, started)
        job.current = {
            "attemptId": attempt_id,
            "logStreamName": stream,
            "startedAt": started,
            "computeEnvironment": environment,
        }
        held = self.scheduler.gates.held.get(job.job_id)
        if held:
            job.current["resources"] = held  # GPU ids, consumable quantities: held again after a restart
        job.log_stream = stream
        job.exit_code = None
        job.container_reason = None
        job.started_at = job.started_at or started
        self.scheduler.mark(job)
        queue = self.registry.job_queues.find(job.queue_arn)
        queue_name = queue["jobQueueName"] if queue else job.queue_arn.rsplit("/", 1)[-1]
        request = attempt_request(attempt, queue_name)
        injected = self.faults.failure(job, len(job.attempts) + 1, attempt_id)
        if injected is not None:
            self._drop(attempt)
            exit_code, reason = injected
            record = not_started_record(attempt, reason)
            if exit_code is None:
                del record["container"]["reason"]
            else:
                record["container"] = {"exitCode": exit_code, "logStreamName": attempt.stream}
            what = "a Spot reclaim" if exit_code is None else f"exit code {exit_code}"
            writer = LogWriter(self.supervision.log_path(attempt_id), self.supervision.max_log_bytes)
            writer.feed(INJECTED_LOG_LINE.format(what=what).encode() + b"\n", now_ms())
            writer.close(now_ms())
            self.scheduler.finish_attempt(job, record, exit_code, None, reason)
            return None
        try:
            process = self.runtime.process_spec(request)
        except LookupError as error:
            self._fail_to_start(attempt, f"CannotPullContainerError: {error}")
            return None
        except ValueError as error:
            command = " ".join(request.command) or "(no command)"
            self._fail_to_start(attempt, f"CannotStartContainerError: cannot run {command!r}: {error}")
            return None
        return attempt, request, process

    # ---- attempts' ends --------------------------------------------------------------------

    def _drop(self, attempt: Attempt) -> None:
        """Forget a live attempt and give its capacity back (once)."""
        if self._attempts.get(attempt.job.job_id) is attempt:
            del self._attempts[attempt.job.job_id]
            self.scheduler.release(attempt.environment, attempt.vcpus, attempt.memory_mib)
            self.scheduler.gates.release(attempt.job.job_id)
        if attempt.pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(attempt.pidfd)
            os.close(attempt.pidfd)
            attempt.pidfd = None

    def _fail_to_start(self, attempt: Attempt, reason: str) -> None:
        self._drop(attempt)
        self.scheduler.finish_attempt(attempt.job, not_started_record(attempt, reason), None, reason, reason)

    def _on_exit(self, attempt: Attempt) -> None:
        """The supervisor has exited: complete the attempt from its recorded status."""
        if self._attempts.get(attempt.job.job_id) is not attempt:
            return
        status = self.supervision.status(attempt.attempt_id)
        if status is None:
            found = self.supervision.find(attempt.attempt_id, None)  # kills a job it left behind
            status = found.status
        if status is None:
            self._drop(attempt)
            self._interrupted(attempt.job, GONE_REASON)
            return
        self._complete(attempt, status)

    def _on_recorded(self) -> None:
        """Supervisors recorded statuses: complete those attempts now, before their supervisors exit."""
        finished = self.supervision.finished()
        if not finished:
            return
        ended = [attempt for attempt in self._attempts.values() if attempt.attempt_id in finished]
        for attempt in ended:
            self._complete(attempt, finished[attempt.attempt_id])
        # Their supervisors wait for this before they take other attempts (see ``supervisor.py``).
        self.supervision.release([attempt.handle for attempt in ended if attempt.handle is not None])

    def _complete(self, attempt: Attempt, status: dict[str, Any]) -> None:
        job = attempt.job
        self._drop(attempt)
        self.supervision.forget(attempt.attempt_id)
        if "startError" in status:
            command = " ".join(job.spec["container"].get("command", []))
            self._fail_to_start(
                attempt, f"CannotStartContainerError: cannot run {command!r}: {status['startError']}"
            )
            return
        oom_killed = getattr(self.runtime, "oom_killed", None)
        if (
            oom_killed is not None
            and status.get("cause") is None
            and attempt.stop_cause is None
            and exit_code_of(int(status["returncode"])) == KILLED_EXIT_CODE
            and oom_killed(attempt.attempt_id)
        ):
            status = {**status, "cause": "oom"}  # the kernel killed the container at its limit
        record, exit_code, container_reason, status_reason, succeeded = outcome(attempt, status)
        self.scheduler.finish_attempt(job, record, exit_code, container_reason, status_reason, succeeded)

    # ---- requests from the API -------------------------------------------------------------

    def submit(self, parent: Job, children: list[Job]) -> None:
        """Register and store a submitted job and its children; call under ``lock``."""
        self.scheduler.add_jobs(parent, children)
        self.wake()

    def cancel(self, job: Job, reason: str) -> None:
        self.scheduler.cancel(self.multinode.owner(job), reason)
        self.wake()

    def terminate(self, job: Job, reason: str) -> None:
        """TerminateJob: waiting jobs fail; running ones are stopped by their supervisors."""
        job = self.multinode.owner(job)
        for target in self.multinode.expand(self.scheduler.terminate(job, reason)):
            attempt = self._attempts.get(target.job_id)
            if attempt is not None:
                self.stop_attempt(attempt, "terminate", reason)
        self.wake()

    def stop_attempt(self, attempt: Attempt, cause: str, reason: str) -> bool:
        """Stop a running attempt for ``cause`` (``terminate``, ``reclaim``), recording why before its
        supervisor is told; False when it is already being stopped. Call under ``lock``."""
        if attempt.stop_cause is not None:
            return False  # already being stopped (terminated, the endpoint stopping, reclaimed)
        attempt.stop_cause, attempt.stop_reason = cause, reason
        if attempt.job.current is not None:
            attempt.job.current.update(stopCause=cause, stopReason=reason)
        if attempt.handle is not None:  # else the supervisor is stopped as soon as it is adopted
            self.supervision.stop(attempt.handle)
        return True

    def reclaim(self, job: Job) -> list[Job]:
        """Reclaim the running attempts of ``job`` (of every child of an array) as Spot reclaims an
        instance: SIGTERM, SIGKILL after the grace, then no exit code and a ``Host EC2 ... terminated.``
        status reason; the ``retryStrategy`` decides what follows. Returns the jobs reclaimed; call
        under ``lock``."""
        targets = job.children if job.is_parent else [job]
        return self._reclaim(
            [attempt for target in targets if (attempt := self._attempts.get(target.job_id))]
        )

    def reclaim_environment(self, environment_name: str) -> list[Job]:
        """Reclaim every running attempt of a compute environment, as when Spot takes its whole fleet
        back; returns the jobs reclaimed; call under ``lock``."""
        return self._reclaim(
            [attempt for attempt in self._attempts.values() if attempt.environment == environment_name]
        )

    def _reclaim(self, attempts: list[Attempt]) -> list[Job]:
        reclaimed: list[Job] = []
        for attempt in attempts:
            if self.stop_attempt(attempt, "reclaim", reclaim_reason(attempt.attempt_id)):
                self.scheduler.mark(attempt.job)
                reclaimed.append(attempt.job)
        # Written before the call answers, so a reclaim the caller saw holds across a kill -9.
        self.scheduler.flush()
        self.wake()
        return reclaimed

    def change_tags(self, resource_arn: str, add: dict[str, str], remove: list[str]) -> dict[str, str]:
        """Add and remove tags of a job, definition, queue or compute environment; returns its tags."""
        found = (
            self.scheduler.tagged(resource_arn)
            or self.registry.tagged(resource_arn)
            or self.consumables.tagged(resource_arn)
        )
        if found is None:
            raise client_error(f"Resource {resource_arn} not found")
        tags, save = found
        if add or remove:
            tags.update(add)
            for key in remove:
                tags.pop(key, None)
            save()
        return dict(tags)

    def log_file(self, stream: str) -> Path | None:
        """The log file of a log stream, or ``None`` for an unknown stream."""
        with self.lock:
            entry = self.scheduler.streams.get(stream)
        return None if entry is None else self.supervision.log_path(entry[0])

    def stream_names(self) -> list[tuple[str, int]]:
        """Every log stream with its creation time."""
        with self.lock:
            return [(name, entry[1]) for name, entry in self.scheduler.streams.items()]

    def queue_vcpus(self, queue_arn: str) -> float:
        """The vCPUs the started jobs of a queue hold."""
        return sum(attempt.vcpus for attempt in self._attempts.values() if attempt.job.queue_arn == queue_arn)

    def counts(self) -> dict[str, int]:
        with self.lock:
            return self.scheduler.counts()

    def gpu_status(self) -> dict[str, Any]:
        """The machine's GPUs and the ids running attempts hold (for ``/_local/status``)."""
        with self.lock:
            return {"count": self.gpus.count, "inUse": sorted(self.gpus.in_use())}

    # ---- stopping --------------------------------------------------------------------------

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop the loop; running attempts are stopped (SIGTERM, then SIGKILL) and recorded as such."""
        with self.lock:
            self._stopping = True
            attempts = list(self._attempts.values())
            for attempt in attempts:
                if attempt.stop_cause is None:
                    attempt.stop_cause = "stop"
                    if attempt.handle is not None:
                        self.supervision.stop(attempt.handle)
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_SECONDS)
        # Supervisors are reused while the fork server runs; without it each exits after its attempt.
        self.supervision.retire()
        with self.lock:
            attempts = list(self._attempts.values())
        waiting = {attempt.pidfd: attempt for attempt in attempts if attempt.pidfd is not None}
        self._wait_for(waiting, grace_seconds)
        for attempt in waiting.values():
            if attempt.handle is not None:
                self.supervision.kill(attempt.handle)
        self._wait_for(waiting, STOP_WAIT_SECONDS)
        with self.lock:
            for attempt in attempts:
                self._on_exit(attempt)
            self.scheduler.flush()
            self.store.close()
        self.supervision.close()

    @staticmethod
    def _wait_for(waiting: dict[int, Attempt], seconds: float) -> None:
        """Wait until the supervisors of ``waiting`` (by pidfd) exit, for at most ``seconds``."""
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            for pidfd in waiting:
                selector.register(pidfd, selectors.EVENT_READ)
            while waiting and (remaining := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(remaining):
                    selector.unregister(key.fd)
                    waiting.pop(int(key.fd), None)
