"""The scheduler: job states, dependencies, retries and capacity, with no process in sight.

It owns the jobs. Dependencies are tracked by reverse index (a job registers on the ids it waits for and
is evaluated again only when one of them ends), array parents' summaries are counters, and runnable jobs
wait in a FIFO per queue, so that releasing child *i* of an ``N_TO_N`` array costs the same whatever *i*.
A queue with a scheduling policy keeps them by share instead (``fair_share``); queues'
``jobStateTimeLimitActions`` watch each queue's head (``time_limits``).
The engine calls it under its lock; it never blocks.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Iterable
from typing import Any

from batch_fanout.local.clock import SchedulingClock
from batch_fanout.local.fair_share import FairShareQueue, ShareUsage
from batch_fanout.local.gates import Gates
from batch_fanout.local.jobs import (
    ACTIVE_STATES,
    STATES,
    TERMINAL_STATES,
    TIMEOUT_REASON,
    Job,
    now_ms,
    retry_decision,
)
from batch_fanout.local.multinode import is_multinode_parent
from batch_fanout.local.registry import Registry
from batch_fanout.local.store import Store
from batch_fanout.local.time_limits import TimeLimits

WAITING_STATES = ("SUBMITTED", "PENDING", "RUNNABLE")


class Scheduler:
    """Every job of the endpoint and the rules that move them between states.

    :param registry: the queues and compute environments jobs run in
    :param store: where jobs persist
    """

    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry = registry
        self.store = store
        self.jobs: dict[str, Job] = {}
        self.top_level_jobs: list[Job] = []
        self.streams: dict[str, tuple[str, int]] = {}  # stream name -> (attempt id, created at)
        self.used: dict[str, list[float]] = {}  # compute environment name -> [vcpus, memory MiB]
        self.next_seq = 0
        self._to_evaluate: collections.deque[Job] = collections.deque()
        self._waiters: dict[str, list[Job]] = {}
        self._runnable: dict[str, collections.deque[Job] | FairShareQueue] = {}
        self._dirty: dict[str, Job] = {}
        self._runnable_since: dict[str, int] = {}  # job id -> when it became RUNNABLE
        # A job put back in a queue after its last schedule round (a retry): another round is due.
        self._requeued = False
        self.gates = Gates()  # GPUs, consumable resources (``gates.py``)
        # Fair-share usage and queues' time limits wait on the scheduling clock (tests advance it).
        self.clock = SchedulingClock(store)
        self.shares = ShareUsage(
            self.clock, lambda queue_arn: int(self._policy(queue_arn).get("shareDecaySeconds") or 0)
        )
        self.time_limits = TimeLimits(self.clock)
        # Multi-node jobs (``multinode_runs``): a node's attempt ended (the arguments of
        # ``finish_attempt``), and any job reached a terminal state.
        self.node_attempt_ended: Callable[..., None] | None = None
        self.job_ended: Callable[[Job], None] | None = None

    # ---- loading ---------------------------------------------------------------------------

    def load(self) -> list[Job]:
        """Read every job from the store; returns the jobs whose attempt was running."""
        active: list[Job] = []
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
            elif job.status in ("STARTING", "RUNNING"):
                if not is_multinode_parent(job):  # a multi-node job's attempts are its nodes'
                    active.append(job)
                if job.spec.get("shareIdentifier"):
                    self.shares.started(job)
            elif job.node_index is not None:
                continue  # a node waits for its job's placement, never in a queue of its own
            elif job.status in ("SUBMITTED", "PENDING"):
                self._to_evaluate.append(job)
            elif job.status == "RUNNABLE":
                self.runnable_queue(job.queue_arn).append(job)
        for job in self.top_level_jobs:
            if job.is_parent:
                self._update_parent(job)
        return active

    # ---- state changes ---------------------------------------------------------------------

    def mark(self, job: Job) -> None:
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
        self.mark(job)
        if status == "RUNNABLE":
            self._runnable_since.setdefault(job.job_id, now_ms())
        elif old == "RUNNABLE":
            self._runnable_since.pop(job.job_id, None)
        if not job.is_parent and job.spec.get("shareIdentifier"):
            if status in ACTIVE_STATES and old not in ACTIVE_STATES:
                self.shares.started(job)
            elif old in ACTIVE_STATES and status not in ACTIVE_STATES:
                self.shares.stopped(job)
        parent = job.parent
        if parent is not None and parent.summary is not None and old != status:
            parent.summary[old] -= 1
            parent.summary[status] += 1
            parent.summary_updated_at = now_ms()
            if status in ("STARTING", "RUNNING") and parent.started_at is None:
                parent.started_at = job.started_at or now_ms()
            self._update_parent(parent)
        if status in TERMINAL_STATES and old not in TERMINAL_STATES:
            self._to_evaluate.extend(self._waiters.pop(job.job_id, ()))
            if self.job_ended is not None:
                self.job_ended(job)

    def _update_parent(self, parent: Job) -> None:
        """Derive an array parent's status from its children's counts (no scan of the children)."""
        summary = parent.summary
        assert summary is not None and parent.array_size is not None
        done = summary["SUCCEEDED"] + summary["FAILED"]
        reason: str | None = None
        if done == parent.array_size:
            if summary["FAILED"]:
                status = "FAILED"
                reason = f"Array Child Job failed: {summary['FAILED']} of {parent.array_size} children failed"
            else:
                status, reason = "SUCCEEDED", "Array Child Jobs succeeded"
        elif summary["STARTING"] or summary["RUNNING"] or done:
            status = "RUNNING"
        elif summary["RUNNABLE"]:
            status = "RUNNABLE"
        elif summary["PENDING"]:
            status = "PENDING"
        else:
            status = "SUBMITTED"
        if status != parent.status or (reason and reason != parent.status_reason):
            if status == "RUNNING" and parent.started_at is None:
                parent.started_at = now_ms()
            self.set_status(parent, status, reason)

    def allocate_seq(self, count: int) -> int:
        first = self.next_seq
        self.next_seq += count
        return first

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

    # ---- dependencies ----------------------------------------------------------------------

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
        if job.status not in ("SUBMITTED", "PENDING") or job.is_parent or job.node_index is not None:
            return
        unmet: list[str] = []
        for key in self.dependency_keys(job):
            dependency = self.jobs.get(key)
            if dependency is None or dependency.status == "FAILED":
                self.set_status(job, "FAILED", f"Dependent Job failed: {key} did not succeed")
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
        self.runnable_queue(job.queue_arn).append(job)

    def runnable_queue(self, queue_arn: str) -> collections.deque[Job] | FairShareQueue:
        queue = self._runnable.get(queue_arn)
        document = self.registry.job_queues.find(queue_arn)
        fair_share = bool(document and document.get("schedulingPolicyArn"))
        # A queue's kind never changes (AWS's rule), but a deleted queue's name can come back as the other.
        if queue is None or isinstance(queue, FairShareQueue) != fair_share:
            if fair_share:
                queue = FairShareQueue(queue_arn, functools.partial(self._policy, queue_arn), self.shares)
            else:
                queue = collections.deque()
            self._runnable[queue_arn] = queue
        return queue

    def _policy(self, queue_arn: str) -> dict[str, Any]:
        """The fair-share policy of a queue now (policies can be updated)."""
        queue = self.registry.job_queues.find(queue_arn) or {}
        policy = self.registry.scheduling_policies.find(queue.get("schedulingPolicyArn") or "") or {}
        return dict(policy.get("fairsharePolicy") or {})

    def front_of_queue(self, queue_arn: str, limit: int) -> list[tuple[Job, int]]:
        """The first ``limit`` RUNNABLE jobs of a queue in dispatch order, with when each became RUNNABLE."""
        front: list[tuple[Job, int]] = []
        for job in self._runnable.get(queue_arn, ()):
            if len(front) == limit:
                break
            if job.status == "RUNNABLE" and not job.is_parent:
                front.append((job, self._runnable_since.get(job.job_id, job.created_at)))
        return front

    @property
    def has_work(self) -> bool:
        return bool(self._to_evaluate) or self._requeued

    # ---- placement -------------------------------------------------------------------------

    def requirements(self, job: Job) -> tuple[float, int]:
        return float(job.spec["vcpus"]), int(job.spec.get("memory") or 0)

    def reserve(self, environment_name: str, vcpus: float, memory: int) -> None:
        used = self.used.setdefault(environment_name, [0.0, 0.0])
        used[0] += vcpus
        used[1] += memory

    def release(self, environment_name: str, vcpus: float, memory: int) -> None:
        used = self.used.setdefault(environment_name, [0.0, 0.0])
        used[0] = max(0.0, used[0] - vcpus)
        used[1] = max(0.0, used[1] - memory)

    def _place(self, job: Job, environments: list[dict[str, Any]]) -> str | None:
        vcpus, memory = self.requirements(job)
        for environment in environments:
            name = str(environment["computeEnvironmentName"])
            capacity_vcpus, capacity_memory = self.registry.capacity(environment)
            used = self.used.setdefault(name, [0.0, 0.0])
            if used[0] + vcpus <= capacity_vcpus + 1e-9 and used[1] + memory <= capacity_memory:
                return name
        return None

    def schedule(self) -> list[tuple[Job, str]]:
        """Evaluate what changed, then take the runnable jobs that fit: each is STARTING, its capacity
        reserved, and returned with its compute environment for the engine to start."""
        self._requeued = False
        while self._to_evaluate:
            self._evaluate(self._to_evaluate.popleft())
        placed: list[tuple[Job, str]] = []
        queues = sorted(
            (queue for queue in self.registry.job_queues.all() if queue.get("state") == "ENABLED"),
            key=lambda queue: -int(queue.get("priority", 0)),
        )
        self.time_limits.retain({queue["jobQueueArn"] for queue in queues})
        for queue in queues:
            runnable = self._runnable.get(queue["jobQueueArn"])
            if not runnable:
                self.time_limits.check(queue, None, self.cancel)
                continue
            environments = self.registry.queue_environments(queue)
            if isinstance(runnable, FairShareQueue):
                self._schedule_fair_share(queue, runnable, environments, placed)
                self._check_time_limits(queue, runnable.head())
                continue
            while runnable:
                job = runnable[0]
                if job.status != "RUNNABLE":
                    runnable.popleft()
                    continue
                environment = self._place(job, environments)
                if environment is None or not self.gates.fits(job.job_id, job.spec):
                    break
                runnable.popleft()
                self.reserve(environment, *self.requirements(job))
                self.gates.take(job.job_id, job.spec)
                self.set_status(job, "STARTING")
                placed.append((job, environment))
            # The first job that does not fit holds the queue: it is the head that time limits watch.
            self._check_time_limits(queue, runnable[0] if runnable else None)
        return placed

    def _check_time_limits(self, queue: dict[str, Any], head: Job | None) -> None:
        if self.time_limits.check(queue, head, self.cancel):
            self._requeued = True  # the next job is at the head now: its time starts

    def _schedule_fair_share(
        self,
        queue: dict[str, Any],
        runnable: FairShareQueue,
        environments: list[dict[str, Any]],
        placed: list[tuple[Job, str]],
    ) -> None:
        """By share usage and weight, then priority, then submission order (``fair_share``)."""
        capacity = sum(self.registry.capacity(environment)[0] for environment in environments)
        chosen: dict[str, str] = {}

        def fits(job: Job) -> bool:
            environment = self._place(job, environments)
            if environment is None or not self.gates.fits(job.job_id, job.spec):
                return False
            chosen[job.job_id] = environment
            return True

        while True:
            used = sum(
                vcpus
                for (queue_arn, _), vcpus in self.shares.running.items()
                if queue_arn == queue["jobQueueArn"]
            )
            job = runnable.take(fits, capacity, used)
            if job is None:
                return
            environment = chosen.pop(job.job_id)
            self.reserve(environment, *self.requirements(job))
            self.gates.take(job.job_id, job.spec)
            self.set_status(job, "STARTING")
            placed.append((job, environment))

    def next_deadline_seconds(self) -> float | None:
        """Seconds until a queue's time limit falls due (for the engine's wait), or ``None``."""
        deadline = self.time_limits.next_deadline_ms()
        return None if deadline is None else max(0.0, (deadline - self.clock.now_ms()) / 1000)

    # ---- attempts' ends --------------------------------------------------------------------

    def finish_attempt(  # noqa: PLR0917 - one call per outcome, each naming every part
        self,
        job: Job,
        record: dict[str, Any],
        exit_code: int | None,
        container_reason: str | None,
        status_reason: str,
        succeeded: bool = False,
    ) -> None:
        """Record a finished attempt, then succeed, retry (back to RUNNABLE) or fail the job."""
        job.attempts.append(record)
        job.current = None
        job.exit_code = exit_code
        job.container_reason = container_reason
        job.log_stream = record["container"].get("logStreamName")
        if job.node_index is not None and self.node_attempt_ended is not None:
            self.node_attempt_ended(job, record, exit_code, container_reason, status_reason, succeeded)
            return
        if succeeded:
            job.stopped_at = record["stoppedAt"]
            self.set_status(job, "SUCCEEDED", status_reason)
            return
        # AWS does not retry an attempt that timed out.
        retry = status_reason != TIMEOUT_REASON and retry_decision(
            job, exit_code, container_reason, status_reason
        )
        if retry:
            self.set_status(job, "RUNNABLE", status_reason)
            self.runnable_queue(job.queue_arn).append(job)
            self._requeued = True
        else:
            job.stopped_at = record["stoppedAt"]
            self.set_status(job, "FAILED", status_reason)

    # ---- cancel and terminate --------------------------------------------------------------

    def cancel(self, job: Job, reason: str) -> None:
        """CancelJob: jobs not yet STARTING fail; running ones go on (AWS's rule)."""
        for target in job.children if job.is_parent else [job]:
            if target.status in WAITING_STATES:
                target.is_cancelled = True
                self.set_status(target, "FAILED", reason)
        if job.is_parent:
            job.is_cancelled = True
            self.mark(job)

    def terminate(self, job: Job, reason: str) -> list[Job]:
        """TerminateJob: waiting jobs fail; returns the started ones, for the engine to stop."""
        started: list[Job] = []
        for target in job.children if job.is_parent else [job]:
            if target.is_terminal:
                continue
            target.is_terminated = True
            self.mark(target)
            if target.status in WAITING_STATES:
                self.set_status(target, "FAILED", reason)
            else:
                started.append(target)
        if job.is_parent:
            job.is_terminated = True
            self.mark(job)
        return started

    # ---- persistence and queries -----------------------------------------------------------

    def flush(self) -> None:
        """Write the jobs that changed in one transaction."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        self.store.save_jobs((job.job_id, job.seq, job.document()) for job in dirty.values())

    def tagged(self, resource_arn: str) -> tuple[dict[str, str], Callable[[], None]] | None:
        """The tags of a job by ARN (an array child shares its parent's), and how to persist them."""
        job = self.jobs.get(resource_arn.rsplit("/", 1)[-1]) if ":job/" in resource_arn else None
        if job is None:
            return None
        tags: dict[str, str] = job.spec["tags"]
        return tags, functools.partial(self.save_now, job)

    def save_now(self, job: Job) -> None:
        owner = job.parent or job
        self.store.save_jobs([(owner.job_id, owner.seq, owner.document())])

    def counts(self) -> dict[str, int]:
        """Jobs per state (plain jobs, array children and nodes; array and multi-node parents are not
        counted twice)."""
        counts = dict.fromkeys(STATES, 0)
        for job in self.jobs.values():
            if not job.is_parent and not is_multinode_parent(job):
                counts[job.status] += 1
        return counts
