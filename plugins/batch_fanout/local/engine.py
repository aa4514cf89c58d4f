"""The engine: job state, dependencies, retries, capacity, and the loop that runs the processes.

One thread (the loop) waits on a selector holding a wake-up pipe, the output pipe of every running
attempt and, on Linux, a pidfd per process. API threads change the state under ``lock`` and write a byte
to the wake-up pipe, so a job finishing, a submission or a termination is handled within milliseconds,
never after a polling interval.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch_fanout.local import (
    ACCOUNT_ID,
    DEFAULT_COMPUTE_ENVIRONMENT_NAME,
    DEFAULT_QUEUE_NAME,
    DEFAULT_REGION,
)
from batch_fanout.local.jobs import (
    ACTIVE_STATES,
    EXITED_REASON,
    OOM_REASON,
    RESTART_REASON,
    STATES,
    STOP_REASON,
    TERMINAL_STATES,
    TIMEOUT_REASON,
    Job,
    now_ms,
    retry_decision,
)
from batch_fanout.local.runner import (
    ImageResolver,
    LogWriter,
    exit_code_of,
    group_rss_bytes,
    job_environment,
    kill_group,
    process_start_time,
    spawn,
)
from batch_fanout.local.store import Store

log = logging.getLogger(__name__)

MEMORY_CHECK_INTERVAL = 0.25
OUTPUT_DRAIN_SECONDS = 1.0
DEFAULT_MAX_LOG_BYTES = 4 * 1024 * 1024
DEFAULT_KILL_GRACE_SECONDS = 30.0
STOP_GRACE_SECONDS = 5.0


def machine_memory_mib() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


def arn(region: str, resource: str) -> str:
    return f"arn:aws:batch:{region}:{ACCOUNT_ID}:{resource}"


@dataclass
class Attempt:
    """An attempt that runs now."""

    job: Job
    process: subprocess.Popen[bytes]
    output_fd: int
    writer: LogWriter
    compute_environment: str
    vcpus: float
    memory_mib: int
    deadline: float | None
    pidfd: int | None = None
    stop_cause: str | None = None  # "timeout", "terminate", "oom", "stop"
    kill_at: float | None = None
    exited_at: int | None = None
    drain_until: float | None = None
    output_open: bool = True
    returncode: int | None = None
    completed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Engine:
    """All state of the endpoint and the loop that advances it.

    :param data_dir: where the database, the logs and the image map live
    :param containers_dir: the folder of image folders
    :param vcpus: the default compute environment's vCPUs (its current value when ``None``)
    :param kill_grace_seconds: time between SIGTERM and SIGKILL when stopping an attempt
    :param max_log_bytes: the size at which a log stream is cut
    """

    def __init__(
        self,
        data_dir: Path,
        containers_dir: Path,
        vcpus: int | None = None,
        kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
    ) -> None:
        self.data_dir = data_dir
        self.logs_dir = data_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.images = ImageResolver(containers_dir, data_dir)
        self.kill_grace_seconds = kill_grace_seconds
        self.max_log_bytes = max_log_bytes
        self.lock = threading.RLock()
        self.store = Store(data_dir / "state.sqlite3")
        self.machine_memory_mib = machine_memory_mib()

        self.compute_environments: dict[str, dict[str, Any]] = {}
        self.job_queues: dict[str, dict[str, Any]] = {}
        self.job_definitions: dict[str, list[dict[str, Any]]] = {}
        self.jobs: dict[str, Job] = {}
        self.top_level_jobs: list[Job] = []
        self.streams: dict[str, tuple[str, int]] = {}  # stream name -> (attempt id, created at)
        self.used: dict[str, list[float]] = {}  # compute environment name -> [vcpus, memory MiB]
        self.next_seq = 0

        self._to_evaluate: collections.deque[Job] = collections.deque()
        self._waiters: dict[str, list[Job]] = {}
        self._runnable: dict[str, collections.deque[Job]] = {}
        self._attempts: dict[str, Attempt] = {}
        self._dirty: dict[str, Job] = {}
        self._exited: collections.deque[Attempt] = collections.deque()
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._next_memory_check = 0.0
        self._use_pidfd = hasattr(os, "pidfd_open")

        self._load(vcpus)

    # ---- resources -------------------------------------------------------------------------

    def _load(self, vcpus: int | None) -> None:
        for document in self.store.load_resources("compute-environment"):
            self.compute_environments[document["computeEnvironmentName"]] = document
        for document in self.store.load_resources("job-queue"):
            self.job_queues[document["jobQueueName"]] = document
        for document in self.store.load_resources("job-definition"):
            self.job_definitions.setdefault(document["jobDefinitionName"], []).append(document)
        for revisions in self.job_definitions.values():
            revisions.sort(key=lambda item: item["revision"])
        if DEFAULT_COMPUTE_ENVIRONMENT_NAME not in self.compute_environments:
            self.save_compute_environment(
                {
                    "computeEnvironmentName": DEFAULT_COMPUTE_ENVIRONMENT_NAME,
                    "computeEnvironmentArn": arn(
                        DEFAULT_REGION, f"compute-environment/{DEFAULT_COMPUTE_ENVIRONMENT_NAME}"
                    ),
                    "ecsClusterArn": f"arn:aws:ecs:{DEFAULT_REGION}:{ACCOUNT_ID}:cluster/local",
                    "tags": {},
                    "type": "MANAGED",
                    "state": "ENABLED",
                    "status": "VALID",
                    "statusReason": "ComputeEnvironment Healthy",
                    "computeResources": {
                        "type": "EC2",
                        "minvCpus": 0,
                        "maxvCpus": vcpus or os.cpu_count() or 1,
                        "desiredvCpus": 0,
                        "instanceTypes": ["optimal"],
                        "subnets": [],
                    },
                    "containerOrchestrationType": "ECS",
                    "uuid": str(uuid.uuid4()),
                }
            )
        elif vcpus is not None:
            default = self.compute_environments[DEFAULT_COMPUTE_ENVIRONMENT_NAME]
            default.setdefault("computeResources", {})["maxvCpus"] = vcpus
            self.save_compute_environment(default)
        if DEFAULT_QUEUE_NAME not in self.job_queues:
            self.save_job_queue(
                {
                    "jobQueueName": DEFAULT_QUEUE_NAME,
                    "jobQueueArn": arn(DEFAULT_REGION, f"job-queue/{DEFAULT_QUEUE_NAME}"),
                    "state": "ENABLED",
                    "status": "VALID",
                    "statusReason": "JobQueue Healthy",
                    "priority": 1,
                    "computeEnvironmentOrder": [
                        {
                            "order": 1,
                            "computeEnvironment": self.compute_environments[DEFAULT_COMPUTE_ENVIRONMENT_NAME][
                                "computeEnvironmentArn"
                            ],
                        }
                    ],
                    "tags": {},
                    "jobQueueType": "ECS",
                }
            )
        self._load_jobs()

    def save_compute_environment(self, document: dict[str, Any]) -> None:
        self.compute_environments[document["computeEnvironmentName"]] = document
        self.used.setdefault(document["computeEnvironmentName"], [0.0, 0.0])
        self.store.save_resource("compute-environment", document["computeEnvironmentName"], document)

    def save_job_queue(self, document: dict[str, Any]) -> None:
        self.job_queues[document["jobQueueName"]] = document
        self.store.save_resource("job-queue", document["jobQueueName"], document)

    def save_job_definition(self, document: dict[str, Any]) -> None:
        revisions = self.job_definitions.setdefault(document["jobDefinitionName"], [])
        if document not in revisions:
            revisions.append(document)
        self.store.save_resource("job-definition", document["jobDefinitionArn"], document)

    def compute_environment_capacity(self, name: str) -> tuple[float, float]:
        """vCPUs and memory (MiB) a compute environment offers."""
        document = self.compute_environments[name]
        if document.get("type") == "UNMANAGED":
            vcpus = float(document.get("unmanagedvCpus") or os.cpu_count() or 1)
        else:
            vcpus = float((document.get("computeResources") or {}).get("maxvCpus") or 0)
        memory = float(self.machine_memory_mib) if self.machine_memory_mib else float("inf")
        return vcpus, memory

    def queue_by_arn(self, queue_arn: str) -> dict[str, Any] | None:
        for queue in self.job_queues.values():
            if queue["jobQueueArn"] == queue_arn:
                return queue
        return None

    def compute_environment_by_arn(self, ce_arn: str) -> dict[str, Any] | None:
        for document in self.compute_environments.values():
            if document["computeEnvironmentArn"] == ce_arn or document["computeEnvironmentName"] == ce_arn:
                return document
        return None

    # ---- jobs: loading and recovery --------------------------------------------------------

    def _load_jobs(self) -> None:
        interrupted: list[Job] = []
        for document in self.store.load_jobs():
            parent = self.jobs.get(document["parentId"]) if "parentId" in document else None
            if "parentId" in document and parent is None:
                continue
            job = Job.from_document(document, parent)
            self.jobs[job.job_id] = job
            self.next_seq = max(self.next_seq, job.seq + 1)
            if parent is not None:
                parent.children.append(job)
            else:
                self.top_level_jobs.append(job)
            for attempt in job.attempts:
                stream = (attempt.get("container") or {}).get("logStreamName")
                if stream:
                    self.streams[stream] = (stream.rsplit("/", 1)[-1], attempt.get("startedAt") or 0)
            if job.current:
                stream = job.current["logStreamName"]
                self.streams[stream] = (job.current["attemptId"], job.current["startedAt"])
        for job in self.jobs.values():
            if job.is_parent:
                assert job.summary is not None
                for child in job.children:
                    job.summary[child.status] += 1
            elif job.status in ACTIVE_STATES:
                interrupted.append(job)
            elif job.status in ("SUBMITTED", "PENDING"):
                self._to_evaluate.append(job)
            elif job.status == "RUNNABLE":
                self._runnable_queue(job.queue_arn).append(job)
        for job in interrupted:
            self._end_interrupted_attempt(job, RESTART_REASON)
        for job in self.top_level_jobs:
            if job.is_parent:
                self._update_parent(job)
        self.flush()

    def _end_interrupted_attempt(self, job: Job, status_reason: str) -> None:
        """Record the attempt that ran when the endpoint went down as failed, then retry or fail."""
        current = job.current or {}
        pid = current.get("pid")
        if pid and current.get("startTime") is not None and process_start_time(pid) == current["startTime"]:
            kill_group(pid, signal.SIGKILL)
        stopped = now_ms()
        attempt = {
            "container": {"logStreamName": current.get("logStreamName"), "reason": status_reason},
            "startedAt": current.get("startedAt", stopped),
            "stoppedAt": stopped,
            "statusReason": status_reason,
        }
        attempt["container"] = {key: value for key, value in attempt["container"].items() if value}
        self._finish_attempt(job, attempt, None, status_reason, status_reason)

    # ---- state changes ---------------------------------------------------------------------

    def _mark(self, job: Job) -> None:
        self._dirty[job.job_id] = job

    def set_status(self, job: Job, status: str, reason: str | None = None) -> None:
        """Move ``job`` to ``status``; keeps the parent's summary and wakes the dependents."""
        old = job.status
        if old == status and reason is None:
            return
        job.status = status
        if reason is not None:
            job.status_reason = reason
        if status in TERMINAL_STATES and job.stopped_at is None:
            job.stopped_at = now_ms()
        self._mark(job)
        parent = job.parent
        if parent is not None and old != status:
            assert parent.summary is not None
            parent.summary[old] -= 1
            parent.summary[status] += 1
            parent.summary_updated_at = now_ms()
            if status in ("STARTING", "RUNNING") and parent.started_at is None:
                parent.started_at = job.started_at or now_ms()
            self._update_parent(parent)
        if status in TERMINAL_STATES and old not in TERMINAL_STATES:
            for waiter in self._waiters.pop(job.job_id, ()):
                self._to_evaluate.append(waiter)

    def _update_parent(self, parent: Job) -> None:
        """Derive an array parent's status from its children's counts (no scan of the children)."""
        summary = parent.summary
        assert summary is not None and parent.array_size is not None
        done = summary["SUCCEEDED"] + summary["FAILED"]
        if done == parent.array_size:
            if summary["FAILED"]:
                status = "FAILED"
                reason = f"Array Child Job failed: {summary['FAILED']} of {parent.array_size} children failed"
            else:
                status, reason = "SUCCEEDED", "Array Child Jobs succeeded"
        elif summary["STARTING"] or summary["RUNNING"] or done:
            status, reason = "RUNNING", None
        elif summary["RUNNABLE"]:
            status, reason = "RUNNABLE", None
        elif summary["PENDING"]:
            status, reason = "PENDING", None
        else:
            status, reason = "SUBMITTED", None
        if status != parent.status or (reason and reason != parent.status_reason):
            if status == "RUNNING" and parent.started_at is None:
                parent.started_at = now_ms()
            self.set_status(parent, status, reason)

    def add_jobs(self, parent: Job, children: Iterable[Job]) -> None:
        """Register a submitted job (and its children) and store them before the call returns."""
        self.jobs[parent.job_id] = parent
        self.top_level_jobs.append(parent)
        rows = [(parent.job_id, parent.seq, parent.document())]
        for child in children:
            self.jobs[child.job_id] = child
            parent.children.append(child)
            rows.append((child.job_id, child.seq, child.document()))
            self._to_evaluate.append(child)
        if parent.is_parent:
            assert parent.summary is not None
            parent.summary["SUBMITTED"] = len(parent.children)
        else:
            self._to_evaluate.append(parent)
        self.store.save_jobs(rows)
        self.wake()

    def allocate_seq(self, count: int) -> int:
        first = self.next_seq
        self.next_seq += count
        return first

    def dependency_keys(self, job: Job) -> list[str]:
        """The ids of the jobs that ``job`` waits for (whole jobs or single children)."""
        keys: list[str] = []
        for dependency in job.spec["dependsOn"]:
            kind = dependency.get("type")
            target_id = dependency.get("jobId")
            if kind == "SEQUENTIAL":
                if job.index is not None and job.index > 0 and job.parent is not None:
                    keys.append(f"{job.parent.job_id}:{job.index - 1}")
                if target_id:
                    keys.append(target_id)
                continue
            if not target_id:
                continue
            target = self.jobs.get(target_id)
            if kind == "N_TO_N" and job.index is not None and target is not None and target.is_parent:
                keys.append(f"{target_id}:{job.index}")
            else:
                keys.append(target_id)
        return keys

    def _evaluate(self, job: Job) -> None:
        if job.status not in ("SUBMITTED", "PENDING"):
            return
        if job.is_parent:
            return
        unmet: list[str] = []
        for key in self.dependency_keys(job):
            dependency = self.jobs.get(key)
            if dependency is None or dependency.status == "FAILED":
                reason = f"Dependent Job failed: {key} did not succeed"
                self.set_status(job, "FAILED", reason)
                return
            if dependency.status != "SUCCEEDED":
                unmet.append(key)
        if unmet:
            for key in unmet:
                if key not in job.registered_waits:
                    job.registered_waits.add(key)
                    self._waiters.setdefault(key, []).append(job)
            if job.status != "PENDING":
                self.set_status(job, "PENDING")
            return
        job.registered_waits.clear()
        self.set_status(job, "RUNNABLE")
        self._runnable_queue(job.queue_arn).append(job)

    def _runnable_queue(self, queue_arn: str) -> collections.deque[Job]:
        queue = self._runnable.get(queue_arn)
        if queue is None:
            queue = self._runnable[queue_arn] = collections.deque()
        return queue

    # ---- cancel and terminate --------------------------------------------------------------

    def cancel(self, job: Job, reason: str) -> None:
        """CancelJob: jobs not yet STARTING fail; running ones go on (AWS's rule)."""
        targets = job.children if job.is_parent else [job]
        for target in targets:
            if target.status in ("SUBMITTED", "PENDING", "RUNNABLE"):
                target.is_cancelled = True
                self.set_status(target, "FAILED", reason)
        if job.is_parent:
            job.is_cancelled = True
            self._mark(job)
        self.wake()

    def terminate(self, job: Job, reason: str) -> None:
        """TerminateJob: jobs not yet started fail; running ones get SIGTERM, SIGKILL after the grace."""
        targets = job.children if job.is_parent else [job]
        for target in targets:
            if target.is_terminal:
                continue
            target.is_terminated = True
            self._mark(target)
            if target.status in ACTIVE_STATES:
                attempt = self._attempts.get(target.job_id)
                if attempt is not None and attempt.stop_cause is None:
                    attempt.stop_cause = "terminate"
                    attempt.extra["reason"] = reason
                    self._signal_attempt(attempt, signal.SIGTERM)
            else:
                self.set_status(target, "FAILED", reason)
        if job.is_parent:
            job.is_terminated = True
            self._mark(job)
        self.wake()

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
            timeout = self._next_timer()
            events = self._selector.select(timeout)
            with self.lock:
                if self._stopping:
                    return
                now = time.monotonic()
                for key, _ in events:
                    self._handle_event(key.fileobj, key.data)  # type: ignore[arg-type]
                while self._exited:
                    self._on_exit(self._exited.popleft())
                try:
                    self._check_timers(now)
                    self._schedule()
                except Exception:  # never let one bad job stop the engine
                    log.exception("engine round failed")
                self.flush()

    def _handle_event(self, fileobj: int, data: tuple[str, Attempt] | None) -> None:
        if data is None:
            with contextlib.suppress(BlockingIOError, OSError):
                while os.read(self._wake_read, 4096):
                    pass
            return
        kind, attempt = data
        if kind == "output":
            self._read_output(attempt)
        else:
            self._on_exit(attempt)

    def _read_output(self, attempt: Attempt) -> None:
        if not attempt.output_open:
            return
        stamp = now_ms()
        while True:
            try:
                chunk = os.read(attempt.output_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._close_output(attempt)
                return
            attempt.writer.feed(chunk, stamp)
            if len(chunk) < 65536:
                return

    def _close_output(self, attempt: Attempt) -> None:
        if not attempt.output_open:
            return
        attempt.output_open = False
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(attempt.output_fd)
        os.close(attempt.output_fd)
        attempt.writer.close(now_ms())
        if attempt.returncode is not None:
            self._complete(attempt)

    def _on_exit(self, attempt: Attempt) -> None:
        if attempt.returncode is not None:
            return
        returncode = attempt.process.poll()
        if returncode is None:
            return
        attempt.returncode = returncode
        attempt.exited_at = now_ms()
        if attempt.pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(attempt.pidfd)
            os.close(attempt.pidfd)
            attempt.pidfd = None
        # The container ends with its main process: whatever it left behind goes too.
        kill_group(attempt.process.pid, signal.SIGKILL)
        if not attempt.output_open:
            self._complete(attempt)
            return
        self._read_output(attempt)  # completes the attempt when it reaches the end of the output
        if attempt.output_open:
            attempt.drain_until = time.monotonic() + OUTPUT_DRAIN_SECONDS

    def _next_timer(self) -> float | None:
        with self.lock:
            deadlines = []
            for attempt in self._attempts.values():
                for moment in (attempt.deadline, attempt.kill_at, attempt.drain_until):
                    if moment is not None:
                        deadlines.append(moment)
                if attempt.memory_mib and attempt.returncode is None:
                    deadlines.append(self._next_memory_check)
            if self._to_evaluate:
                return 0.0
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _check_timers(self, now: float) -> None:
        check_memory = now >= self._next_memory_check
        memory_watch: dict[int, Attempt] = {}
        for attempt in list(self._attempts.values()):
            if attempt.returncode is not None:
                if attempt.drain_until is not None and now >= attempt.drain_until:
                    self._close_output(attempt)
                continue
            if attempt.deadline is not None and now >= attempt.deadline:
                attempt.deadline = None
                if attempt.stop_cause is None:
                    attempt.stop_cause = "timeout"
                    self._signal_attempt(attempt, signal.SIGTERM)
            if attempt.kill_at is not None and now >= attempt.kill_at:
                attempt.kill_at = None
                kill_group(attempt.process.pid, signal.SIGKILL)
            if check_memory and attempt.memory_mib:
                memory_watch[attempt.process.pid] = attempt
        if check_memory:
            self._next_memory_check = now + MEMORY_CHECK_INTERVAL
            if memory_watch:
                usage = group_rss_bytes(set(memory_watch))
                for pgid, rss in usage.items():
                    attempt = memory_watch[pgid]
                    if rss > attempt.memory_mib * 1024 * 1024 and attempt.stop_cause != "oom":
                        attempt.stop_cause = "oom"
                        kill_group(pgid, signal.SIGKILL)

    def _signal_attempt(self, attempt: Attempt, sig: int) -> None:
        kill_group(attempt.process.pid, sig)
        if sig == signal.SIGTERM and attempt.kill_at is None:
            attempt.kill_at = time.monotonic() + self.kill_grace_seconds

    # ---- scheduling ------------------------------------------------------------------------

    def _schedule(self) -> None:
        while self._to_evaluate:
            self._evaluate(self._to_evaluate.popleft())
        queues = sorted(
            (queue for queue in self.job_queues.values() if queue.get("state") == "ENABLED"),
            key=lambda queue: -int(queue.get("priority", 0)),
        )
        for queue in queues:
            runnable = self._runnable.get(queue["jobQueueArn"])
            if not runnable:
                continue
            environments = [
                self.compute_environment_by_arn(entry["computeEnvironment"])
                for entry in sorted(queue.get("computeEnvironmentOrder", []), key=lambda item: item["order"])
            ]
            usable = [env for env in environments if env is not None and env.get("state") == "ENABLED"]
            while runnable:
                job = runnable[0]
                if job.status != "RUNNABLE" or job.job_id in self._attempts:
                    runnable.popleft()
                    continue
                placed = self._place(job, usable)
                if placed is None:
                    break
                runnable.popleft()
                self._start_attempt(job, placed)
            # Jobs evaluated while starting (an attempt that failed to start) are handled next round.

    def _requirements(self, job: Job) -> tuple[float, int]:
        return float(job.spec["vcpus"]), int(job.spec.get("memory") or 0)

    def _place(self, job: Job, environments: list[dict[str, Any]]) -> str | None:
        vcpus, memory = self._requirements(job)
        for environment in environments:
            name = environment["computeEnvironmentName"]
            capacity_vcpus, capacity_memory = self.compute_environment_capacity(name)
            used = self.used.setdefault(name, [0.0, 0.0])
            if used[0] + vcpus <= capacity_vcpus + 1e-9 and used[1] + memory <= capacity_memory:
                return name
        return None

    def _start_attempt(self, job: Job, environment_name: str) -> None:
        spec = job.spec
        vcpus, memory = self._requirements(job)
        attempt_id = uuid.uuid4().hex
        stream = f"{spec['jobDefinitionName']}/default/{attempt_id}"
        self.set_status(job, "STARTING")
        started = now_ms()
        queue = self.queue_by_arn(job.queue_arn)
        variables = {item["name"]: item["value"] for item in spec["container"].get("environment", [])}
        variables.update(
            AWS_BATCH_JOB_ID=job.job_id,
            AWS_BATCH_JOB_ATTEMPT=str(len(job.attempts) + 1),
            AWS_BATCH_CE_NAME=environment_name,
            AWS_BATCH_JQ_NAME=queue["jobQueueName"] if queue else job.queue_arn.rsplit("/", 1)[-1],
            AWS_REGION=job.region,
            AWS_DEFAULT_REGION=job.region,
        )
        if job.index is not None and job.parent is not None:
            variables["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.index)
            variables["AWS_BATCH_JOB_ARRAY_SIZE"] = str(job.parent.array_size)
        image = spec["container"].get("image", "")
        try:
            folder = self.images.resolve(image)
            process, output_fd = spawn(
                spec["container"].get("command", []), folder, job_environment(variables)
            )
        except LookupError as error:
            self._fail_to_start(job, stream, started, f"CannotPullContainerError: {error}")
            return
        except (OSError, ValueError, subprocess.SubprocessError) as error:
            command = " ".join(spec["container"].get("command", [])) or "(no command)"
            self._fail_to_start(
                job, stream, started, f"CannotStartContainerError: cannot run {command!r}: {error}"
            )
            return
        timeout = spec.get("timeout") or {}
        duration = timeout.get("attemptDurationSeconds")
        attempt = Attempt(
            job=job,
            process=process,
            output_fd=output_fd,
            writer=LogWriter(self.logs_dir / f"{attempt_id}.log", self.max_log_bytes),
            compute_environment=environment_name,
            vcpus=vcpus,
            memory_mib=memory,
            deadline=time.monotonic() + duration if duration else None,
        )
        used = self.used.setdefault(environment_name, [0.0, 0.0])
        used[0] += vcpus
        used[1] += memory
        self._attempts[job.job_id] = attempt
        self._selector.register(output_fd, selectors.EVENT_READ, ("output", attempt))
        if self._use_pidfd:
            try:
                attempt.pidfd = os.pidfd_open(process.pid)
                self._selector.register(attempt.pidfd, selectors.EVENT_READ, ("exit", attempt))
            except OSError:
                self._use_pidfd = False
                attempt.pidfd = None
        if attempt.pidfd is None:
            threading.Thread(target=self._wait_for, args=(attempt,), daemon=True).start()
        self.streams[stream] = (attempt_id, started)
        job.current = {
            "pid": process.pid,
            "startTime": process_start_time(process.pid),
            "attemptId": attempt_id,
            "logStreamName": stream,
            "startedAt": started,
            "computeEnvironment": environment_name,
        }
        job.log_stream = stream
        job.exit_code = None
        job.container_reason = None
        job.started_at = job.started_at or started
        self.set_status(job, "RUNNING")

    def _wait_for(self, attempt: Attempt) -> None:
        attempt.process.wait()
        self._exited.append(attempt)
        self.wake()

    def _fail_to_start(self, job: Job, stream: str, started: int, reason: str) -> None:
        attempt = {
            "container": {"reason": reason, "logStreamName": stream},
            "startedAt": started,
            "stoppedAt": now_ms(),
            "statusReason": reason,
        }
        self._finish_attempt(job, attempt, None, reason, reason)

    def _complete(self, attempt: Attempt) -> None:
        """The attempt's process has exited and its output is closed: record the result."""
        if attempt.completed:
            return
        attempt.completed = True
        job = attempt.job
        self._attempts.pop(job.job_id, None)
        used = self.used.setdefault(attempt.compute_environment, [0.0, 0.0])
        used[0] = max(0.0, used[0] - attempt.vcpus)
        used[1] = max(0.0, used[1] - attempt.memory_mib)
        assert attempt.returncode is not None
        exit_code = exit_code_of(attempt.returncode)
        container_reason: str | None = None
        if attempt.stop_cause == "oom":
            container_reason = status_reason = OOM_REASON
        elif attempt.stop_cause == "timeout":
            status_reason = TIMEOUT_REASON
        elif attempt.stop_cause == "terminate":
            status_reason = attempt.extra.get("reason") or "Terminated"
        elif attempt.stop_cause == "stop":
            container_reason = status_reason = STOP_REASON
        else:
            status_reason = EXITED_REASON
        current = job.current or {}
        record: dict[str, Any] = {
            "container": {"exitCode": exit_code, "logStreamName": current.get("logStreamName")},
            "startedAt": current.get("startedAt"),
            "stoppedAt": attempt.exited_at or now_ms(),
            "statusReason": status_reason,
        }
        if container_reason:
            record["container"]["reason"] = container_reason
        succeeded = exit_code == 0 and attempt.stop_cause is None
        self._finish_attempt(job, record, exit_code, container_reason, status_reason, succeeded)

    def _finish_attempt(  # noqa: PLR0917 - one call per outcome, each naming every part
        self,
        job: Job,
        record: dict[str, Any],
        exit_code: int | None,
        container_reason: str | None,
        status_reason: str,
        succeeded: bool = False,
    ) -> None:
        job.attempts.append(record)
        job.current = None
        job.exit_code = exit_code
        job.container_reason = container_reason
        job.log_stream = record["container"].get("logStreamName")
        if succeeded:
            job.stopped_at = record["stoppedAt"]
            self.set_status(job, "SUCCEEDED", status_reason)
            return
        if record.get("statusReason") == TIMEOUT_REASON:
            retry = False  # AWS does not retry an attempt that timed out
        else:
            retry = retry_decision(job, exit_code, container_reason, status_reason)
        if retry:
            self.set_status(job, "RUNNABLE", status_reason)
            self._runnable_queue(job.queue_arn).append(job)
        else:
            job.stopped_at = record["stoppedAt"]
            self.set_status(job, "FAILED", status_reason)

    def flush(self) -> None:
        """Write the jobs that changed in one transaction."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        self.store.save_jobs((job.job_id, job.seq, job.document()) for job in dirty.values())

    # ---- stopping --------------------------------------------------------------------------

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop the loop; running attempts get SIGTERM, then SIGKILL, and are recorded as interrupted."""
        with self.lock:
            self._stopping = True
            attempts = list(self._attempts.values())
            for attempt in attempts:
                if attempt.returncode is None:
                    kill_group(attempt.process.pid, signal.SIGTERM)
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        deadline = time.monotonic() + grace_seconds
        for attempt in attempts:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                attempt.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                kill_group(attempt.process.pid, signal.SIGKILL)
                attempt.process.wait()
            kill_group(attempt.process.pid, signal.SIGKILL)
        with self.lock:
            for attempt in attempts:
                if attempt.completed:
                    continue
                if attempt.output_open:
                    attempt.output_open = False
                    with contextlib.suppress(OSError):
                        while chunk := os.read(attempt.output_fd, 65536):
                            attempt.writer.feed(chunk, now_ms())
                    with contextlib.suppress(OSError):
                        os.close(attempt.output_fd)
                    attempt.writer.close(now_ms())
                if attempt.pidfd is not None:
                    with contextlib.suppress(OSError):
                        os.close(attempt.pidfd)
                job = attempt.job
                self._attempts.pop(job.job_id, None)
                if job.status in TERMINAL_STATES:
                    continue
                if attempt.returncode is not None or attempt.stop_cause in ("terminate", "timeout", "oom"):
                    # It ended on its own, or was being stopped for a reason of its own: record that.
                    attempt.returncode = attempt.process.returncode
                    attempt.exited_at = attempt.exited_at or now_ms()
                    self._complete(attempt)
                    continue
                current = job.current or {}
                exit_code = exit_code_of(attempt.process.returncode or 0)
                record: dict[str, Any] = {
                    "container": {
                        "exitCode": exit_code,
                        "logStreamName": current.get("logStreamName"),
                        "reason": STOP_REASON,
                    },
                    "startedAt": current.get("startedAt"),
                    "stoppedAt": now_ms(),
                    "statusReason": STOP_REASON,
                }
                self._finish_attempt(job, record, exit_code, STOP_REASON, STOP_REASON)
            self.flush()
            self.store.close()

    # ---- queries ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Jobs per state (plain jobs and array children; array parents are not counted twice)."""
        counts = dict.fromkeys(STATES, 0)
        with self.lock:
            for job in self.jobs.values():
                if not job.is_parent:
                    counts[job.status] += 1
        return counts

    def run_locked(self, function: Callable[[], Any]) -> Any:
        with self.lock:
            return function()
